//! The read side on the in-memory stores: projections, handlers, failures,
//! consistency, replay and leases.
//!
//! Tests run on tokio's paused clock: time only moves when every task is
//! idle, so backoffs, lease expiry and timeouts cost no real time and no
//! test waits on the wall clock.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::ProjectionError;
use es_core::error::{ConsistencyError, ReadSideError, RegistryError};
use es_core::readside::{
    Backlog, Consistency, ReadSideConfig, Registry, Replay, RetryPolicy, Selection, Subscriber,
    SubscriptionState, SubscriptionStatus,
};
use es_core::store::{
    Checkpoint, DocumentQuery, EventStore, ExpectedVersion, LeaseStore, NewEvent, ProjectionStore, UnitOfWork,
};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{
    event, Es, Event, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, Project, ProjectionTx, ReadSide,
    Recorded, StreamId,
};
use es_memory::InMemoryLeaseStore;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Opened {
    account: String,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    account: String,
    amount: i64,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Withdrawn {
    account: String,
    amount: i64,
}

/// An event no subscriber here consumes.
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Noise {
    n: u64,
}

async fn append<E: Event>(store: &InMemoryEventStore, stream: &str, events: &[E]) -> GlobalPosition {
    let new = events
        .iter()
        .map(|e| NewEvent::new("account", E::TYPE, E::VERSION, serde_json::to_value(e).unwrap()))
        .collect();
    store.append(&StreamId::new(stream), ExpectedVersion::Any, new).await.unwrap().last_position().unwrap()
}

fn deposit(account: &str, amount: i64) -> Deposited {
    Deposited { account: account.into(), amount }
}

fn config() -> ReadSideConfig {
    ReadSideConfig {
        batch_size: 3,
        idle_wait: Duration::from_secs(1),
        lease_ttl: Duration::from_secs(10),
        lease_retry: Duration::from_millis(100),
        checkpoint_every: 1000,
        store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
        remote_poll: Duration::from_millis(50),
        held_back_warning: Duration::from_secs(10),
        // Small, so that tests with many documents also evict.
        document_cache_bytes: 1000,
    }
}

/// Waits (bounded) until subscription `name` has read everything there was,
/// and returns its status then.
async fn caught_up(read_side: &ReadSide, name: &str) -> SubscriptionStatus {
    for _ in 0..600 {
        let status = read_side.status(name).unwrap();
        if status.state == SubscriptionState::CaughtUp {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("`{name}` did not catch up: {:?}", read_side.status(name));
}

/// Starts a read side over the stores, running the registry with [`config`].
fn start(events: impl EventStore, documents: impl ProjectionStore, registry: Registry) -> ReadSide {
    ReadSide::builder()
        .event_store(events)
        .projection_store(documents)
        .registry(registry)
        .config(config())
        .start()
        .unwrap()
}

fn retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts, Duration::from_millis(10))
}

/// A balance document: the sum of deposits minus withdrawals, and how many
/// events went into it (to catch double application).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Balance {
    balance: i64,
    events: u32,
}

/// Replays seen by the projection, so tests can check the replay flag.
#[derive(Default)]
struct Balances {
    replayed: AtomicUsize,
}

impl Balances {
    async fn change(&self, account: &str, by: i64, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        if tx.is_replay() {
            self.replayed.fetch_add(1, Ordering::SeqCst);
        }
        let mut doc: Balance = tx.get(account).await?.unwrap_or_default();
        doc.balance += by;
        doc.events += 1;
        tx.put(account, &doc)?;
        Ok(())
    }
}

impl Project<Deposited> for Balances {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.change(&e.account, e.amount, tx).await
    }
}

impl Project<Withdrawn> for Balances {
    async fn project(&self, e: &Recorded<Withdrawn>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.change(&e.account, -e.amount, tx).await
    }
}

fn balances(projection: Balances) -> Subscriber {
    Subscriber::projection(projection).on::<Deposited>().on::<Withdrawn>().build()
}

/// Every balance document of the `balances` projection.
async fn stored_balances(store: &dyn ProjectionStore) -> BTreeMap<String, Balance> {
    store
        .query("balances", &DocumentQuery::all())
        .await
        .unwrap()
        .into_iter()
        .map(|(id, doc)| (id, serde_json::from_value(doc).unwrap()))
        .collect()
}

/// The fold of the events, each applied exactly once.
fn expected_balances(deposits: &[Deposited]) -> BTreeMap<String, Balance> {
    let mut out: BTreeMap<String, Balance> = BTreeMap::new();
    for d in deposits {
        let doc = out.entry(d.account.clone()).or_default();
        doc.balance += d.amount;
        doc.events += 1;
    }
    out
}

/// The in-memory projection store, refusing commit number `nth`, as if the
/// process died in the middle of a batch. The refusal (a lost race, see
/// `Fault::Conflict`) is not a backend failure (those are outages, waited
/// out: see `readside_outage.rs`), so it counts against the subscriber's
/// retry policy and stops it.
fn refusing_commit(documents: &InMemoryProjectionStore, nth: u64) -> TestStore<InMemoryProjectionStore> {
    let store = TestStore::new(documents.clone());
    store.inject(StoreCall::Commit, Fault::Conflict, nth..=nth);
    store
}

#[tokio::test(start_paused = true)]
async fn a_projection_killed_mid_batch_resumes_and_applies_every_event_once() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let failing = refusing_commit(&documents, 3);
    let deposits: Vec<Deposited> =
        (1..=10).map(|n| deposit(["ada", "bob", "cyd"][n % 3], n as i64)).collect();
    for (i, d) in deposits.iter().enumerate() {
        append(&events, &format!("account-{}", d.account), std::slice::from_ref(d)).await;
        append(&events, "noise", &[Noise { n: i as u64 }]).await;
    }
    let head = events.head_position().await.unwrap();

    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).retry(retry(1))).unwrap();
    let first = start(events.clone(), failing.clone(), registry);
    let error = first.wait_for("balances", head, TIMEOUT).await.unwrap_err();
    let ConsistencyError::Failed { failure, .. } = error else { panic!("expected a failure, got {error:?}") };
    assert!(failure.error.contains("checkpoint of projection `balances` is at"), "{}", failure.error);
    assert_eq!(failure.event_id, None, "a failed commit names no event");
    // Two batches of three events committed before the failing third one.
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(GlobalPosition(6)));
    let partial = stored_balances(&documents).await;
    assert_eq!(partial.values().map(|b| b.events).sum::<u32>(), 3, "only the committed batches are visible");
    first.shutdown().await;

    // A new runner over the same stores resumes from the checkpoint.
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).retry(retry(1))).unwrap();
    let second = start(events.clone(), failing, registry);
    second.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits));
    let status = caught_up(&second, "balances").await;
    assert_eq!(status.position, head);
    assert_eq!((status.behind, status.behind_for), (Backlog::Exactly(0), Duration::ZERO));
    second.shutdown().await;
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
}

/// Runs `balances` over `deposits` with a document cache of `cache`, then
/// rebuilds it; returns the store reads of the first run and of the
/// rebuild, after checking that both end at the fold of the deposits.
async fn document_reads(deposits: &[Deposited], cache: usize) -> (u64, u64) {
    let events = InMemoryEventStore::new();
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let head = append(&events, "account-mixed", deposits).await;
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events)
        .projection_store(documents.clone())
        .registry(registry)
        .config(ReadSideConfig { document_cache_bytes: cache, ..config() })
        .start()
        .unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(deposits), "cache {cache}");
    let first = documents.calls(StoreCall::Get);
    read_side.rebuild("balances").await.unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(
        stored_balances(documents.inner()).await,
        expected_balances(deposits),
        "cache {cache}, rebuilt"
    );
    read_side.shutdown().await;
    (first, documents.calls(StoreCall::Get) - first)
}

#[tokio::test(start_paused = true)]
async fn a_projection_reads_each_document_from_the_store_once_and_a_rebuild_reads_none() {
    let accounts = ["ada", "bob", "cyd"];
    let deposits: Vec<Deposited> = (0..30).map(|n| deposit(accounts[n % 3], n as i64 + 1)).collect();
    // Without a cache every event reads its account's document.
    assert_eq!(document_reads(&deposits, 0).await, (30, 30));
    // With one, each document is read once; a rebuild starts from an empty
    // store and reads nothing.
    assert_eq!(document_reads(&deposits, 1 << 20).await, (3, 0));
    // More documents than the cache holds: it evicts, reads again, and the
    // results are still the fold.
    let many: Vec<Deposited> = (0..40).map(|n| deposit(&format!("acc-{}", n % 10), 1)).collect();
    let (first, rebuild) = document_reads(&many, 600).await;
    assert!(first > 10 && rebuild > 0, "an evicting cache reads again: {first}, {rebuild}");
}

/// A projection that moves between nodes and back sees what the other
/// node wrote meanwhile: no node answers from documents it cached before.
#[tokio::test(start_paused = true)]
async fn a_projection_handed_between_nodes_and_back_equals_the_fold() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let node = |owner: &str| {
        let mut registry = Registry::new();
        registry.register("balances", balances(Balances::default())).unwrap();
        ReadSide::builder()
            .event_store(events.clone())
            .projection_store(documents.clone())
            .lease_store(leases.clone())
            .owner(owner)
            .registry(registry)
            .config(ReadSideConfig { document_cache_bytes: 1 << 20, ..config() })
            .start()
            .unwrap()
    };
    let (a, b) = (node("a"), node("b"));
    let mut deposits = Vec::new();
    let mut head = GlobalPosition::START;
    for round in 0..3 {
        for n in 0..4 {
            let d = deposit(["ada", "bob"][n % 2], round * 10 + n as i64 + 1);
            head = append(&events, "account-mixed", std::slice::from_ref(&d)).await;
            deposits.push(d);
        }
        let (active, standby) =
            if leases.holder("balances").as_deref() == Some("b") { (&b, &a) } else { (&a, &b) };
        active.wait_for("balances", head, TIMEOUT).await.unwrap();
        assert_eq!(stored_balances(&documents).await, expected_balances(&deposits), "round {round}");
        // Hand the projection over: the active node stops, the other takes
        // the lease; then the stopped one starts again as the standby.
        active.stop("balances").await.unwrap();
        standby.wait_for("balances", head, TIMEOUT).await.unwrap();
        active.start().unwrap();
    }
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_projection_after_a_failed_commit_equals_the_fold() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let failing = refusing_commit(&documents, 2);
    let deposits: Vec<Deposited> = (1..=8).map(|n| deposit(["ada", "bob"][n % 2], n as i64)).collect();
    let head = append(&events, "account-mixed", &deposits).await;
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).retry(retry(1))).unwrap();
    let read_side = start(events, failing, registry);
    assert!(matches!(
        read_side.wait_for("balances", head, TIMEOUT).await,
        Err(ConsistencyError::Failed { .. })
    ));
    assert!(matches!(read_side.status("balances").unwrap().state, SubscriptionState::Failed(_)));
    read_side.restart("balances").await.unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits));
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn filtered_events_move_the_checkpoint() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);

    // Only filtered events: the checkpoint still reaches the head.
    let noise: Vec<Noise> = (0..7).map(|n| Noise { n }).collect();
    let head = append(&events, "noise", &noise).await;
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert!(stored_balances(&documents).await.is_empty());

    // A consumed event after filtered ones commits them together.
    append(&events, "noise", &noise[..2]).await;
    let consumed = append(&events, "account-ada", &[deposit("ada", 5)]).await;
    let head = append(&events, "noise", &noise[..4]).await;
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&[deposit("ada", 5)]));
    let status = read_side.status("balances").unwrap();
    assert_eq!(status.position, head);
    assert!(status.checkpoint >= Some(consumed));
    read_side.shutdown().await;
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
    assert_eq!(read_side.status("balances").unwrap().state, SubscriptionState::Stopped);
}

/// Records every event it handles; fails on a chosen amount while `failing`.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<(GlobalPosition, bool)>>>,
    attempts: Arc<AtomicU32>,
    fail_amount: Option<i64>,
    failing: Arc<AtomicBool>,
}

impl Recorder {
    fn positions(&self) -> Vec<u64> {
        self.seen.lock().unwrap().iter().map(|(p, _)| p.get()).collect()
    }
}

impl HandleEvent<Deposited> for Recorder {
    async fn handle(&self, e: &Recorded<Deposited>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if Some(e.amount) == self.fail_amount && self.failing.load(Ordering::SeqCst) {
            return Err(HandlerError::msg(format!("cannot handle amount {}", e.amount)));
        }
        assert_eq!(ctx.position(), e.position);
        self.seen.lock().unwrap().push((e.position, ctx.is_replay()));
        Ok(())
    }
}

impl HandleEvent<Opened> for Recorder {
    async fn handle(&self, e: &Recorded<Opened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push((e.position, ctx.is_replay()));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_stops_at_that_event_and_reports_it() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let recorder =
        Recorder { fail_amount: Some(13), failing: Arc::new(AtomicBool::new(true)), ..Recorder::default() };
    let mut registry = Registry::new();
    registry
        .register("recorder", Subscriber::handler(recorder.clone()).on::<Deposited>().build().retry(retry(3)))
        .unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);
    let before = append(&events, "account-ada", &[deposit("ada", 1), deposit("ada", 2)]).await;
    let failing = append(&events, "account-ada", &[deposit("ada", 13)]).await;
    let head = append(&events, "account-ada", &[deposit("ada", 4)]).await;

    let error = read_side.wait_for("recorder", head, TIMEOUT).await.unwrap_err();
    let ConsistencyError::Failed { name, failure, .. } = error else {
        panic!("expected a failure, got {error:?}")
    };
    assert_eq!(name, "recorder");
    assert_eq!(failure.position, failing);
    assert_eq!(failure.event_type.as_deref(), Some("Deposited"));
    let stored = events.read_all(GlobalPosition(failing.get() - 1), 1).await.unwrap();
    assert_eq!(failure.event_id, Some(stored[0].event_id));
    assert_eq!(failure.attempts, 3);
    assert!(failure.error.contains("cannot handle amount 13"), "{}", failure.error);

    let status = read_side.status("recorder").unwrap();
    assert_eq!(status.state, SubscriptionState::Failed(failure));
    assert_eq!(status.position, before, "stopped right before the failing event");
    assert!(
        matches!(status.behind, Backlog::Exactly(n) | Backlog::AtLeast(n) if n >= 1),
        "the failing event is still to handle: {:?}",
        status.behind
    );
    assert_eq!(documents.checkpoint("recorder").await.unwrap().map(|c| c.position), Some(before));
    assert_eq!(recorder.positions(), [1, 2], "nothing after the failing event ran");
    assert_eq!(recorder.attempts.load(Ordering::SeqCst), 2 + 3);

    // Fixed: a restart retries the failing event and goes on.
    recorder.failing.store(false, Ordering::SeqCst);
    read_side.restart("recorder").await.unwrap();
    read_side.wait_for("recorder", head, TIMEOUT).await.unwrap();
    assert_eq!(recorder.positions(), [1, 2, 3, 4]);
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn strong_consistency_is_visible_right_after_waiting() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).consistency(Consistency::Strong)).unwrap();
    registry
        .register("recorder", Subscriber::handler(Recorder::default()).on::<Deposited>().build())
        .unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);
    for n in 1..=5 {
        let position = append(&events, "account-ada", &[deposit("ada", n)]).await;
        read_side.wait_for_strong(position, TIMEOUT).await.unwrap();
        let doc: Balance =
            serde_json::from_value(documents.get("balances", "ada").await.unwrap().unwrap()).unwrap();
        assert_eq!(doc.events, n as u32, "the strong projection saw event {n} before the wait returned");
    }

    // A strong subscription that does not run: the wait times out with a
    // typed error that says the events are stored.
    read_side.stop("balances").await.unwrap();
    let position = append(&events, "account-ada", &[deposit("ada", 6)]).await;
    let error = read_side.wait_for_strong(position, Duration::from_secs(2)).await.unwrap_err();
    assert!(
        matches!(&error, ConsistencyError::Timeout { name, position: p, .. } if name == "balances" && *p == position)
    );
    assert!(error.to_string().contains("events are stored up to position"), "{error}");
    assert!(matches!(
        read_side.wait_for("nope", position, TIMEOUT).await,
        Err(ConsistencyError::Unknown { name }) if name == "nope"
    ));
    read_side.shutdown().await;
}

/// A side effect that must happen once per account: counts mails in an
/// outbox.
#[derive(Clone, Default)]
struct Mailer {
    outbox: Arc<AtomicU32>,
}

impl HandleEvent<Opened> for Mailer {
    async fn handle(&self, _: &Recorded<Opened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        assert!(!ctx.is_replay(), "a skip-on-replay handler never sees a replayed event");
        self.outbox.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn rebuild_and_replay_never_run_skip_on_replay_handlers() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let mailer = Mailer::default();
    let audit = Recorder::default();
    let projection = Arc::new(Balances::default());
    let mut registry = Registry::new();
    registry
        .register(
            "welcome-mail",
            Subscriber::handler(mailer.clone()).on::<Opened>().replay(Replay::Skip).build(),
        )
        .unwrap();
    registry
        .register("audit", Subscriber::handler(audit.clone()).on::<Opened>().on::<Deposited>().build())
        .unwrap();
    registry
        .register(
            "balances",
            Subscriber::projection(SharedBalances(Arc::clone(&projection))).on::<Deposited>().build(),
        )
        .unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);
    let mut deposits = Vec::new();
    for account in ["ada", "bob", "cyd"] {
        append(&events, account, &[Opened { account: account.into() }]).await;
        deposits.push(deposit(account, 10));
        append(&events, account, &[deposit(account, 10)]).await;
    }
    let head = events.head_position().await.unwrap();
    for name in ["welcome-mail", "audit", "balances"] {
        read_side.wait_for(name, head, TIMEOUT).await.unwrap();
    }
    assert_eq!(mailer.outbox.load(Ordering::SeqCst), 3);

    read_side.rebuild("welcome-mail").await.unwrap();
    read_side.wait_for("welcome-mail", head, TIMEOUT).await.unwrap();
    assert_eq!(mailer.outbox.load(Ordering::SeqCst), 3, "replay sent no mail again");
    assert_eq!(documents.checkpoint("welcome-mail").await.unwrap().map(|c| c.position), Some(head));
    let stored = documents.checkpoint("welcome-mail").await.unwrap().unwrap();
    assert_eq!(stored.replay_until, None, "the replay is over: its end is cleared with the checkpoint");

    read_side.rebuild("audit").await.unwrap();
    read_side.wait_for("audit", head, TIMEOUT).await.unwrap();
    let seen = audit.seen.lock().unwrap().clone();
    let live: Vec<u64> = seen.iter().filter(|(_, r)| !r).map(|(p, _)| p.get()).collect();
    let replayed: Vec<u64> = seen.iter().filter(|(_, r)| *r).map(|(p, _)| p.get()).collect();
    assert_eq!(live, (1..=head.get()).collect::<Vec<_>>());
    assert_eq!(replayed, live, "a run-on-replay handler sees history again, flagged as replay");

    read_side.rebuild("balances").await.unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits), "rebuilt, not doubled");
    assert_eq!(projection.replayed.load(Ordering::SeqCst), 3);

    // New events after the replay are news: the mail goes out.
    let next = append(&events, "dan", &[Opened { account: "dan".into() }]).await;
    read_side.wait_for("welcome-mail", next, TIMEOUT).await.unwrap();
    assert_eq!(mailer.outbox.load(Ordering::SeqCst), 4);
    read_side.shutdown().await;
}

/// `Balances` behind an `Arc`, so a test can look at it while it runs.
struct SharedBalances(Arc<Balances>);

impl Project<Deposited> for SharedBalances {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.0.change(&e.account, e.amount, tx).await
    }
}

/// Counts how many nodes run it at the same moment.
#[derive(Clone, Default)]
struct Exclusive {
    active: Arc<AtomicU32>,
    max_active: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<(String, u64)>>>,
    node: String,
}

impl HandleEvent<Deposited> for Exclusive {
    async fn handle(&self, e: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        // Give the other node every chance to run at the same time.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        self.seen.lock().unwrap().push((self.node.clone(), e.position.get()));
        self.active.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

fn node(
    name: &str,
    shared: &Exclusive,
    events: &InMemoryEventStore,
    documents: &InMemoryProjectionStore,
    leases: &InMemoryLeaseStore,
    config: ReadSideConfig,
) -> ReadSide {
    let handler = Exclusive { node: name.into(), ..shared.clone() };
    let mut registry = Registry::new();
    registry.register("exclusive", Subscriber::handler(handler).on::<Deposited>().build()).unwrap();
    ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .lease_store(leases.clone())
        .owner(name)
        .registry(registry)
        .config(config)
        .start()
        .unwrap()
}

/// Two nodes share one lease store: only one processes at any moment, and
/// after it stops the other goes on from its checkpoint.
async fn two_runners_take_turns(config: ReadSideConfig) {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let shared = Exclusive::default();
    let a = node("a", &shared, &events, &documents, &leases, config.clone());
    let b = node("b", &shared, &events, &documents, &leases, config);
    let mut head = GlobalPosition::START;
    for n in 0..12 {
        head = append(&events, "account-ada", &[deposit("ada", n)]).await;
        tokio::task::yield_now().await;
    }
    // Either node sees the position reached: by running it, or through the
    // checkpoint the other one stored.
    tokio::select! {
        reached = a.wait_for("exclusive", head, TIMEOUT) => reached.unwrap(),
        reached = b.wait_for("exclusive", head, TIMEOUT) => reached.unwrap(),
    }
    let holder = leases.holder("exclusive").expect("one node holds the lease");
    let (active, standby) = if holder == "a" { (a, b) } else { (b, a) };
    active.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(standby.status("exclusive").unwrap().state, SubscriptionState::Standby);
    standby.wait_for("exclusive", head, TIMEOUT).await.unwrap();

    active.shutdown().await;
    for n in 0..6 {
        head = append(&events, "account-ada", &[deposit("ada", 100 + n)]).await;
    }
    standby.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some(standby.owner()));
    assert_eq!(shared.max_active.load(Ordering::SeqCst), 1, "never two nodes at once");
    let seen = shared.seen.lock().unwrap().clone();
    let positions: Vec<u64> = seen.iter().map(|(_, p)| *p).collect();
    assert_eq!(positions, (1..=head.get()).collect::<Vec<_>>(), "every event once, in order");
    let by_node: HashMap<&str, usize> = seen.iter().fold(HashMap::new(), |mut m, (n, _)| {
        *m.entry(n.as_str()).or_default() += 1;
        m
    });
    assert_eq!(by_node.get(holder.as_str()), Some(&12));
    assert_eq!(by_node.get(standby.owner()), Some(&6));
    standby.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn two_runners_never_both_process_and_the_second_takes_over() {
    two_runners_take_turns(config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_on_two_threads_never_both_process() {
    let config = ReadSideConfig {
        lease_retry: Duration::from_millis(5),
        idle_wait: Duration::from_millis(50),
        ..config()
    };
    two_runners_take_turns(config).await;
}

#[tokio::test(start_paused = true)]
async fn when_a_runner_dies_its_lease_expires_and_another_takes_over() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let shared = Exclusive::default();
    let a = node("a", &shared, &events, &documents, &leases, config());
    let head = append(&events, "account-ada", &[deposit("ada", 1), deposit("ada", 2)]).await;
    a.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some("a"));
    assert_eq!(documents.checkpoint("exclusive").await.unwrap().map(|c| c.position), Some(head));
    let b = node("b", &shared, &events, &documents, &leases, config());
    drop(a); // aborts the task without releasing the lease, like a crash

    let head = append(&events, "account-ada", &[deposit("ada", 3)]).await;
    b.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some("b"));
    let seen = shared.seen.lock().unwrap().clone();
    assert_eq!(seen, [("a".to_owned(), 1), ("a".to_owned(), 2), ("b".to_owned(), 3)]);
    assert!(leases.try_acquire("exclusive", "c", Duration::from_secs(1)).await.unwrap().is_none());
    b.shutdown().await;
}

/// The read side an `Es` owns dispatches through it, yet does not keep it
/// alive: dropping the last `Es` handle stops that node like a crash, and
/// another node takes its subscriptions over.
#[tokio::test(start_paused = true)]
async fn dropping_the_last_es_stops_its_read_side_and_another_node_takes_over() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let shared = Exclusive::default();
    let handler = Exclusive { node: "a".into(), ..shared.clone() };
    let mut registry = Registry::new();
    registry.register("exclusive", Subscriber::handler(handler).on::<Deposited>().build()).unwrap();
    let a = Es::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .read_side(
            ReadSide::builder().lease_store(leases.clone()).owner("a").registry(registry).config(config()),
        )
        .build()
        .await
        .unwrap();
    let head = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    a.read_side().unwrap().wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some("a"));
    let b = node("b", &shared, &events, &documents, &leases, config());
    drop(a);

    let head = append(&events, "account-ada", &[deposit("ada", 2)]).await;
    b.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some("b"));
    let seen = shared.seen.lock().unwrap().clone();
    assert_eq!(seen, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
    b.shutdown().await;
}

/// A clone of an `Es`'s read side outlives the `Es`: its handlers, which
/// dispatch through the `Es`, stop (releasing their leases) instead of
/// failing event after event without it.
#[tokio::test(start_paused = true)]
async fn handlers_stop_when_the_es_owning_their_read_side_is_gone() {
    let events = InMemoryEventStore::new();
    let leases = InMemoryLeaseStore::new();
    let shared = Exclusive::default();
    let mut registry = Registry::new();
    let handler = Exclusive { node: "a".into(), ..shared.clone() };
    registry.register("exclusive", Subscriber::handler(handler).on::<Deposited>().build()).unwrap();
    let es = Es::builder()
        .event_store(events.clone())
        .projection_store(InMemoryProjectionStore::new())
        .read_side(
            ReadSide::builder().lease_store(leases.clone()).owner("a").registry(registry).config(config()),
        )
        .build()
        .await
        .unwrap();
    let read_side = es.read_side().unwrap().clone();
    let head = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    read_side.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    drop(es);

    append(&events, "account-ada", &[deposit("ada", 2)]).await;
    let mut state = read_side.status("exclusive").unwrap().state;
    for _ in 0..600 {
        if state == SubscriptionState::Stopped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = read_side.status("exclusive").unwrap().state;
    }
    assert_eq!(state, SubscriptionState::Stopped);
    assert_eq!(
        shared.seen.lock().unwrap().clone(),
        [("a".to_owned(), 1)],
        "the second event was not handled"
    );
    assert_eq!(leases.holder("exclusive"), None, "a stopped subscription releases its lease");
}

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

/// The in-memory projection store, recording every commit made while the
/// committing node did not hold the lease.
#[derive(Clone)]
struct LeaseWitness {
    inner: InMemoryProjectionStore,
    leases: InMemoryLeaseStore,
    owner: String,
    unleased_commits: Arc<AtomicU32>,
}

#[async_trait]
impl ProjectionStore for LeaseWitness {
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
        if self.leases.holder(projection).as_deref() != Some(self.owner.as_str()) {
            self.unleased_commits.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.commit(projection, work).await
    }
    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        self.inner.reset(projection).await
    }
}

/// Takes two seconds of (paused) time per event.
struct SlowCount;

impl Project<Deposited> for SlowCount {
    async fn project(&self, _: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let n: u64 = tx.get("count").await?.unwrap_or(0);
        Ok(tx.put("count", &(n + 1))?)
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_granted_by_a_slow_reply_is_renewed_before_it_runs_out() {
    // The lease (TTL 10 s) is granted at once but the reply takes 9 s: a
    // runner that counts the TTL from the reply believes it holds the lease
    // until 19 s, and commits the 2 s event at 11 s without renewing.
    let events = InMemoryEventStore::new();
    let leases = InMemoryLeaseStore::new();
    let slow = TestStore::new(leases.clone());
    slow.inject(StoreCall::Acquire, Fault::SlowReply(Duration::from_secs(9)), 1..=1);
    let unleased_commits = Arc::new(AtomicU32::new(0));
    let documents = LeaseWitness {
        inner: InMemoryProjectionStore::new(),
        leases: leases.clone(),
        owner: "slow".into(),
        unleased_commits: Arc::clone(&unleased_commits),
    };
    let position = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    let mut registry = Registry::new();
    registry.register("count", Subscriber::projection(SlowCount).on::<Deposited>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .lease_store(slow)
        .owner("slow")
        .registry(registry)
        .config(config())
        .start()
        .unwrap();
    read_side.wait_for("count", position, TIMEOUT).await.unwrap();
    assert_eq!(unleased_commits.load(Ordering::SeqCst), 0, "a commit ran after the lease had expired");
    read_side.shutdown().await;
}

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
