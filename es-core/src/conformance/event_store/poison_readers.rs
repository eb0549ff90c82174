//! The poison-row cases for readers of the global stream: an
//! [`EventSubscription`] and a read side's subscription stop at a row that
//! cannot become an event, after delivering everything before it, and move
//! on only when told to. Stamped with the store case by
//! [`poison_row_conformance!`](crate::poison_row_conformance).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use super::poison::plant_between;
use super::WOKEN_WITHIN;
use crate::error::{ConsistencyError, FailureKind, ProjectionError, StoreError};
use crate::readside::{ReadSideConfig, Registry, Subscriber};
use crate::store::{Checkpoint, DocumentQuery, EventStore, ProjectionStore, RecordedEvent, UnitOfWork};
use crate::{
    Event, EventSubscription, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, ReadSide, Recorded,
    StreamId,
};

/// The suite's events, as a handler sees them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Tested {
    n: u64,
}

impl Event for Tested {
    const TYPE: &'static str = "Tested";
}

/// Records the positions of the events it handled.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<GlobalPosition>>>);

impl Seen {
    fn positions(&self) -> Vec<GlobalPosition> {
        self.0.lock().map(|seen| seen.clone()).unwrap_or_default()
    }
}

impl HandleEvent<Tested> for Seen {
    async fn handle(&self, event: &Recorded<Tested>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.0.lock().map_err(|_| HandlerError::msg("poisoned lock"))?.push(event.position);
        Ok(())
    }
}

/// A projection store that keeps checkpoints and nothing else: all a
/// handler's subscription needs, so the case runs on any event store.
/// Document calls are refused.
#[derive(Clone, Default)]
struct Checkpoints(Arc<Mutex<HashMap<String, Checkpoint>>>);

impl Checkpoints {
    fn refused() -> ProjectionError {
        ProjectionError::Backend("the conformance case's store keeps checkpoints only".into())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Checkpoint>>, ProjectionError> {
        self.0.lock().map_err(|_| ProjectionError::Backend("poisoned lock".into()))
    }
}

#[async_trait]
impl ProjectionStore for Checkpoints {
    async fn get(&self, _: &str, _: &str) -> Result<Option<Value>, ProjectionError> {
        Err(Self::refused())
    }
    async fn put(&self, _: &str, _: &str, _: Value) -> Result<(), ProjectionError> {
        Err(Self::refused())
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), ProjectionError> {
        Err(Self::refused())
    }
    async fn query(&self, _: &str, _: &DocumentQuery) -> Result<Vec<(String, Value)>, ProjectionError> {
        Err(Self::refused())
    }
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        Ok(self.lock()?.get(name).copied())
    }
    async fn commit(&self, name: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        if !work.changes.is_empty() {
            return Err(Self::refused());
        }
        if let Some(checkpoint) = work.checkpoint {
            self.lock()?.insert(name.to_owned(), checkpoint);
        }
        Ok(())
    }
    async fn reset(&self, name: &str) -> Result<(), ProjectionError> {
        self.lock()?.remove(name);
        Ok(())
    }
}

async fn next(subscription: &mut EventSubscription) -> Result<RecordedEvent, StoreError> {
    match tokio::time::timeout(WOKEN_WITHIN, subscription.next()).await {
        Ok(next) => next,
        Err(_) => {
            panic!("EventSubscription::next neither returned an event nor an error in {WOKEN_WITHIN:?}")
        }
    }
}

fn positions(events: &[RecordedEvent]) -> Vec<GlobalPosition> {
    events.iter().map(|e| e.global_position).collect()
}

/// An [`EventSubscription`] over a global stream with a corrupt row
/// (planted as for
/// [`poison_row_stops_read_all_at_the_row`](super::poison_row_stops_read_all_at_the_row)):
/// returns the events before the row, then `StoreError::Corrupt` at the
/// row's position (again on the next call: nothing moves by itself), and
/// after [`EventSubscription::skip_corrupt_row`] the events after it.
pub async fn poison_row_stops_a_subscription_at_the_row<S, P, F>(store: S, plant: P)
where
    S: EventStore + Clone,
    P: FnOnce(S, StreamId) -> F,
    F: Future<Output = GlobalPosition>,
{
    let planted = plant_between(&store, plant).await;
    let mut subscription = EventSubscription::new(store, GlobalPosition::START).page_size(100);
    let mut before = Vec::new();
    for _ in &planted.before {
        before.push(next(&mut subscription).await.unwrap_or_else(|e| {
            panic!("EventSubscription must return the events before a corrupt row, got {e:?}")
        }));
    }
    assert_eq!(positions(&before), planted.before, "the events before the corrupt row, in order");
    for call in ["first", "second"] {
        match next(&mut subscription).await {
            Err(StoreError::Corrupt { position, .. }) => assert_eq!(
                position,
                Some(planted.row),
                "the {call} call at the corrupt row: Corrupt must carry the row's position"
            ),
            other => panic!("the {call} call at a corrupt row: expected StoreError::Corrupt, got {other:?}"),
        }
    }
    assert_eq!(subscription.skip_corrupt_row(), Some(planted.row), "skipping names the row skipped");
    assert_eq!(subscription.skip_corrupt_row(), None, "a row is skipped once");
    let mut after = Vec::new();
    for _ in &planted.after {
        after.push(next(&mut subscription).await.unwrap_or_else(|e| {
            panic!("after skipping the corrupt row, EventSubscription must go on, got {e:?}")
        }));
    }
    assert_eq!(positions(&after), planted.after, "the events after the corrupt row, in order");
}

/// A read side's handler subscription over a global stream with a corrupt
/// row: handles and checkpoints every event before the row, then stops
/// `Failed` at the row ([`FailureKind::CorruptRow`], naming its stream,
/// version and position); a restart stops there again without handling an
/// event twice; [`ReadSide::skip`] passes over the row and handles the
/// events after it.
pub async fn poison_row_stops_a_read_side_at_the_row<S, P, F>(store: S, plant: P)
where
    S: EventStore + Clone,
    P: FnOnce(S, StreamId) -> F,
    F: Future<Output = GlobalPosition>,
{
    const NAME: &str = "poison-reader";
    let planted = plant_between(&store, plant).await;
    let seen = Seen::default();
    let checkpoints = Checkpoints::default();
    let mut registry = Registry::new();
    let registered = registry.register(NAME, Subscriber::handler(seen.clone()).on::<Tested>().build());
    registered.unwrap_or_else(|e| panic!("registering the case's handler failed: {e}"));
    let read_side = ReadSide::builder()
        .event_store(store)
        .projection_store(checkpoints.clone())
        .registry(registry)
        .config(ReadSideConfig { batch_size: 100, ..ReadSideConfig::default() })
        .start()
        .unwrap_or_else(|e| panic!("starting the case's read side failed: {e}"));
    let head = planted.after.last().copied().unwrap_or(planted.row);

    for run in ["first run", "after a restart"] {
        let failure = match read_side.wait_for(NAME, head, WOKEN_WITHIN).await {
            Err(ConsistencyError::Failed { failure, .. }) => failure,
            other => panic!("{run}: a subscription at a corrupt row must stop Failed, got {other:?}"),
        };
        assert_eq!(failure.kind, FailureKind::CorruptRow, "{run}: {failure:?}");
        assert_eq!(failure.position, planted.row, "{run}: the failure names the row's position");
        for (what, name) in [("stream", planted.stream.to_string()), ("position", planted.row.to_string())] {
            assert!(
                failure.error.contains(&name),
                "{run}: the failure must name the row's {what}: {}",
                failure.error
            );
        }
        assert!(
            failure.error.contains("version"),
            "{run}: the failure must name the row's version: {}",
            failure.error
        );
        assert_eq!(seen.positions(), planted.before, "{run}: every event before the row handled once");
        let stored = checkpoints.checkpoint(NAME).await.ok().flatten().map(|c| c.position);
        assert_eq!(
            stored,
            planted.before.last().copied(),
            "{run}: the events before the row are checkpointed"
        );
        if run == "first run" {
            read_side.restart(NAME).await.unwrap_or_else(|e| panic!("restart failed: {e}"));
        }
    }

    let skipped = read_side.skip(NAME).await.unwrap_or_else(|e| panic!("skip failed: {e}"));
    assert_eq!(skipped, planted.row, "skip names the row it passes over");
    if let Err(error) = read_side.wait_for(NAME, head, WOKEN_WITHIN).await {
        panic!("after skipping the corrupt row the subscription must go on: {error}");
    }
    let all: Vec<GlobalPosition> = planted.before.iter().chain(&planted.after).copied().collect();
    assert_eq!(seen.positions(), all, "every event but the row's handled once, in order");
    let state = read_side.status(NAME).map(|s| s.state);
    assert!(matches!(state, Ok(ref s) if s.is_active()), "it runs on after the skip: {state:?}");
    assert!(
        read_side.skip(NAME).await.is_err(),
        "skip refuses a subscription that has not stopped at a corrupt row"
    );
    read_side.shutdown().await;
    let stored = checkpoints.checkpoint(NAME).await.ok().flatten().map(|c| c.position);
    assert_eq!(stored, Some(head), "the checkpoint moved past the row");
}
