//! The read side on Redis: two nodes sharing a projection through one
//! Redis, and commands read back through a projection.
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

use es_core::readside::{
    ReadSideBuilder, ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState,
};
use es_core::store::{DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore};
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
