//! Events: the [`Event`] trait users derive with `#[event]`, and the
//! [`EventSet`] that `#[derive(Aggregate)]` generates for an aggregate.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::envelope::Payload;
use crate::error::{DecodeErrorKind, UpcastError};

pub(crate) mod owners;

#[allow(unused_imports, reason = "the read side routes with it (issue 10); tests use it until then")]
pub(crate) use owners::owners_of;
pub use owners::EventOwner;

/// A domain event: a fact, named in the past tense, stored as JSON.
///
/// Derive it with `#[event]` (optionally `#[event(name = "..", version = N,
/// upcast = path)]`) rather than implementing it by hand.
///
/// es needs an event to serialize, deserialize and cross threads, nothing
/// more: `Debug`, `Clone` and `PartialEq` are the user's choice. The test
/// kit's checks that compare or print events ask for `PartialEq` and
/// `Debug` where they do.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "`{Self}` is not an `#[event]`",
    note = "put `#[es_core::event]` on the declaration of `{Self}`"
)]
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The type name stored with each event (defaults to the Rust type name).
    const TYPE: &'static str;
    /// The current schema version (starts at 1).
    const VERSION: u32 = 1;

    /// Turns the payload of an older schema version into the current one.
    ///
    /// The default keeps the payload as it is, which suits changes serde
    /// absorbs on its own (a new optional field, a field with a default).
    ///
    /// # Errors
    /// An [`UpcastError`] saying why the old payload cannot be upcast.
    fn upcast(from_version: u32, payload: Value) -> Result<Value, UpcastError> {
        let _ = from_version;
        Ok(payload)
    }
}

/// The closed set of events of one aggregate: the enum that
/// `#[derive(Aggregate)]` generates, one variant per listed event.
///
/// The generated enum is `Debug`, `Clone` and `PartialEq` when every listed
/// event is; es itself needs none of them.
pub trait EventSet: Sized + Send + Sync + 'static {
    /// The stored type name of this event.
    fn event_type(&self) -> &'static str;
    /// The schema version this event is written with.
    fn schema_version(&self) -> u32;
    /// The event as JSON.
    ///
    /// # Errors
    /// serde's error if the event does not serialize.
    fn to_payload(&self) -> Result<Payload, serde_json::Error>;
    /// Decodes a stored event, upcasting older schema versions.
    ///
    /// # Errors
    /// The type name is unknown, the version is newer than supported, the
    /// upcaster failed, or the payload does not match.
    fn from_stored(event_type: &str, schema_version: u32, payload: &Payload)
        -> Result<Self, DecodeErrorKind>;
    /// Every type name in the set.
    fn event_types() -> &'static [&'static str];
}

/// Decodes one event type's payload, upcasting older versions: what
/// [`Recorded::decode`](crate::Recorded::decode) and the tables behind
/// generated `EventSet::from_stored` impls call.
///
/// # Errors
/// As [`EventSet::from_stored`].
pub fn decode_event<E: Event>(schema_version: u32, payload: &Payload) -> Result<E, DecodeErrorKind> {
    if schema_version == E::VERSION {
        // The common case: straight from the text, no `Value` in between.
        return payload.decode().map_err(DecodeErrorKind::Payload);
    }
    if schema_version > E::VERSION {
        return Err(DecodeErrorKind::NewerVersion { found: schema_version, supported: E::VERSION });
    }
    let old = payload.to_value().map_err(DecodeErrorKind::Payload)?;
    let upcast = E::upcast(schema_version, old)
        .map_err(|source| DecodeErrorKind::Upcast { from: schema_version, source })?;
    serde_json::from_value(upcast).map_err(DecodeErrorKind::Payload)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Renamed {
        name: String,
    }

    impl Event for Renamed {
        const TYPE: &'static str = "Renamed";
        const VERSION: u32 = 2;
        fn upcast(from_version: u32, mut payload: Value) -> Result<Value, UpcastError> {
            match from_version {
                1 => {
                    let old =
                        payload.get("title").cloned().ok_or(UpcastError::MissingField { field: "title" })?;
                    payload["name"] = old;
                    Ok(payload)
                }
                other => Err(UpcastError::UnsupportedVersion { from: other }),
            }
        }
    }

    #[test]
    fn current_version_decodes_directly() {
        let e: Renamed = decode_event(2, &Payload::from(json!({"name": "x"}))).unwrap();
        assert_eq!(e.name, "x");
    }

    #[test]
    fn older_version_is_upcast() {
        let e: Renamed = decode_event(1, &Payload::from(json!({"title": "old"}))).unwrap();
        assert_eq!(e.name, "old");
    }

    #[test]
    fn newer_version_is_a_typed_error() {
        let err = decode_event::<Renamed>(3, &Payload::from(json!({"name": "x"}))).unwrap_err();
        assert!(matches!(err, DecodeErrorKind::NewerVersion { found: 3, supported: 2 }));
    }

    #[test]
    fn failed_upcast_and_bad_payload_are_typed_errors() {
        assert!(matches!(
            decode_event::<Renamed>(1, &Payload::from(json!({}))).unwrap_err(),
            DecodeErrorKind::Upcast { from: 1, source: UpcastError::MissingField { field: "title" } }
        ));
        assert!(matches!(
            decode_event::<Renamed>(2, &Payload::from(json!({"name": 5}))).unwrap_err(),
            DecodeErrorKind::Payload(_)
        ));
    }

    #[test]
    fn payload_text_that_is_not_json_is_refused() {
        let err = Payload::from_json(r#"{"name": "x""#).unwrap_err();
        assert!(err.is_eof(), "{err}");
        assert!(Payload::from_json("1 2").is_err(), "two values are not one payload");
    }

    #[test]
    fn payloads_compare_as_json_values() {
        let stored = Payload::from_json(r#"{"b": [1, 2], "a": null}"#).unwrap();
        assert_eq!(stored, Payload::from(json!({"a": null, "b": [1, 2]})));
        assert_ne!(stored, Payload::from(json!({"a": null, "b": [2, 1]})));
        assert_ne!(stored, json!({"a": null}));
        // Text `Value` cannot hold still compares by its text.
        let huge = Payload::from_json("1e400").unwrap();
        assert_eq!(huge, huge.clone());
        assert!(huge.to_value().is_err());
    }

    #[test]
    fn nul_escapes_are_found_and_escaped_backslashes_are_not_one() {
        let nul = |text: &str| Payload::from_json(text).unwrap().contains_nul();
        assert!(nul(r#"{"s": "a\u0000b"}"#));
        assert!(nul(r#"["\\\u0000"]"#), "an escaped backslash, then a NUL");
        assert!(!nul(r#"{"s": "\\u0000"}"#), "an escaped backslash, then the text u0000");
        assert!(nul(r#"{"s": "\u00001"}"#), "a NUL followed by a digit");
        assert!(!nul(r#"{"s": "\u0001\"\n"}"#), "other escapes");
        assert!(!nul(r#"{"u0000": 0}"#));
    }

    #[test]
    fn a_payload_that_does_not_fit_the_event_names_the_field() {
        let err = decode_event::<Renamed>(2, &Payload::from_json(r#"{"name": 5}"#).unwrap()).unwrap_err();
        let DecodeErrorKind::Payload(source) = err else { panic!("expected a payload error, got {err:?}") };
        assert!(source.to_string().contains("invalid type: integer `5`"), "{source}");
    }
}
