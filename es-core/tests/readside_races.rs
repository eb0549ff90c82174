//! The read side's stops, starts and rebuilds racing on the in-memory
//! stores, and a fenced commit sending a runner back to its lease.
//!
//! Tests run on tokio's paused clock: time only moves when every task is
//! idle, so backoffs, lease expiry and timeouts cost no real time and no
//! test waits on the wall clock.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::ConsistencyError;
use es_core::error::ProjectionError;
use es_core::readside::{Registry, Subscriber, SubscriptionState};
use es_core::store::{Checkpoint, DocumentQuery, LeaseStore, ProjectionStore, UnitOfWork};
use es_core::{HandleEvent, HandlerCtx, HandlerError, Project, ProjectionTx, ReadSide, Recorded};
use es_memory::InMemoryLeaseStore;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde_json::Value;

use support::readside::*;

/// Counts deposits; the copy on one node can be made to hold at its first
/// event (after announcing it got there) until the test opens the gate.
struct GatedCount {
    entered: Arc<tokio::sync::Notify>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Project<Deposited> for GatedCount {
    async fn project(&self, _: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.entered.notify_one();
        let _pass = self.gate.acquire().await.map_err(HandlerError::other)?;
        let n: u64 = tx.get("count").await?.unwrap_or(0);
        Ok(tx.put("count", &(n + 1))?)
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_that_stopped_does_not_vouch_for_a_projection_rebuilt_elsewhere() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let gated_node = |owner: &str, open: bool| {
        let entered = Arc::new(tokio::sync::Notify::new());
        let gate = Arc::new(tokio::sync::Semaphore::new(if open { 1_000 } else { 0 }));
        let projection = GatedCount { entered: Arc::clone(&entered), gate: Arc::clone(&gate) };
        let mut registry = Registry::new();
        registry.register("count", Subscriber::projection(projection).on::<Deposited>().build()).unwrap();
        let read_side = ReadSide::builder()
            .event_store(events.clone())
            .projection_store(documents.clone())
            .lease_store(leases.clone())
            .owner(owner)
            .registry(registry)
            .config(config())
            .build()
            .unwrap();
        (read_side, entered, gate)
    };
    let position = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    let (a, _, _) = gated_node("a", true);
    a.start().unwrap();
    a.wait_for("count", position, TIMEOUT).await.unwrap();
    a.stop("count").await.unwrap();

    // Node b rebuilds: the documents and checkpoint are gone, and its
    // replay holds at the first event.
    let (b, entered, gate) = gated_node("b", false);
    b.rebuild("count").await.unwrap();
    entered.notified().await;
    assert_eq!(documents.checkpoint("count").await.unwrap().map(|c| c.position), None);
    let waited = a.wait_for("count", position, Duration::from_secs(2)).await;
    assert!(matches!(waited, Err(ConsistencyError::Timeout { .. })), "{waited:?}");

    gate.add_permits(1_000);
    a.wait_for("count", position, TIMEOUT).await.unwrap();
    b.shutdown().await;
}

/// A handler that announces each event it enters, then holds it until the
/// test opens the gate, and records the positions it finished.
#[derive(Clone)]
struct GatedHandler {
    entered: Arc<tokio::sync::Notify>,
    gate: Arc<tokio::sync::Semaphore>,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl HandleEvent<Deposited> for GatedHandler {
    async fn handle(&self, e: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.entered.notify_one();
        let _pass = self.gate.acquire().await.map_err(HandlerError::other)?;
        self.seen.lock().unwrap().push(e.position.get());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn starting_while_a_stop_is_in_progress_never_runs_two_runners() {
    let events = InMemoryEventStore::new();
    let handler = GatedHandler {
        entered: Arc::new(tokio::sync::Notify::new()),
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
        seen: Arc::default(),
    };
    let mut registry = Registry::new();
    registry.register("gated", Subscriber::handler(handler.clone()).on::<Deposited>().build()).unwrap();
    let position = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    let read_side = start(events.clone(), InMemoryProjectionStore::new(), registry);
    handler.entered.notified().await;

    // The stop takes the running task and waits for it (its handler holds
    // event 1); a start meanwhile must not run a second runner beside it.
    let mut stop = std::pin::pin!(read_side.stop("gated"));
    tokio::select! {
        biased;
        _ = &mut stop => panic!("the stop cannot finish while the handler holds its event"),
        () = std::future::ready(()) => {}
    }
    read_side.start().unwrap();
    // (Well within the lease's TTL, so the first runner keeps its lease.)
    let second = tokio::time::timeout(Duration::from_secs(1), handler.entered.notified()).await;
    assert!(second.is_err(), "a second runner entered the handler while the first still ran");

    handler.gate.add_permits(1_000);
    stop.await.unwrap();
    read_side.wait_for("gated", position, TIMEOUT).await.unwrap();
    assert_eq!(*handler.seen.lock().unwrap(), [position.get()], "event 1 was handled once");
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rebuild_racing_with_a_start_still_rebuilds() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let projection = Arc::new(Balances::default());
    let mut registry = Registry::new();
    let subscriber =
        Subscriber::projection(SharedBalances(Arc::clone(&projection))).on::<Deposited>().build();
    registry.register("balances", subscriber).unwrap();
    let position = append(&events, "account-ada", &[deposit("ada", 1), deposit("ada", 2)]).await;
    let read_side = start(events.clone(), documents.clone(), registry);
    read_side.wait_for("balances", position, TIMEOUT).await.unwrap();

    // The rebuild stops the running task; a start slips in before it
    // spawns the rebuilding one.
    let mut rebuild = std::pin::pin!(read_side.rebuild("balances"));
    tokio::select! {
        biased;
        done = &mut rebuild => done.unwrap(),
        () = std::future::ready(()) => {}
    }
    read_side.start().unwrap();
    rebuild.await.unwrap();
    read_side.wait_for("balances", position, TIMEOUT).await.unwrap();
    assert_eq!(projection.replayed.load(Ordering::SeqCst), 2, "the rebuild replayed both events");
    read_side.shutdown().await;
}

/// The in-memory projection store behind a fence check done once: the first
/// fenced commit finds its lease gone (the store releases it, as if it had
/// expired) and is refused with `Fenced`; every commit's fence is recorded.
#[derive(Clone)]
struct FencedOnce {
    inner: InMemoryProjectionStore,
    leases: InMemoryLeaseStore,
    owner: String,
    fences: Arc<Mutex<Vec<Option<es_core::store::Fence>>>>,
}

#[async_trait]
impl ProjectionStore for FencedOnce {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        self.inner.get(projection, id).await
    }
    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        self.inner.put(projection, id, document).await
    }
    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        self.inner.delete(projection, id).await
    }
    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        self.inner.query(projection, query).await
    }
    async fn checkpoint(&self, projection: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        self.inner.checkpoint(projection).await
    }
    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        let first = {
            let mut fences = self.fences.lock().unwrap();
            fences.push(work.fence.clone());
            fences.len() == 1
        };
        if let (true, Some(fence)) = (first, &work.fence) {
            let lease = es_core::store::Lease {
                name: fence.lease.clone(),
                owner: self.owner.clone(),
                token: fence.token,
            };
            self.leases.release(&lease).await.unwrap();
            return Err(ProjectionError::Fenced {
                projection: projection.to_owned(),
                lease: fence.lease.clone(),
                token: fence.token,
            });
        }
        self.inner.commit(projection, work).await
    }
    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        self.inner.reset(projection).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_fenced_commit_sends_the_runner_back_to_its_lease_not_to_failed() {
    let events = InMemoryEventStore::new();
    let leases = InMemoryLeaseStore::new();
    let documents = InMemoryProjectionStore::new();
    let fences = Arc::new(Mutex::new(Vec::new()));
    let fenced = FencedOnce {
        inner: documents.clone(),
        leases: leases.clone(),
        owner: "node-a".into(),
        fences: Arc::clone(&fences),
    };
    let deposits: Vec<Deposited> = (1..=7).map(|n| deposit(["ada", "bob"][n % 2], n as i64)).collect();
    let head = append(&events, "account-mixed", &deposits).await;
    let mut registry = Registry::new();
    // One attempt: were `Fenced` taken for a failed commit, the subscription
    // would be Failed at once.
    registry.register("balances", balances(Balances::default()).retry(retry(1))).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events)
        .projection_store(fenced)
        .lease_store(leases.clone())
        .owner("node-a")
        .registry(registry)
        .config(config())
        .start()
        .unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits), "each event applied once");
    let status = read_side.status("balances").unwrap();
    assert!(!matches!(status.state, SubscriptionState::Failed(_)), "{:?}", status.state);
    assert_eq!(status.position, head);

    let fences = fences.lock().unwrap().clone();
    assert!(fences.len() >= 2, "the refused commit and the ones after it: {fences:?}");
    let fences: Vec<es_core::store::Fence> =
        fences.into_iter().map(|f| f.expect("every runner commit is fenced")).collect();
    assert!(fences.iter().all(|f| f.lease == "balances"), "{fences:?}");
    let refused = fences[0].token;
    assert!(
        fences[1..].iter().all(|f| f.token > refused),
        "after the refusal the runner re-acquired the lease under a new token: {fences:?}"
    );
    assert_eq!(leases.holder("balances").as_deref(), Some("node-a"));
    read_side.shutdown().await;
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
}
