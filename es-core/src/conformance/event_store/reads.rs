//! Reads: one stream forward, backward and for replay, the global stream, the head, and envelopes as stored.

use super::*;

/// `read_stream` forward starts at the given version (inclusive) and
/// returns at most `limit` events; a huge limit returns the rest.
pub async fn read_stream_forward_from_version_with_limit<S: EventStore>(store: S) {
    let stream = ten_events_beside_three(&store).await;
    let read = |from: u64, limit: usize| read_versions(&store, &stream, from, Direction::Forward, limit);
    assert_eq!(read(1, 3).await, range(1, 3), "forward from 1, limit 3");
    assert_eq!(read(4, 3).await, range(4, 6), "forward from 4, limit 3");
    assert_eq!(read(9, 5).await, range(9, 10), "forward from 9, limit 5 stops at the last event");
    assert_eq!(read(10, 1).await, vec![10], "forward from the last version");
    assert_eq!(read(11, 5).await, Vec::<u64>::new(), "forward past the last version is empty");
    assert_eq!(read(1, usize::MAX).await, range(1, 10), "a limit of usize::MAX returns every event");
    assert_eq!(read(3, 0).await, Vec::<u64>::new(), "a limit of 0 returns nothing");
    assert_eq!(read(0, 2).await, range(1, 2), "forward from version 0 starts at the first event");
}

/// `read_stream` backward starts at the given version (inclusive), newest
/// first, at most `limit` events; from `StreamVersion(u64::MAX)` it starts
/// at the newest event.
pub async fn read_stream_backward_with_limit<S: EventStore>(store: S) {
    let stream = ten_events_beside_three(&store).await;
    let read = |from: u64, limit: usize| read_versions(&store, &stream, from, Direction::Backward, limit);
    assert_eq!(read(7, 3).await, vec![7, 6, 5], "backward from 7, limit 3");
    assert_eq!(read(2, 5).await, vec![2, 1], "backward from 2, limit 5 stops at the first event");
    assert_eq!(read(u64::MAX, 3).await, vec![10, 9, 8], "backward from u64::MAX starts at the newest event");
    assert_eq!(read(u64::MAX, 1).await, vec![10], "backward from u64::MAX, limit 1: the newest event");
    assert_eq!(read(15, 2).await, vec![10, 9], "backward from past the end starts at the newest event");
    assert_eq!(
        read(u64::MAX, usize::MAX).await,
        (1..=10).rev().collect::<Vec<u64>>(),
        "backward from u64::MAX with a limit of usize::MAX returns every event"
    );
    assert_eq!(read(u64::MAX, 0).await, Vec::<u64>::new(), "a limit of 0 returns nothing");
    assert_eq!(read(0, 5).await, Vec::<u64>::new(), "backward from version 0 returns nothing");
}

/// Reading a stream that does not exist returns no events (not an error),
/// and its version is `None`.
pub async fn reading_missing_stream_is_empty<S: EventStore>(store: S) {
    append_ok(&store, &StreamId::new("order-1"), ExpectedVersion::NoStream, batch(1, 2), "another stream")
        .await;
    let missing = StreamId::new("order-404");
    for (from, direction) in [
        (StreamVersion::FIRST, Direction::Forward),
        (StreamVersion(u64::MAX), Direction::Backward),
        (StreamVersion(5), Direction::Backward),
    ] {
        let events = store.read_stream(&missing, from, direction, 10).await.unwrap_or_else(|e| {
            panic!("reading a missing stream {direction:?} from {from} must not fail: {e:?}")
        });
        assert!(events.is_empty(), "reading a missing stream {direction:?} from {from} returned {events:?}");
    }
    assert_eq!(stream_version_of(&store, &missing).await, None, "a missing stream has no version");
}

/// `read_replay` returns, for each event `read_stream` forward returns from
/// the same version with the same limit, its version, type, schema version
/// and payload; a missing stream and a version past the end read empty.
pub async fn read_replay_matches_read_stream<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let mixed = vec![
        event(1),
        NewEvent::new("test", "Renamed", 2, json!({ "name": "x", "tags": ["a", "b"], "n": null })),
        event(3),
        NewEvent::new("test", "Nested", 7, json!({ "deep": { "list": [1, 2.5, "three", { "k": true }] } })),
        event(5),
    ];
    append_ok(&store, &stream, ExpectedVersion::NoStream, mixed, "storing 5 events").await;
    append_ok(&store, &StreamId::new("order-2"), ExpectedVersion::NoStream, batch(1, 3), "another stream")
        .await;
    for (from, limit) in [(1, 10), (1, 2), (2, 2), (4, usize::MAX), (5, 1), (6, 3), (3, 0), (0, 2)] {
        let what = format!("read_replay from {from}, limit {limit}");
        let replayed = store
            .read_replay(&stream, StreamVersion(from), limit)
            .await
            .unwrap_or_else(|e| panic!("{what} failed: {e:?}"));
        let read = store
            .read_stream(&stream, StreamVersion(from), Direction::Forward, limit)
            .await
            .unwrap_or_else(|e| panic!("read_stream forward from {from}, limit {limit} failed: {e:?}"));
        let expected: Vec<ReplayEvent> = read.into_iter().map(ReplayEvent::from).collect();
        assert_eq!(replayed, expected, "{what}");
    }
    let missing = store
        .read_replay(&StreamId::new("order-404"), StreamVersion::FIRST, 10)
        .await
        .unwrap_or_else(|e| panic!("read_replay of a missing stream must not fail: {e:?}"));
    assert!(missing.is_empty(), "read_replay of a missing stream returned {missing:?}");
}

/// `read_all` returns the events strictly after a position, at most `limit`
/// of them, in strictly increasing position order; paging through it sees
/// every event exactly once, with the positions the appends reported.
pub async fn read_all_pages_after_position<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    let mut placed: HashMap<EventId, GlobalPosition> = HashMap::new();
    let mut last = GlobalPosition::START;
    for round in 0..5u64 {
        for (n, stream) in ["order-1", "order-2", "order-3"].into_iter().enumerate() {
            let outcome = append_ok(
                &store,
                &StreamId::new(stream),
                ExpectedVersion::Any,
                batch(round * 10, n as u64 + 1),
                "filling the global stream",
            )
            .await;
            for c in &outcome.committed {
                placed.insert(c.event_id, c.global_position);
                last = last.max(c.global_position);
            }
        }
    }
    let total = placed.len();
    assert_eq!(total, 30);
    let everything = read_whole_log(&store, last).await;

    // Page with a small limit.
    let mut seen: Vec<RecordedEvent> = Vec::new();
    let mut after = GlobalPosition::START;
    for pages in 0.. {
        assert!(pages < MAX_PAGES, "paging read_all with limit 7 never reached the end");
        let page =
            store.read_all(after, 7).await.unwrap_or_else(|e| panic!("read_all after {after} failed: {e:?}"));
        assert!(page.len() <= 7, "read_all returned {} events for limit 7", page.len());
        let Some(tail) = page.last() else { break };
        assert!(
            page.iter().all(|e| e.global_position > after),
            "read_all after {after} returned an earlier event"
        );
        assert!(page.windows(2).all(|w| w[0].global_position < w[1].global_position), "page not in order");
        after = tail.global_position;
        seen.extend(page);
    }
    assert_eq!(
        seen, everything,
        "paging with limit 7 must see the same events as paging with a larger limit"
    );
    let mut once: HashSet<EventId> = HashSet::new();
    for e in &seen {
        assert!(once.insert(e.event_id), "read_all returned event {} more than once", e.event_id);
        assert_eq!(
            Some(&e.global_position),
            placed.get(&e.event_id),
            "read_all must return event {} at the position its append reported",
            e.event_id
        );
    }
    assert_eq!(once.len(), total, "read_all must return every appended event");

    // Start in the middle: exactly the events after that position.
    let middle = seen[12].global_position;
    let rest = store.read_all(middle, 1000).await.expect("read_all from the middle failed");
    assert_eq!(rest, seen[13..].to_vec(), "read_all after a position returns exactly the later events");
    let none = store.read_all(last, 10).await.expect("read_all after the last position failed");
    assert!(none.is_empty(), "read_all after the last position must be empty, got {none:?}");
    let zero = store.read_all(GlobalPosition::START, 0).await.expect("read_all with limit 0 failed");
    assert!(zero.is_empty(), "read_all with a limit of 0 must return nothing");
}

/// `head_position` is `START` on an empty store and then the position of
/// the last event `read_all` returns.
pub async fn head_position_is_last_position_read<S: EventStore>(store: S) {
    assert_fresh(&store).await;
    assert_eq!(head(&store).await, GlobalPosition::START, "an empty store's head is START");
    let mut outcomes = Vec::new();
    for (n, stream) in ["order-1", "order-2", "order-1"].into_iter().enumerate() {
        let outcome = append_ok(
            &store,
            &StreamId::new(stream),
            ExpectedVersion::Any,
            batch(0, n as u64 + 1),
            "appending",
        )
        .await;
        outcomes.push(outcome);
        let last = last_position(&outcomes.iter().collect::<Vec<_>>());
        let log = read_whole_log(&store, last).await;
        let tail = log.last().map(|e| e.global_position).expect("read_all saw nothing after appends");
        assert_eq!(tail, last, "the last event read_all returns is the last one appended");
        assert_eq!(head(&store).await, tail, "head_position must equal the last position read_all returns");
    }
}

/// Every envelope field survives the round trip through the store, on
/// `read_stream` and `read_all` alike: event id, stream, aggregate type,
/// type name, schema version, payload (nested JSON, unicode, escapes,
/// numbers), metadata (correlation, causation, application fields), and a
/// plausible `recorded_at` (within a minute of now).
pub async fn envelope_fields_round_trip<S: EventStore>(store: S) {
    let stream = StreamId::new("konto-ä-1");
    let payload = json!({
        "text": "zażółć gęślą jaźń — 日本語 — 🐢",
        "escapes": "quote \" backslash \\ newline \n tab \t",
        "numbers": { "int": 42, "negative": -7, "big": 9_007_199_254_740_993_u64, "float": 1.5, "zero": 0 },
        "flags": [true, false, null],
        "nested": { "list": [ { "a": 1 }, { "b": [1, 2, [3]] } ], "empty": {}, "none": [] },
        "emoji key 🔑": "value",
    });
    let correlation = Uuid::now_v7();
    let causation = Uuid::now_v7();
    let metadata = Metadata::new()
        .with_correlation_id(correlation)
        .with_causation_id(causation)
        .with_field("user", "ada")
        .with_field("tenant", json!({ "id": 7, "tags": ["a", "ü"] }));
    let with_metadata =
        NewEvent::new("konto", "MoneyDeposited", 3, payload.clone()).with_metadata(metadata.clone());
    let bare = NewEvent::new("konto", "Noted", 1, json!("just a string"));
    let scalar = NewEvent::new("konto", "Counted", 2, json!(17));
    let sent = vec![with_metadata, bare, scalar];

    let before = SystemTime::now();
    let outcome =
        append_ok(&store, &stream, ExpectedVersion::NoStream, sent.clone(), "appending envelopes").await;
    let by_stream = read_whole_stream(&store, &stream).await;
    let by_log = read_whole_log(&store, last_position(&[&outcome])).await;
    assert_eq!(by_stream, by_log, "read_stream and read_all must return identical envelopes");
    assert_eq!(by_stream.len(), sent.len());

    let now = Timestamp::now().as_micros();
    let minute = 60_000_000;
    let earliest = Timestamp::from_system_time(before).as_micros() - minute;
    for (i, (got, want)) in by_stream.iter().zip(&sent).enumerate() {
        let what = format!("event {i} ({})", want.event_type);
        assert_eq!(got.event_id, want.event_id, "{what}: event id");
        assert_eq!(got.stream_id, stream, "{what}: stream id");
        assert_eq!(got.aggregate_type, want.aggregate_type, "{what}: aggregate type");
        assert_eq!(got.event_type, want.event_type, "{what}: event type name");
        assert_eq!(got.schema_version, want.schema_version, "{what}: schema version");
        assert_eq!(got.payload, want.payload, "{what}: payload");
        assert_eq!(got.metadata, want.metadata, "{what}: metadata");
        assert_eq!(got.stream_version, StreamVersion(i as u64 + 1), "{what}: stream version");
        assert_eq!(got.global_position, outcome.committed[i].global_position, "{what}: global position");
        let at = got.recorded_at.as_micros();
        assert!(
            (earliest..=now + minute).contains(&at),
            "{what}: recorded_at {at} µs is not within a minute of now ({now} µs)"
        );
    }
    let first = &by_stream[0];
    assert_eq!(first.metadata.correlation_id, Some(correlation), "correlation id");
    assert_eq!(first.metadata.causation_id, Some(causation), "causation id");
    assert_eq!(first.metadata.fields.get("user"), Some(&Value::from("ada")), "application metadata field");
    assert!(by_stream[1].metadata.is_empty(), "empty metadata must stay empty");
}

/// Stores 10 events in `order-1` and 3 in `order-2`; returns `order-1`.
async fn ten_events_beside_three<S: EventStore>(store: &S) -> StreamId {
    let stream = StreamId::new("order-1");
    append_ok(store, &stream, ExpectedVersion::NoStream, batch(1, 10), "storing 10 events").await;
    append_ok(store, &StreamId::new("order-2"), ExpectedVersion::NoStream, batch(1, 3), "another stream")
        .await;
    stream
}

/// The versions `read_stream` returns from `from` in `direction`.
async fn read_versions<S: EventStore>(
    store: &S,
    stream: &StreamId,
    from: u64,
    direction: Direction,
    limit: usize,
) -> Vec<u64> {
    let events = store
        .read_stream(stream, StreamVersion(from), direction, limit)
        .await
        .unwrap_or_else(|e| panic!("read_stream {direction:?} from {from} failed: {e:?}"));
    versions(&events)
}
