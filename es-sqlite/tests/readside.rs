//! The read side on SQLite: two processes (here: two handles on one file,
//! each with its own connections) sharing a projection through the lease
//! table, with a hand-over on shutdown and a take-over after a crash, one
//! process restarted under its owner id with a commit in flight (the cases
//! are the conformance suite's), and `Es` commands read back through
//! a strong projection whose documents and checkpoint commit in the file.
//!
//! Nothing waits on a fixed sleep: tests wait for positions with
//! `ReadSide::wait_for`, or poll a condition in a bounded loop.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::TempDir;
use es_core::conformance::readside;
use es_core::readside::{Consistency, ReadSideConfig, Registry, RetryPolicy, Subscriber};
use es_core::store::{DocumentQuery, ProjectionStore};
use es_core::{
    command, event, Aggregate, Apply, Es, Events, Handle, HandlerError, Project, ProjectionTx, ReadSide,
    Recorded, StreamId,
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
        catch_up_batch_size: 8,
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
/// one twice shows.
#[derive(Clone)]
struct Totals;

impl Project<Added> for Totals {
    async fn project(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = e.stream_id.as_str();
        let mut doc: Total = tx.get(id).await?.unwrap_or_default();
        doc.total += e.amount;
        doc.events += 1;
        tx.put(id, &doc)?;
        Ok(())
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

/// The stores of one process, as the conformance cases take them.
fn stores(node: &Node) -> (SqliteEventStore, SqliteProjectionStore, SqliteLeaseStore) {
    (node.events.clone(), node.documents.clone(), node.leases.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_both_project_and_the_second_takes_over_on_shutdown() {
    let dir = TempDir::new();
    let path = dir.file("shared.db");
    let (one, two) = (Node::open(&path).await, Node::open(&path).await);
    readside::two_nodes_never_both_project_and_the_second_takes_over_on_shutdown(stores(&one), stores(&two))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_process_dies_the_other_resumes_from_its_checkpoint() {
    let dir = TempDir::new();
    let path = dir.file("shared.db");
    let (one, two) = (Node::open(&path).await, Node::open(&path).await);
    readside::a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint(stores(&one), stores(&two))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_restarted_under_its_owner_fences_off_its_earlier_runs_commit() {
    let dir = TempDir::new();
    let node = Node::open(&dir.file("shared.db")).await;
    readside::a_node_restarted_under_its_owner_fences_off_its_earlier_runs_commit(stores(&node)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_read_back_through_a_strong_projection_and_survives_a_restart() {
    let dir = TempDir::new();
    let path = dir.file("app.db");
    let totals = Totals;
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
