//! The read side on Redis: the lease store (exclusive, expiring on the
//! server clock, re-entrant, growing tokens, idempotent release), fenced
//! commits, and two nodes sharing a projection through one Redis.
//!
//! Each test runs in its own namespace, deleted at the end. Nothing waits
//! on a fixed sleep: tests wait for positions with `ReadSide::wait_for`, or
//! poll a condition in a bounded loop with a deadline.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::error::ProjectionError;
use es_core::readside::{
    ReadSideBuilder, ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState,
};
use es_core::store::{
    Checkpoint, DocumentQuery, EventStore, ExpectedVersion, Fence, Lease, LeaseStore, NewEvent,
    ProjectionStore, UnitOfWork,
};
use es_core::{
    command, event, Aggregate, Apply, Event, Events, GlobalPosition, Handle, HandlerError, Project,
    ProjectionTx, ReadSide, Recorded, StreamId,
};
use es_redis::{RedisEventStore, RedisLeaseStore, RedisProjectionStore};
use serde::{Deserialize, Serialize};
use serde_json::json;

const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

// ---- the lease store ----

/// Polls `try_acquire` for `owner` until it succeeds (the lease expired on
/// the server clock), failing the test after [`DEADLINE`].
async fn acquire_when_expired(store: &RedisLeaseStore, name: &str, owner: &str) -> Lease {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(lease) = store.try_acquire(name, owner, TTL).await.unwrap() {
            return lease;
        }
        assert!(tokio::time::Instant::now() < deadline, "the lease on `{name}` never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls until `name`'s lease has expired on the server clock.
async fn wait_until_expired(store: &RedisLeaseStore, name: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.holder(name).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lease on `{name}` never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_reentrant_and_released() {
    let scoped = common::fresh_lease_store().await;
    let store = scoped.inner();
    let a = store.try_acquire("p", "a", TTL).await.unwrap().expect("a free name is granted");
    assert_eq!((a.name.as_str(), a.owner.as_str()), ("p", "a"));
    assert!(store.try_acquire("p", "b", TTL).await.unwrap().is_none(), "held by a");
    assert_eq!(store.try_acquire("p", "a", TTL).await.unwrap(), Some(a.clone()), "re-entrant, same token");
    assert_eq!(store.holder("p").await.unwrap(), Some(a.clone()));
    assert!(store.renew(&a, TTL).await.unwrap());
    assert!(store.try_acquire("q", "b", TTL).await.unwrap().is_some(), "other names are independent");

    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), None);
    assert!(!store.renew(&a, TTL).await.unwrap(), "a released lease is lost");
    let b = store.try_acquire("p", "b", TTL).await.unwrap().expect("free after release");
    assert!(b.token > a.token, "a new holder gets a larger token");
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(b.clone()), "a stale release changes nothing");
    store.release(&b).await.unwrap();
    store.release(&b).await.unwrap();
    let again = store.try_acquire("p", "b", TTL).await.unwrap().unwrap();
    assert!(again.token > b.token, "the same owner taking a released name again gets a new token");
    let stolen = Lease { owner: "c".to_owned(), ..again.clone() };
    assert!(!store.renew(&stolen, TTL).await.unwrap(), "another owner with the right token renews nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_for_ever_is_granted_and_renewed() {
    let scoped = common::fresh_lease_store().await;
    let store = scoped.inner();
    let a = store.try_acquire("p", "a", Duration::MAX).await.unwrap().expect("a free name is granted");
    assert!(store.renew(&a, Duration::MAX).await.unwrap());
    assert!(store.try_acquire("p", "b", TTL).await.unwrap().is_none(), "held by a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_lease_expires_on_the_server_clock_and_is_lost() {
    let scoped = common::fresh_lease_store().await;
    let store = scoped.inner();
    let short = Duration::from_millis(50);
    let a = store.try_acquire("p", "a", short).await.unwrap().unwrap();
    let b = acquire_when_expired(store, "p", "b").await;
    assert!(b.token > a.token);
    assert!(!store.renew(&a, TTL).await.unwrap(), "renewal after a takeover says the lease is lost");
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(b), "a stale release does not free b's lease");

    // Expired and not taken: renewal reports it lost, and the same owner
    // taking it again gets a new token.
    let c = store.try_acquire("r", "c", short).await.unwrap().unwrap();
    wait_until_expired(store, "r").await;
    assert!(!store.renew(&c, TTL).await.unwrap());
    let c2 = store.try_acquire("r", "c", TTL).await.unwrap().unwrap();
    assert!(c2.token > c.token);
    assert!(store.renew(&c2, TTL).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_owners_never_both_win() {
    let scoped = common::fresh_lease_store().await;
    for round in 0..20 {
        let name = format!("race-{round}");
        let tries: Vec<_> = (0..6)
            .map(|i| {
                let store = scoped.inner().clone();
                let name = name.clone();
                tokio::spawn(
                    async move { store.try_acquire(&name, &format!("node-{i}"), TTL).await.unwrap() },
                )
            })
            .collect();
        let mut winners = Vec::new();
        for task in tries {
            winners.extend(task.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(scoped.inner().holder(&name).await.unwrap(), winners.pop());
    }
}

// ---- fenced commits ----

fn fenced_work(lease: &Lease, balance: i64, position: u64) -> UnitOfWork {
    let mut work = UnitOfWork::new();
    work.put("acc-1", json!({ "balance": balance }))
        .checkpoint(Checkpoint::at(GlobalPosition(position)))
        .fence(Fence::new(lease.name.clone(), lease.token));
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_commit_lands_only_under_the_current_lease_token() {
    let stores = common::fresh_stores().await;
    let (documents, leases) = (&stores.documents, &stores.leases);
    let short = Duration::from_millis(50);

    let a = leases.try_acquire("balances", "node-a", TTL).await.unwrap().expect("a free lease");
    documents.commit("balances", fenced_work(&a, 10, 1)).await.unwrap();
    assert_eq!(documents.get("balances", "acc-1").await.unwrap(), Some(json!({ "balance": 10 })));

    // A's lease expires: its commit is refused though nobody took over.
    let again = leases.try_acquire("balances", "node-a", short).await.unwrap().expect("still a's");
    assert_eq!(again.token, a.token);
    wait_until_expired(leases, "balances").await;
    let expired = documents.commit("balances", fenced_work(&a, 20, 2)).await;
    assert!(
        matches!(&expired, Err(ProjectionError::Fenced { projection, lease, token })
            if projection == "balances" && lease == "balances" && *token == a.token),
        "{expired:?}"
    );

    // B takes over: A's commit is still refused, B's lands.
    let b = leases.try_acquire("balances", "node-b", TTL).await.unwrap().expect("expired, so free");
    assert!(matches!(
        documents.commit("balances", fenced_work(&a, 30, 3)).await,
        Err(ProjectionError::Fenced { .. })
    ));
    documents.commit("balances", fenced_work(&b, 40, 4)).await.unwrap();
    assert_eq!(documents.get("balances", "acc-1").await.unwrap(), Some(json!({ "balance": 40 })));
    assert_eq!(
        documents.checkpoint("balances").await.unwrap(),
        Some(Checkpoint::at(GlobalPosition(4))),
        "refused commits stored nothing"
    );

    // A fence on a lease never taken in this namespace (kept elsewhere)
    // cannot be checked: the commit lands.
    let elsewhere = Lease { name: "other".to_owned(), owner: "node-a".to_owned(), token: 7 };
    documents.commit("balances", fenced_work(&elsewhere, 50, 5)).await.unwrap();
    // A token the store never handed out is refused.
    let huge = Lease { name: "balances".to_owned(), owner: "node-b".to_owned(), token: u64::MAX };
    assert!(matches!(
        documents.commit("balances", fenced_work(&huge, 60, 6)).await,
        Err(ProjectionError::Fenced { .. })
    ));
    assert_eq!(documents.get("balances", "acc-1").await.unwrap(), Some(json!({ "balance": 50 })));
}

// ---- two nodes sharing a projection ----

/// Something was added to a tally.
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Added {
    amount: i64,
}

/// Add to a tally.
#[command(aggregate = Tally)]
#[derive(Debug, Clone)]
struct Add {
    #[id]
    tally: String,
    amount: i64,
}

/// A tally refuses nothing; the error type is required all the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tally refuses nothing")]
struct TallyError;

/// A running total.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(name = "tally", error = TallyError, events(Added), commands(Add))]
struct Tally {
    total: i64,
}

impl Handle<Add> for Tally {
    fn handle(&self, command: Add) -> Result<Events<Self>, TallyError> {
        Ok(Events::one(Added { amount: command.amount }))
    }
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.amount;
    }
}

/// The `totals` projection's document per tally.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Total {
    total: i64,
    events: u32,
}

/// Sums `Added` per tally and counts the events that went in (so applying
/// one twice shows), and how many run at once.
#[derive(Default, Clone)]
struct Totals {
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
}

impl Project<Added> for Totals {
    async fn project(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        let id = e.stream_id.as_str();
        let mut doc: Total = tx.get(id).await?.unwrap_or_default();
        // Give another node every chance to run at the same time.
        tokio::task::yield_now().await;
        doc.total += e.amount;
        doc.events += 1;
        tx.put(id, &doc)?;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// One node's stores: its own connection, the test's namespace.
struct Node {
    events: RedisEventStore,
    documents: RedisProjectionStore,
    leases: RedisLeaseStore,
}

impl Node {
    async fn on(stores: &common::Stores) -> Self {
        let redis = common::connection().await;
        let ns = stores.namespace.clone();
        Self {
            events: RedisEventStore::new(redis.clone(), ns.clone()),
            documents: RedisProjectionStore::new(redis.clone(), ns.clone()),
            leases: RedisLeaseStore::new(redis, ns),
        }
    }

    fn read_side(&self, owner: &str, totals: &Totals, config: ReadSideConfig) -> ReadSideBuilder {
        let mut registry = Registry::new();
        registry.register("totals", Subscriber::projection(totals.clone()).on::<Added>().build()).unwrap();
        ReadSide::builder()
            .event_store(self.events.clone())
            .projection_store(self.documents.clone())
            .lease_store(self.leases.clone())
            .owner(owner)
            .registry(registry)
            .config(config)
    }

    /// Appends one `Added` per amount to `tally-<tally>`; returns the last
    /// position.
    async fn add(&self, tally: &str, amounts: impl IntoIterator<Item = i64>) -> GlobalPosition {
        let stream = StreamId::for_aggregate(Tally::NAME, tally);
        let mut last = GlobalPosition::START;
        for amount in amounts {
            let event = NewEvent::new(Tally::NAME, Added::TYPE, Added::VERSION, json!({ "amount": amount }));
            let outcome = self.events.append(&stream, ExpectedVersion::Any, vec![event]).await.unwrap();
            last = outcome.last_position().unwrap();
        }
        last
    }

    async fn totals(&self) -> BTreeMap<String, Total> {
        self.documents
            .query("totals", &DocumentQuery::all())
            .await
            .unwrap()
            .into_iter()
            .map(|(id, doc)| (id, serde_json::from_value(doc).unwrap()))
            .collect()
    }
}

/// Settings for tests: small batches, quick retries; waits that are never
/// the reason a test passes.
fn config() -> ReadSideConfig {
    ReadSideConfig {
        batch_size: 8,
        idle_wait: Duration::from_millis(200),
        lease_ttl: TTL,
        lease_retry: Duration::from_millis(20),
        store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
        remote_poll: Duration::from_millis(20),
        ..ReadSideConfig::default()
    }
}

/// What `totals` must hold after `amounts` per tally, each event once.
fn fold(added: &[(&str, Vec<i64>)]) -> BTreeMap<String, Total> {
    let mut expected: BTreeMap<String, Total> = BTreeMap::new();
    for (tally, amounts) in added {
        let doc =
            expected.entry(StreamId::for_aggregate(Tally::NAME, tally).as_str().to_owned()).or_default();
        for amount in amounts {
            doc.total += amount;
            doc.events += 1;
        }
    }
    expected
}

async fn until_active(read_side: &ReadSide, name: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !read_side.status(name).unwrap().state.is_active() {
        assert!(tokio::time::Instant::now() < deadline, "`{}` never took `{name}` over", read_side.owner());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_both_process_and_the_second_takes_over_on_shutdown() {
    let stores = common::fresh_stores().await;
    let (one, two) = (Node::on(&stores).await, Node::on(&stores).await);
    let totals = Totals::default();
    let a = one.read_side("node-a", &totals, config()).start().unwrap();
    until_active(&a, "totals").await;
    let b = two.read_side("node-b", &totals, config()).start().unwrap();

    let mut added = vec![("a", (1..=10).collect::<Vec<i64>>()), ("b", (11..=20).collect())];
    one.add("a", 1..=10).await;
    let head = two.add("b", 11..=20).await;
    a.wait_for("totals", head, DEADLINE).await.unwrap();
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(b.status("totals").unwrap().state, SubscriptionState::Standby);
    assert_eq!(one.leases.holder("totals").await.unwrap().map(|l| l.owner).as_deref(), Some("node-a"));

    a.shutdown().await;
    until_active(&b, "totals").await;
    added.push(("c", (21..=30).collect()));
    let head = one.add("c", 21..=30).await;
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(two.totals().await, fold(&added), "every event exactly once over both nodes");
    assert_eq!(totals.runs.load(Ordering::SeqCst), 30);
    assert_eq!(totals.most_at_once.load(Ordering::SeqCst), 1, "never two at once");
    assert_eq!(two.leases.holder("totals").await.unwrap().map(|l| l.owner).as_deref(), Some("node-b"));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_node_dies_its_lease_expires_and_the_other_takes_over_from_the_checkpoint() {
    let stores = common::fresh_stores().await;
    let (one, two) = (Node::on(&stores).await, Node::on(&stores).await);
    let totals = Totals::default();
    let config = ReadSideConfig { lease_ttl: Duration::from_millis(600), ..config() };
    let a = one.read_side("node-a", &totals, config.clone()).start().unwrap();
    until_active(&a, "totals").await;
    let b = two.read_side("node-b", &totals, config).start().unwrap();
    let mut added = vec![("a", (1..=20).collect::<Vec<i64>>())];
    let head = one.add("a", 1..=20).await;
    a.wait_for("totals", head, DEADLINE).await.unwrap();
    let first = one.leases.holder("totals").await.unwrap().unwrap();
    assert_eq!(first.owner, "node-a");

    // Node a dies: its tasks stop, its lease is never released.
    drop(a);
    until_active(&b, "totals").await;
    let taken = two.leases.holder("totals").await.unwrap().unwrap();
    assert_eq!(taken.owner, "node-b");
    assert!(taken.token > first.token);
    added.push(("b", (21..=40).collect()));
    let head = two.add("b", 21..=40).await;
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(two.totals().await, fold(&added));
    assert_eq!(totals.runs.load(Ordering::SeqCst), 40, "b resumed from a's checkpoint");
    assert_eq!(totals.most_at_once.load(Ordering::SeqCst), 1);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_redis_are_read_back_through_a_projection() {
    let stores = common::fresh_stores().await;
    let totals = Totals::default();
    let mut registry = Registry::new();
    registry.register("totals", Subscriber::projection(totals.clone()).on::<Added>().build()).unwrap();
    let es = es_core::Es::builder()
        .event_store(stores.events.clone())
        .snapshot_store(stores.events.clone())
        .projection_store(stores.documents.clone())
        .read_side(ReadSide::builder().lease_store(stores.leases.clone()).registry(registry).config(config()))
        .build()
        .await
        .unwrap();
    let mut last = GlobalPosition::START;
    for amount in 1..=25 {
        let outcome = es.execute(Add { tally: "t1".into(), amount }).await.unwrap();
        last = outcome.position.unwrap();
    }
    assert_eq!(es.load::<Tally>("t1").await.unwrap().total, (1..=25).sum::<i64>());
    es.read_side().unwrap().wait_for("totals", last, DEADLINE).await.unwrap();
    let doc = stores.documents.get("totals", "tally-t1").await.unwrap().unwrap();
    assert_eq!(doc, json!({ "total": (1..=25).sum::<i64>(), "events": 25 }));
    es.shutdown().await;
}
