//! Connections killed under load: two nodes, each with a read side, on one
//! schema, while the server terminates every connection they hold, again
//! and again.
//!
//! Every command ends stored exactly once (a failed one is executed again
//! with its command id until it answers), an error that says nothing was
//! stored stored nothing, stream versions stay gap-free, the aggregates
//! load to the fold of what was acknowledged, and both read models (a
//! document projection and a table projection with incremental SQL) equal
//! that fold once the connections are left alone, also after a rebuild
//! under the same treatment.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{database_url, drop_schema, fresh_schema, pool};
use es_core::error::ExecuteError;
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState};
use es_core::store::{DocumentQuery, EventStore, ProjectionStore};
use es_core::{command, event, Aggregate, Apply, CommandId, Es, Events, Handle, ProjectRows, ReadSide};
use es_core::{HandlerError, Project, ProjectionTx, Recorded, TableProjection, TableTx};
use es_postgres::{sql_failure, PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema, PgTransaction};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// How long any bounded wait here may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(90);
/// How long connections are killed for.
const CHAOS: Duration = Duration::from_secs(3);
/// The pause between two rounds of killing.
const KILL_EVERY: Duration = Duration::from_millis(40);
/// Writers, two per tally (one on each node, so they also race).
const WRITERS: usize = 8;
/// The most commands one writer sends.
const MAX_COMMANDS: usize = 400;
/// The most tries of one command before the test gives up on it.
const MAX_TRIES: usize = 500;

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Added {
    by: i64,
}

#[command(aggregate = Tally)]
#[derive(Debug, Clone)]
struct Add {
    #[id]
    id: String,
    by: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("never refused")]
struct Never;

#[derive(Aggregate, Debug, Default, serde::Serialize, serde::Deserialize)]
#[aggregate(name = "chaos_tally", error = Never, events(Added), commands(Add))]
struct Tally {
    total: i64,
}

impl Handle<Add> for Tally {
    fn handle(&self, command: Add) -> Result<Events<Self>, Never> {
        Ok(Events::one(Added { by: command.by }))
    }
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.by;
    }
}

/// The document read model: a tally's total, read, changed and put back.
struct TallyDocs;

impl Project<Added> for TallyDocs {
    async fn project(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = e.stream_id.to_string();
        let total: i64 = tx.get(&id).await?.unwrap_or(0);
        tx.put(id, &(total + e.by))?;
        Ok(())
    }
}

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

async fn node(pool: &PgPool, schema: &PgSchema) -> Es {
    Es::builder().event_store(PgEventStore::with_schema(pool.clone(), schema.clone())).build().await.unwrap()
}

fn start_read_side(pool: &PgPool, schema: &PgSchema, owner: &str, rows: TallyRows) -> ReadSide {
    let mut registry = Registry::new();
    registry.register("tally-docs", Subscriber::projection(TallyDocs).on::<Added>().build()).unwrap();
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

/// How many events the command `id` stored (its events carry it as their
/// causation id).
async fn stored_by(admin: &PgPool, schema: &PgSchema, id: CommandId) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".events WHERE metadata->>'causation_id' = $1"
    )))
    .bind(id.to_string())
    .fetch_one(admin)
    .await
    .unwrap()
}

/// What one writer saw.
#[derive(Default)]
struct Written {
    /// Acknowledged commands: (tally, amount).
    acknowledged: Vec<(String, i64)>,
    /// Failures that may have stored something, and those that say not.
    unknown: u64,
    nothing_stored: u64,
}

/// Sends `Add` commands to `tally` until `running` ends (at most
/// [`MAX_COMMANDS`]), each executed again with its id until it answers.
/// After a failure that says nothing was stored, checks that this try
/// stored nothing.
async fn write(es: Es, admin: PgPool, schema: PgSchema, tally: String, running: Arc<AtomicBool>) -> Written {
    let mut written = Written::default();
    for n in 0..MAX_COMMANDS {
        if !running.load(Ordering::SeqCst) {
            break;
        }
        let by = i64::try_from(n % 7).unwrap() + 1;
        let id = CommandId::new();
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(tries <= MAX_TRIES, "command {id} on {tally} never answered");
            // An earlier try may have stored it (its outcome unknown).
            let before = stored_by(&admin, &schema, id).await;
            match es.execute(Add { id: tally.clone(), by }).id(id).await {
                Ok(_) => break,
                Err(ExecuteError::OutcomeUnknown { .. }) => written.unknown += 1,
                Err(
                    error @ (ExecuteError::Load(_)
                    | ExecuteError::Append(_)
                    | ExecuteError::Conflict { .. }
                    | ExecuteError::Timeout { .. }),
                ) => {
                    written.nothing_stored += 1;
                    let after = stored_by(&admin, &schema, id).await;
                    assert_eq!(after, before, "`{error}` says this try stored nothing");
                }
                Err(other) => panic!("command {id} on {tally}: {other}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        written.acknowledged.push((tally.clone(), by));
    }
    written
}

/// Waits (bounded) until both read models reached the head, and checks
/// that they hold `totals`.
async fn read_models_equal(
    read_side: &ReadSide,
    admin: &PgPool,
    schema: &PgSchema,
    totals: &BTreeMap<String, i64>,
) {
    let head = PgEventStore::with_schema(admin.clone(), schema.clone()).head_position().await.unwrap();
    for name in ["tally-docs", "tally-rows"] {
        read_side.wait_for(name, head, DEADLINE).await.unwrap();
        let state = read_side.status(name).unwrap().state;
        assert!(!matches!(state, SubscriptionState::Failed(_)), "{name}: {state:?}");
    }
    let docs: BTreeMap<String, i64> = PgProjectionStore::with_schema(admin.clone(), schema.clone())
        .query("tally-docs", &DocumentQuery::all())
        .await
        .unwrap()
        .into_iter()
        .map(|(id, doc)| (id, serde_json::from_value(doc).unwrap()))
        .collect();
    let rows: Vec<(String, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT tally, total FROM \"{schema}\".tallies")))
            .fetch_all(admin)
            .await
            .unwrap();
    assert_eq!(&docs, totals, "the document projection");
    assert_eq!(
        &rows.into_iter().collect::<BTreeMap<_, _>>(),
        totals,
        "the table projection, each event once"
    );
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
    let (a, b) = (node(&pool_a, &schema).await, node(&pool_b, &schema).await);
    let rows = TallyRows::default();
    let read_side = start_read_side(&pool_a, &schema, "a", rows.clone());
    // A second node's read side competes for the same leases while the
    // connections die (and with them, renewals): a batch committed under a
    // lease that moved on is refused by its fence.
    let other_read_side = start_read_side(&pool_b, &schema, "b", rows.clone());

    let running = Arc::new(AtomicBool::new(true));
    let killer = tokio::spawn(kill_while(admin.clone(), tag.clone(), Arc::clone(&running)));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let es = if w % 2 == 0 { a.clone() } else { b.clone() };
            let tally = format!("tally-{}", w / 2);
            tokio::spawn(write(es, admin.clone(), schema.clone(), tally, Arc::clone(&running)))
        })
        .collect();
    tokio::time::sleep(CHAOS).await;
    running.store(false, Ordering::SeqCst);
    let killed = tokio::time::timeout(DEADLINE, killer).await.unwrap().unwrap();
    other_read_side.shutdown().await;
    let mut fold = BTreeMap::<String, (i64, i64)>::new();
    let (mut unknown, mut nothing_stored) = (0, 0);
    for writer in writers {
        let written = tokio::time::timeout(DEADLINE, writer).await.unwrap().unwrap();
        unknown += written.unknown;
        nothing_stored += written.nothing_stored;
        for (tally, by) in written.acknowledged {
            let entry = fold.entry(tally).or_default();
            entry.0 += 1;
            entry.1 += by;
        }
    }
    eprintln!("killed {killed} connections; {unknown} unknown outcomes, {nothing_stored} failures that stored nothing");
    assert!(killed >= 10, "the test killed only {killed} connections");

    // Exactly one event per acknowledged command, versions without gaps.
    let streams: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT stream_id, count(*), max(stream_version) FROM \"{schema}\".events GROUP BY stream_id"
    )))
    .fetch_all(&admin)
    .await
    .unwrap();
    let stored: BTreeMap<String, (i64, i64)> =
        streams.into_iter().map(|(stream, count, max)| (stream, (count, max))).collect();
    let expected: BTreeMap<String, (i64, i64)> =
        fold.iter().map(|(tally, (count, _))| (format!("chaos_tally-{tally}"), (*count, *count))).collect();
    assert_eq!(stored, expected, "events and last version per stream");
    let twice: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM (SELECT 1 FROM \"{schema}\".events GROUP BY metadata->>'causation_id' HAVING count(*) > 1) t"
    )))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(twice, 0, "no command stored twice");

    // The aggregates, and both read models, equal the fold.
    for (tally, (_, total)) in &fold {
        assert_eq!(a.load::<Tally>(tally).await.unwrap().total, *total, "{tally} on node a");
        assert_eq!(b.load::<Tally>(tally).await.unwrap().total, *total, "{tally} on node b");
    }
    let totals: BTreeMap<String, i64> =
        fold.iter().map(|(tally, (_, total))| (format!("chaos_tally-{tally}"), *total)).collect();
    read_models_equal(&read_side, &admin, &schema, &totals).await;

    // Rebuilt while connections are killed again: the pipelined catch-up
    // (a commit in flight, the next page read ahead) loses and repeats
    // nothing either.
    let resets = rows.0.load(Ordering::SeqCst);
    let running = Arc::new(AtomicBool::new(true));
    let killer = tokio::spawn(kill_while(admin.clone(), tag.clone(), Arc::clone(&running)));
    read_side.rebuild("tally-docs").await.unwrap();
    read_side.rebuild("tally-rows").await.unwrap();
    tokio::time::sleep(CHAOS / 2).await;
    running.store(false, Ordering::SeqCst);
    let killed = tokio::time::timeout(DEADLINE, killer).await.unwrap().unwrap();
    assert!(killed >= 5, "the rebuild's killer killed only {killed} connections");
    read_models_equal(&read_side, &admin, &schema, &totals).await;
    assert!(rows.0.load(Ordering::SeqCst) > resets, "the table was reset and refilled");

    read_side.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    pool_a.close().await;
    pool_b.close().await;
    drop_schema(&admin, &schema).await;
}
