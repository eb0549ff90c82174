//! Projection rebuild throughput on Postgres, against the raw read rate of
//! the same rows.
//!
//! Stores 100,000 events (2,000 account streams of 50 deposits, appended in
//! batches of 10 per stream, round after round, so the global stream
//! interleaves the accounts) and, for a few `ReadSideConfig::batch_size`
//! and `catch_up_batch_size` values (each alone, then the defaults: 256
//! events while keeping up, commits of 4,096 while behind), measures:
//! - the rebuild of a `#[projection]` keeping a balance document per account
//!   (read, change, write; documents and checkpoint committed per batch to
//!   `PgProjectionStore`), from position 0 until its status reaches the
//!   head (`ReadSide::rebuild`, then `ReadSide::wait_for`); and of one that
//!   only writes (the newest deposit per account), which shows the read
//!   side's own cost;
//! - `EventStore::read_all` over the same events in pages of the size the
//!   rebuild reads (the catch-up batch size when it is the larger);
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
//! documents). `Balances` names the document each deposit reads
//! (`prefetch(MoneyDeposited)`), so a batch's documents that the cache
//! misses are read in one `get_many` rather than one `get` per event.
//!
//! Every figure is the median of 5 runs with the min and max. The runs go
//! round by round (each figure once per round), and each ratio is of one
//! round's runs, taken side by side.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_rebuild`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`);
//! `-- defaults` runs only the default batch sizes.
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

/// The allocator the bank service runs on (see `examples/bank/Cargo.toml`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "pg_rebuild/reads.rs"]
mod reads;
#[path = "pg_rebuild/rebuild.rs"]
mod rebuild;
#[path = "pg_rebuild/sql_balances.rs"]
mod sql_balances;

use std::time::{Duration, Instant};

use es_benchmarks::pg::{analyze, in_fresh_schema, pool, print_server};
use es_benchmarks::{rate, run_writers, Spread, RUNS};
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{
    event, projection, DocumentIds, Event, HandlerError, Prefetch, Project, ProjectionTx, Recorded, StreamId,
    StreamVersion,
};
use es_postgres::{PgEventStore, PgProjectionStore, PgSchema};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use reads::{raw_read, read_all, read_rate};
use rebuild::{rebuild, sql_rebuild, Batches, Rebuilt, Variant};

/// Account streams.
const STREAMS: usize = 2_000;
/// Events per stream.
const EVENTS_PER_STREAM: usize = 50;
/// Events per append.
const APPEND_BATCH: usize = 10;
/// Concurrent appenders while storing.
const APPENDERS: usize = 8;
/// The batch sizes tried: each alone (`catch_up_batch_size` no bigger), and
/// the defaults (256 while keeping up, 4,096 while behind). The raw reads
/// beside each read pages of the size the rebuild reads.
const CONFIGS: [Batches; 3] = [
    Batches { size: 256, catch_up: 256 },
    Batches { size: 1000, catch_up: 1000 },
    Batches { size: 256, catch_up: 4096 },
];
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

/// Keeps a [`Balance`] per account; names each deposit's document, so a
/// batch's are read at once.
#[projection(name = "bench-balances", events(MoneyDeposited), prefetch(MoneyDeposited))]
#[derive(Debug, Default)]
struct Balances;

impl Prefetch<MoneyDeposited> for Balances {
    fn documents(&self, e: &Recorded<MoneyDeposited>, ids: &mut DocumentIds) {
        ids.add(e.account.as_str());
    }
}

impl Project<MoneyDeposited> for Balances {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let mut balance: Balance = tx.get(&e.account).await?.unwrap_or_default();
        balance.balance += e.amount;
        balance.deposits += 1;
        tx.put(e.account.clone(), &balance)?;
        Ok(())
    }
}

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    in_fresh_schema(run).await
}

async fn run(url: &str, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    print_server("pg_rebuild", admin, schema).await?;

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
         against reads of the same rows (every figure once per round, {RUNS} rounds; ratios per round)"
    );
    println!("  read-modify-write: `{BALANCES}` (get + put of the account's balance per event)");
    println!("  write-only:        `{LAST_DEPOSIT}` (put of the account's last deposit per event)");
    println!("  SQL table:         `{SQL_BALANCES}` (a row per account, one upsert of the batch's rows)");
    let table = sql_balances::SqlBalances::new(schema);
    table.migrate(&pool).await?;
    let mut breakdowns = Vec::new();
    let only_defaults = std::env::args().nth(1).as_deref() == Some("defaults");
    let configs = if only_defaults { &CONFIGS[CONFIGS.len() - 1..] } else { &CONFIGS[..] };
    for &batches in configs {
        // Round by round, every figure once, so each ratio below is of runs
        // taken side by side.
        let page = batches.read_size();
        let (mut rmw, mut misses, mut write_only) = (Vec::new(), Vec::new(), Vec::new());
        let (mut sql, mut read, mut raw, mut json) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            raw.push(read_rate(raw_read(&pool, schema, page, false), total).await?);
            rmw.push(rebuild(&store, &projections, BALANCES, batches, head, Variant::default()).await?);
            misses.push(
                rebuild(&store, &projections, BALANCES, batches, head, Variant { small_cache: true }).await?,
            );
            write_only
                .push(rebuild(&store, &projections, LAST_DEPOSIT, batches, head, Variant::default()).await?);
            sql.push(sql_rebuild(&store, &projections, &table, batches, head).await?);
            read.push(read_rate(read_all(&store, page), total).await?);
            json.push(read_rate(raw_read(&pool, schema, page, true), total).await?);
        }
        println!(" {batches}; reads in pages of {page}:");
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
            breakdowns.push((batches, kind, variant, runs.swap_remove(RUNS / 2)));
        }
    }
    println!("where a rebuild's time goes (median run; projection store calls, timed around the adapter):");
    for (batches, kind, variant, r) in breakdowns {
        let share = |d: Duration| 100.0 * d.as_secs_f64() / r.elapsed.as_secs_f64();
        let each = |(calls, time): (u64, Duration)| time.as_secs_f64() * 1e3 / calls.max(1) as f64;
        println!(
            "  {:>4}/{:<4} {kind:<5} {:<17}: {:.2} s; {:>5} gets {:.2} s ({:>2.0}%, {:.3} ms each); {:>4} get_manys {:.2} s ({:>2.0}%, {:.3} ms each); {:>4} commits {:.2} s ({:>2.0}%, {:.3} ms each); rest (reads, decoding, runner) {:.0}%",
            batches.size,
            batches.catch_up,
            variant.label(),
            r.elapsed.as_secs_f64(),
            r.gets.0,
            r.gets.1.as_secs_f64(),
            share(r.gets.1),
            each(r.gets),
            r.get_manys.0,
            r.get_manys.1.as_secs_f64(),
            share(r.get_manys.1),
            each(r.get_manys),
            r.commits.0,
            r.commits.1.as_secs_f64(),
            share(r.commits.1),
            each(r.commits),
            100.0 - share(r.gets.1) - share(r.get_manys.1) - share(r.commits.1),
        );
    }

    pool.close().await;
    Ok(())
}
