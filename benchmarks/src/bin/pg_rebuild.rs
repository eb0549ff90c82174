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
//!   head (`ReadSide::rebuild`, then `ReadSide::wait_for`); and of one that
//!   only writes (the newest deposit per account), which shows the read
//!   side's own cost;
//! - `EventStore::read_all` over the same events in pages of the batch size;
//! - the ceiling: a plain `SELECT .. ORDER BY global_position LIMIT <batch>`
//!   through sqlx, paging by position, decoding nothing, and decoding the
//!   payload JSON only.
//!
//! - the rebuild of a table projection (`TableProjection`) keeping one row
//!   per account in a table of its own, its rows gathered over a batch and
//!   written with one `INSERT … ON CONFLICT DO UPDATE` per batch, in the
//!   transaction that stores the checkpoint;
//!
//! Then it shows where a rebuild's time goes (the projection store calls,
//! timed by a wrapper around the adapter), and the read-modify-write rebuild
//! with more documents than the runner's document cache holds
//! (`ReadSideConfig::document_cache_bytes` of 16 KiB for 2,000 balance
//! documents, so most events read their document from Postgres).
//!
//! Every figure is the median of 5 runs with the min and max.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_rebuild`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

#[path = "pg_rebuild/sql_balances.rs"]
mod sql_balances;

use std::sync::Arc;
use std::time::{Duration, Instant};

use es_benchmarks::pg::{admin_pool, analyze, database_url, drop_schema, fresh_schema, pool, server};
use es_benchmarks::{rate, run_writers, Spread, RUNS};
use es_core::readside::{ReadSideConfig, Registry, Selection};
use es_core::store::{EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::testkit::{StoreCall, TestStore};
use es_core::{
    event, projection, Event, GlobalPosition, HandlerError, Project, ProjectionTx, ReadSide, Recorded,
    StreamId, StreamVersion,
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
const BATCH_SIZES: [usize; 2] = [256, 1000];
/// The read-modify-write projection's name.
const BALANCES: &str = "bench-balances";
/// The write-only projection's name.
const LAST_DEPOSIT: &str = "bench-last-deposit";
/// The table projection's name.
const SQL_BALANCES: &str = "bench-sql-balances";

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

/// A document cache smaller than the 2,000 balance documents.
const SMALL_CACHE_BYTES: usize = 16 * 1024;

/// How a rebuild runs: the runner's document cache as configured by
/// default, or smaller than the documents (cache misses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Variant {
    /// `ReadSideConfig::document_cache_bytes` of [`SMALL_CACHE_BYTES`].
    small_cache: bool,
}

impl Variant {
    fn label(self) -> &'static str {
        if self.small_cache {
            "cache < documents"
        } else {
            "default cache"
        }
    }
}

/// The newest deposit of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LastDeposit {
    amount: u64,
    reference: Option<String>,
}

/// Keeps the newest deposit per account: writes only, reads no document,
/// so its rebuild shows the read side's own cost.
#[projection(name = "bench-last-deposit", events(MoneyDeposited))]
#[derive(Debug, Default)]
struct LastDeposits;

impl Project<MoneyDeposited> for LastDeposits {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        tx.put(e.account.clone(), &LastDeposit { amount: e.amount, reference: e.reference.clone() })?;
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

/// One rebuild: its time (from the rebuild call until the status reaches
/// the head) and the projection store calls in it.
struct Rebuilt {
    elapsed: Duration,
    gets: (u64, Duration),
    commits: (u64, Duration),
}

/// Rebuilds projection `name` with `batch_size`, then checks the document
/// of account 0.
async fn rebuild(
    store: &PgEventStore,
    projections: &PgProjectionStore,
    name: &str,
    batch_size: usize,
    head: GlobalPosition,
    variant: Variant,
) -> anyhow::Result<Rebuilt> {
    // Times the calls a rebuild makes (`get` of documents outside the batch
    // and the cache, `commit` of each batch), to show where its time goes.
    let timed = TestStore::new(projections.clone());
    let defaults = ReadSideConfig::default();
    let document_cache_bytes =
        if variant.small_cache { SMALL_CACHE_BYTES } else { defaults.document_cache_bytes };
    let read_side = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(timed.clone())
        .select(Selection::names([name]))
        .config(ReadSideConfig { batch_size, document_cache_bytes, ..defaults })
        .build()?;
    let started = Instant::now();
    read_side.rebuild(name).await?;
    read_side.wait_for(name, head, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    read_side.shutdown().await;
    // The fold must be right: account 0 got 1 + 2 + .. + 50.
    let doc = projections
        .get(name, &account(0))
        .await?
        .ok_or_else(|| anyhow::anyhow!("{name} has no document for {}", account(0)))?;
    let n = EVENTS_PER_STREAM as u64;
    if name == BALANCES {
        let balance: Balance = serde_json::from_value(doc)?;
        anyhow::ensure!(
            balance == Balance { balance: n * (n + 1) / 2, deposits: n },
            "wrong balance after rebuild: {balance:?}"
        );
    } else {
        let last: LastDeposit = serde_json::from_value(doc)?;
        anyhow::ensure!(last.amount == n, "wrong last deposit after rebuild: {last:?}");
    }
    Ok(Rebuilt {
        elapsed,
        gets: (timed.calls(StoreCall::Get), timed.busy(StoreCall::Get)),
        commits: (timed.calls(StoreCall::Commit), timed.busy(StoreCall::Commit)),
    })
}

/// [`rebuild`], [`RUNS`] times.
async fn rebuilds(
    store: &PgEventStore,
    projections: &PgProjectionStore,
    name: &str,
    batch_size: usize,
    head: GlobalPosition,
    variant: Variant,
) -> anyhow::Result<Vec<Rebuilt>> {
    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        runs.push(rebuild(store, projections, name, batch_size, head, variant).await?);
    }
    Ok(runs)
}

/// Rebuilds the table projection [`RUNS`] times with `batch_size`,
/// checking the row of account 0 after each; returns events per second.
async fn sql_rebuilds(
    store: &PgEventStore,
    projections: &PgProjectionStore,
    table: &Arc<sql_balances::SqlBalances>,
    batch_size: usize,
    head: GlobalPosition,
) -> anyhow::Result<Vec<f64>> {
    let total = (STREAMS * EVENTS_PER_STREAM) as u64;
    let mut registry = Registry::new();
    registry.register(SQL_BALANCES, table.subscriber())?;
    let read_side = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(projections.clone())
        .registry(registry)
        .config(ReadSideConfig { batch_size, ..ReadSideConfig::default() })
        .build()?;
    let mut rates = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        read_side.rebuild(SQL_BALANCES).await?;
        read_side.wait_for(SQL_BALANCES, head, Duration::from_secs(600)).await?;
        rates.push(rate(total, started.elapsed()));
        let n = EVENTS_PER_STREAM as i64;
        let row = table.balance(projections.pool(), &account(0)).await?;
        anyhow::ensure!(row == (n * (n + 1) / 2, n), "wrong row after the table rebuild: {row:?}");
    }
    read_side.shutdown().await;
    Ok(rates)
}

/// Events per second of each of [`RUNS`] runs of `read` (which returns
/// its time and the events it read).
async fn read_rates<F, Fut>(read: F, total: u64) -> anyhow::Result<Vec<f64>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Duration, u64)>>,
{
    let mut rates = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let (time, count) = read().await?;
        anyhow::ensure!(count == total, "read {count} events, stored {total}");
        rates.push(rate(count, time));
    }
    Ok(rates)
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
async fn raw_read(
    pool: &PgPool,
    schema: &PgSchema,
    page: usize,
    decode: bool,
) -> anyhow::Result<(Duration, u64)> {
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
    // Drop the schema whether the run succeeded or not.
    let outcome = run(&url, &admin, &schema).await;
    drop_schema(&admin, &schema).await?;
    outcome
}

async fn run(url: &str, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    let (server, sync) = server(admin).await?;
    println!("pg_rebuild: Postgres {server} (synchronous_commit = {sync}), schema {schema}");

    let pool = pool(url, APPENDERS as u32 + 2).await?;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    let projections = PgProjectionStore::with_schema(pool.clone(), schema.clone());
    let total = (STREAMS * EVENTS_PER_STREAM) as u64;
    let started = Instant::now();
    store_events(&store).await?;
    let stored = started.elapsed();
    analyze(admin, schema, "events").await?;
    let head = store.head_position().await?;
    println!(
        "stored {total} events ({STREAMS} streams, appends of {APPEND_BATCH}, {APPENDERS} appenders) in {:.1} s ({:.0} events/s); head {head}",
        stored.as_secs_f64(),
        rate(total, stored)
    );
    // Warm the cache and the connections: one full pass over the rows.
    raw_read(&pool, schema, 1000, false).await?;

    let rebuild_rates = |runs: &[Rebuilt]| runs.iter().map(|r| rate(total, r.elapsed)).collect::<Vec<f64>>();
    println!(
        "projection rebuild from position 0 to the head (events/s, median of {RUNS} runs, min, max), \
         against reads of the same rows"
    );
    println!("  read-modify-write: `{BALANCES}` (get + put of the account's balance per event)");
    println!("  write-only:        `{LAST_DEPOSIT}` (put of the account's last deposit per event)");
    println!("  SQL table:         `{SQL_BALANCES}` (a row per account, one upsert of the batch's rows)");
    let table = sql_balances::SqlBalances::new(schema);
    table.migrate(&pool).await?;
    let mut breakdowns = Vec::new();
    for batch in BATCH_SIZES {
        let rmw = rebuilds(&store, &projections, BALANCES, batch, head, Variant::default()).await?;
        let misses =
            rebuilds(&store, &projections, BALANCES, batch, head, Variant { small_cache: true }).await?;
        let write_only =
            rebuilds(&store, &projections, LAST_DEPOSIT, batch, head, Variant::default()).await?;
        let sql = sql_rebuilds(&store, &projections, &table, batch, head).await?;
        let read = read_rates(|| read_all(&store, batch), total).await?;
        let raw = read_rates(|| raw_read(&pool, schema, batch, false), total).await?;
        let json = read_rates(|| raw_read(&pool, schema, batch, true), total).await?;
        println!(" batch {batch}:");
        let figures = [
            ("rebuild r-m-w, default cache", rebuild_rates(&rmw)),
            ("rebuild r-m-w, cache < documents", rebuild_rates(&misses)),
            ("rebuild write-only", rebuild_rates(&write_only)),
            ("rebuild SQL table", sql),
            ("EventStore::read_all", read),
            ("raw read, no decoding", raw.clone()),
            ("raw read, payload JSON decoded", json),
        ];
        for (label, rates) in &figures {
            if let Some(s) = Spread::of(rates) {
                println!("  {label:<34} {s} events/s");
            }
        }
        for (label, rates) in &figures[..4] {
            if let Some(r) = Spread::of_ratios(rates, &raw) {
                println!(
                    "  {:<34} {:.1} % (min {:.1} %, max {:.1} %)",
                    format!("{} / raw", &label[8..]),
                    100.0 * r.median,
                    100.0 * r.min,
                    100.0 * r.max
                );
            }
        }
        // The median run of each, for the breakdown.
        for (kind, variant, mut runs) in [
            ("r-m-w", Variant::default(), rmw),
            ("r-m-w", Variant { small_cache: true }, misses),
            ("w-o", Variant::default(), write_only),
        ] {
            runs.sort_by_key(|r| r.elapsed);
            breakdowns.push((batch, kind, variant, runs.swap_remove(RUNS / 2)));
        }
    }
    println!("where a rebuild's time goes (median run; projection store calls, timed around the adapter):");
    for (batch, kind, variant, r) in breakdowns {
        let share = |d: Duration| 100.0 * d.as_secs_f64() / r.elapsed.as_secs_f64();
        let each = |(calls, time): (u64, Duration)| time.as_secs_f64() * 1e3 / calls.max(1) as f64;
        println!(
            "  batch {batch:>4} {kind:<5} {:<17}: {:.2} s; {:>5} gets {:.2} s ({:>2.0}%, {:.3} ms each); {:>4} commits {:.2} s ({:>2.0}%, {:.3} ms each); rest (reads, decoding, runner) {:.0}%",
            variant.label(),
            r.elapsed.as_secs_f64(),
            r.gets.0,
            r.gets.1.as_secs_f64(),
            share(r.gets.1),
            each(r.gets),
            r.commits.0,
            r.commits.1.as_secs_f64(),
            share(r.commits.1),
            each(r.commits),
            100.0 - share(r.gets.1) - share(r.commits.1),
        );
    }

    pool.close().await;
    Ok(())
}
