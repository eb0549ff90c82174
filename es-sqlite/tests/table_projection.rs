//! A table projection on SQLite: the projection writes a table of the
//! application's own in the file, in the write transaction that stores its
//! checkpoint; a rebuild resets and refills it; a stale fence writes
//! nothing.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TempDir;
use es_core::error::{FailureKind, ProjectionError};
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState};
use es_core::store::{EventStore, ExpectedVersion, Fence, LeaseStore, NewEvent, ProjectionTransactions};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{event, Event, GlobalPosition, HandlerError, ProjectRows, ReadSide, Recorded, StreamId};
use es_core::{TableProjection, TableTx};
use es_sqlite::{
    SqliteDatabase, SqliteEventStore, SqliteLeaseStore, SqliteProjectionStore, SqliteTransaction,
};

const DEADLINE: Duration = Duration::from_secs(60);

/// Something was counted (appended raw: no aggregate lists it).
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Counted {
    amount: i64,
}

/// Counts events and sums amounts per stream into `tallies`, one upsert per
/// event.
struct Tallies;

impl TableProjection for Tallies {
    type Transaction = SqliteTransaction;
    type Batch = ();

    async fn reset(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        sqlx::query("DELETE FROM tallies")
            .execute(&mut **tx.transaction())
            .await
            .map_err(HandlerError::other)?;
        Ok(())
    }
}

impl ProjectRows<Counted> for Tallies {
    async fn project(&self, e: &Recorded<Counted>, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO tallies (tally, events, total) VALUES ($1, 1, $2)
             ON CONFLICT (tally) DO UPDATE SET events = events + 1, total = total + excluded.total",
        )
        .bind(e.stream_id.as_str())
        .bind(e.amount)
        .execute(&mut **tx.transaction())
        .await
        .map_err(HandlerError::other)?;
        Ok(())
    }
}

async fn table(db: &SqliteDatabase) -> BTreeMap<String, (i64, i64)> {
    let mut tx = db.begin_write().await.unwrap();
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT tally, events, total FROM tallies").fetch_all(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    rows.into_iter().map(|(tally, events, total)| (tally, (events, total))).collect()
}

/// A database with the `tallies` table, and 25 `Counted` events over three
/// streams: returns the events' store, the fold the table must equal and
/// the head.
async fn counted(db: &SqliteDatabase) -> (SqliteEventStore, BTreeMap<String, (i64, i64)>, GlobalPosition) {
    db.migrate().await.unwrap();
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query(
        "CREATE TABLE tallies (tally TEXT PRIMARY KEY, events INTEGER NOT NULL, total INTEGER NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let events = SqliteEventStore::new(db.clone());
    let mut fold = BTreeMap::<String, (i64, i64)>::new();
    let mut head = GlobalPosition::START;
    for i in 0..25_i64 {
        let stream = StreamId::new(format!("tally-{}", i % 3));
        let event = NewEvent::new("tally", Counted::TYPE, 1, serde_json::json!({ "amount": i }));
        head =
            events.append(&stream, ExpectedVersion::Any, vec![event]).await.unwrap().last_position().unwrap();
        let entry = fold.entry(stream.to_string()).or_default();
        entry.0 += 1;
        entry.1 += i;
    }
    (events, fold, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_equals_the_fold_a_rebuild_refills_it_and_a_stale_fence_writes_nothing() {
    let dir = TempDir::new();
    let db = SqliteDatabase::open(dir.file("app.db")).await.unwrap();
    let (events, fold, head) = counted(&db).await;
    let projections = SqliteProjectionStore::new(db.clone());
    let leases = SqliteLeaseStore::new(db.clone());

    let mut registry = Registry::new();
    registry.register("tallies", Subscriber::table_projection(Tallies).on::<Counted>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(projections.clone())
        .lease_store(leases.clone())
        .registry(registry)
        .config(ReadSideConfig { batch_size: 4, ..ReadSideConfig::default() })
        .start()
        .unwrap();
    read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
    assert_eq!(table(&db).await, fold);

    read_side.rebuild("tallies").await.unwrap();
    read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
    assert_eq!(table(&db).await, fold, "reset and refilled, nothing counted twice");
    read_side.shutdown().await;

    // A lease taken over since: a transaction under the old token is refused.
    let old = leases.try_acquire("tallies", "a", Duration::from_millis(1)).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while leases.try_acquire("tallies", "b", Duration::from_secs(30)).await.unwrap().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "a's lease never expired");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let refused = projections.begin("tallies", Some(&Fence::new("tallies", old.token))).await;
    assert!(matches!(refused, Err(ProjectionError::Fenced { .. })));
    assert_eq!(table(&db).await, fold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_landed_before_its_reply_was_lost_is_not_applied_again() {
    let dir = TempDir::new();
    let db = SqliteDatabase::open(dir.file("app.db")).await.unwrap();
    let (events, fold, head) = counted(&db).await;
    // Commits 2 and 3 go through, then the adapter panics, as a reply lost
    // after the server committed; begin 5 fails before anything is written.
    let projections = TestStore::new(SqliteProjectionStore::new(db.clone()));
    projections.inject(StoreCall::CommitTransaction, Fault::PanicAfter, 2..=3);
    projections.inject(StoreCall::Begin, Fault::Backend, 5..=5);
    let mut registry = Registry::new();
    registry.register("tallies", Subscriber::table_projection(Tallies).on::<Counted>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events)
        .projection_store(projections.clone())
        .lease_store(SqliteLeaseStore::new(db.clone()))
        .registry(registry)
        .config(ReadSideConfig {
            batch_size: 4,
            catch_up_batch_size: 4,
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
            ..ReadSideConfig::default()
        })
        .start()
        .unwrap();
    read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
    read_side.shutdown().await;
    assert_eq!(table(&db).await, fold, "every event counted once");
    assert!(
        projections.calls(StoreCall::CommitTransaction) >= 6,
        "seven batches of at most 4, two of them lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_commit_that_loses_a_race_counts_as_a_refusal_not_an_outage() {
    let dir = TempDir::new();
    let db = SqliteDatabase::open(dir.file("app.db")).await.unwrap();
    let (events, fold, head) = counted(&db).await;
    // Every transaction commit answers as if another node had reset the
    // projection under it: a refusal, not an outage, so the subscription
    // stops at the first one (a table batch is not tried again on top of a
    // checkpoint it did not expect) instead of waiting for the store.
    let projections = TestStore::new(SqliteProjectionStore::new(db.clone()));
    projections.inject(StoreCall::CommitTransaction, Fault::Conflict, ..);
    let mut registry = Registry::new();
    registry.register("tallies", Subscriber::table_projection(Tallies).on::<Counted>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(projections.clone())
        .lease_store(SqliteLeaseStore::new(db.clone()))
        .registry(registry)
        .config(ReadSideConfig { batch_size: 4, catch_up_batch_size: 4, ..ReadSideConfig::default() })
        .start()
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let failure = loop {
        let state = read_side.status("tallies").unwrap().state;
        if let SubscriptionState::Failed(failure) = state {
            break failure;
        }
        assert!(tokio::time::Instant::now() < deadline, "never stopped; last state {state:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    read_side.shutdown().await;
    assert!(failure.error.contains("checkpoint"), "{failure:?}");
    assert!(table(&db).await.is_empty(), "no refused transaction wrote a row");
    assert_eq!(projections.calls(StoreCall::CommitTransaction), 1, "not tried again");
    assert_eq!(failure.kind, FailureKind::Commit);

    // Without the refusals, a new run projects everything once.
    let mut registry = Registry::new();
    registry.register("tallies", Subscriber::table_projection(Tallies).on::<Counted>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events)
        .projection_store(SqliteProjectionStore::new(db.clone()))
        .lease_store(SqliteLeaseStore::new(db.clone()))
        .registry(registry)
        .start()
        .unwrap();
    read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
    read_side.shutdown().await;
    assert_eq!(table(&db).await, fold);
}
