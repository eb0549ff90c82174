//! Turning entries of the global log into envelopes, with typed errors for
//! bad data.
//!
//! An event is one entry of the `{ns}:events` stream: entry id
//! `<position>-0` and the fields `id`, `stream`, `version`, `aggregate`,
//! `type`, `schema`, `payload`, `metadata` and `at` (see `append.lua`). An
//! entry that does not fit an envelope gives [`StoreError::Corrupt`] naming
//! the stream, version and position as far as they can be read; nothing is
//! rewritten. Replies of the wrong shape altogether (not an entry at all)
//! are corruption too: only a hand-edited key or a foreign writer makes them.

use es_core::error::StoreError;
use es_core::store::{Payload, RecordedEvent, Timestamp};
use es_core::{EventId, GlobalPosition, Metadata, StreamId, StreamVersion};
use redis::Value;
use uuid::Uuid;

/// What the reader already knows about the entry it decodes: a read of one
/// stream knows the stream, the version and the position it looked up.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Expected<'a> {
    pub(crate) stream: Option<&'a StreamId>,
    pub(crate) version: Option<u64>,
    pub(crate) position: Option<u64>,
}

impl Expected<'_> {
    /// Where the entry sits, in the terms known so far.
    pub(crate) fn location(&self) -> String {
        match (self.stream, self.version, self.position) {
            (Some(s), Some(v), Some(p)) => format!("stream `{s}` version {v} (global position {p})"),
            (Some(s), Some(v), None) => format!("stream `{s}` version {v}"),
            (Some(s), None, Some(p)) => format!("stream `{s}` (global position {p})"),
            (None, _, Some(p)) => format!("global position {p}"),
            (Some(s), None, None) => format!("stream `{s}`"),
            (None, _, None) => "an entry of the global log".to_owned(),
        }
    }

    pub(crate) fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            location: self.location(),
            position: self.position.map(GlobalPosition),
            detail: detail.into(),
        }
    }
}

/// The fields of one entry, as stored.
#[derive(Default)]
struct Fields {
    id: Option<Vec<u8>>,
    stream: Option<Vec<u8>>,
    version: Option<Vec<u8>>,
    aggregate: Option<Vec<u8>>,
    event_type: Option<Vec<u8>>,
    schema: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    metadata: Option<Vec<u8>>,
    at: Option<Vec<u8>>,
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A log entry id, `<position>-0`, as its position.
pub(crate) fn position_of_entry_id(id: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(id).ok()?;
    let (position, sequence) = text.split_once('-')?;
    let position: u64 = position.parse().ok()?;
    (sequence == "0" && position > 0).then_some(position)
}

fn text(bytes: Vec<u8>, field: &str, at: &Expected<'_>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|e| at.corrupt(format!("field `{field}` is not UTF-8: {e}")))
}

fn required(value: Option<Vec<u8>>, field: &str, at: &Expected<'_>) -> Result<Vec<u8>, StoreError> {
    value.ok_or_else(|| at.corrupt(format!("the entry has no field `{field}`")))
}

fn number<T: std::str::FromStr>(
    value: Option<Vec<u8>>,
    field: &str,
    what: &str,
    at: &Expected<'_>,
) -> Result<T, StoreError> {
    let raw = text(required(value, field, at)?, field, at)?;
    raw.parse().map_err(|_| at.corrupt(format!("field `{field}` is {raw:?}, not {what}")))
}

/// Splits an entry (`{entry id, {field, value, ..}}`) into its position and
/// fields.
fn split(entry: Value, expected: &Expected<'_>) -> Result<(u64, Fields), StoreError> {
    let Value::Array(parts) = entry else {
        return Err(expected.corrupt(format!("the log entry is {entry:?}, not an entry")));
    };
    let mut parts = parts.into_iter();
    let (Some(id), Some(Value::Array(values)), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(expected.corrupt("the log entry is not an entry id followed by its fields"));
    };
    let id = bytes(id).ok_or_else(|| expected.corrupt("the log entry's id is not a string"))?;
    let position = position_of_entry_id(&id).ok_or_else(|| {
        expected
            .corrupt(format!("the log entry's id {:?} is not `<position>-0`", String::from_utf8_lossy(&id)))
    })?;
    if expected.position.is_some_and(|p| p != position) {
        return Err(
            expected.corrupt(format!("the stream's index points at the log entry of position {position}"))
        );
    }
    let at = Expected { position: Some(position), ..*expected };
    if values.len() % 2 != 0 {
        return Err(at.corrupt("the entry has a field without a value"));
    }
    let mut fields = Fields::default();
    let mut values = values.into_iter();
    while let (Some(name), Some(value)) = (values.next(), values.next()) {
        let (Some(name), Some(value)) = (bytes(name), bytes(value)) else {
            return Err(at.corrupt("a field name or value of the entry is not a string"));
        };
        let slot = match name.as_slice() {
            b"id" => &mut fields.id,
            b"stream" => &mut fields.stream,
            b"version" => &mut fields.version,
            b"aggregate" => &mut fields.aggregate,
            b"type" => &mut fields.event_type,
            b"schema" => &mut fields.schema,
            b"payload" => &mut fields.payload,
            b"metadata" => &mut fields.metadata,
            b"at" => &mut fields.at,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok((position, fields))
}

/// Decodes one log entry into an envelope.
pub(crate) fn recorded_event(entry: Value, expected: &Expected<'_>) -> Result<RecordedEvent, StoreError> {
    let (position, mut fields) = split(entry, expected)?;
    let mut at = Expected { position: Some(position), ..*expected };

    let stream = StreamId::new(text(required(fields.stream.take(), "stream", &at)?, "stream", &at)?);
    if expected.stream.is_some_and(|s| *s != stream) {
        return Err(at.corrupt(format!("the entry belongs to stream `{stream}`")));
    }
    at.stream = Some(&stream);
    let version: u64 = number(fields.version.take(), "version", "a stream version", &at)?;
    if version == 0 || expected.version.is_some_and(|v| v != version) {
        return Err(at.corrupt(format!("the entry says it is version {version}")));
    }
    at.version = Some(version);

    let id = text(required(fields.id.take(), "id", &at)?, "id", &at)?;
    let event_id =
        Uuid::parse_str(&id).map_err(|e| at.corrupt(format!("field `id` is {id:?}, not a UUID: {e}")))?;
    let aggregate_type = text(required(fields.aggregate.take(), "aggregate", &at)?, "aggregate", &at)?;
    let event_type = text(required(fields.event_type.take(), "type", &at)?, "type", &at)?;
    let schema_version: u32 = number(fields.schema.take(), "schema", "a schema version", &at)?;
    let payload = text(required(fields.payload.take(), "payload", &at)?, "payload", &at)?;
    let payload =
        Payload::from_json(payload).map_err(|e| at.corrupt(format!("field `payload` is not JSON: {e}")))?;
    let metadata = metadata(required(fields.metadata.take(), "metadata", &at)?, &at)?;
    let recorded_at: i64 = number(fields.at.take(), "at", "a time in microseconds", &at)?;
    Ok(RecordedEvent {
        event_id: EventId(event_id),
        stream_id: stream,
        aggregate_type,
        stream_version: StreamVersion(version),
        global_position: GlobalPosition(position),
        event_type,
        schema_version,
        payload,
        metadata,
        recorded_at: Timestamp(recorded_at),
    })
}

/// Most events carry no metadata (`{}`), which skips serde's (slow)
/// flattening path.
fn metadata(raw: Vec<u8>, at: &Expected<'_>) -> Result<Metadata, StoreError> {
    if raw == b"{}" {
        return Ok(Metadata::default());
    }
    serde_json::from_slice(&raw).map_err(|e| at.corrupt(format!("field `metadata` does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        let values = fields.iter().flat_map(|(k, v)| [bulk(k), bulk(v)]).collect();
        Value::Array(vec![bulk(id), Value::Array(values)])
    }

    const ID: &str = "0190a0a0-0000-7000-8000-000000000001";

    fn good(overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = [
            ("id", ID),
            ("stream", "order-1"),
            ("version", "3"),
            ("aggregate", "order"),
            ("type", "Placed"),
            ("schema", "2"),
            ("payload", r#"{"b":1,"a":[true]}"#),
            ("metadata", "{}"),
            ("at", "1700000000000000"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (key, value) in overrides {
            match fields.iter_mut().find(|(k, _)| k == key) {
                Some(field) => field.1 = (*value).to_owned(),
                None => fields.push(((*key).to_owned(), (*value).to_owned())),
            }
        }
        fields
    }

    fn decode(id: &str, fields: &[(String, String)]) -> Result<RecordedEvent, StoreError> {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        recorded_event(entry(id, &fields), &Expected::default())
    }

    #[test]
    fn a_good_entry_decodes() {
        let event = decode("7-0", &good(&[])).unwrap();
        assert_eq!(event.global_position, GlobalPosition(7));
        assert_eq!(event.stream_id.as_str(), "order-1");
        assert_eq!(event.stream_version, StreamVersion(3));
        assert_eq!(event.schema_version, 2);
        assert_eq!(event.payload, serde_json::json!({"a": [true], "b": 1}));
        assert_eq!(event.recorded_at, Timestamp(1_700_000_000_000_000));
    }

    #[test]
    fn bad_entries_are_corrupt_naming_stream_version_and_position() {
        type Case = (&'static str, Vec<(String, String)>, &'static str);
        let cases: Vec<Case> = vec![
            ("7-0", good(&[("schema", "1099511627776")]), "field `schema`"),
            ("7-0", good(&[("version", "0")]), "version 0"),
            ("7-0", good(&[("payload", "{nope")]), "not JSON"),
            ("7-0", good(&[("id", "not-a-uuid")]), "not a UUID"),
            ("7-0", good(&[("metadata", "[1]")]), "metadata"),
            ("7-1", good(&[]), "not `<position>-0`"),
        ];
        for (id, fields, what) in cases {
            match decode(id, &fields) {
                Err(StoreError::Corrupt { location, detail, .. }) => {
                    assert!(detail.contains(what), "{what}: {detail}");
                    if id == "7-0" {
                        assert!(location.contains("global position 7"), "{what}: {location}");
                        if what != "version 0" {
                            assert!(location.contains("stream `order-1` version 3"), "{what}: {location}");
                        }
                    }
                }
                other => panic!("{what}: expected Corrupt, got {other:?}"),
            }
        }
        let missing: Vec<(String, String)> = good(&[]).into_iter().filter(|(k, _)| k != "type").collect();
        assert!(
            matches!(decode("7-0", &missing), Err(StoreError::Corrupt { detail, .. }) if detail.contains("`type`"))
        );
        let error = recorded_event(Value::Int(3), &Expected::default()).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }));
    }

    #[test]
    fn entry_ids_are_positions() {
        assert_eq!(position_of_entry_id(b"42-0"), Some(42));
        assert_eq!(position_of_entry_id(b"0-0"), None);
        assert_eq!(position_of_entry_id(b"42-1"), None);
        assert_eq!(position_of_entry_id(b"x-0"), None);
    }
}
