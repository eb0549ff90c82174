//! Event store cases: what every [`EventStore`] must do.
//!
//! Run them all with [`event_store_conformance!`](crate::event_store_conformance).
//! Each case takes a fresh, empty store; the concurrent ones clone it into
//! tasks, so clones must share their data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use uuid::Uuid;

use super::join;
use crate::error::AppendError;
use crate::store::{
    AppendOutcome, Committed, Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent, ReplayEvent,
    Timestamp,
};
use crate::{EventId, EventSubscription, GlobalPosition, Metadata, StreamId, StreamVersion};

/// How long a waiter may wait in [`wait_for_events_wakes_when_an_event_lands`].
/// A store that never wakes waiters makes that case hang this long, which
/// the test runner reports as a slow test; no elapsed time is asserted.
const LONG_WAIT: Duration = Duration::from_secs(3600);

/// How long one round of waiting for an appended event to become visible to
/// `read_all` may take, and how many rounds the suite waits before it
/// declares the event lost.
const VISIBILITY_WAIT: Duration = Duration::from_millis(100);
const VISIBILITY_ROUNDS: u32 = 600;

/// Page size when the suite reads a whole stream or the global stream.
const PAGE: usize = 100;

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

fn batch(from: u64, count: u64) -> Vec<NewEvent> {
    (from..from + count).map(event).collect()
}

fn ids_of(events: &[NewEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.event_id).collect()
}

fn recorded_ids(events: &[RecordedEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.event_id).collect()
}

fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.stream_version.get()).collect()
}

fn committed_versions(outcome: &AppendOutcome) -> Vec<u64> {
    outcome.committed.iter().map(|c| c.stream_version.get()).collect()
}

fn committed_ids(outcome: &AppendOutcome) -> Vec<EventId> {
    outcome.committed.iter().map(|c| c.event_id).collect()
}

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..=to).collect()
}

/// Appends and fails the case with `what` if the store refuses.
async fn append_ok<S: EventStore>(
    store: &S,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    what: &str,
) -> AppendOutcome {
    match store.append(stream, expected, events).await {
        Ok(outcome) => outcome,
        Err(error) => panic!("{what}: append to `{stream}` expecting {expected} failed: {error:?}"),
    }
}

/// Checks that an append failed with `WrongExpectedVersion` naming the
/// stream, the expectation and the actual version.
#[track_caller]
fn assert_wrong_version(
    result: Result<AppendOutcome, AppendError>,
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: Option<StreamVersion>,
    what: &str,
) {
    match result {
        Err(AppendError::WrongExpectedVersion { stream: s, expected: e, actual: a }) => {
            assert_eq!(&s, stream, "{what}: WrongExpectedVersion must name the stream appended to");
            assert_eq!(e, expected, "{what}: WrongExpectedVersion must carry the expectation");
            assert_eq!(a, actual, "{what}: WrongExpectedVersion must carry the stream's actual version");
        }
        Err(other) => panic!("{what}: expected WrongExpectedVersion, got {other:?}"),
        Ok(outcome) => panic!("{what}: expected WrongExpectedVersion, but the append succeeded: {outcome:?}"),
    }
}

/// Checks that an append failed with `DuplicateEventId` for `event_id`.
#[track_caller]
fn assert_duplicate(
    result: Result<AppendOutcome, AppendError>,
    stream: &StreamId,
    event_id: EventId,
    what: &str,
) {
    match result {
        Err(AppendError::DuplicateEventId { event_id: id, stream: s }) => {
            assert_eq!(id, event_id, "{what}: DuplicateEventId must name the reused id");
            assert_eq!(&s, stream, "{what}: DuplicateEventId must name the stream of the rejected append");
        }
        Err(other) => panic!("{what}: expected DuplicateEventId for {event_id}, got {other:?}"),
        Ok(outcome) => {
            panic!("{what}: expected DuplicateEventId for {event_id}, but the append succeeded: {outcome:?}")
        }
    }
}

/// Every event of `stream`, read forward page by page.
async fn read_whole_stream<S: EventStore>(store: &S, stream: &StreamId) -> Vec<RecordedEvent> {
    let mut all: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = all.last().map_or(StreamVersion::FIRST, |e| e.stream_version.next());
        let page = store
            .read_stream(stream, from, Direction::Forward, PAGE)
            .await
            .unwrap_or_else(|e| panic!("read_stream of `{stream}` from {from} failed: {e:?}"));
        assert!(page.len() <= PAGE, "read_stream returned {} events, more than its limit {PAGE}", page.len());
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return all;
        }
    }
}

/// Every event of the global stream, read page by page; checks that
/// positions strictly increase across pages and that each page respects
/// its limit. Waits (with `wait_for_events`) until `through` is visible, so
/// an adapter may make an event readable a moment after its append returned.
async fn read_whole_log<S: EventStore>(store: &S, through: GlobalPosition) -> Vec<RecordedEvent> {
    let mut all: Vec<RecordedEvent> = Vec::new();
    let mut waits = 0;
    loop {
        let after = all.last().map_or(GlobalPosition::START, |e| e.global_position);
        let page = store
            .read_all(after, PAGE)
            .await
            .unwrap_or_else(|e| panic!("read_all after position {after} failed: {e:?}"));
        assert!(page.len() <= PAGE, "read_all returned {} events, more than its limit {PAGE}", page.len());
        let mut previous = after;
        for e in &page {
            assert!(
                e.global_position > previous,
                "read_all after {after} must return strictly increasing positions above {after}, \
                 but {} follows {previous}",
                e.global_position
            );
            previous = e.global_position;
        }
        let empty = page.is_empty();
        all.extend(page);
        if !empty {
            continue;
        }
        if previous >= through {
            return all;
        }
        waits += 1;
        assert!(
            waits <= VISIBILITY_ROUNDS,
            "read_all never returned position {through}, the position an append reported; \
             the last position it returned is {previous}"
        );
        store.wait_for_events(previous, VISIBILITY_WAIT).await;
    }
}

async fn stream_version_of<S: EventStore>(store: &S, stream: &StreamId) -> Option<StreamVersion> {
    store
        .stream_version(stream)
        .await
        .unwrap_or_else(|e| panic!("stream_version of `{stream}` failed: {e:?}"))
}

async fn head<S: EventStore>(store: &S) -> GlobalPosition {
    store.head_position().await.unwrap_or_else(|e| panic!("head_position failed: {e:?}"))
}

/// Fails the case if the store is not fresh: the suite needs an empty store
/// per case to check what the global stream holds.
async fn assert_fresh<S: EventStore>(store: &S) {
    let events = store.read_all(GlobalPosition::START, 1).await.expect("read_all of a fresh store failed");
    assert!(
        events.is_empty(),
        "the conformance suite needs a fresh, empty store per case, but this one holds events"
    );
}

fn last_position(outcomes: &[&AppendOutcome]) -> GlobalPosition {
    outcomes.iter().filter_map(|o| o.last_position()).max().unwrap_or(GlobalPosition::START)
}

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

/// `read_stream` forward starts at the given version (inclusive) and
/// returns at most `limit` events; a huge limit returns the rest.
pub async fn read_stream_forward_from_version_with_limit<S: EventStore>(store: S) {
    let stream = StreamId::new("order-1");
    append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 10), "storing 10 events").await;
    append_ok(&store, &StreamId::new("order-2"), ExpectedVersion::NoStream, batch(1, 3), "another stream")
        .await;
    let read = |from: u64, limit: usize| {
        let store = &store;
        let stream = &stream;
        async move {
            let events = store
                .read_stream(stream, StreamVersion(from), Direction::Forward, limit)
                .await
                .unwrap_or_else(|e| panic!("read_stream forward from {from} failed: {e:?}"));
            versions(&events)
        }
    };
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
    let stream = StreamId::new("order-1");
    append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 10), "storing 10 events").await;
    append_ok(&store, &StreamId::new("order-2"), ExpectedVersion::NoStream, batch(1, 3), "another stream")
        .await;
    let read = |from: u64, limit: usize| {
        let store = &store;
        let stream = &stream;
        async move {
            let events = store
                .read_stream(stream, StreamVersion(from), Direction::Backward, limit)
                .await
                .unwrap_or_else(|e| panic!("read_stream backward from {from} failed: {e:?}"));
            versions(&events)
        }
    };
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

/// An append holding a NUL character (in the stream id, a type name, a
/// payload string or the metadata; Postgres stores none) is refused with
/// `Unstorable` and stores nothing, and reading such a stream finds
/// nothing. An escaped backslash followed by `u0000` is not a NUL and is
/// stored.
pub async fn nul_characters_are_refused_alike<S: EventStore>(store: S) {
    let good = StreamId::new("order-1");
    let cases: Vec<(&str, StreamId, NewEvent)> = vec![
        ("a NUL in the stream id", StreamId::new("order-\0-1"), event(1)),
        ("a NUL in the aggregate type", good.clone(), NewEvent::new("te\0st", "Tested", 1, json!({}))),
        ("a NUL in the event type", good.clone(), NewEvent::new("test", "Test\0ed", 1, json!({}))),
        (
            "a NUL in a payload string",
            good.clone(),
            NewEvent::new("test", "Tested", 1, json!({ "s": "a\0b" })),
        ),
        ("a NUL in a payload key", good.clone(), NewEvent::new("test", "Tested", 1, json!({ "k\0": 1 }))),
        (
            "a NUL in the metadata",
            good.clone(),
            event(1).with_metadata(Metadata::new().with_field("note", json!(["ok", "n\0"]))),
        ),
    ];
    for (what, stream, bad) in cases {
        match store.append(&stream, ExpectedVersion::Any, vec![event(0), bad]).await {
            Err(AppendError::Unstorable { stream: s, reason }) => {
                assert_eq!(s, stream, "{what}: Unstorable must name the stream");
                assert!(reason.contains("NUL"), "{what}: the reason must say what is wrong: {reason}");
            }
            other => panic!("{what}: expected AppendError::Unstorable, got {other:?}"),
        }
        assert_eq!(stream_version_of(&store, &stream).await, None, "{what}: nothing may be stored");
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
    loop {
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
                loop {
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

/// `wait_for_events` returns once an event after the given position lands,
/// and at once when one is already there. Nothing about elapsed time is
/// asserted: a store that never wakes waiters hangs this case for an hour.
pub async fn wait_for_events_wakes_when_an_event_lands<S: EventStore + Clone>(store: S) {
    assert_fresh(&store).await;
    let stream = StreamId::new("order-1");
    let start = head(&store).await;

    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_events(start, LONG_WAIT).await })
    };
    let first = append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 1), "waking the waiter").await;
    join(waiter).await;
    let log = read_whole_log(&store, last_position(&[&first])).await;
    assert_eq!(recorded_ids(&log), committed_ids(&first), "read_all must see the event that woke the waiter");

    // An event after `start` is already there: no need to wait.
    store.wait_for_events(start, LONG_WAIT).await;

    // Waiting after the new head wakes on the next event.
    let seen = head(&store).await;
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_events(seen, LONG_WAIT).await })
    };
    let second =
        append_ok(&store, &stream, ExpectedVersion::Exact(StreamVersion(1)), batch(2, 1), "waking again")
            .await;
    join(waiter).await;
    let log = read_whole_log(&store, last_position(&[&first, &second])).await;
    assert_eq!(log.len(), 2, "read_all must see both events");
}

/// An [`EventSubscription`] delivers the stored events after its start in
/// position order, then waits for and delivers new ones as they commit,
/// each once; a subscription started at a delivered position goes on from
/// there. Like the case above, it relies on `wait_for_events` to wake it.
pub async fn subscription_catches_up_then_goes_live<S: EventStore + Clone>(store: S) {
    assert_fresh(&store).await;
    let (a, b) = (StreamId::new("order-1"), StreamId::new("order-2"));
    let first = append_ok(&store, &a, ExpectedVersion::NoStream, batch(1, 3), "history of order-1").await;
    let second = append_ok(&store, &b, ExpectedVersion::NoStream, batch(1, 2), "history of order-2").await;
    let mut history: Vec<Committed> = first.committed.iter().chain(&second.committed).copied().collect();
    history.sort_by_key(|c| c.global_position);

    let mut subscription =
        EventSubscription::new(store.clone(), GlobalPosition::START).page_size(2).idle_wait(LONG_WAIT);
    for (n, want) in history.iter().enumerate() {
        let got = subscription.next().await.unwrap_or_else(|e| panic!("subscription, event {n}: {e:?}"));
        assert_eq!(
            (got.event_id, got.global_position),
            (want.event_id, want.global_position),
            "the subscription must deliver history in position order"
        );
        assert_eq!(subscription.position(), want.global_position, "position follows each delivered event");
    }
    let caught_up = subscription.next_batch().await.expect("next_batch when caught up");
    assert!(caught_up.is_empty(), "nothing more is stored, yet next_batch returned {caught_up:?}");

    let writer = {
        let store = store.clone();
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            let later = store.append(&a, ExpectedVersion::Exact(StreamVersion(3)), batch(4, 2)).await;
            let last = store.append(&b, ExpectedVersion::Exact(StreamVersion(2)), batch(3, 1)).await;
            (later, last)
        })
    };
    let mut live = Vec::new();
    while live.len() < 3 {
        let got = subscription.next().await.unwrap_or_else(|e| panic!("live event {}: {e:?}", live.len()));
        live.push((got.event_id, got.global_position));
    }
    let (later, last) = join(writer).await;
    let (later, last) = (later.expect("live append to order-1"), last.expect("live append to order-2"));
    let expected: Vec<(EventId, GlobalPosition)> =
        later.committed.iter().chain(&last.committed).map(|c| (c.event_id, c.global_position)).collect();
    assert_eq!(live, expected, "live events must come once each, in position order");

    let resume_at = history[history.len() - 1].global_position;
    let mut resumed = EventSubscription::new(store.clone(), resume_at).idle_wait(LONG_WAIT);
    let rest = resumed.next_batch().await.expect("resumed next_batch");
    let rest: Vec<(EventId, GlobalPosition)> = rest.iter().map(|e| (e.event_id, e.global_position)).collect();
    assert_eq!(rest, expected, "a subscription started at a position delivers only what came after it");
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
