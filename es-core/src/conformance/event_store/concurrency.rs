//! Concurrent writers: contended streams, many streams at once (read
//! afterwards and tailed while they write), racing reuses of one id and
//! racing identical appends.

use super::*;

/// Many tasks appending to ONE stream, each re-reading the stream's version
/// and retrying on `WrongExpectedVersion`: every accepted event is stored
/// exactly once, versions are gap-free, no two appends got the same
/// version, and each batch's versions are contiguous.
pub async fn concurrent_appends_to_one_stream<S: EventStore + Clone>(store: S) {
    const TASKS: u64 = 8;
    const APPENDS: u64 = 25;
    assert_fresh(&store).await;
    let stream = StreamId::new("contended-1");
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let stream = stream.clone();
        tasks.push(tokio::spawn(async move {
            let mut accepted: Vec<(Vec<EventId>, AppendOutcome)> = Vec::new();
            for n in 0..APPENDS {
                // Batches of 1 to 3 events, so atomicity is exercised too.
                let events = batch(task * 1000 + n * 10, (task + n) % 3 + 1);
                for attempt in 1.. {
                    assert!(
                        attempt <= MAX_CONTENDED_ATTEMPTS,
                        "task {task}: a contended append was refused {MAX_CONTENDED_ATTEMPTS} times in a row"
                    );
                    let current = stream_version_of(&store, &stream).await;
                    let expected = ExpectedVersion::from_current(current);
                    match store.append(&stream, expected, events.clone()).await {
                        Ok(outcome) => {
                            accepted.push((ids_of(&events), outcome));
                            break;
                        }
                        Err(AppendError::WrongExpectedVersion { .. }) => {}
                        Err(other) => panic!("task {task}: a contended append failed: {other:?}"),
                    }
                }
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        accepted.extend(join(task).await);
    }

    let mut version_of: BTreeMap<u64, EventId> = BTreeMap::new();
    let mut placed: HashMap<EventId, Committed> = HashMap::new();
    for (ids, outcome) in &accepted {
        assert_eq!(&committed_ids(outcome), ids, "an append's outcome must list its own events in order");
        let vs = committed_versions(outcome);
        assert!(vs.windows(2).all(|w| w[1] == w[0] + 1), "one batch's versions must be contiguous: {vs:?}");
        for c in &outcome.committed {
            if let Some(previous) = version_of.insert(c.stream_version.get(), c.event_id) {
                panic!("two appends got version {}: events {previous} and {}", c.stream_version, c.event_id);
            }
            placed.insert(c.event_id, *c);
        }
    }
    let total = version_of.len() as u64;
    let expected_total: u64 = (0..TASKS).flat_map(|t| (0..APPENDS).map(move |n| (t + n) % 3 + 1)).sum();
    assert_eq!(total, expected_total, "every append must be accepted once");
    assert_eq!(version_of.keys().copied().collect::<Vec<_>>(), range(1, total), "versions must be gap-free");
    assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(total)));

    let stored = read_whole_stream(&store, &stream).await;
    assert_eq!(versions(&stored), range(1, total), "the stream must hold versions 1..={total}");
    for e in &stored {
        assert_eq!(
            version_of.get(&e.stream_version.get()),
            Some(&e.event_id),
            "version {} holds another event than the append reported",
            e.stream_version
        );
    }
    let last = placed.values().map(|c| c.global_position).max().unwrap_or(GlobalPosition::START);
    let log = read_whole_log(&store, last).await;
    assert_eq!(log.len() as u64, total, "read_all must return every accepted event once");
    for e in &log {
        let c = placed
            .get(&e.event_id)
            .unwrap_or_else(|| panic!("read_all returned unknown event {}", e.event_id));
        assert_eq!(
            c.global_position, e.global_position,
            "event {} is not at its reported position",
            e.event_id
        );
    }
}

/// Many tasks appending to their own streams at once: every append
/// succeeds, `read_all` returns each event exactly once in strictly
/// increasing position order (at the positions the appends reported), and
/// each stream's versions are gap-free and in order within the global
/// stream.
pub async fn concurrent_appends_to_many_streams<S: EventStore + Clone>(store: S) {
    const TASKS: u64 = 16;
    const APPENDS: u64 = 50;
    assert_fresh(&store).await;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::new(format!("parallel-{task}"));
            let mut placed = Vec::new();
            for n in 0..APPENDS {
                let expected =
                    if n == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(StreamVersion(n)) };
                let outcome =
                    append_ok(&store, &stream, expected, batch(n, 1), "an uncontended append").await;
                assert_eq!(
                    committed_versions(&outcome),
                    vec![n + 1],
                    "`{stream}`: versions must be gap-free"
                );
                placed.extend(outcome.committed);
            }
            (stream, placed)
        }));
    }
    let mut placed: HashMap<EventId, (StreamId, Committed)> = HashMap::new();
    for task in tasks {
        let (stream, committed) = join(task).await;
        for c in committed {
            placed.insert(c.event_id, (stream.clone(), c));
        }
    }
    assert_eq!(placed.len() as u64, TASKS * APPENDS, "every append must have succeeded");
    let last = placed.values().map(|(_, c)| c.global_position).max().unwrap_or(GlobalPosition::START);

    let log = read_whole_log(&store, last).await;
    assert_eq!(log.len(), placed.len(), "read_all must return every event exactly once");
    let mut next_version: HashMap<StreamId, u64> = HashMap::new();
    let mut once: HashSet<EventId> = HashSet::new();
    for e in &log {
        assert!(once.insert(e.event_id), "read_all returned event {} twice", e.event_id);
        let (stream, c) = placed
            .get(&e.event_id)
            .unwrap_or_else(|| panic!("read_all returned unknown event {}", e.event_id));
        assert_eq!(&e.stream_id, stream, "event {} is in the wrong stream", e.event_id);
        assert_eq!(
            e.global_position, c.global_position,
            "event {} is not at its reported position",
            e.event_id
        );
        let next = next_version.entry(stream.clone()).or_insert(1);
        assert_eq!(
            e.stream_version.get(),
            *next,
            "read_all must show `{stream}`'s events in version order without gaps"
        );
        *next += 1;
    }
    for task in 0..TASKS {
        let stream = StreamId::new(format!("parallel-{task}"));
        assert_eq!(versions(&read_whole_stream(&store, &stream).await), range(1, APPENDS));
    }
}

/// A reader tailing `read_all` while many tasks append to their own
/// streams sees every event exactly once, in strictly increasing position
/// order, and skips none that becomes visible late (on an empty page it
/// waits with `wait_for_events` and reads on from where it was); afterwards
/// the global stream holds nothing more and every stream is at its last
/// version.
pub async fn a_tailing_reader_sees_every_event_of_concurrent_writers_once_in_order<S: EventStore + Clone>(
    store: S,
) {
    const WRITERS: u64 = 16;
    const APPENDS: u64 = 200;
    const TOTAL: u64 = WRITERS * APPENDS;
    assert_fresh(&store).await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let stream = StreamId::new(format!("writer-{w}"));
            for i in 0..APPENDS {
                let expected =
                    if i == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(StreamVersion(i)) };
                append_ok(&store, &stream, expected, vec![event(w * APPENDS + i)], "a writer's append").await;
            }
        }));
    }
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut after = GlobalPosition::START;
            let mut seen = HashSet::new();
            let mut idle = 0;
            while (seen.len() as u64) < TOTAL {
                let page = store
                    .read_all(after, 500)
                    .await
                    .unwrap_or_else(|e| panic!("read_all after position {after} failed: {e:?}"));
                for e in &page {
                    assert!(
                        e.global_position > after,
                        "a tailing reader got position {} after {after}",
                        e.global_position
                    );
                    assert!(seen.insert(e.event_id), "a tailing reader got event {} twice", e.event_id);
                    after = e.global_position;
                }
                if !page.is_empty() {
                    idle = 0;
                    continue;
                }
                // Nothing new for this long while events are still
                // missing: the reader read past them.
                idle += 1;
                assert!(
                    idle <= VISIBILITY_ROUNDS,
                    "a tailing reader saw {} of {TOTAL} events and then nothing for {VISIBILITY_ROUNDS} \
                     waits of {VISIBILITY_WAIT:?}: it skipped some",
                    seen.len()
                );
                store.wait_for_events(after, VISIBILITY_WAIT).await;
            }
            seen.len() as u64
        })
    };
    for writer in writers {
        join(writer).await;
    }
    assert_eq!(join(reader).await, TOTAL, "the tailing reader saw every event once");
    let log = read_whole_log(&store, head(&store).await).await;
    assert_eq!(log.len() as u64, TOTAL, "read_all holds nothing beyond what was appended");
    for w in 0..WRITERS {
        let stream = StreamId::new(format!("writer-{w}"));
        assert_eq!(stream_version_of(&store, &stream).await, Some(StreamVersion(APPENDS)));
    }
}

/// Several tasks appending batches that share one event id to different
/// streams at once: exactly one append succeeds, every other fails with
/// `DuplicateEventId` for that id, and the id is stored once.
pub async fn concurrent_reuse_of_an_event_id_stores_it_once<S: EventStore + Clone>(store: S) {
    const TASKS: u64 = 8;
    assert_fresh(&store).await;
    let shared = EventId::new();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::new(format!("racer-{task}"));
            let events = vec![event(task), event(task + 100).with_event_id(shared)];
            (stream.clone(), store.append(&stream, ExpectedVersion::NoStream, events).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match join(task).await {
            (stream, Ok(outcome)) => winners.push((stream, outcome)),
            (_, Err(AppendError::DuplicateEventId { event_id, .. })) => {
                assert_eq!(event_id, shared, "DuplicateEventId must name the shared id");
            }
            (stream, Err(other)) => panic!("`{stream}`: expected success or DuplicateEventId, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one append of a shared id may succeed, got {}", winners.len());
    let (winner, outcome) = &winners[0];
    let log = read_whole_log(&store, last_position(&[outcome])).await;
    assert_eq!(recorded_ids(&log), committed_ids(outcome), "only the winning batch may be stored");
    assert!(log.iter().all(|e| &e.stream_id == winner), "only `{winner}` may hold events");
}

/// The same append (same ids, stream and expectation) issued by several
/// tasks at once, as when a retry races the original attempt: the events
/// are stored exactly once; every attempt that succeeds reports the same
/// placement; the others fail only with `WrongExpectedVersion` or
/// `DuplicateEventId`.
pub async fn concurrent_identical_appends_store_once<S: EventStore + Clone>(store: S) {
    const TASKS: usize = 8;
    assert_fresh(&store).await;
    let stream = StreamId::new("order-1");
    let events = batch(1, 3);
    let ids = ids_of(&events);
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        let stream = stream.clone();
        let events = events.clone();
        tasks.push(tokio::spawn(
            async move { store.append(&stream, ExpectedVersion::NoStream, events).await },
        ));
    }
    let mut placements: Vec<Vec<Committed>> = Vec::new();
    for task in tasks {
        match join(task).await {
            Ok(outcome) => placements.push(outcome.committed),
            Err(AppendError::WrongExpectedVersion { .. } | AppendError::DuplicateEventId { .. }) => {}
            Err(other) => panic!("a racing identical append failed with {other:?}"),
        }
    }
    let Some(first) = placements.first() else {
        panic!("at least one of {TASKS} identical appends must succeed");
    };
    assert!(placements.iter().all(|p| p == first), "racing identical appends reported different placements");
    let log = read_whole_log(
        &store,
        first.iter().map(|c| c.global_position).max().unwrap_or(GlobalPosition::START),
    )
    .await;
    assert_eq!(recorded_ids(&log), ids, "the batch must be stored exactly once");
    assert_eq!(versions(&log), range(1, 3));
}
