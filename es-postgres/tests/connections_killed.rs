//! Connections killed under load: two nodes, each with a read side, on one
//! schema, while the server terminates every connection they hold, again
//! and again ([`es_core::conformance::faults`] checks what must hold of the
//! commands and of a document projection); then again during a rebuild.
//! A table projection with incremental SQL beside the documents must also
//! count every event once.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{database_url, drop_schema, fresh_schema, pool};
use es_core::conformance::faults::{self, Added, FaultReport};
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber};
use es_core::runtime::CommandPath;
use es_core::store::EventStore;
use es_core::{Es, HandlerError, ProjectRows, ReadSide, Recorded, TableProjection, TableTx};
use es_postgres::{sql_failure, PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema, PgTransaction};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// How long any bounded wait here may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(90);
/// The pause between two rounds of killing.
const KILL_EVERY: Duration = Duration::from_millis(40);
/// How long connections are killed for during the rebuild.
const REBUILD_CHAOS: Duration = Duration::from_millis(1500);

/// The table read model: `total = total + by` per event, SQL that must not
/// run twice for one event. Counts its resets.
#[derive(Clone, Default)]
struct TallyRows(Arc<AtomicUsize>);

/// The qualified name of the table `TallyRows` writes.
struct Table(String);

impl TableProjection for TallyRows {
    type Transaction = PgTransaction;
    type Batch = ();

    async fn reset(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let sql = format!("TRUNCATE {}", tx.state::<Table>()?.0);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut **tx.transaction()).await.map_err(sql_failure)?;
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl ProjectRows<Added> for TallyRows {
    async fn project(&self, e: &Recorded<Added>, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let sql = format!(
            "INSERT INTO {table} AS t (tally, total) VALUES ($1, $2)
             ON CONFLICT (tally) DO UPDATE SET total = t.total + excluded.total",
            table = tx.state::<Table>()?.0
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(e.stream_id.as_str())
            .bind(e.by)
            .execute(&mut **tx.transaction())
            .await
            .map_err(sql_failure)?;
        Ok(())
    }
}

/// A pool whose connections carry `application_name`, so the killer finds
/// them (and only them).
async fn tagged_pool(application_name: &str, max: u32) -> PgPool {
    let options: PgConnectOptions = database_url().parse().unwrap();
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.application_name(application_name))
        .await
        .unwrap()
}

fn start_read_side(pool: &PgPool, schema: &PgSchema, owner: &str, rows: TallyRows) -> ReadSide {
    let mut registry = Registry::new();
    registry.register(faults::TOTALS, faults::totals()).unwrap();
    registry
        .register("tally-rows", Subscriber::table_projection(rows).on::<Added>().uses::<Table>().build())
        .unwrap();
    ReadSide::builder()
        .event_store(PgEventStore::with_schema(pool.clone(), schema.clone()))
        .projection_store(PgProjectionStore::with_schema(pool.clone(), schema.clone()))
        .lease_store(PgLeaseStore::with_schema(pool.clone(), schema.clone()))
        .owner(owner)
        .registry(registry)
        .state(Table(format!("\"{schema}\".tallies")))
        .config(ReadSideConfig {
            batch_size: 16,
            catch_up_batch_size: 64,
            idle_wait: Duration::from_millis(100),
            lease_ttl: Duration::from_millis(600),
            lease_retry: Duration::from_millis(50),
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
            ..ReadSideConfig::default()
        })
        .start()
        .unwrap()
}

/// Terminates every backend of `application_name` every [`KILL_EVERY`]
/// while `running`; returns how many it terminated.
async fn kill_while(admin: PgPool, application_name: String, running: Arc<AtomicBool>) -> u64 {
    let mut killed = 0;
    while running.load(Ordering::SeqCst) {
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&application_name)
        .fetch_all(&admin)
        .await
        .unwrap();
        killed += ended.into_iter().filter(|ended| *ended).count() as u64;
        tokio::time::sleep(KILL_EVERY).await;
    }
    killed
}

/// Kills connections tagged `tag` until `running` is cleared; the handle
/// answers how many.
fn killer(admin: &PgPool, tag: &str) -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let running = Arc::new(AtomicBool::new(true));
    (Arc::clone(&running), tokio::spawn(kill_while(admin.clone(), tag.to_owned(), running)))
}

async fn stop(killer: (Arc<AtomicBool>, tokio::task::JoinHandle<u64>)) -> u64 {
    killer.0.store(false, Ordering::SeqCst);
    tokio::time::timeout(DEADLINE, killer.1).await.unwrap().unwrap()
}

/// Waits (bounded) until both read models reached the head, and checks
/// that they hold the report's fold.
async fn read_models_equal(
    read_sides: &[&ReadSide],
    admin: &PgPool,
    schema: &PgSchema,
    report: &FaultReport,
) {
    let (events, documents) = (
        PgEventStore::with_schema(admin.clone(), schema.clone()),
        PgProjectionStore::with_schema(admin.clone(), schema.clone()),
    );
    faults::totals_equal_the_fold(read_sides, &events, &documents, report).await;
    let head = events.head_position().await.unwrap();
    read_sides[0].wait_for("tally-rows", head, DEADLINE).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT tally, total FROM \"{schema}\".tallies")))
            .fetch_all(admin)
            .await
            .unwrap();
    let totals: BTreeMap<String, i64> =
        report.fold.iter().map(|(stream, (_, total))| (stream.to_string(), *total)).collect();
    assert_eq!(rows.into_iter().collect::<BTreeMap<_, _>>(), totals, "the table projection, each event once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_lose_no_command_store_none_twice_and_the_read_models_equal_the_fold() {
    let admin = pool(4).await;
    let schema = fresh_schema(&admin).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".tallies (tally text PRIMARY KEY, total bigint NOT NULL)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let tag = format!("es-chaos-{}", uuid::Uuid::now_v7().simple());
    let (pool_a, pool_b) = (tagged_pool(&tag, 8).await, tagged_pool(&tag, 8).await);
    // Node a keeps actors; node b reads each stream before each command.
    let node = |pool: &PgPool, path: CommandPath| {
        Es::builder()
            .event_store(PgEventStore::with_schema(pool.clone(), schema.clone()))
            .command_path(path)
            .build()
    };
    let (a, b) = (
        node(&pool_a, CommandPath::Actors).await.unwrap(),
        node(&pool_b, CommandPath::Reload).await.unwrap(),
    );
    let rows = TallyRows::default();
    let read_side = start_read_side(&pool_a, &schema, "a", rows.clone());
    // A second node's read side competes for the same leases while the
    // connections die (and with them, renewals): a batch committed under a
    // lease that moved on is refused by its fence.
    let other_read_side = start_read_side(&pool_b, &schema, "b", rows.clone());

    // Four tallies, a writer on each node for each, 50 commands per writer.
    let chaos = killer(&admin, &tag);
    let clean = PgEventStore::with_schema(admin.clone(), schema.clone());
    let report = faults::commands_ride_through_faults(&clean, &[a.clone(), b.clone()], 4, 50).await;
    let killed = stop(chaos).await;
    eprintln!(
        "killed {killed} connections; {} unknown outcomes, {} failures that stored nothing",
        report.unknown, report.nothing_stored
    );
    assert!(killed >= 10, "the test killed only {killed} connections");
    read_models_equal(&[&read_side, &other_read_side], &admin, &schema, &report).await;
    other_read_side.shutdown().await;

    // Rebuilt while connections are killed again: the pipelined catch-up
    // (a commit in flight, the next page read ahead) loses and repeats
    // nothing either.
    let resets = rows.0.load(Ordering::SeqCst);
    let chaos = killer(&admin, &tag);
    read_side.rebuild(faults::TOTALS).await.unwrap();
    read_side.rebuild("tally-rows").await.unwrap();
    tokio::time::sleep(REBUILD_CHAOS).await;
    let killed = stop(chaos).await;
    assert!(killed >= 5, "the rebuild's killer killed only {killed} connections");
    read_models_equal(&[&read_side], &admin, &schema, &report).await;
    assert!(rows.0.load(Ordering::SeqCst) > resets, "the table was reset and refilled");

    read_side.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    pool_a.close().await;
    pool_b.close().await;
    drop_schema(&admin, &schema).await;
}
