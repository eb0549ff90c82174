//! The read side on the in-memory stores: typed registry errors, failures
//! that stop a subscription, the status it reports, positions with holes,
//! and waits on a store that stopped answering.
//!
//! Tests run on tokio's paused clock: time only moves when every task is
//! idle, so backoffs and timeouts cost no real time.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{ConsistencyError, ReadSideError, RegistryError};
use es_core::readside::{Backlog, Registry, Selection, Subscriber, SubscriptionState};
use es_core::store::{EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{GlobalPosition, HandlerError, Project, ProjectionTx, ReadSide, Recorded, StreamId};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use support::readside::*;

#[test]
fn duplicate_names_and_unknown_selections_are_typed_errors() {
    let mut registry = Registry::new();
    registry
        .register("audit", Subscriber::handler(Recorder::default()).on::<Opened>().build().in_group("ops"))
        .unwrap();
    let duplicate =
        registry.register("audit", Subscriber::handler(Recorder::default()).on::<Opened>().build());
    assert_eq!(duplicate.unwrap_err(), RegistryError::DuplicateName { name: "audit".into() });
    assert!(matches!(
        registry.register("", Subscriber::handler(Mailer::default()).on::<Opened>().build()),
        Err(RegistryError::InvalidName { .. })
    ));
    registry.register("balances", balances(Balances::default())).unwrap();
    assert_eq!(registry.names().collect::<Vec<_>>(), ["audit", "balances"]);
    assert_eq!(
        registry.select(&Selection::names(["nope"])).unwrap_err(),
        RegistryError::UnknownName { name: "nope".into() }
    );
    assert_eq!(
        registry.select(&Selection::group("billing")).unwrap_err(),
        RegistryError::UnknownGroup { group: "billing".into() }
    );
    let ops: Vec<String> =
        registry.select(&Selection::group("ops")).unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(ops, ["audit"]);
    let built = ReadSide::builder()
        .event_store(InMemoryEventStore::new())
        .projection_store(InMemoryProjectionStore::new())
        .registry(registry)
        .select(Selection::names(["balances", "missing"]))
        .build();
    assert!(
        matches!(built, Err(ReadSideError::Registry(RegistryError::UnknownName { name })) if name == "missing")
    );
}

#[tokio::test(start_paused = true)]
async fn an_undecodable_event_stops_the_subscription_with_a_typed_error() {
    let events = InMemoryEventStore::new();
    let bad =
        NewEvent::new("account", "Deposited", 1, serde_json::json!({"account": "ada", "amount": "lots"}));
    let head = events.append(&StreamId::new("account-ada"), ExpectedVersion::Any, vec![bad]).await.unwrap();
    let head = head.last_position().unwrap();
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).retry(retry(2))).unwrap();
    let read_side = start(events, InMemoryProjectionStore::new(), registry);
    let error = read_side.wait_for("balances", head, TIMEOUT).await.unwrap_err();
    let ConsistencyError::Failed { failure, .. } = error else { panic!("expected a failure, got {error:?}") };
    assert_eq!(failure.position, head);
    assert!(failure.error.contains("cannot decode event `Deposited`"), "{}", failure.error);
    assert!(failure.error.contains("account-ada"), "{}", failure.error);
    read_side.shutdown().await;
}

/// Panics on one amount while `panicking` is set.
struct Panicky {
    inner: Balances,
    panicking: Arc<AtomicBool>,
}

impl Project<Deposited> for Panicky {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        // Changes made before the panic must be rolled back.
        self.inner.change(&e.account, e.amount, tx).await?;
        if e.amount == 13 && self.panicking.load(Ordering::SeqCst) {
            panic!("boom on {}", e.amount);
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_projection_that_fails_mid_batch_keeps_the_events_before_it() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let panicking = Arc::new(AtomicBool::new(true));
    let projection = Panicky { inner: Balances::default(), panicking: Arc::clone(&panicking) };
    let mut registry = Registry::new();
    registry
        .register("balances", Subscriber::projection(projection).on::<Deposited>().build().retry(retry(2)))
        .unwrap();
    let deposits = [deposit("ada", 1), deposit("ada", 2), deposit("ada", 13), deposit("ada", 4)];
    let head = append(&events, "account-ada", &deposits).await;
    let read_side = start(events, documents.clone(), registry);
    let error = read_side.wait_for("balances", head, TIMEOUT).await.unwrap_err();
    let ConsistencyError::Failed { failure, .. } = error else { panic!("expected a failure, got {error:?}") };
    assert_eq!(failure.position, GlobalPosition(3));
    assert_eq!(failure.attempts, 2);
    assert!(failure.error.contains("panicked: boom on 13"), "{}", failure.error);
    // The batch's first two events are committed, the failing one is not.
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(GlobalPosition(2)));
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits[..2]));
    assert_eq!(read_side.status("balances").unwrap().position, GlobalPosition(2));

    panicking.store(false, Ordering::SeqCst);
    read_side.restart("balances").await.unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits));
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn status_reports_state_position_and_lag_by_name() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    registry.register("audit", Subscriber::handler(Recorder::default()).on::<Opened>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents)
        .registry(registry)
        .config(config())
        .build()
        .unwrap();
    let head = append(&events, "account-ada", &[deposit("ada", 1), deposit("ada", 2)]).await;
    let before = read_side.statuses();
    assert_eq!(before.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["audit", "balances"]);
    assert!(before.iter().all(|s| s.state == SubscriptionState::Stopped && s.behind == Backlog::Unknown));

    read_side.start().unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    read_side.wait_for("audit", head, TIMEOUT).await.unwrap();
    let status = caught_up(&read_side, "balances").await;
    assert_eq!((status.position, status.behind), (head, Backlog::Exactly(0)));
    assert_eq!(status.kind, es_core::readside::SubscriptionKind::Projection);
    assert!(status.state.is_active());

    read_side.stop("audit").await.unwrap();
    let head = append(&events, "account-ada", &[deposit("ada", 3)]).await;
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    let audit = read_side.status("audit").unwrap();
    assert_eq!(audit.state, SubscriptionState::Stopped);
    assert_eq!(audit.behind, Backlog::Unknown, "not read on this node any more");
    assert!(matches!(
        read_side.status("nope"),
        Err(ReadSideError::UnknownSubscription { name }) if name == "nope"
    ));
    read_side.shutdown().await;
}

/// An event store whose positions have holes: every position is doubled
/// (2, 4, 6, ...), as after rolled-back appends in Postgres.
#[derive(Clone)]
struct Holey(InMemoryEventStore);

#[async_trait]
impl EventStore for Holey {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<es_core::store::AppendOutcome, es_core::error::AppendError> {
        self.0.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: es_core::StreamVersion,
        direction: es_core::store::Direction,
        limit: usize,
    ) -> Result<Vec<es_core::store::RecordedEvent>, es_core::error::StoreError> {
        self.0.read_stream(stream, from, direction, limit).await
    }
    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<es_core::store::RecordedEvent>, es_core::error::StoreError> {
        let mut events = self.0.read_all(GlobalPosition(after.get() / 2), limit).await?;
        for event in &mut events {
            event.global_position = GlobalPosition(event.global_position.get() * 2);
        }
        Ok(events)
    }
    async fn stream_version(
        &self,
        stream: &StreamId,
    ) -> Result<Option<es_core::StreamVersion>, es_core::error::StoreError> {
        self.0.stream_version(stream).await
    }
    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<es_core::store::StreamSummary>, es_core::error::StoreError> {
        self.0.streams(prefix, after, limit).await
    }
    async fn events_by_id(
        &self,
        ids: &[es_core::EventId],
    ) -> Result<Vec<es_core::store::RecordedEvent>, es_core::error::StoreError> {
        self.0.events_by_id(ids).await
    }
    async fn head_position(&self) -> Result<GlobalPosition, es_core::error::StoreError> {
        Ok(GlobalPosition(self.0.head_position().await?.get() * 2))
    }
    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.0.wait_for_events(GlobalPosition(after.get() / 2), max_wait).await;
    }
}

#[tokio::test(start_paused = true)]
async fn positions_with_holes_are_passed_over_without_skipping_an_event() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    let recorder = Recorder::default();
    registry.register("recorder", Subscriber::handler(recorder.clone()).on::<Deposited>().build()).unwrap();
    let read_side = start(Holey(events.clone()), documents.clone(), registry);
    let deposits: Vec<Deposited> = (1..=7).map(|n| deposit("ada", n)).collect();
    append(&events, "account-ada", &deposits[..4]).await;
    append(&events, "account-ada", &deposits[4..]).await;
    let head = GlobalPosition(14);
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    read_side.wait_for("recorder", head, TIMEOUT).await.unwrap();
    assert_eq!(recorder.positions(), [2, 4, 6, 8, 10, 12, 14]);
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits));
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn waiting_on_a_store_that_stopped_answering_still_times_out() {
    let events = InMemoryEventStore::new();
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);
    read_side.stop("balances").await.unwrap();
    // From here on the store stops answering checkpoint reads.
    documents.inject(StoreCall::Checkpoint, Fault::Hang, documents.calls(StoreCall::Checkpoint) + 1..);

    // Not running here: the wait polls the stored checkpoint, which hangs.
    let position = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    let guard = Duration::from_secs(3600);
    let waited =
        tokio::time::timeout(guard, read_side.wait_for("balances", position, Duration::from_secs(2)))
            .await
            .expect("wait_for outlived its own timeout by an hour");
    assert!(matches!(waited, Err(ConsistencyError::Timeout { .. })), "{waited:?}");
}
