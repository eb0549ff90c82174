//! The read side's test fixtures on the in-memory stores: a few account
//! events, a `balances` projection that shows double application, and the
//! settings and helpers the read side tests share.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::readside::{
    ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState, SubscriptionStatus,
};
use es_core::store::{DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{
    event, Event, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, Project, ProjectionTx, ReadSide,
    Recorded, StreamId,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opened {
    pub(crate) account: String,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deposited {
    pub(crate) account: String,
    pub(crate) amount: i64,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Withdrawn {
    pub(crate) account: String,
    pub(crate) amount: i64,
}

/// An event no subscriber here consumes.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Noise {
    pub(crate) n: u64,
}

pub(crate) async fn append<E: Event>(
    store: &InMemoryEventStore,
    stream: &str,
    events: &[E],
) -> GlobalPosition {
    let new = events
        .iter()
        .map(|e| NewEvent::new("account", E::TYPE, E::VERSION, serde_json::to_value(e).unwrap()))
        .collect();
    store.append(&StreamId::new(stream), ExpectedVersion::Any, new).await.unwrap().last_position().unwrap()
}

pub(crate) fn deposit(account: &str, amount: i64) -> Deposited {
    Deposited { account: account.into(), amount }
}

pub(crate) fn config() -> ReadSideConfig {
    ReadSideConfig {
        batch_size: 3,
        // Commits stay 3 events apart while catching up too, so that tests
        // meet batch boundaries; `readside_catch_up` tests bigger ones.
        catch_up_batch_size: 3,
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
pub(crate) async fn caught_up(read_side: &ReadSide, name: &str) -> SubscriptionStatus {
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
pub(crate) fn start(
    events: impl EventStore,
    documents: impl ProjectionStore,
    registry: Registry,
) -> ReadSide {
    ReadSide::builder()
        .event_store(events)
        .projection_store(documents)
        .registry(registry)
        .config(config())
        .start()
        .unwrap()
}

pub(crate) fn retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts, Duration::from_millis(10))
}

/// A balance document: the sum of deposits minus withdrawals, and how many
/// events went into it (to catch double application).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Balance {
    pub(crate) balance: i64,
    pub(crate) events: u32,
}

/// Replays seen by the projection, so tests can check the replay flag.
#[derive(Default)]
pub(crate) struct Balances {
    pub(crate) replayed: AtomicUsize,
}

impl Balances {
    pub(crate) async fn change(
        &self,
        account: &str,
        by: i64,
        tx: &mut ProjectionTx,
    ) -> Result<(), HandlerError> {
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

pub(crate) fn balances(projection: Balances) -> Subscriber {
    Subscriber::projection(projection).on::<Deposited>().on::<Withdrawn>().build()
}

/// Every balance document of the `balances` projection.
pub(crate) async fn stored_balances(store: &dyn ProjectionStore) -> BTreeMap<String, Balance> {
    store
        .query("balances", &DocumentQuery::all())
        .await
        .unwrap()
        .into_iter()
        .map(|(id, doc)| (id, serde_json::from_value(doc).unwrap()))
        .collect()
}

/// The fold of the events, each applied exactly once.
pub(crate) fn expected_balances(deposits: &[Deposited]) -> BTreeMap<String, Balance> {
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
pub(crate) fn refusing_commit(
    documents: &InMemoryProjectionStore,
    nth: u64,
) -> TestStore<InMemoryProjectionStore> {
    let store = TestStore::new(documents.clone());
    store.inject(StoreCall::Commit, Fault::Conflict, nth..=nth);
    store
}

/// `Balances` behind an `Arc`, so a test can look at it while it runs.
pub(crate) struct SharedBalances(pub(crate) Arc<Balances>);

impl Project<Deposited> for SharedBalances {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.0.change(&e.account, e.amount, tx).await
    }
}

/// Records every event it handles; fails on a chosen amount while `failing`.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    pub(crate) seen: Arc<Mutex<Vec<(GlobalPosition, bool)>>>,
    pub(crate) attempts: Arc<AtomicU32>,
    pub(crate) fail_amount: Option<i64>,
    pub(crate) failing: Arc<AtomicBool>,
}

impl Recorder {
    pub(crate) fn positions(&self) -> Vec<u64> {
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

/// A side effect that must happen once per account: counts mails in an
/// outbox.
#[derive(Clone, Default)]
pub(crate) struct Mailer {
    pub(crate) outbox: Arc<AtomicU32>,
}

impl HandleEvent<Opened> for Mailer {
    async fn handle(&self, _: &Recorded<Opened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        assert!(!ctx.is_replay(), "a skip-on-replay handler never sees a replayed event");
        self.outbox.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
