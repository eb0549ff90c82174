//! Live lag of a table projection on Postgres: how long after an append
//! returns the projection has committed the event into its table.
//!
//! Four appenders store deposits at 1,000 events/s in all (250/s each,
//! single-event appends to 500 account streams) for 10 seconds, while a
//! read side runs the table projection of `pg_rebuild` (a row per account,
//! one `INSERT … ON CONFLICT DO UPDATE` per batch, in the transaction that
//! stores the checkpoint). A watcher waits for each appended position in
//! turn (`ReadSide::wait_for`, which answers once the checkpoint is
//! committed) and records the time from the append's return. Prints p50,
//! p99 and max of each of 5 runs, and the median of each figure.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_live_lag`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

#[path = "pg_rebuild/sql_balances.rs"]
mod sql_balances;

use std::time::{Duration, Instant};

use es_benchmarks::pg::{in_fresh_schema, pool};
use es_benchmarks::{Latencies, Spread, RUNS};
use es_core::readside::{ReadSideConfig, Registry};
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{event, Event, GlobalPosition, ReadSide, StreamId};
use es_postgres::{PgEventStore, PgProjectionStore, PgSchema};
use tokio::sync::mpsc;

/// Events per second, all appenders together.
const RATE: u64 = 1_000;
/// Appenders sharing the rate.
const APPENDERS: u64 = 4;
/// How long each run appends.
const SECONDS: u64 = 10;
/// Account streams the deposits go to.
const ACCOUNTS: u64 = 500;
/// The projection's name.
const NAME: &str = "bench-sql-balances";

/// Money came in.
#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyDeposited {
    account: String,
    amount: u64,
    reference: Option<String>,
}

fn deposit(account: u64) -> NewEvent {
    let payload =
        serde_json::json!({ "account": format!("acc-{account:05}"), "amount": 1, "reference": null });
    NewEvent::new("account", MoneyDeposited::TYPE, 1, payload)
}

/// One run: appenders at [`RATE`] for [`SECONDS`], and the lag of every
/// event.
async fn run_once(store: &PgEventStore, read_side: &ReadSide) -> anyhow::Result<Latencies> {
    let (sent, mut appended) = mpsc::unbounded_channel::<(GlobalPosition, Instant)>();
    let per_appender = RATE / APPENDERS;
    let mut appenders = Vec::new();
    for a in 0..APPENDERS {
        let (store, sent) = (store.clone(), sent.clone());
        appenders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_appender));
            for n in 0..per_appender * SECONDS {
                tick.tick().await;
                let account = (n * APPENDERS + a) % ACCOUNTS;
                let stream = StreamId::for_aggregate("account", &format!("acc-{account:05}"));
                let outcome = store.append(&stream, ExpectedVersion::Any, vec![deposit(account)]).await?;
                let position =
                    outcome.last_position().ok_or_else(|| anyhow::anyhow!("an append stored nothing"))?;
                // The watcher is gone only if it failed; its error is reported.
                let _ = sent.send((position, Instant::now()));
            }
            anyhow::Ok(())
        }));
    }
    drop(sent);
    let mut lags = Vec::with_capacity((RATE * SECONDS) as usize);
    let mut reached = GlobalPosition::START;
    while let Some((position, at)) = appended.recv().await {
        if position > reached {
            read_side.wait_for(NAME, position, Duration::from_secs(30)).await?;
            reached = position;
        }
        lags.push(at.elapsed());
    }
    for appender in appenders {
        appender.await??;
    }
    Latencies::of(&mut lags).ok_or_else(|| anyhow::anyhow!("no events appended"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    in_fresh_schema(async |url, _admin, schema| run(url, schema).await).await
}

async fn run(url: &str, schema: &PgSchema) -> anyhow::Result<()> {
    let pool = pool(url, APPENDERS as u32 + 4).await?;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    let projections = PgProjectionStore::with_schema(pool.clone(), schema.clone());
    let table = sql_balances::SqlBalances::new(schema);
    table.migrate(&pool).await?;
    let mut registry = Registry::new();
    registry.register(NAME, table.subscriber())?;
    let read_side = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(projections)
        .registry(registry)
        .config(ReadSideConfig::default())
        .start()?;
    println!(
        "pg_live_lag: table projection `{NAME}`, {RATE} events/s ({APPENDERS} appenders, single-event appends) \
         for {SECONDS} s per run; lag from an append's return until the projection committed it"
    );
    let mut runs = Vec::with_capacity(RUNS);
    for run in 1..=RUNS {
        let lags = run_once(&store, &read_side).await?;
        println!(
            "  run {run}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(lags.p50),
            ms(lags.p99),
            ms(lags.max)
        );
        runs.push(lags);
    }
    let figure = |pick: fn(&Latencies) -> Duration| {
        Spread::of(&runs.iter().map(|l| ms(pick(l))).collect::<Vec<_>>())
            .map_or_else(String::new, |s| s.show(1))
    };
    println!("median of {RUNS} runs (min, max), ms: p50 {}", figure(|l| l.p50));
    println!("                                    p99 {}", figure(|l| l.p99));
    println!("                                    max {}", figure(|l| l.max));
    // Every deposit counted once: each account got the same share.
    let each = (RATE * SECONDS / ACCOUNTS * RUNS as u64) as i64;
    let row = table.balance(&pool, "acc-00000").await?;
    anyhow::ensure!(row == (each, each), "account 0 has {row:?}, expected {each} deposits of 1");
    read_side.shutdown().await;
    pool.close().await;
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
