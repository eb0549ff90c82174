//! The read side on SQLite: a projection whose documents and checkpoint
//! commit in the file, two processes (here: two handles on one file, each
//! with its own connections) sharing it through the lease table, a
//! hand-over on shutdown, a take-over after a crash, and `Es` commands read
//! back through a strong projection.
//!
//! Nothing waits on a fixed sleep: tests wait for positions with
//! `ReadSide::wait_for`, or poll a condition in a bounded loop.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TempDir;
use es_core::readside::{
    Consistency, ReadSideBuilder, ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState,
};
use es_core::store::{DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::{
    command, event, Aggregate, Apply, Es, Event, Events, GlobalPosition, Handle, HandlerError, Project,
    ProjectionTx, ReadSide, Recorded, StreamId,
};
use es_sqlite::{SqliteDatabase, SqliteEventStore, SqliteLeaseStore, SqliteOptions, SqliteProjectionStore};
use serde::{Deserialize, Serialize};

const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

// ---- a small domain ----

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

// ---- the stores of one process on the file ----

/// The stores of one process on a shared file: its own connections.
struct Node {
    events: SqliteEventStore,
    documents: SqliteProjectionStore,
    leases: SqliteLeaseStore,
}

impl Node {
    async fn open(path: &Path) -> Self {
        let db =
            SqliteDatabase::open_with(path, SqliteOptions::new().poll_interval(Duration::from_millis(10)))
                .await
                .unwrap();
        db.migrate().await.unwrap();
        Self {
            events: SqliteEventStore::new(db.clone()),
            documents: SqliteProjectionStore::new(db.clone()),
            leases: SqliteLeaseStore::new(db),
        }
    }

    fn read_side(&self, owner: &str, totals: &Totals, config: ReadSideConfig) -> ReadSideBuilder {
        let mut registry = Registry::new();
        registry.register("totals", totals.subscriber()).unwrap();
        ReadSide::builder()
            .event_store(self.events.clone())
            .projection_store(self.documents.clone())
            .lease_store(self.leases.clone())
            .owner(owner)
            .registry(registry)
            .config(config)
    }

    /// Appends `Added` events with these amounts to `tally-<tally>`, one
    /// append each; returns the position of the last.
    async fn add(&self, tally: &str, amounts: impl IntoIterator<Item = i64>) -> GlobalPosition {
        let stream = StreamId::for_aggregate(Tally::NAME, tally);
        let mut last = GlobalPosition::START;
        for amount in amounts {
            let event = NewEvent::new(
                Tally::NAME,
                Added::TYPE,
                Added::VERSION,
                serde_json::to_value(Added { amount }).unwrap(),
            );
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

/// Small batches, quick retries; waits that are never the reason a test
/// passes.
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

/// The `totals` projection's document per tally.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Total {
    total: i64,
    events: u32,
}

/// Sums `Added` per tally and counts the events that went in, so applying
/// one twice shows; counts how many run at once.
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
        let result = async {
            let mut doc: Total = tx.get(id).await?.unwrap_or_default();
            // Give another process every chance to run at the same time.
            tokio::task::yield_now().await;
            doc.total += e.amount;
            doc.events += 1;
            tx.put(id, &doc)?;
            Ok(())
        }
        .await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl Totals {
    fn subscriber(&self) -> Subscriber {
        Subscriber::projection(self.clone()).on::<Added>().build()
    }
}

/// What `totals` must hold after every amount exactly once.
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

async fn add_all(node: &Node, added: &[(&str, Vec<i64>)]) -> GlobalPosition {
    let mut last = GlobalPosition::START;
    for (tally, amounts) in added {
        last = node.add(tally, amounts.iter().copied()).await;
    }
    last
}

fn forty() -> Vec<(&'static str, Vec<i64>)> {
    vec![
        ("a", (1..=10).collect()),
        ("b", (11..=20).collect()),
        ("c", (21..=30).collect()),
        ("d", (31..=40).collect()),
    ]
}

/// Waits until `read_side` processes `name` (its state is active).
async fn until_active(read_side: &ReadSide, name: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !read_side.status(name).unwrap().state.is_active() {
        assert!(tokio::time::Instant::now() < deadline, "`{}` never took `{name}` over", read_side.owner());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Two processes on one file running one projection; the first takes the
/// lease.
async fn two_nodes(
    dir: &TempDir,
    totals: &Totals,
    config: ReadSideConfig,
) -> (Node, Node, ReadSide, ReadSide) {
    let path = dir.file("shared.db");
    let (one, two) = (Node::open(&path).await, Node::open(&path).await);
    let a = one.read_side("node-a", totals, config.clone()).start().unwrap();
    until_active(&a, "totals").await;
    let b = two.read_side("node-b", totals, config).start().unwrap();
    (one, two, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_both_project_and_the_second_takes_over_on_shutdown() {
    let dir = TempDir::new();
    let totals = Totals::default();
    let (one, two, a, b) = two_nodes(&dir, &totals, config()).await;
    let mut added = forty();
    let head = add_all(&one, &added).await;
    a.wait_for("totals", head, DEADLINE).await.unwrap();
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(b.status("totals").unwrap().state, SubscriptionState::Standby);
    assert_eq!(one.leases.holder("totals").await.unwrap().map(|l| l.owner).as_deref(), Some("node-a"));

    a.shutdown().await;
    until_active(&b, "totals").await;
    added.push(("e", (41..=60).collect()));
    // The second process appends; its own read side wakes at once.
    let head = add_all(&two, &added[4..]).await;
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(one.totals().await, fold(&added), "every event exactly once over both processes");
    assert_eq!(totals.runs.load(Ordering::SeqCst), 60);
    assert_eq!(totals.most_at_once.load(Ordering::SeqCst), 1, "never two at once");
    assert_eq!(two.leases.holder("totals").await.unwrap().map(|l| l.owner).as_deref(), Some("node-b"));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_process_dies_its_lease_expires_and_the_other_resumes_from_the_checkpoint() {
    let dir = TempDir::new();
    let totals = Totals::default();
    let config = ReadSideConfig { lease_ttl: Duration::from_millis(600), ..config() };
    let (one, two, a, b) = two_nodes(&dir, &totals, config).await;
    let mut added = forty();
    let head = add_all(&one, &added).await;
    a.wait_for("totals", head, DEADLINE).await.unwrap();
    let first_lease = one.leases.holder("totals").await.unwrap().unwrap();
    assert_eq!(first_lease.owner, "node-a");

    // Process one dies: its tasks stop, its lease is never released.
    drop(a);
    until_active(&b, "totals").await;
    let taken = two.leases.holder("totals").await.unwrap().unwrap();
    assert_eq!(taken.owner, "node-b");
    assert!(taken.token > first_lease.token);
    added.push(("e", (41..=60).collect()));
    let head = add_all(&two, &added[4..]).await;
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(two.totals().await, fold(&added));
    assert_eq!(totals.runs.load(Ordering::SeqCst), 60, "b resumed from a's checkpoint");
    assert_eq!(totals.most_at_once.load(Ordering::SeqCst), 1);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_read_back_through_a_strong_projection_and_survives_a_restart() {
    let dir = TempDir::new();
    let path = dir.file("app.db");
    let totals = Totals::default();
    {
        let node = Node::open(&path).await;
        let mut registry = Registry::new();
        registry.register("totals", totals.subscriber().consistency(Consistency::Strong)).unwrap();
        let es = Es::builder()
            .event_store(node.events.clone())
            .projection_store(node.documents.clone())
            .read_side(
                ReadSide::builder().lease_store(node.leases.clone()).registry(registry).config(config()),
            )
            .consistency_timeout(DEADLINE)
            .build()
            .await
            .unwrap();
        for amount in [5, 7] {
            es.execute(Add { tally: "t".into(), amount }).await.unwrap();
        }
        // Strong: visible as soon as execute returns.
        let doc = node.documents.get("totals", "tally-t").await.unwrap();
        assert_eq!(doc, Some(serde_json::json!({"total": 12, "events": 2})));
        assert_eq!(es.load::<Tally>("t").await.unwrap().total, 12);
        es.shutdown().await;
        node.events.database().close().await;
    }
    // The next run of the program finds everything in the file.
    let node = Node::open(&path).await;
    let es = Es::builder().event_store(node.events.clone()).build().await.unwrap();
    assert_eq!(es.load::<Tally>("t").await.unwrap().total, 12);
    assert_eq!(node.totals().await, fold(&[("t", vec![5, 7])]));
    es.shutdown().await;
}
