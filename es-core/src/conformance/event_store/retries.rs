//! Event ids: appends are all or nothing, an exact retry returns the original placement, any other reuse of an id is refused.

use super::*;

/// An append is all or nothing: a batch whose middle event reuses an id
/// stored elsewhere fails with `DuplicateEventId`, and none of the batch is
/// stored (its other ids stay free).
pub async fn append_is_all_or_nothing<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    let elsewhere = StreamId::new("order-1");
    let stream = StreamId::new("order-2");
    let taken = event(1);
    let taken_id = taken.event_id;
    let first =
        append_ok(&store, &elsewhere, ExpectedVersion::NoStream, vec![taken], "storing an event").await;

    let fresh_a = event(2);
    let fresh_b = event(3);
    let clash = vec![fresh_a.clone(), event(4).with_event_id(taken_id), fresh_b.clone()];
    let result = store.append(&stream, ExpectedVersion::NoStream, clash).await;
    assert_duplicate(result, &stream, taken_id, "a batch reusing an id stored in another stream");

    assert_eq!(
        stream_version_of(&store, &stream).await,
        None,
        "a failed batch must store none of its events"
    );
    let log = read_whole_log(&store, last_position(&[&first])).await;
    assert_eq!(recorded_ids(&log), vec![taken_id], "a failed batch must leave the global stream unchanged");

    let retry = append_ok(
        &store,
        &stream,
        ExpectedVersion::NoStream,
        vec![fresh_a, fresh_b],
        "appending the other ids of a failed batch",
    )
    .await;
    assert_eq!(committed_versions(&retry), range(1, 2));
}

/// An exact retry of a committed append (same ids, same stream, same
/// expectation, as after a lost reply) succeeds, returns the original
/// versions and positions, and stores nothing new.
pub async fn exact_retry_returns_original_outcome<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    let stream = StreamId::new("order-1");
    let first =
        append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 1), "creating the stream").await;
    let events = batch(2, 3);
    let exact = ExpectedVersion::Exact(StreamVersion(1));
    let original = append_ok(&store, &stream, exact, events.clone(), "the original append").await;
    let log_before = read_whole_log(&store, last_position(&[&first, &original])).await;

    let retried = append_ok(&store, &stream, exact, events.clone(), "an exact retry").await;
    assert_eq!(retried.committed, original.committed, "an exact retry must return the original placement");
    assert_eq!(retried.stream_version, original.stream_version);
    let retried_again = append_ok(&store, &stream, exact, events, "a second exact retry").await;
    assert_eq!(retried_again.committed, original.committed);

    assert_eq!(
        stream_version_of(&store, &stream).await,
        Some(StreamVersion(4)),
        "a retry must store nothing"
    );
    let log_after = read_whole_log(&store, last_position(&[&first, &original])).await;
    assert_eq!(log_after, log_before, "a retry must not change the global stream");

    // The same holds for a first append with NoStream and for Any.
    let other = StreamId::new("order-2");
    let events = batch(10, 2);
    let original =
        append_ok(&store, &other, ExpectedVersion::NoStream, events.clone(), "a NoStream append").await;
    let retried =
        append_ok(&store, &other, ExpectedVersion::NoStream, events, "retrying a NoStream append").await;
    assert_eq!(retried.committed, original.committed, "a NoStream retry must return the original placement");
    let events = batch(20, 2);
    let original = append_ok(&store, &other, ExpectedVersion::Any, events.clone(), "an Any append").await;
    let retried = append_ok(&store, &other, ExpectedVersion::Any, events, "retrying an Any append").await;
    assert_eq!(retried.committed, original.committed, "an Any retry must return the original placement");
    assert_eq!(stream_version_of(&store, &other).await, Some(StreamVersion(4)), "retries must store nothing");
}

/// An exact retry still succeeds with the original placement after other
/// events were appended to the stream (the reply was lost, others went on).
pub async fn exact_retry_after_stream_moved_on_returns_original_outcome<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let events = batch(1, 2);
    let original =
        append_ok(&store, &stream, ExpectedVersion::NoStream, events.clone(), "the original append").await;
    append_ok(&store, &stream, ExpectedVersion::Exact(StreamVersion(2)), batch(3, 1), "a later append").await;

    let retried =
        append_ok(&store, &stream, ExpectedVersion::NoStream, events, "a retry after the stream moved on")
            .await;
    assert_eq!(
        retried.committed, original.committed,
        "a late exact retry must return the original placement"
    );
    assert_eq!(
        stream_version_of(&store, &stream).await,
        Some(StreamVersion(3)),
        "a retry must store nothing"
    );
    assert_eq!(read_whole_stream(&store, &stream).await.len(), 3);
}

/// An exact retry is one with the same content too: re-appending a stored
/// event's id to its stream under the same expectation, but with another
/// payload, other metadata, another event type, aggregate type or schema
/// version, fails with `DuplicateEventId` naming the id and the stream, and
/// stores nothing (the stored event keeps its content). The unchanged
/// retry still returns the original placement.
pub async fn exact_retry_with_other_content_is_a_duplicate<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let original = event(1).with_metadata(Metadata::new().with_field("user", "ada"));
    let id = original.event_id;
    let first =
        append_ok(&store, &stream, ExpectedVersion::NoStream, vec![original.clone()], "the original append")
            .await;
    let stored = read_whole_stream(&store, &stream).await;

    let changed = |change: &dyn Fn(&mut NewEvent)| {
        let mut event = original.clone();
        change(&mut event);
        event
    };
    let variants = [
        ("a different payload", changed(&|e| e.payload = json!({ "n": 2 }).into())),
        ("a payload with one more field", changed(&|e| e.payload = json!({ "n": 1, "extra": true }).into())),
        ("different metadata", changed(&|e| e.metadata = Metadata::new().with_field("user", "bob"))),
        ("no metadata", changed(&|e| e.metadata = Metadata::new())),
        ("a different event type", changed(&|e| e.event_type = "Retested".to_owned())),
        ("a different aggregate type", changed(&|e| e.aggregate_type = "other".to_owned())),
        ("a different schema version", changed(&|e| e.schema_version = 2)),
    ];
    for (what, event) in variants {
        let result = store.append(&stream, ExpectedVersion::NoStream, vec![event]).await;
        assert_duplicate(result, &stream, id, &format!("a retry of a stored id with {what}"));
        assert_eq!(
            read_whole_stream(&store, &stream).await,
            stored,
            "a retry with {what} must store nothing and leave the stored event as it was"
        );
    }
    let retried =
        append_ok(&store, &stream, ExpectedVersion::NoStream, vec![original], "the unchanged retry").await;
    assert_eq!(retried.committed, first.committed, "the unchanged retry returns the original placement");
}

/// Reusing a stored event id any other way than as an exact retry fails
/// with `DuplicateEventId` and stores nothing: in another stream, together
/// with new ids, or in the same stream under another expectation.
pub async fn reused_event_id_is_rejected<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let other = StreamId::new("order-2");
    let stored = event(1);
    let id = stored.event_id;
    append_ok(&store, &stream, ExpectedVersion::NoStream, vec![stored], "storing an event").await;

    let result = store.append(&other, ExpectedVersion::Any, vec![event(2).with_event_id(id)]).await;
    assert_duplicate(result, &other, id, "reusing an id in another stream");
    assert_eq!(stream_version_of(&store, &other).await, None);

    let with_new = vec![event(3).with_event_id(id), event(4)];
    let result = store.append(&stream, ExpectedVersion::NoStream, with_new).await;
    match result {
        Err(AppendError::DuplicateEventId { event_id, stream: s }) => {
            assert_eq!((event_id, &s), (id, &stream), "DuplicateEventId must name the id and stream");
        }
        other => {
            panic!("reusing an id together with a new id: expected DuplicateEventId for {id}, got {other:?}")
        }
    }

    let result = store
        .append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![event(5).with_event_id(id)])
        .await;
    match result {
        Err(AppendError::DuplicateEventId { event_id, .. }) => assert_eq!(event_id, id),
        other => panic!(
            "re-appending a stored id under another expectation: expected DuplicateEventId for {id}, got {other:?}"
        ),
    }
    assert_eq!(
        stream_version_of(&store, &stream).await,
        Some(StreamVersion(1)),
        "rejected reuses store nothing"
    );
}

/// The same id twice in one batch fails with `DuplicateInBatch` and stores
/// nothing.
pub async fn duplicate_id_in_one_batch_is_rejected<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let twice = event(1);
    let id = twice.event_id;
    let result = store.append(&stream, ExpectedVersion::NoStream, vec![twice.clone(), event(2), twice]).await;
    match result {
        Err(AppendError::DuplicateInBatch { event_id, stream: s }) => {
            assert_eq!(event_id, id, "DuplicateInBatch must name the repeated id");
            assert_eq!(s, stream, "DuplicateInBatch must name the stream");
        }
        other => panic!("expected DuplicateInBatch for {id}, got {other:?}"),
    }
    assert_eq!(
        stream_version_of(&store, &stream).await,
        None,
        "a batch with a repeated id must store nothing"
    );
}
