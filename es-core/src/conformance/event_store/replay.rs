//! Replay: a range of one stream handed to a visitor as it is read.

use std::ops::ControlFlow;

use super::*;

/// The events `replay` hands over from `from` up to `up_to`.
async fn replayed<S: EventStore>(
    store: &S,
    stream: &StreamId,
    from: u64,
    up_to: Option<u64>,
) -> Vec<ReplayEvent> {
    let mut seen = Vec::new();
    let mut visit = |event: ReplayEvent| {
        seen.push(event);
        ControlFlow::Continue(())
    };
    store
        .replay(stream, StreamVersion(from), up_to.map(StreamVersion), &mut visit)
        .await
        .unwrap_or_else(|e| panic!("replay of `{stream}` from {from} up to {up_to:?} failed: {e:?}"));
    seen
}

/// `replay` hands over the events from `from` up to `up_to` (both
/// inclusive; `None`: to the newest), oldest first, with the fields
/// `read_replay` returns; an empty range, a range past the end and a
/// missing stream hand over nothing.
pub async fn replay_hands_over_a_range_oldest_first<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    let mixed = vec![
        event(1),
        NewEvent::new("test", "Renamed", 2, json!({ "name": "x", "tags": ["a", "b"], "n": null })),
        event(3),
    ];
    append_ok(&store, &stream, ExpectedVersion::NoStream, mixed, "storing 3 events").await;
    append_ok(&store, &stream, ExpectedVersion::Any, batch(4, 7), "storing 7 more").await;
    append_ok(&store, &StreamId::new("order-2"), ExpectedVersion::NoStream, batch(1, 3), "another stream")
        .await;
    let all = store
        .read_replay(&stream, StreamVersion::FIRST, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("read_replay of the whole stream failed: {e:?}"));
    assert_eq!(all.len(), 10, "read_replay of the whole stream");
    let cases = [
        (1, None),
        (1, Some(10)),
        (4, Some(6)),
        (10, None),
        (3, Some(3)),
        (9, Some(u64::MAX)),
        (0, Some(2)),
        (11, None),
        (6, Some(5)),
    ];
    for (from, up_to) in cases {
        let expected: Vec<ReplayEvent> = all
            .iter()
            .filter(|e| {
                e.stream_version.get() >= from && up_to.is_none_or(|last| e.stream_version.get() <= last)
            })
            .cloned()
            .collect();
        assert_eq!(
            replayed(&store, &stream, from, up_to).await,
            expected,
            "replay from {from} up to {up_to:?}"
        );
    }
    let missing = replayed(&store, &StreamId::new("order-404"), 1, None).await;
    assert!(missing.is_empty(), "replay of a missing stream handed over {missing:?}");
}

/// A visitor that answers `Break` gets no further event, and the store
/// serves the next read in full (a streamed read left unfinished does not
/// spill into it).
pub async fn replay_stops_when_the_visitor_breaks<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 10), "storing 10 events").await;
    let mut seen = Vec::new();
    let mut visit = |event: ReplayEvent| {
        seen.push(event.stream_version.get());
        if seen.len() == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    store
        .replay(&stream, StreamVersion(2), None, &mut visit)
        .await
        .unwrap_or_else(|e| panic!("a replay its visitor broke off failed: {e:?}"));
    assert_eq!(seen, vec![2, 3, 4], "the visitor broke after three events");
    for _ in 0..3 {
        let again = replayed(&store, &stream, 1, None).await;
        let versions: Vec<u64> = again.iter().map(|e| e.stream_version.get()).collect();
        assert_eq!(versions, range(1, 10), "a replay after one that was broken off");
        assert_eq!(
            stream_version_of(&store, &stream).await,
            Some(StreamVersion(10)),
            "the version after a replay that was broken off"
        );
    }
}
