//! The read side on Redis: two nodes sharing a projection through one
//! Redis, one node restarted under its owner id with a commit in flight
//! (the cases are the conformance suite's), and commands read back through
//! a projection.
//!
//! Each test runs in its own namespace, deleted at the end. Nothing waits
//! on a fixed sleep: tests wait for positions with `ReadSide::wait_for`, or
//! poll a condition in a bounded loop with a deadline.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use es_core::conformance::readside;
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber};
use es_core::store::ProjectionStore;
use es_core::{
    command, event, Aggregate, Apply, Events, GlobalPosition, Handle, HandlerError, Project, ProjectionTx,
    ReadSide, Recorded,
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

/// One node's stores: its own connection, the test's namespace.
async fn node(stores: &common::Stores) -> (RedisEventStore, RedisProjectionStore, RedisLeaseStore) {
    let redis = common::connection().await;
    let ns = stores.namespace.clone();
    (
        RedisEventStore::new(redis.clone(), ns.clone()),
        RedisProjectionStore::new(redis.clone(), ns.clone()),
        RedisLeaseStore::new(redis, ns),
    )
}

/// Settings for tests: small batches, quick retries; waits that are never
/// the reason a test passes.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_both_project_and_the_second_takes_over_on_shutdown() {
    let stores = common::fresh_stores().await;
    readside::two_nodes_never_both_project_and_the_second_takes_over_on_shutdown(
        node(&stores).await,
        node(&stores).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint() {
    let stores = common::fresh_stores().await;
    readside::a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint(
        node(&stores).await,
        node(&stores).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_under_its_owner_fences_off_its_earlier_runs_commit() {
    let stores = common::fresh_stores().await;
    readside::a_node_restarted_under_its_owner_fences_off_its_earlier_runs_commit(node(&stores).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_redis_are_read_back_through_a_projection() {
    let stores = common::fresh_stores().await;
    let totals = Totals;
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
