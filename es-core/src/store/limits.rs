//! What every store can keep: the checks an adapter runs before anything
//! else, so that every adapter refuses the same appends, and whatever one
//! accepts it can read back.
//!
//! The limits, and why each is where it is:
//!
//! | limit | value | why |
//! |---|---|---|
//! | [`MAX_STREAM_ID_BYTES`] | 1,024 | Postgres indexes `(stream_id, stream_version)` in a btree, whose entries must stay under about 2,700 bytes; 1 KiB leaves ample room and is far above any sensible name |
//! | [`MAX_TYPE_NAME_BYTES`] | 255 | aggregate and event type names are identifiers, copied into every row |
//! | [`MAX_PAYLOAD_BYTES`] | 16 MiB | one event, as JSON text; far below what Postgres keeps in one `jsonb` (255 MB) |
//! | [`MAX_METADATA_BYTES`] | 64 KiB | correlation, causation and a few application fields, on every event |
//! | [`MAX_JSON_DEPTH`] | 64 | serde_json reads at most 127 levels of nested arrays and objects; 64 leaves room for whatever wraps a payload on its way back out (a response body, an upcaster's envelope) |
//! | [`MAX_BATCH_EVENTS`] | 16,384 | events in one append: one command's decision, or a slice of a bulk load (split larger loads into several appends, on Postgres inside one transaction if they must commit together) |
//! | [`MAX_BATCH_BYTES`] | 32 MiB | payloads and metadata of one append together (two of the largest events); Postgres takes one append as one message, of at most 1 GB in the server's own representation, and parses each `jsonb` in it (about 1.8 s per 16 MiB on a small server) |
//!
//! Lengths are in bytes of UTF-8 (a payload's and metadata's as JSON text,
//! the payload as given, metadata as serialized); depth counts nested arrays
//! and objects (a scalar is 0, `{"a": 1}` is 1, `{"a": [1]}` is 2).

use std::collections::HashSet;

use serde_json::Value;

use crate::envelope::{Metadata, NewEvent, Payload};
use crate::error::{AppendError, Field, Unstorable};
use crate::version::StreamId;

/// The longest stream id a store keeps, in bytes.
pub const MAX_STREAM_ID_BYTES: usize = 1024;
/// The longest aggregate or event type name a store keeps, in bytes.
pub const MAX_TYPE_NAME_BYTES: usize = 255;
/// The longest payload a store keeps, in bytes of JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// The longest metadata a store keeps, in bytes of JSON text.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// The deepest nesting of arrays and objects a store keeps in a payload or
/// in metadata.
pub const MAX_JSON_DEPTH: usize = 64;
/// The most events one append may hold.
pub const MAX_BATCH_EVENTS: usize = 16_384;
/// The most bytes of payloads and metadata (as JSON text) one append may hold.
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// Refuses an append that some store could not keep, or could not read
/// back: a value over one of the limits above, a NUL character in the
/// stream id, a type name, a payload or the metadata (Postgres stores none
/// in text or JSONB), or one event id twice in the batch. Adapters call it
/// before anything else, so every store refuses the same appends, and none
/// accepts what it cannot read back.
///
/// # Errors
/// [`AppendError::Unstorable`] with an [`Unstorable`] naming the first
/// offending part, the limit and the actual size (never the input itself);
/// else [`AppendError::DuplicateInBatch`] naming the first id the batch
/// repeats.
///
/// ```
/// use es_core::error::{AppendError, Unstorable};
/// use es_core::store::{check_storable, NewEvent, MAX_JSON_DEPTH};
/// use es_core::StreamId;
///
/// let deep = format!("{}1{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
/// let event = NewEvent::new("doc", "Deep", 1, es_core::store::Payload::from_json(deep)?);
/// let refused = check_storable(&StreamId::new("doc-1"), &[event]);
/// assert!(matches!(
///     refused,
///     Err(AppendError::Unstorable { reason: Unstorable::NestedTooDeep { depth: 65, max: 64, .. }, .. })
/// ));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn check_storable(stream: &StreamId, events: &[NewEvent]) -> Result<(), AppendError> {
    check(stream, events).map_err(|reason| AppendError::Unstorable { stream: stream.clone(), reason })?;
    let mut seen = HashSet::with_capacity(events.len());
    match events.iter().find(|event| !seen.insert(event.event_id)) {
        Some(twice) => {
            Err(AppendError::DuplicateInBatch { event_id: twice.event_id, stream: stream.clone() })
        }
        None => Ok(()),
    }
}

fn check(stream: &StreamId, events: &[NewEvent]) -> Result<(), Unstorable> {
    let name = stream.as_str();
    if name.len() > MAX_STREAM_ID_BYTES {
        return Err(Unstorable::StreamIdTooLong { len: name.len(), max: MAX_STREAM_ID_BYTES });
    }
    if name.contains('\0') {
        return Err(Unstorable::Nul { event: None, field: Field::StreamId });
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(Unstorable::TooManyEvents { count: events.len(), max: MAX_BATCH_EVENTS });
    }
    let mut batch_bytes = 0usize;
    for (event, new) in events.iter().enumerate() {
        for (field, name) in
            [(Field::AggregateType, &new.aggregate_type), (Field::EventType, &new.event_type)]
        {
            if name.len() > MAX_TYPE_NAME_BYTES {
                return Err(Unstorable::TypeNameTooLong {
                    event,
                    field,
                    len: name.len(),
                    max: MAX_TYPE_NAME_BYTES,
                });
            }
            if name.contains('\0') {
                return Err(Unstorable::Nul { event: Some(event), field });
            }
        }
        batch_bytes = batch_bytes.saturating_add(check_payload(event, &new.payload)?);
        batch_bytes = batch_bytes.saturating_add(check_metadata(event, &new.metadata)?);
    }
    if batch_bytes > MAX_BATCH_BYTES {
        return Err(Unstorable::BatchTooLarge { len: batch_bytes, max: MAX_BATCH_BYTES });
    }
    Ok(())
}

/// Checks one payload; its length in bytes.
fn check_payload(event: usize, payload: &Payload) -> Result<usize, Unstorable> {
    let len = payload.as_str().len();
    if len > MAX_PAYLOAD_BYTES {
        return Err(Unstorable::PayloadTooLarge { event, len, max: MAX_PAYLOAD_BYTES });
    }
    let scan = scan_json(payload.as_str());
    if scan.depth > MAX_JSON_DEPTH {
        return Err(Unstorable::NestedTooDeep {
            event,
            field: Field::Payload,
            depth: scan.depth,
            max: MAX_JSON_DEPTH,
        });
    }
    if scan.nul {
        return Err(Unstorable::Nul { event: Some(event), field: Field::Payload });
    }
    Ok(len)
}

/// Checks one event's metadata; its length in bytes as JSON text.
fn check_metadata(event: usize, metadata: &Metadata) -> Result<usize, Unstorable> {
    if metadata.fields.is_empty() {
        // At most two UUIDs: small, flat and free of NULs.
        return Ok(metadata_len(metadata));
    }
    let fields = metadata.fields.iter().map(|(key, value)| (key.as_str(), value));
    // The metadata is an object: one level above its fields' values.
    let depth = 1 + fields.clone().map(|(_, value)| value_depth(value)).max().unwrap_or(0);
    if depth > MAX_JSON_DEPTH {
        return Err(Unstorable::NestedTooDeep { event, field: Field::Metadata, depth, max: MAX_JSON_DEPTH });
    }
    if fields.clone().any(|(key, value)| key.contains('\0') || value_contains_nul(value)) {
        return Err(Unstorable::Nul { event: Some(event), field: Field::Metadata });
    }
    let len = metadata_len(metadata);
    if len > MAX_METADATA_BYTES {
        return Err(Unstorable::MetadataTooLarge { event, len, max: MAX_METADATA_BYTES });
    }
    Ok(len)
}

/// The length of `metadata` serialized as JSON, counted without building
/// the text. Called only once its depth is known to be bounded.
fn metadata_len(metadata: &Metadata) -> usize {
    let mut counter = ByteCounter(0);
    // Metadata always serializes: string keys, values from a `Value` tree.
    match serde_json::to_writer(&mut counter, metadata) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// An `io::Write` that only counts.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one pass over a JSON text found.
#[derive(Debug, PartialEq, Eq)]
struct JsonScan {
    /// The deepest nesting of arrays and objects.
    depth: usize,
    /// Whether a string holds an escaped NUL (`\u0000`).
    nul: bool,
}

/// Scans valid JSON text once, without recursion (a payload may nest a
/// million levels; the scan must not run out of stack on it).
fn scan_json(text: &str) -> JsonScan {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut nul, mut in_string) = (0usize, 0usize, false, false);
    let mut i = 0;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => {
                if bytes.get(i + 1) == Some(&b'u') {
                    nul |= bytes.get(i + 2..i + 6) == Some(b"0000".as_slice());
                    i += 6;
                } else {
                    i += 2;
                }
                continue;
            }
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    JsonScan { depth: deepest, nul }
}

/// How deep a value nests arrays and objects (a scalar is 0), walked
/// without recursion.
fn value_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, depth + 1))),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
        if deepest > MAX_JSON_DEPTH {
            // Deep enough to refuse; no need to walk the rest.
            return deepest;
        }
    }
    deepest
}

/// Whether a string or key in `value` holds a NUL. Called only on values of
/// bounded depth.
fn value_contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(value_contains_nul),
        Value::Object(map) => map.iter().any(|(key, value)| key.contains('\0') || value_contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn refusal(stream: &str, events: &[NewEvent]) -> Unstorable {
        match check_storable(&StreamId::new(stream), events) {
            Err(AppendError::Unstorable { reason, .. }) => reason,
            other => panic!("expected Unstorable, got {other:?}"),
        }
    }

    #[test]
    fn a_repeated_id_in_one_batch_is_refused() {
        let event = NewEvent::new("t", "T", 1, json!({}));
        let other = NewEvent::new("t", "T", 1, json!({}));
        let refused = check_storable(&StreamId::new("s"), &[event.clone(), other, event.clone()]);
        assert!(
            matches!(refused, Err(AppendError::DuplicateInBatch { event_id, .. }) if event_id == event.event_id),
            "{refused:?}"
        );
    }

    #[test]
    fn scanning_counts_depth_outside_strings_and_finds_escaped_nuls() {
        assert_eq!(scan_json("1"), JsonScan { depth: 0, nul: false });
        assert_eq!(scan_json(r#"{"a": [1, {"b": "[[["}]}"#), JsonScan { depth: 3, nul: false });
        assert_eq!(scan_json(r#"{"a": "x\"]]]{{{"}"#), JsonScan { depth: 1, nul: false });
        assert_eq!(scan_json(r#"["a\u0000"]"#), JsonScan { depth: 1, nul: true });
        assert_eq!(scan_json(r#"["\\u0000"]"#), JsonScan { depth: 1, nul: false }, "an escaped backslash");
        assert_eq!(scan_json(&nested(1_000_000)).depth, 1_000_000, "no recursion, no stack overflow");
    }

    #[test]
    fn serde_json_reads_back_what_passes_the_depth_limit() {
        // The limit is only symmetric if the decoder reads the deepest
        // accepted value, with room to spare for a wrapper around it.
        let wrapped = format!(r#"{{"event": {{"payload": {}}}}}"#, nested(MAX_JSON_DEPTH));
        assert!(serde_json::from_str::<Value>(&wrapped).is_ok());
        let value: Value = serde_json::from_str(&nested(MAX_JSON_DEPTH)).unwrap();
        assert_eq!(value_depth(&value), MAX_JSON_DEPTH);
    }

    #[test]
    fn the_deepest_accepted_payload_passes_and_one_more_level_is_refused() {
        let at = NewEvent::new("t", "T", 1, Payload::from_json(nested(MAX_JSON_DEPTH)).unwrap());
        assert!(check_storable(&StreamId::new("s"), &[at]).is_ok());
        let over = NewEvent::new("t", "T", 1, Payload::from_json(nested(MAX_JSON_DEPTH + 1)).unwrap());
        assert_eq!(
            refusal("s", &[over]),
            Unstorable::NestedTooDeep { event: 0, field: Field::Payload, depth: 65, max: 64 }
        );
    }

    #[test]
    fn metadata_depth_counts_the_metadata_object() {
        let value: Value = serde_json::from_str(&nested(MAX_JSON_DEPTH - 1)).unwrap();
        let at =
            NewEvent::new("t", "T", 1, json!({})).with_metadata(Metadata::new().with_field("deep", value));
        assert!(check_storable(&StreamId::new("s"), &[at]).is_ok());
        let value: Value = serde_json::from_str(&nested(MAX_JSON_DEPTH)).unwrap();
        let over =
            NewEvent::new("t", "T", 1, json!({})).with_metadata(Metadata::new().with_field("deep", value));
        assert!(matches!(
            refusal("s", &[event_ok(), over]),
            Unstorable::NestedTooDeep { event: 1, field: Field::Metadata, depth: 65, .. }
        ));
    }

    fn event_ok() -> NewEvent {
        NewEvent::new("t", "T", 1, json!({"n": 1}))
    }

    #[test]
    fn lengths_are_bytes_and_the_limit_itself_passes() {
        let at = "é".repeat(MAX_STREAM_ID_BYTES / 2);
        assert!(check_storable(&StreamId::new(at.clone()), &[event_ok()]).is_ok());
        let over = format!("{at}x");
        assert_eq!(refusal(&over, &[]), Unstorable::StreamIdTooLong { len: 1025, max: 1024 });
        let long_type = NewEvent::new("t", "T".repeat(MAX_TYPE_NAME_BYTES + 1), 1, json!({}));
        assert_eq!(
            refusal("s", &[long_type]),
            Unstorable::TypeNameTooLong { event: 0, field: Field::EventType, len: 256, max: 255 }
        );
    }

    #[test]
    fn metadata_size_counts_its_json_text() {
        let metadata = Metadata::new().with_field("note", "x".repeat(10));
        assert_eq!(metadata_len(&metadata), serde_json::to_string(&metadata).unwrap().len());
        assert_eq!(metadata_len(&Metadata::new()), 2);
    }

    #[test]
    fn a_batch_is_limited_in_events_and_bytes() {
        let many = vec![event_ok(); MAX_BATCH_EVENTS + 1];
        assert_eq!(refusal("s", &many), Unstorable::TooManyEvents { count: 16_385, max: 16_384 });
        // Three events, each under the payload limit, together over the batch's.
        let third = NewEvent::new("t", "T", 1, json!({ "s": "x".repeat(MAX_BATCH_BYTES / 3) }));
        assert!(matches!(
            refusal("s", &vec![third; 3]),
            Unstorable::BatchTooLarge { max: MAX_BATCH_BYTES, .. }
        ));
    }

    #[test]
    fn messages_name_sizes_and_never_echo_the_input() {
        let huge = "s".repeat(1 << 20);
        let error = check_storable(&StreamId::new(huge), &[]).unwrap_err();
        let message = error.to_string();
        assert!(message.len() < 300, "{message}");
        assert!(message.contains("1048576 bytes") && message.contains("1024"), "{message}");
    }
}
