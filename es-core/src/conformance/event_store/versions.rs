//! Expected versions and stream versions: what an append expects of its stream, and the versions it gets.

use super::*;

/// Appending to a new stream with `NoStream` succeeds: the events get
/// versions 1, 2, .. in batch order and increasing global positions, and the
/// outcome reports where each landed.
pub async fn append_to_new_stream_with_no_stream<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    let stream = StreamId::new("order-1");
    let events = batch(1, 3);
    let ids = ids_of(&events);
    let outcome =
        append_ok(&store, &stream, ExpectedVersion::NoStream, events, "NoStream on a new stream").await;
    assert_eq!(
        outcome.stream_version,
        Some(StreamVersion(3)),
        "outcome must report the stream's new version"
    );
    assert_eq!(committed_ids(&outcome), ids, "outcome must list the appended events in batch order");
    assert_eq!(committed_versions(&outcome), range(1, 3), "a new stream's events are versions 1, 2, 3");
    let positions: Vec<GlobalPosition> = outcome.committed.iter().map(|c| c.global_position).collect();
    assert!(
        positions[0] > GlobalPosition::START && positions.windows(2).all(|w| w[0] < w[1]),
        "positions of one batch must be above START and strictly increase: {positions:?}"
    );
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(3)));
    let stored = read_whole_stream(&store, &stream).await;
    assert_eq!(recorded_ids(&stored), ids, "read_stream must return the appended events in order");
    let stored_positions: Vec<GlobalPosition> = stored.iter().map(|e| e.global_position).collect();
    assert_eq!(stored_positions, positions, "stored positions must be the ones the append reported");
}

/// `NoStream` on a stream that has events fails with `WrongExpectedVersion`.
pub async fn no_stream_on_existing_stream_fails<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 2), "first NoStream append").await;
    let result = store.append(&stream, ExpectedVersion::NoStream, batch(3, 1)).await;
    assert_wrong_version(
        result,
        &stream,
        ExpectedVersion::NoStream,
        Some(StreamVersion(2)),
        "NoStream on an existing stream",
    );
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(2)));
}

/// `StreamExists` fails on a missing stream and appends to an existing one.
pub async fn stream_exists_fails_on_missing_and_succeeds_on_existing<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let result = store.append(&stream, ExpectedVersion::StreamExists, batch(1, 1)).await;
    assert_wrong_version(
        result,
        &stream,
        ExpectedVersion::StreamExists,
        None,
        "StreamExists on a missing stream",
    );
    assert_eq!(stream_version_of(&store, &stream).await, None, "a refused append must not create the stream");

    append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 1), "creating the stream").await;
    let outcome = append_ok(
        &store,
        &stream,
        ExpectedVersion::StreamExists,
        batch(2, 2),
        "StreamExists on an existing stream",
    )
    .await;
    assert_eq!(committed_versions(&outcome), range(2, 3), "StreamExists appends after the last event");
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(3)));
}

/// `Exact(N)` appends when the stream is at N, and fails otherwise (also
/// on a missing stream).
pub async fn exact_version_must_match<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let exact = |v: u64| ExpectedVersion::Exact(StreamVersion(v));
    let result = store.append(&stream, exact(1), batch(1, 1)).await;
    assert_wrong_version(result, &stream, exact(1), None, "Exact(1) on a missing stream");

    append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 2), "creating the stream").await;
    let outcome = append_ok(&store, &stream, exact(2), batch(3, 1), "Exact(2) on a stream at 2").await;
    assert_eq!(committed_versions(&outcome), vec![3]);

    let behind = store.append(&stream, exact(2), batch(4, 1)).await;
    assert_wrong_version(behind, &stream, exact(2), Some(StreamVersion(3)), "Exact(2) on a stream at 3");
    let ahead = store.append(&stream, exact(4), batch(4, 1)).await;
    assert_wrong_version(ahead, &stream, exact(4), Some(StreamVersion(3)), "Exact(4) on a stream at 3");
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(3)));
}

/// `Exact(StreamVersion(0))` means "no stream yet": it appends to a missing
/// stream (the events get versions 1, 2, ..), an exact retry of that
/// append under it returns the original placement, and it is refused with
/// `WrongExpectedVersion` on a stream that has events.
pub async fn exact_zero_appends_to_a_missing_stream_only<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let zero = ExpectedVersion::Exact(StreamVersion(0));
    let events = batch(1, 2);
    let first = append_ok(&store, &stream, zero, events.clone(), "Exact(0) on a missing stream").await;
    assert_eq!(committed_versions(&first), range(1, 2), "Exact(0) on a missing stream appends versions 1, 2");
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(2)));

    let retried = append_ok(&store, &stream, zero, events, "an exact retry under Exact(0)").await;
    assert_eq!(retried.committed, first.committed, "an Exact(0) retry returns the original placement");

    let result = store.append(&stream, zero, batch(3, 1)).await;
    assert_wrong_version(result, &stream, zero, Some(StreamVersion(2)), "Exact(0) on an existing stream");
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(2)), "nothing may be stored");
}

/// `Any` appends to a missing stream and to an existing one.
pub async fn any_version_always_appends<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let first =
        append_ok(&store, &stream, ExpectedVersion::Any, batch(1, 2), "Any on a missing stream").await;
    assert_eq!(committed_versions(&first), range(1, 2));
    let second =
        append_ok(&store, &stream, ExpectedVersion::Any, batch(3, 1), "Any on an existing stream").await;
    assert_eq!(committed_versions(&second), vec![3]);
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(3)));
}

/// A wrong expected version writes nothing, neither to the stream nor to
/// the global stream, and its error names the stream, the expected and the
/// actual version (in its fields and its message).
pub async fn wrong_expected_version_writes_nothing<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    let stream = StreamId::new("order-1");
    let first =
        append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 2), "creating the stream").await;
    let stream_before = read_whole_stream(&store, &stream).await;
    let log_before = read_whole_log(&store, last_position(&[&first])).await;

    let expected = ExpectedVersion::Exact(StreamVersion(5));
    let refused = batch(3, 2);
    let refused_ids = ids_of(&refused);
    let result = store.append(&stream, expected, refused).await;
    if let Err(error) = &result {
        let message = error.to_string();
        assert!(message.contains("order-1"), "the error message must name the stream: {message}");
    }
    assert_wrong_version(result, &stream, expected, Some(StreamVersion(2)), "Exact(5) on a stream at 2");

    assert_eq!(
        read_whole_stream(&store, &stream).await,
        stream_before,
        "a refused append changed the stream"
    );
    let log_after = read_whole_log(&store, last_position(&[&first])).await;
    assert_eq!(log_after, log_before, "a refused append changed the global stream");
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(2)));

    // The refused ids were not stored, so they may be used now.
    let later = append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(StreamVersion(2)),
        batch(3, 2).into_iter().zip(&refused_ids).map(|(e, id)| e.with_event_id(*id)).collect(),
        "appending the ids of a refused append",
    )
    .await;
    assert_eq!(committed_versions(&later), range(3, 4));
}

/// Stream versions are 1-based and gap-free across appends of any size,
/// per stream, also when appends to several streams interleave.
pub async fn versions_are_one_based_and_gap_free<S: EventStore>(store: S) {
    let a = StreamId::new("order-1");
    let b = StreamId::new("order-2");
    let mut expected_ids: HashMap<&StreamId, Vec<EventId>> = HashMap::new();
    for (round, size) in [1u64, 3, 2, 5, 1].into_iter().enumerate() {
        for stream in [&a, &b] {
            let events = batch(round as u64 * 10, size);
            expected_ids.entry(stream).or_default().extend(ids_of(&events));
            let before = stream_version_of(&store, stream).await;
            let outcome =
                append_ok(&store, stream, ExpectedVersion::from_current(before), events, "a gap-free append")
                    .await;
            let start = before.map_or(0, StreamVersion::get) + 1;
            assert_eq!(
                committed_versions(&outcome),
                range(start, start + size - 1),
                "versions must continue"
            );
        }
    }
    for stream in [&a, &b] {
        let stored = read_whole_stream(&store, stream).await;
        assert_eq!(versions(&stored), range(1, 12), "`{stream}` must hold versions 1..=12 without gaps");
        assert_eq!(recorded_ids(&stored), expected_ids[stream], "`{stream}` must hold its events in order");
        assert!(stored.iter().all(|e| &e.stream_id == stream), "read_stream must return only that stream");
    }
}

/// An empty append with a matching expectation succeeds and stores nothing;
/// with a mismatching one it fails like any other append.
pub async fn empty_append_stores_nothing<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    let stream = StreamId::new("order-1");
    let outcome =
        append_ok(&store, &stream, ExpectedVersion::NoStream, Vec::new(), "empty NoStream append").await;
    assert!(outcome.committed.is_empty(), "an empty append commits nothing");
    assert_eq!(outcome.stream_version, None, "an empty append to a missing stream leaves it missing");
    assert_eq!(stream_version_of(&store, &stream).await, None, "an empty append must not create the stream");
    let log = store.read_all(GlobalPosition::START, 10).await.expect("read_all failed");
    assert!(log.is_empty(), "an empty append must store nothing, read_all returned {log:?}");

    let first =
        append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 2), "creating the stream").await;
    let outcome = append_ok(
        &store,
        &stream,
        ExpectedVersion::Exact(StreamVersion(2)),
        Vec::new(),
        "empty Exact append",
    )
    .await;
    assert!(outcome.committed.is_empty(), "an empty append commits nothing");
    assert_eq!(outcome.stream_version, Some(StreamVersion(2)), "an empty append reports the current version");
    append_ok(&store, &stream, ExpectedVersion::StreamExists, Vec::new(), "empty StreamExists append").await;
    append_ok(&store, &stream, ExpectedVersion::Any, Vec::new(), "empty Any append").await;

    let result = store.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), Vec::new()).await;
    assert_wrong_version(
        result,
        &stream,
        ExpectedVersion::Exact(StreamVersion(1)),
        Some(StreamVersion(2)),
        "an empty append with a wrong expectation",
    );
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(2)));
    let log = read_whole_log(&store, last_position(&[&first])).await;
    assert_eq!(log.len(), 2, "empty appends must store nothing");
}
