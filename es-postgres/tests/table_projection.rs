//! Table projections on Postgres: a projection writing the application's
//! own table in the transaction that stores its checkpoint. Killed and
//! restarted it counts every event once, a rebuild resets and refills the
//! table, a failing event commits what went before it and is retried
//! alone, a stale fence writes nothing, a commit that landed before its
//! reply was lost is not applied again, and state a projection uses must be
//! given when the read side is built.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{drop_schema, fresh_schema, pool};
use es_core::error::{ProjectionError, ReadSideError};
use es_core::readside::{ReadSideBuilder, ReadSideConfig, Registry, RetryPolicy, Subscriber};
use es_core::store::{
    Checkpoint, EventStore, ExpectedVersion, Fence, LeaseStore, NewEvent, ProjectionTransactions, UnitOfWork,
};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{event, Event, GlobalPosition, HandlerError, ProjectRows, ReadSide, Recorded, StreamId};
use es_core::{TableProjection, TableTx};
use es_postgres::{sql_failure, PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema, PgTransaction};
use sqlx::PgPool;
use tokio::sync::Notify;

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Something was added to a tally (appended raw: no aggregate lists it).
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Counted {
    amount: i64,
}

/// The stores of one test in its own schema, with the application's table
/// `tallies (tally, events, total)` made by "its own migration".
struct Db {
    pool: PgPool,
    schema: PgSchema,
    events: PgEventStore,
    projections: PgProjectionStore,
    leases: PgLeaseStore,
}

impl Db {
    async fn new() -> Self {
        let pool = pool(8).await;
        let schema = fresh_schema(&pool).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"{schema}\".tallies (tally text PRIMARY KEY, events bigint NOT NULL, total bigint NOT NULL)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        Self {
            events: PgEventStore::with_schema(pool.clone(), schema.clone()),
            projections: PgProjectionStore::with_schema(pool.clone(), schema.clone()),
            leases: PgLeaseStore::with_schema(pool.clone(), schema.clone()),
            pool,
            schema,
        }
    }

    /// The stores of another node on the same database: its own pool.
    async fn other_node(&self) -> Self {
        let pool = pool(4).await;
        let schema = self.schema.clone();
        Self {
            events: PgEventStore::with_schema(pool.clone(), schema.clone()),
            projections: PgProjectionStore::with_schema(pool.clone(), schema.clone()),
            leases: PgLeaseStore::with_schema(pool.clone(), schema.clone()),
            pool,
            schema,
        }
    }

    fn read_side(&self, owner: &str, tallies: Tallies, lease_ttl: Duration) -> ReadSideBuilder {
        let mut registry = Registry::new();
        registry.register("tallies", tallies.subscriber()).unwrap();
        ReadSide::builder()
            .event_store(self.events.clone())
            .projection_store(self.projections.clone())
            .lease_store(self.leases.clone())
            .owner(owner)
            .registry(registry)
            .state(Table(format!("\"{}\".tallies", self.schema)))
            .config(ReadSideConfig {
                batch_size: 8,
                catch_up_batch_size: 8,
                idle_wait: Duration::from_millis(200),
                lease_ttl,
                lease_retry: Duration::from_millis(20),
                store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
                ..ReadSideConfig::default()
            })
    }

    /// Appends one `Counted` per amount to `tally-<tally>`, round robin over
    /// four tallies; returns the last position and the fold per tally.
    async fn add(
        &self,
        amounts: impl IntoIterator<Item = i64>,
    ) -> (GlobalPosition, BTreeMap<String, (i64, i64)>) {
        let mut last = GlobalPosition::START;
        let mut fold = BTreeMap::<String, (i64, i64)>::new();
        for (i, amount) in amounts.into_iter().enumerate() {
            let tally = format!("tally-{}", i % 4);
            let event = NewEvent::new("tally", Counted::TYPE, 1, serde_json::json!({ "amount": amount }));
            let stream = StreamId::new(tally.clone());
            last = self
                .events
                .append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap()
                .last_position()
                .unwrap();
            let entry = fold.entry(tally).or_default();
            entry.0 += 1;
            entry.1 += amount;
        }
        (last, fold)
    }

    /// The application's table, as plain SQL reads it.
    async fn table(&self) -> BTreeMap<String, (i64, i64)> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT tally, events, total FROM \"{}\".tallies",
            self.schema
        )))
        .fetch_all(&self.pool)
        .await
        .unwrap();
        rows.into_iter().map(|(tally, events, total)| (tally, (events, total))).collect()
    }

    async fn drop(self) {
        drop_schema(&self.pool, &self.schema).await;
    }
}

/// The qualified name of the tallies table: state the projection uses.
struct Table(String);

/// Counts events and sums amounts per tally: gathers one row per tally over
/// a batch and writes them in one `INSERT … ON CONFLICT DO UPDATE`.
#[derive(Clone, Default)]
struct Tallies {
    projected: Arc<AtomicUsize>,
    resets: Arc<AtomicUsize>,
    /// Fail the first try at the event with this amount.
    fail_once_at: Option<i64>,
    failed: Arc<AtomicBool>,
    /// Block at the event with this amount until `gate` is opened.
    block_at: Option<i64>,
    blocked: Arc<AtomicBool>,
    gate: Arc<Notify>,
}

impl Tallies {
    fn subscriber(&self) -> Subscriber {
        Subscriber::table_projection(self.clone())
            .on::<Counted>()
            .uses::<Table>()
            .build()
            .retry(RetryPolicy::new(5, Duration::from_millis(5)))
    }
}

impl TableProjection for Tallies {
    type Transaction = PgTransaction;
    type Batch = BTreeMap<String, (i64, i64)>;

    async fn reset(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let table = &tx.state::<Table>()?.0;
        let sql = format!("TRUNCATE {table}");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut **tx.transaction()).await.map_err(sql_failure)?;
        self.resets.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn flush(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let sql = format!(
            "INSERT INTO {table} (tally, events, total) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])
             ON CONFLICT (tally) DO UPDATE SET events = {table}.events + excluded.events, total = {table}.total + excluded.total",
            table = tx.state::<Table>()?.0
        );
        let (rows, transaction) = tx.take_batch();
        if rows.is_empty() {
            return Ok(());
        }
        let (tallies, counts): (Vec<String>, Vec<(i64, i64)>) = rows.into_iter().unzip();
        let (events, totals): (Vec<i64>, Vec<i64>) = counts.into_iter().unzip();
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tallies)
            .bind(events)
            .bind(totals)
            .execute(&mut **transaction)
            .await
            .map_err(sql_failure)?;
        Ok(())
    }
}

impl ProjectRows<Counted> for Tallies {
    async fn project(&self, e: &Recorded<Counted>, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        if self.fail_once_at == Some(e.amount) && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(HandlerError::msg("the first try at this event fails"));
        }
        if self.block_at == Some(e.amount) {
            self.blocked.store(true, Ordering::SeqCst);
            self.gate.notified().await;
        }
        self.projected.fetch_add(1, Ordering::SeqCst);
        let row = tx.batch().entry(e.stream_id.to_string()).or_default();
        row.0 += 1;
        row.1 += e.amount;
        Ok(())
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_equals_the_fold_and_a_rebuild_resets_and_refills_it() {
    let db = Db::new().await;
    let (head, fold) = db.add(1..=30).await;
    let tallies = Tallies::default();
    let read_side = db.read_side("a", tallies.clone(), Duration::from_secs(30)).start().unwrap();
    read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
    assert_eq!(db.table().await, fold);
    assert_eq!(tallies.projected.load(Ordering::SeqCst), 30);

    // Rows written by hand are gone after the rebuild: the reset ran.
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO \"{}\".tallies VALUES ('stray', 1, 1)", db.schema)))
        .execute(&db.pool)
        .await
        .unwrap();
    read_side.rebuild("tallies").await.unwrap();
    read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
    assert_eq!(tallies.resets.load(Ordering::SeqCst), 1);
    assert_eq!(db.table().await, fold, "reset and refilled, nothing counted twice");
    assert_eq!(tallies.projected.load(Ordering::SeqCst), 60);

    // Live events go on from there.
    let (later, more) = db.add([100]).await;
    read_side.wait_for("tallies", later, DEADLINE).await.unwrap();
    let mut expected = fold;
    let (tally, row) = more.into_iter().next().unwrap();
    let entry = expected.entry(tally).or_default();
    entry.0 += row.0;
    entry.1 += row.1;
    assert_eq!(db.table().await, expected);
    read_side.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_landed_before_its_reply_was_lost_is_not_applied_again() {
    let db = Db::new().await;
    let (head, fold) = db.add(1..=30).await;
    // Transactions 2 and 3 commit, then the adapter panics, as when the
    // reply to COMMIT is lost; begin 5 fails before anything is written.
    let projections = TestStore::new(db.projections.clone());
    projections.inject(StoreCall::CommitTransaction, Fault::PanicAfter, 2..=3);
    projections.inject(StoreCall::Begin, Fault::Backend, 5..=5);
    let tallies = Tallies::default();
    let read_side = db
        .read_side("a", tallies.clone(), Duration::from_secs(30))
        .projection_store(projections.clone())
        .start()
        .unwrap();
    read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
    read_side.shutdown().await;
    assert_eq!(db.table().await, fold, "every event counted once");
    assert!(projections.calls(StoreCall::CommitTransaction) >= 4, "four batches of at most 8");
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_after_a_checkpoint_that_moved_is_rolled_back_whole() {
    let db = Db::new().await;
    let insert = format!("INSERT INTO \"{}\".tallies VALUES ('t', 1, 1)", db.schema);
    let commit_after = |after: u64, position: u64| {
        let mut work = UnitOfWork::new();
        work.checkpoint(Checkpoint::at(GlobalPosition(position))).after(GlobalPosition(after));
        work
    };
    // Nothing stored counts as the start.
    let mut tx = db.projections.begin("tallies", None).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
        .execute(&mut **tx.downcast_mut::<PgTransaction>().unwrap())
        .await
        .unwrap();
    ProjectionTransactions::commit(&db.projections, tx, "tallies", commit_after(0, 7)).await.unwrap();
    assert_eq!(db.table().await.len(), 1);

    // A retry of that work (built on the start) finds 7 stored: refused,
    // its SQL rolled back.
    let mut tx = db.projections.begin("tallies", None).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE \"{}\".tallies SET events = events + 1", db.schema)))
        .execute(&mut **tx.downcast_mut::<PgTransaction>().unwrap())
        .await
        .unwrap();
    let refused = ProjectionTransactions::commit(&db.projections, tx, "tallies", commit_after(0, 7)).await;
    assert!(
        matches!(
            &refused,
            Err(ProjectionError::CheckpointMoved {
                expected: Some(GlobalPosition(0)),
                actual: Some(GlobalPosition(7)),
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(db.table().await, BTreeMap::from([("t".to_owned(), (1, 1))]), "nothing of it stored");
    let stored = es_core::store::ProjectionStore::checkpoint(&db.projections, "tallies").await.unwrap();
    assert_eq!(stored.map(|c| c.position), Some(GlobalPosition(7)));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_commits_the_events_before_it_and_is_retried_alone() {
    let db = Db::new().await;
    let (head, fold) = db.add(1..=20).await;
    // 11 is the third event of the second batch of eight.
    let tallies = Tallies { fail_once_at: Some(11), ..Tallies::default() };
    let read_side = db.read_side("a", tallies.clone(), Duration::from_secs(30)).start().unwrap();
    read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
    assert!(tallies.failed.load(Ordering::SeqCst), "the event failed once");
    assert_eq!(db.table().await, fold, "every event counted once");
    read_side.shutdown().await;
    db.drop().await;
}

#[test]
fn a_node_killed_between_batches_and_restarted_counts_every_event_once() {
    let main = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let db = main.block_on(Db::new());
    let (head, fold) = main.block_on(db.add(1..=40));

    // Node a, on a runtime of its own, commits some batches and then stops
    // in the middle of one (at the event with amount 21, the fifth of the
    // third batch), its transaction open; then its runtime is dropped: a
    // crash, as far as the database can tell.
    let a = Tallies { block_at: Some(21), ..Tallies::default() };
    let node = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let node_db = node.block_on(db.other_node());
    let lease_ttl = Duration::from_millis(500);
    let read_side = {
        let _entered = node.enter();
        node_db.read_side("a", a.clone(), lease_ttl).start().unwrap()
    };
    main.block_on(wait_until("node a is stuck mid-batch", || a.blocked.load(Ordering::SeqCst)));
    let committed = main.block_on(db.table());
    assert_eq!(committed.values().map(|(events, _)| events).sum::<i64>(), 16, "two batches committed");
    // Its tasks and connections die with it: the server ends its open
    // transaction when the connection closes.
    node.shutdown_background();
    drop(read_side);
    drop(node_db);

    // Node b takes over once a's lease expires, from a's checkpoint.
    let b = Tallies::default();
    main.block_on(async {
        let read_side = db.read_side("b", b.clone(), lease_ttl).start().unwrap();
        read_side.wait_for("tallies", head, DEADLINE).await.unwrap();
        assert_eq!(db.table().await, fold, "every event counted once");
        assert_eq!(b.projected.load(Ordering::SeqCst), 24, "b projected what a had not committed");
        read_side.shutdown().await;
        db.drop().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_under_a_lost_lease_is_refused_before_anything_is_written() {
    let db = Db::new().await;
    let short = Duration::from_millis(50);
    let stale = db.leases.try_acquire("tallies", "a", short).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let current = loop {
        if let Some(lease) = db.leases.try_acquire("tallies", "b", Duration::from_secs(30)).await.unwrap() {
            break lease;
        }
        assert!(tokio::time::Instant::now() < deadline, "a's lease never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let refused = db.projections.begin("tallies", Some(&Fence::new("tallies", stale.token))).await;
    assert!(matches!(refused, Err(ProjectionError::Fenced { .. })), "a's transaction is refused");

    // The holder's transaction carries its SQL and its checkpoint together.
    let tx = db.projections.begin("tallies", Some(&Fence::new("tallies", current.token))).await.unwrap();
    let mut tx = *tx.downcast::<PgTransaction>().unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO \"{}\".tallies VALUES ('t', 1, 5)", db.schema)))
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut work = es_core::store::UnitOfWork::new();
    work.checkpoint(es_core::store::Checkpoint::at(GlobalPosition(7)));
    db.projections.commit(Box::new(tx), "tallies", work).await.unwrap();
    assert_eq!(db.table().await, BTreeMap::from([("t".to_owned(), (1, 5))]));
    let checkpoint = es_core::store::ProjectionStore::checkpoint(&db.projections, "tallies").await.unwrap();
    assert_eq!(checkpoint.map(|c| c.position), Some(GlobalPosition(7)));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_a_projection_uses_must_be_given_when_the_read_side_is_built() {
    let db = Db::new().await;
    let mut registry = Registry::new();
    registry.register("tallies", Tallies::default().subscriber()).unwrap();
    let built = ReadSide::builder()
        .event_store(db.events.clone())
        .projection_store(db.projections.clone())
        .registry(registry)
        .build();
    match built {
        Err(error @ ReadSideError::MissingState { .. }) => {
            let message = error.to_string();
            assert!(message.contains("`tallies`") && message.contains("Table"), "{message}");
        }
        other => panic!("expected a missing-state error, got {other:?}"),
    }
    db.drop().await;
}
