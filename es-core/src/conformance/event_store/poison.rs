//! The poison-row case: a stored row that cannot become an envelope stops a
//! read of the global stream at the row, loudly, and never hides the
//! events around it.
//!
//! A store cannot be asked through its port to store such a row, so the
//! case takes a second argument from the adapter that plants one behind the
//! store's back (on Postgres a raw `INSERT`, in memory a test hook). Stamp
//! it with [`poison_row_conformance!`](crate::poison_row_conformance).

use std::future::Future;

use super::{append_ok, assert_fresh, batch, head, last_position, recorded_ids, WOKEN_WITHIN};
use crate::error::StoreError;
use crate::store::{AppendOutcome, Committed, EventStore, ExpectedVersion, RecordedEvent};
use crate::{EventId, GlobalPosition, StreamId, StreamVersion};

/// A `read_all` page large enough for every event of the case.
const PAGE: usize = 100;

fn ids(committed: &[Committed]) -> Vec<EventId> {
    committed.iter().map(|c| c.event_id).collect()
}

async fn read_all<S: EventStore>(store: &S, after: GlobalPosition) -> Result<Vec<RecordedEvent>, StoreError> {
    store.read_all(after, PAGE).await
}

/// A corrupt row planted between two appends of valid events.
pub(super) struct Planted {
    /// The corrupt row's stream.
    pub(super) stream: StreamId,
    /// The corrupt row's position.
    pub(super) row: GlobalPosition,
    /// The positions of the valid events before and after it.
    pub(super) before: Vec<GlobalPosition>,
    pub(super) after: Vec<GlobalPosition>,
    /// Their ids.
    before_ids: Vec<EventId>,
    after_ids: Vec<EventId>,
}

/// Appends two valid events to a fresh store, plants a corrupt row with
/// `plant` (which stores, after everything stored so far and committed, a
/// row of the given stream that no envelope can be made of, and returns
/// its global position), appends two more, and waits until all are
/// visible.
pub(super) async fn plant_between<S, P, F>(store: &S, plant: P) -> Planted
where
    S: EventStore + Clone,
    P: FnOnce(S, StreamId) -> F,
    F: Future<Output = GlobalPosition>,
{
    assert_fresh(store).await;
    let (stream, poisoned) = (StreamId::new("order-1"), StreamId::new("poison-1"));
    let before = append_ok(store, &stream, ExpectedVersion::NoStream, batch(1, 2), "events before").await;
    let row = plant(store.clone(), poisoned.clone()).await;
    let after = append_ok(
        store,
        &stream,
        ExpectedVersion::Exact(StreamVersion(2)),
        batch(3, 2),
        "events after the corrupt row",
    )
    .await;
    let before_last = last_position(&[&before]);
    assert!(
        before_last < row && row < last_position(&[&after]),
        "the corrupt row must lie between the events appended before and after it: {before_last} < \
         {row} < {}",
        last_position(&[&after])
    );
    until_visible(store, &after).await;
    let positions = |outcome: &AppendOutcome| outcome.committed.iter().map(|c| c.global_position).collect();
    Planted {
        stream: poisoned,
        row,
        before: positions(&before),
        after: positions(&after),
        before_ids: ids(&before.committed),
        after_ids: ids(&after.committed),
    }
}

/// A corrupt row in the global stream (planted by `plant`, which stores,
/// after everything stored so far and committed, a row of the given stream
/// that no envelope can be made of, and returns its global position):
///
/// - a read from the start returns the valid events before the row, and
///   only those (the page ends at the row);
/// - the read that starts at the row (after the last valid event before it)
///   fails with `StoreError::Corrupt` whose `position` is the row's and
///   whose message names its stream, version and position;
/// - a read after the row's position goes on with the valid events after
///   it, so a reader can deliberately skip the row.
pub async fn poison_row_stops_read_all_at_the_row<S, P, F>(store: S, plant: P)
where
    S: EventStore + Clone,
    P: FnOnce(S, StreamId) -> F,
    F: Future<Output = GlobalPosition>,
{
    let planted = plant_between(&store, plant).await;
    let position = planted.row;
    let first = read_all(&store, GlobalPosition::START).await.unwrap_or_else(|e| {
        panic!("a read that starts before a corrupt row must return the events before it, got {e:?}")
    });
    assert_eq!(
        recorded_ids(&first),
        planted.before_ids,
        "a read from the start must return the valid events before the corrupt row, and stop there"
    );

    let before_last = planted.before.last().copied().unwrap_or(GlobalPosition::START);
    match read_all(&store, before_last).await {
        Err(StoreError::Corrupt { position: at, location, detail }) => {
            assert_eq!(at, Some(position), "Corrupt must carry the corrupt row's position");
            let message = format!("{location}: {detail}");
            for (what, name) in [("stream", planted.stream.to_string()), ("position", position.to_string())] {
                assert!(message.contains(&name), "Corrupt must name the row's {what} ({name}): {message}");
            }
            assert!(message.contains("version"), "Corrupt must name the row's version: {message}");
        }
        Err(other) => {
            panic!("a read that starts at a corrupt row: expected StoreError::Corrupt, got {other:?}")
        }
        Ok(events) => panic!(
            "a read that starts at a corrupt row must fail with StoreError::Corrupt, got {} events",
            events.len()
        ),
    }

    let rest = read_all(&store, position)
        .await
        .unwrap_or_else(|e| panic!("a read after the corrupt row's position must go on, got {e:?}"));
    assert_eq!(recorded_ids(&rest), planted.after_ids, "a read after the row returns the events after it");
}

/// Waits (bounded) until the store's head is at or past `outcome`'s last
/// position, so that every row of the case is readable.
async fn until_visible<S: EventStore>(store: &S, outcome: &AppendOutcome) {
    let target = last_position(&[outcome]);
    let deadline = tokio::time::Instant::now() + WOKEN_WITHIN;
    loop {
        let now = head(store).await;
        if now >= target {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the head stayed at {now}, below {target}");
        store.wait_for_events(now, WOKEN_WITHIN).await;
    }
}
