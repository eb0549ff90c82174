//! Projection rebuild throughput on Postgres, against the raw read rate of
//! the same rows.
//!
//! Stores 100,000 events (2,000 account streams of 50 deposits, appended in
//! batches of 10 per stream, round after round, so the global stream
//! interleaves the accounts) and, for a few `ReadSideConfig::batch_size`
//! values, measures:
//! - the rebuild of a `#[projection]` keeping a balance document per account
//!   (read, change, write; documents and checkpoint committed per batch to
//!   `PgProjectionStore`), from position 0 until its status reaches the
//!   head (`ReadSide::rebuild`, then `ReadSide::wait_for`);
//! - `EventStore::read_all` over the same events in pages of the batch size;
//! - the ceiling: a plain `SELECT .. ORDER BY global_position LIMIT <batch>`
//!   through sqlx, paging by position, decoding nothing, and decoding the
//!   payload JSON only.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_rebuild`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

use std::time::{Duration, Instant};

use es_benchmarks::pg::{admin_pool, analyze, database_url, drop_schema, fresh_schema, pool, server};
use es_benchmarks::{rate, run_writers};
use es_core::{
    event, projection, Event, EventStore, ExpectedVersion, GlobalPosition, HandlerError, NewEvent, Project,
    ProjectionStore, ProjectionTx, ReadSide, ReadSideConfig, Recorded, Selection, StreamId, StreamVersion,
};
use es_postgres::{PgEventStore, PgProjectionStore, PgSchema};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Row};

/// Account streams.
const STREAMS: usize = 2_000;
/// Events per stream.
const EVENTS_PER_STREAM: usize = 50;
/// Events per append.
const APPEND_BATCH: usize = 10;
/// Concurrent appenders while storing.
const APPENDERS: usize = 8;
/// The `ReadSideConfig::batch_size` values tried (and the raw page sizes).
const BATCH_SIZES: [usize; 3] = [100, 256, 1000];
/// The projection's name.
const BALANCES: &str = "bench-balances";

/// Money came in.
#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyDeposited {
    account: String,
    amount: u64,
    reference: Option<String>,
}

/// One account's balance document.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Balance {
    balance: u64,
    deposits: u64,
}

/// Keeps a [`Balance`] per account.
#[projection(name = "bench-balances", events(MoneyDeposited))]
#[derive(Debug, Default)]
struct Balances;

impl Project<MoneyDeposited> for Balances {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let mut balance: Balance = tx.get(&e.account).await?.unwrap_or_default();
        balance.balance += e.amount;
        balance.deposits += 1;
        tx.put(e.account.clone(), &balance)?;
        Ok(())
    }
}

fn account(stream: usize) -> String {
    format!("acc-{stream:05}")
}

/// Deposit `n` (0-based) of account `stream`: amount `n + 1`.
fn deposit(stream: usize, n: usize) -> NewEvent {
    NewEvent::new(
        "account",
        MoneyDeposited::TYPE,
        1,
        serde_json::json!({
            "account": account(stream),
            "amount": n + 1,
            "reference": format!("ref-{stream:05}-{n:04}"),
        }),
    )
}

/// Stores every event: round `r` appends events `r*10 .. r*10+10` of every
/// stream, `APPENDERS` appenders sharing the streams.
async fn store_events(store: &PgEventStore) -> anyhow::Result<()> {
    let rounds = EVENTS_PER_STREAM / APPEND_BATCH;
    for round in 0..rounds {
        let store = store.clone();
        run_writers(APPENDERS, STREAMS / APPENDERS, APPEND_BATCH, move |w, i| {
            let store = store.clone();
            let stream_no = i * APPENDERS + w;
            async move {
                let stream = StreamId::for_aggregate("account", &account(stream_no));
                let expected = match round {
                    0 => ExpectedVersion::NoStream,
                    r => ExpectedVersion::Exact(StreamVersion((r * APPEND_BATCH) as u64)),
                };
                let first = round * APPEND_BATCH;
                let events = (first..first + APPEND_BATCH).map(|n| deposit(stream_no, n)).collect();
                store.append(&stream, expected, events).await?;
                Ok(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Rebuilds the projection with `batch_size` and returns the time from the
/// rebuild call until its status reaches `head`.
async fn rebuild(
    store: &PgEventStore,
    projections: &PgProjectionStore,
    batch_size: usize,
    head: GlobalPosition,
) -> anyhow::Result<Duration> {
    let read_side = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(projections.clone())
        .select(Selection::names([BALANCES]))
        .config(ReadSideConfig { batch_size, ..ReadSideConfig::default() })
        .build()?;
    let started = Instant::now();
    read_side.rebuild(BALANCES).await?;
    read_side.wait_for(BALANCES, head, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    read_side.shutdown().await;
    // The fold must be right: account 0 got 1 + 2 + .. + 50.
    let doc = projections
        .get(BALANCES, &account(0))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no balance for {}", account(0)))?;
    let balance: Balance = serde_json::from_value(doc)?;
    let n = EVENTS_PER_STREAM as u64;
    anyhow::ensure!(
        balance == Balance { balance: n * (n + 1) / 2, deposits: n },
        "wrong balance after rebuild: {balance:?}"
    );
    Ok(elapsed)
}

/// `read_all` over every event in pages of `page`; returns the time and
/// the number of events read.
async fn read_all(store: &PgEventStore, page: usize) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut after = GlobalPosition::START;
    let mut count = 0u64;
    loop {
        let events = store.read_all(after, page).await?;
        let Some(last) = events.last() else { break };
        after = last.global_position;
        count += events.len() as u64;
    }
    Ok((started.elapsed(), count))
}

/// The same rows through a plain query, paged by position; `decode`: also
/// parse each payload into a JSON value.
async fn raw_read(pool: &PgPool, schema: &PgSchema, page: usize, decode: bool) -> anyhow::Result<(Duration, u64)> {
    let sql = format!(
        "SELECT global_position, event_id, stream_id, stream_version, aggregate_type, event_type,
                schema_version, payload, metadata, recorded_at
         FROM {schema}.events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
    );
    let started = Instant::now();
    let mut after = 0i64;
    let mut count = 0u64;
    let mut amounts = 0u64;
    loop {
        let rows =
            sqlx::query(AssertSqlSafe(sql.as_str())).bind(after).bind(page as i64).fetch_all(pool).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("global_position")?;
        count += rows.len() as u64;
        if decode {
            for row in &rows {
                let Json(payload): Json<serde_json::Value> = row.try_get("payload")?;
                amounts += payload["amount"].as_u64().unwrap_or(0);
            }
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(!decode || amounts > 0, "decoded no amounts");
    Ok((elapsed, count))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = database_url();
    let admin = admin_pool(&url).await?;
    let schema = fresh_schema(&admin).await?;
    let (server, sync) = server(&admin).await?;
    println!("pg_rebuild: Postgres {server} (synchronous_commit = {sync}), schema {schema}");

    let pool = pool(&url, APPENDERS as u32 + 2).await?;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    let projections = PgProjectionStore::with_schema(pool.clone(), schema.clone());
    let total = (STREAMS * EVENTS_PER_STREAM) as u64;
    let started = Instant::now();
    store_events(&store).await?;
    let stored = started.elapsed();
    analyze(&admin, &schema, "events").await?;
    let head = store.head_position().await?;
    println!(
        "stored {total} events ({STREAMS} streams, appends of {APPEND_BATCH}, {APPENDERS} appenders) in {:.1} s ({:.0} events/s); head {head}",
        stored.as_secs_f64(),
        rate(total, stored)
    );
    // Warm the cache and the connections: one full pass over the rows.
    raw_read(&pool, &schema, 1000, false).await?;

    println!("projection rebuild from position 0 to the head, against reads of the same rows");
    println!(
        "{:>6} | {:>14} | {:>14} | {:>14} | {:>14} | {:>11} | {:>11}",
        "batch", "rebuild", "read_all", "raw, no decode", "raw, JSON", "rebuild/raw", "rebuild/JSON"
    );
    for batch in BATCH_SIZES {
        let took = rebuild(&store, &projections, batch, head).await?;
        let (read_time, read_count) = read_all(&store, batch).await?;
        let (raw_time, raw_count) = raw_read(&pool, &schema, batch, false).await?;
        let (json_time, json_count) = raw_read(&pool, &schema, batch, true).await?;
        anyhow::ensure!(
            read_count == total && raw_count == total && json_count == total,
            "read {read_count} / {raw_count} / {json_count} events, stored {total}"
        );
        let (rebuilt, raw, json) = (rate(total, took), rate(raw_count, raw_time), rate(json_count, json_time));
        println!(
            "{:>6} | {:>12.0}/s | {:>12.0}/s | {:>12.0}/s | {:>12.0}/s | {:>10.1}% | {:>10.1}%",
            batch,
            rebuilt,
            rate(read_count, read_time),
            raw,
            json,
            100.0 * rebuilt / raw,
            100.0 * rebuilt / json
        );
    }

    pool.close().await;
    drop_schema(&admin, &schema).await?;
    Ok(())
}
