//! Event store cases: what every [`EventStore`] must do.
//!
//! Run them all with [`event_store_conformance!`](crate::event_store_conformance).
//! Each case takes a fresh, empty store; the concurrent ones clone it into
//! tasks, so clones must share their data.
//!
//! The cases live in files by subject: `versions` (expected and stream
//! versions), `retries` (event ids, atomicity, exact retries), `reads`,
//! `replay` (a range handed to a visitor), `concurrency`, `wakeups`,
//! `limits` (what a store keeps) and `poison` (a corrupt row in the global
//! stream). This file holds what they share.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use uuid::Uuid;

mod concurrency;
mod limits;
mod poison;
mod poison_readers;
mod reads;
mod replay;
mod retries;
mod versions;
mod wakeups;

pub use concurrency::*;
pub use limits::*;
pub use poison::*;
pub use poison_readers::*;
pub use reads::*;
pub use replay::*;
pub use retries::*;
pub use versions::*;
pub use wakeups::*;

use super::join;
use crate::error::AppendError;
use crate::store::{
    AppendOutcome, Committed, Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent, ReplayEvent,
    Timestamp,
};
use crate::{EventId, EventSubscription, GlobalPosition, Metadata, StreamId, StreamVersion};

/// The `max_wait` the wake-up cases hand to
/// [`wait_for_events`](EventStore::wait_for_events) (and the idle wait of
/// their subscriptions).
const WAKE_WAIT: Duration = Duration::from_secs(30);

/// A wait that ends within this, while its `max_wait` is [`WAKE_WAIT`], was
/// woken by the store: a store that cannot wake waiters sleeps the whole
/// `max_wait`. This checks that the store wakes its waiters, not how fast:
/// one that does returns within milliseconds of the append, and the two
/// outcomes lie a quarter of a minute apart.
const WOKEN_WITHIN: Duration = Duration::from_secs(15);

/// How long a wake-up case lets its waiter start waiting before it appends
/// the event that should wake it. Without it, on a busy machine the append
/// can land before the waiter looks, the waiter returns at once, and a store
/// that never wakes waiters would pass.
const WAITER_SETTLES: Duration = Duration::from_secs(1);

/// The most pages the suite reads of one stream or of the global stream
/// before it declares that the store never reaches the end.
const MAX_PAGES: usize = 10_000;

/// The most times one contended append is retried on
/// `WrongExpectedVersion` before the suite declares that it never lands.
const MAX_CONTENDED_ATTEMPTS: u32 = 10_000;

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
    for _ in 0..MAX_PAGES {
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
    panic!(
        "read_stream of `{stream}` returned full pages {MAX_PAGES} times: it never reaches the stream's end"
    )
}

/// Every event of the global stream, read page by page; checks that
/// positions strictly increase across pages and that each page respects
/// its limit. Waits (with `wait_for_events`) until `through` is visible, so
/// an adapter may make an event readable a moment after its append returned.
async fn read_whole_log<S: EventStore>(store: &S, through: GlobalPosition) -> Vec<RecordedEvent> {
    let mut all: Vec<RecordedEvent> = Vec::new();
    let mut waits = 0;
    for _ in 0..MAX_PAGES {
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
    panic!("read_all returned {MAX_PAGES} pages without reaching position {through}")
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
