//! Storability cases: every store refuses the same appends
//! ([`check_storable`](crate::store::check_storable)), with the same typed
//! reason, stores nothing of them, and reads back whatever it accepted, at
//! each limit's boundary.

use serde_json::{json, Value};

use super::{
    append_ok, assert_fresh, event, last_position, read_whole_log, read_whole_stream, stream_version_of,
};
use crate::error::{AppendError, Field, Unstorable};
use crate::store::{
    Direction, EventStore, ExpectedVersion, NewEvent, Payload, RecordedEvent, MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS, MAX_JSON_DEPTH, MAX_METADATA_BYTES, MAX_PAYLOAD_BYTES, MAX_STREAM_ID_BYTES,
    MAX_TYPE_NAME_BYTES,
};
use crate::{EventId, GlobalPosition, Metadata, StreamId, StreamVersion};

/// The longest message a refusal may have: it names sizes and limits, and
/// never echoes the refused input (which may be megabytes).
const MESSAGE_BOUND: usize = 400;

/// Appends `events` to `stream`, expects `Unstorable` with `reason`, and
/// checks that its message stays short and that nothing was stored.
async fn assert_unstorable<S: EventStore>(
    store: &S,
    stream: &StreamId,
    events: Vec<NewEvent>,
    reason: &Unstorable,
    what: &str,
) {
    let error = match store.append(stream, ExpectedVersion::Any, events).await {
        Ok(outcome) => panic!(
            "{what}: expected AppendError::Unstorable({reason:?}), but the append stored {} events",
            outcome.committed.len()
        ),
        Err(error) => error,
    };
    let message = error.to_string();
    match error {
        AppendError::Unstorable { stream: s, reason: r } => {
            assert!(&s == stream, "{what}: Unstorable must name the stream appended to");
            assert_eq!(&r, reason, "{what}: the reason must name the limit and the actual size");
        }
        other => panic!("{what}: expected AppendError::Unstorable({reason:?}), got {other}"),
    }
    assert!(
        message.len() <= MESSAGE_BOUND,
        "{what}: the message must not echo the input ({} bytes): {}...",
        message.len(),
        message.get(..MESSAGE_BOUND).unwrap_or_default()
    );
    assert_eq!(stream_version_of(store, stream).await, None, "{what}: nothing may be stored");
}

/// Checks that the global stream holds exactly `expected`'s events, and
/// returns them as read.
async fn assert_log<S: EventStore>(store: &S, expected: &[&RecordedEvent], what: &str) -> Vec<RecordedEvent> {
    let through = expected.iter().map(|e| e.global_position).max().unwrap_or(GlobalPosition::START);
    let log = read_whole_log(store, through).await;
    let ids: Vec<_> = log.iter().map(|e| e.event_id).collect();
    let want: Vec<_> = expected.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, want, "{what}: the global stream must hold the accepted events and nothing else");
    log
}

/// The one event of a stream, read back by `read_stream`.
async fn only_event<S: EventStore>(store: &S, stream: &StreamId, what: &str) -> RecordedEvent {
    let mut stored = read_whole_stream(store, stream).await;
    assert_eq!(stored.len(), 1, "{what}: the stream must hold the one accepted event");
    stored.remove(0)
}

/// JSON text of exactly `len` bytes: `{"s":"xx..."}`.
fn json_of_len(len: usize) -> Payload {
    Payload::from_json(format!(r#"{{"s":"{}"}}"#, "x".repeat(len - 8))).expect("valid JSON")
}

/// Metadata whose JSON text is exactly `len` bytes: `{"s":"xx..."}`.
fn metadata_of_len(len: usize) -> Metadata {
    Metadata::new().with_field("s", "x".repeat(len - 8))
}

/// Objects nested `depth` levels deep: `{"a":{"a":...1}}`.
fn nested_text(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

/// An append holding a NUL character (in the stream id, a type name, a
/// payload string or key, or the metadata; Postgres stores none) is
/// refused with `Unstorable::Nul` naming where, and stores nothing; reading
/// such a stream finds nothing. An escaped backslash followed by `u0000` is
/// not a NUL and is stored.
pub async fn nul_characters_are_refused_alike<S: EventStore>(store: S) {
    let good = StreamId::new("order-1");
    let nul = |field: Field| Unstorable::Nul { event: Some(1), field };
    let cases: Vec<(&str, StreamId, NewEvent, Unstorable)> = vec![
        (
            "a NUL in the stream id",
            StreamId::new("order-\0-1"),
            event(1),
            Unstorable::Nul { event: None, field: Field::StreamId },
        ),
        (
            "a NUL in the aggregate type",
            good.clone(),
            NewEvent::new("te\0st", "Tested", 1, json!({})),
            nul(Field::AggregateType),
        ),
        (
            "a NUL in the event type",
            good.clone(),
            NewEvent::new("test", "Test\0ed", 1, json!({})),
            nul(Field::EventType),
        ),
        (
            "a NUL in a payload string",
            good.clone(),
            NewEvent::new("test", "Tested", 1, json!({ "s": "a\0b" })),
            nul(Field::Payload),
        ),
        (
            "a NUL in a payload key",
            good.clone(),
            NewEvent::new("test", "Tested", 1, json!({ "k\0": 1 })),
            nul(Field::Payload),
        ),
        (
            "a NUL in the metadata",
            good.clone(),
            event(1).with_metadata(Metadata::new().with_field("note", json!(["ok", "n\0"]))),
            nul(Field::Metadata),
        ),
    ];
    for (what, stream, bad, reason) in cases {
        assert_unstorable(&store, &stream, vec![event(0), bad], &reason, what).await;
        let read = store
            .read_stream(&stream, StreamVersion::FIRST, Direction::Forward, 10)
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the stream must not fail: {e:?}"));
        assert!(read.is_empty(), "{what}: read {read:?}");
    }
    let backslash = NewEvent::new("test", "Tested", 1, json!({ "s": "\\u0000" }));
    append_ok(&store, &good, ExpectedVersion::NoStream, vec![backslash], "a backslash before u0000").await;
    let stored = read_whole_stream(&store, &good).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].payload, json!({ "s": "\\u0000" }), "the backslash text is kept as it is");
}

/// A stream id of exactly [`MAX_STREAM_ID_BYTES`] bytes (counted in UTF-8
/// bytes, not characters) is stored and read back by `read_stream`,
/// `read_all`, `stream_version` and `streams`; one byte more, or a
/// megabyte, is refused with `StreamIdTooLong` naming the length and the
/// limit, in a short message, and stores nothing.
pub async fn stream_id_length_is_limited_alike<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    let longest = format!("order-{}", "é".repeat((MAX_STREAM_ID_BYTES - 6) / 2));
    assert_eq!(longest.len(), MAX_STREAM_ID_BYTES);
    let stream = StreamId::new(longest.clone());
    let outcome =
        append_ok(&store, &stream, ExpectedVersion::NoStream, vec![event(1)], "the longest id").await;
    let stored = only_event(&store, &stream, "the longest stream id").await;
    assert_eq!(stored.stream_id, stream, "read_stream returns the stream's whole id");
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(1)));
    let log = assert_log(&store, &[&stored], "the longest stream id").await;
    assert_eq!(log[0].stream_id, stream, "read_all returns the stream's whole id");
    let listed = store.streams("order-", None, 10).await.expect("listing streams");
    assert_eq!(listed.iter().map(|s| &s.stream_id).collect::<Vec<_>>(), vec![&stream]);
    assert_eq!(outcome.committed[0].global_position, stored.global_position);

    let over = format!("{longest}x");
    let reason = Unstorable::StreamIdTooLong { len: MAX_STREAM_ID_BYTES + 1, max: MAX_STREAM_ID_BYTES };
    assert_unstorable(&store, &StreamId::new(over), vec![event(2)], &reason, "a stream id 1 byte too long")
        .await;
    let huge = "s".repeat(1 << 20);
    let reason = Unstorable::StreamIdTooLong { len: 1 << 20, max: MAX_STREAM_ID_BYTES };
    assert_unstorable(&store, &StreamId::new(huge), vec![event(3)], &reason, "a 1 MiB stream id").await;
    assert_log(&store, &[&stored], "after refusing long stream ids").await;
}

/// Aggregate and event type names of exactly [`MAX_TYPE_NAME_BYTES`] bytes
/// are stored and read back; one byte more is refused with
/// `TypeNameTooLong` naming the name, the event's index, the length and
/// the limit, and stores nothing of the batch.
pub async fn type_name_length_is_limited_alike<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let longest = "T".repeat(MAX_TYPE_NAME_BYTES);
    let named = NewEvent::new(longest.clone(), longest.clone(), 1, json!({ "n": 1 }));
    append_ok(&store, &stream, ExpectedVersion::NoStream, vec![named], "the longest type names").await;
    let stored = only_event(&store, &stream, "the longest type names").await;
    assert_eq!((stored.aggregate_type.as_str(), stored.event_type.as_str()), (&*longest, &*longest));

    let over = format!("{longest}x");
    let other = StreamId::new("order-2");
    for (field, bad) in [
        (Field::AggregateType, NewEvent::new(over.clone(), "Tested", 1, json!({}))),
        (Field::EventType, NewEvent::new("test", over.clone(), 1, json!({}))),
    ] {
        let reason = Unstorable::TypeNameTooLong {
            event: 1,
            field,
            len: MAX_TYPE_NAME_BYTES + 1,
            max: MAX_TYPE_NAME_BYTES,
        };
        assert_unstorable(
            &store,
            &other,
            vec![event(1), bad],
            &reason,
            &format!("the {field} 1 byte too long"),
        )
        .await;
    }
}

/// A payload of exactly [`MAX_PAYLOAD_BYTES`] bytes of JSON text and
/// metadata of exactly [`MAX_METADATA_BYTES`] are stored and read back
/// equal; one byte more of either is refused with `PayloadTooLarge` or
/// `MetadataTooLarge` naming the length and the limit, and stores nothing.
pub async fn payload_and_metadata_size_is_limited_alike<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let largest = NewEvent::new("test", "Tested", 1, json_of_len(MAX_PAYLOAD_BYTES))
        .with_metadata(metadata_of_len(MAX_METADATA_BYTES));
    assert_eq!(serde_json::to_string(&largest.metadata).map(|m| m.len()).ok(), Some(MAX_METADATA_BYTES));
    append_ok(&store, &stream, ExpectedVersion::NoStream, vec![largest.clone()], "the largest payload").await;
    let stored = only_event(&store, &stream, "the largest payload and metadata").await;
    assert!(stored.payload == largest.payload, "the largest payload must read back equal");
    assert_eq!(stored.metadata, largest.metadata, "the largest metadata must read back equal");

    let other = StreamId::new("order-2");
    let payload_over = NewEvent::new("test", "Tested", 1, json_of_len(MAX_PAYLOAD_BYTES + 1));
    let reason = Unstorable::PayloadTooLarge { event: 0, len: MAX_PAYLOAD_BYTES + 1, max: MAX_PAYLOAD_BYTES };
    assert_unstorable(&store, &other, vec![payload_over], &reason, "a payload 1 byte too large").await;
    let metadata_over = event(1).with_metadata(metadata_of_len(MAX_METADATA_BYTES + 1));
    let reason =
        Unstorable::MetadataTooLarge { event: 0, len: MAX_METADATA_BYTES + 1, max: MAX_METADATA_BYTES };
    assert_unstorable(&store, &other, vec![metadata_over], &reason, "metadata 1 byte too large").await;
}

/// A payload nesting objects exactly [`MAX_JSON_DEPTH`] levels deep, and
/// metadata as deep, are stored and read back by `read_stream` and
/// `read_all`, and decode (so a store never accepts what it cannot give
/// back). One level more, or a million, is refused with `NestedTooDeep`
/// naming the depth and the limit, and stores nothing.
pub async fn json_nesting_is_limited_alike<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    let stream = StreamId::new("order-1");
    let deepest: Value =
        serde_json::from_str(&nested_text(MAX_JSON_DEPTH)).expect("the deepest payload decodes");
    // The metadata object is one level; its field nests the rest.
    let deep_field: Value =
        serde_json::from_str(&nested_text(MAX_JSON_DEPTH - 1)).expect("the deepest field decodes");
    let metadata = Metadata::new().with_field("deep", deep_field);
    let accepted = NewEvent::new("test", "Tested", 1, deepest.clone()).with_metadata(metadata.clone());
    let outcome =
        append_ok(&store, &stream, ExpectedVersion::NoStream, vec![accepted], "the deepest JSON").await;
    let stored = only_event(&store, &stream, "the deepest payload").await;
    let read_back =
        stored.payload.to_value().unwrap_or_else(|e| panic!("the deepest payload must decode: {e}"));
    assert_eq!(read_back, deepest, "the deepest payload must read back equal");
    assert_eq!(stored.metadata, metadata, "the deepest metadata must read back equal");
    let log = read_whole_log(&store, last_position(&[&outcome])).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].payload.to_value().ok().as_ref(), Some(&deepest), "read_all must give it back too");

    let other = StreamId::new("order-2");
    let too_deep = |depth: usize| Payload::from_json(nested_text(depth)).expect("valid JSON");
    for depth in [MAX_JSON_DEPTH + 1, 1_000_000] {
        let reason =
            Unstorable::NestedTooDeep { event: 0, field: Field::Payload, depth, max: MAX_JSON_DEPTH };
        let bad = NewEvent::new("test", "Tested", 1, too_deep(depth));
        assert_unstorable(&store, &other, vec![bad], &reason, &format!("a payload nested {depth} deep"))
            .await;
    }
    let deeper_field: Value = serde_json::from_str(&nested_text(MAX_JSON_DEPTH)).expect("valid JSON");
    let bad = event(1).with_metadata(Metadata::new().with_field("deep", deeper_field));
    let reason = Unstorable::NestedTooDeep {
        event: 0,
        field: Field::Metadata,
        depth: MAX_JSON_DEPTH + 1,
        max: MAX_JSON_DEPTH,
    };
    assert_unstorable(&store, &other, vec![bad], &reason, "metadata nested one level too deep").await;
}

/// A batch of exactly [`MAX_BATCH_EVENTS`] events, and one of exactly
/// [`MAX_BATCH_BYTES`] of payloads and metadata, are stored; one event or
/// one byte more is refused with `TooManyEvents` or `BatchTooLarge` naming
/// the size and the limit, and stores nothing.
pub async fn batch_size_is_limited_alike<S: EventStore>(store: S) {
    let many = StreamId::new("many-1");
    let events: Vec<NewEvent> = (0..MAX_BATCH_EVENTS as u64).map(event).collect();
    let outcome = append_ok(&store, &many, ExpectedVersion::NoStream, events, "the most events").await;
    assert_eq!(outcome.committed.len(), MAX_BATCH_EVENTS);
    assert_eq!(stream_version_of(&store, &many).await, Some(StreamVersion(MAX_BATCH_EVENTS as u64)));
    let over: Vec<NewEvent> = (0..=MAX_BATCH_EVENTS as u64).map(event).collect();
    let reason = Unstorable::TooManyEvents { count: MAX_BATCH_EVENTS + 1, max: MAX_BATCH_EVENTS };
    assert_unstorable(&store, &StreamId::new("many-2"), over, &reason, "one event too many").await;

    // Two events of empty metadata (`{}`, 2 bytes) whose payloads fill the
    // rest of the batch's bytes exactly.
    const { assert!(MAX_BATCH_BYTES / 2 - 2 <= MAX_PAYLOAD_BYTES, "two events fill a batch") };
    let payload_len = MAX_BATCH_BYTES / 2 - 2;
    let template = NewEvent::new("test", "Tested", 1, json_of_len(payload_len));
    let big = || template.clone().with_event_id(EventId::new());
    let bytes = StreamId::new("bytes-1");
    append_ok(&store, &bytes, ExpectedVersion::NoStream, vec![big(), big()], "the most bytes").await;
    let stored = read_whole_stream(&store, &bytes).await;
    assert_eq!(stored.len(), 2, "the largest batch must be stored whole");
    assert!(stored[1].payload == template.payload, "the largest batch must read back equal");
    let over = vec![big(), NewEvent::new("test", "Tested", 1, json_of_len(payload_len + 1))];
    let reason = Unstorable::BatchTooLarge { len: MAX_BATCH_BYTES + 1, max: MAX_BATCH_BYTES };
    assert_unstorable(&store, &StreamId::new("bytes-2"), over, &reason, "a batch 1 byte too large").await;
}
