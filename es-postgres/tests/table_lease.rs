//! A table projection's batch slower than the lease's TTL keeps the lease:
//! the runner renews it while the batch runs (the batch's fence locks the
//! lease's row against a takeover, not against a renewal), so another node
//! never takes the projection over under it or right after it.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{drop_schema, fresh_schema, pool};
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber};
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{event, Event, GlobalPosition, HandlerError, ProjectRows, ReadSide, Recorded, StreamId};
use es_core::{TableProjection, TableTx};
use es_postgres::{sql_failure, PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema, PgTransaction};
use sqlx::PgPool;

const DEADLINE: Duration = Duration::from_secs(30);
const LEASE_TTL: Duration = Duration::from_millis(300);
const EVENTS: i64 = 12;
/// Per event: the batch of all [`EVENTS`] takes more than twice the TTL.
const DELAY: Duration = Duration::from_millis(60);

/// Something ticked (appended raw: no aggregate lists it).
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Ticked {
    n: i64,
}

/// The qualified name of the table `Ticks` writes.
struct Table(String);

/// Writes a row per event into `ticks (n)` (a second row for one event
/// would break the primary key), taking [`DELAY`] per event.
struct Ticks;

impl TableProjection for Ticks {
    type Transaction = PgTransaction;
    type Batch = ();

    async fn reset(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let sql = format!("TRUNCATE {}", tx.state::<Table>()?.0);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut **tx.transaction()).await.map_err(sql_failure)?;
        Ok(())
    }
}

impl ProjectRows<Ticked> for Ticks {
    async fn project(&self, e: &Recorded<Ticked>, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        tokio::time::sleep(DELAY).await;
        let sql = format!("INSERT INTO {} (n) VALUES ($1)", tx.state::<Table>()?.0);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(e.n)
            .execute(&mut **tx.transaction())
            .await
            .map_err(sql_failure)?;
        Ok(())
    }
}

/// A fresh schema with the `ticks` table and [`EVENTS`] events; returns
/// the head.
async fn ticked(pool: &PgPool) -> (PgSchema, GlobalPosition) {
    let schema = fresh_schema(pool).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE TABLE \"{schema}\".ticks (n bigint PRIMARY KEY)")))
        .execute(pool)
        .await
        .unwrap();
    let events = PgEventStore::with_schema(pool.clone(), schema.clone());
    let mut head = GlobalPosition::START;
    for n in 0..EVENTS {
        let event = NewEvent::new("ticker", Ticked::TYPE, 1, serde_json::json!({ "n": n }));
        let stored =
            events.append(&StreamId::new("ticker-1"), ExpectedVersion::Any, vec![event]).await.unwrap();
        head = stored.last_position().unwrap();
    }
    (schema, head)
}

/// A read side of `owner` running `Ticks` in one batch for all events.
fn read_side(pool: &PgPool, schema: &PgSchema, owner: &str) -> ReadSide {
    let mut registry = Registry::new();
    registry
        .register("ticks", Subscriber::table_projection(Ticks).on::<Ticked>().uses::<Table>().build())
        .unwrap();
    ReadSide::builder()
        .event_store(PgEventStore::with_schema(pool.clone(), schema.clone()))
        .projection_store(PgProjectionStore::with_schema(pool.clone(), schema.clone()))
        .lease_store(PgLeaseStore::with_schema(pool.clone(), schema.clone()))
        .owner(owner)
        .registry(registry)
        .state(Table(format!("\"{schema}\".ticks")))
        .config(ReadSideConfig {
            batch_size: EVENTS as usize,
            catch_up_batch_size: EVENTS as usize,
            lease_ttl: LEASE_TTL,
            lease_retry: Duration::from_millis(20),
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
            ..ReadSideConfig::default()
        })
        .start()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_slower_than_the_lease_keeps_it_and_no_other_node_takes_over() {
    let pool = pool(8).await;
    let (schema, head) = ticked(&pool).await;
    let a = read_side(&pool, &schema, "a");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !a.status("ticks").unwrap().state.is_active() {
        assert!(tokio::time::Instant::now() < deadline, "node a never took the lease");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b = read_side(&pool, &schema, "b");
    // Watched until a while after node a's batch committed: node b's bid
    // for the lease waits on the row the batch's fence check locked, and
    // is decided when the batch ends.
    let mut reached_at = None;
    while reached_at.is_none_or(|at: tokio::time::Instant| at.elapsed() < 2 * LEASE_TTL) {
        assert!(tokio::time::Instant::now() < deadline, "node a never reached the head");
        let state = b.status("ticks").unwrap().state;
        assert!(!state.is_active(), "node b took over from node a, whose batch ran past the TTL: {state:?}");
        if reached_at.is_none() && a.status("ticks").unwrap().position >= head {
            reached_at = Some(tokio::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rows: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM \"{schema}\".ticks")))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rows, EVENTS, "each event once");
    a.shutdown().await;
    b.shutdown().await;
    drop_schema(&pool, &schema).await;
}
