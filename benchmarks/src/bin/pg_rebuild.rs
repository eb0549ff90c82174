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
//! Then it shows where a rebuild's time goes (the projection store calls,
//! timed by a wrapper around the adapter), the read-modify-write rebuild
//! without the runner's document cache (`ReadSideConfig::document_cache_bytes`
//! 0, so every event reads its document from Postgres), and what batch
//! commits with `SET LOCAL synchronous_commit = off` would give, simulated
//! in that wrapper.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_rebuild`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use es_benchmarks::pg::{admin_pool, analyze, database_url, drop_schema, fresh_schema, pool, server};
use es_benchmarks::{rate, run_writers};
use es_core::error::ProjectionError;
use es_core::readside::{ReadSideConfig, Selection};
use es_core::store::{
    Checkpoint, DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore, UnitOfWork,
};
use es_core::{
    event, projection, Event, GlobalPosition, HandlerError, Project, ProjectionTx, ReadSide, Recorded,
    StreamId, StreamVersion,
};
use es_postgres::{PgEventStore, PgProjectionStore, PgSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
/// The read-modify-write projection's name.
const BALANCES: &str = "bench-balances";
/// The write-only projection's name.
const LAST_DEPOSIT: &str = "bench-last-deposit";

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

/// Calls and time spent in them, for one kind of store call.
#[derive(Debug, Default)]
struct Tally {
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl Tally {
    async fn time<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn time_spent(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// How a rebuild runs: the runner's document cache on (the default) or
/// off, and the batch commits as they are or simulated asynchronous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Variant {
    /// `ReadSideConfig::document_cache_bytes: 0`: every document read goes to
    /// Postgres.
    no_cache: bool,
    /// Commit each batch with `SET LOCAL synchronous_commit = off` (a
    /// simulated library change): the documents and the checkpoint stay
    /// atomic, a crash loses only the last batches, which are then
    /// projected again.
    async_commit: bool,
}

impl Variant {
    fn label(self) -> &'static str {
        match (self.no_cache, self.async_commit) {
            (false, false) => "as is",
            (true, false) => "no document cache",
            (false, true) => "async commit",
            (true, true) => "no cache, async commit",
        }
    }
}

/// The Postgres projection store, timing the calls a rebuild makes (`get`
/// of documents outside the batch and the cache, `commit` of each batch),
/// to show where the rebuild's time goes; optionally simulating
/// [`Variant::async_commit`].
#[derive(Debug, Clone)]
struct Timed {
    inner: PgProjectionStore,
    gets: Arc<Tally>,
    commits: Arc<Tally>,
    async_commit: bool,
}

impl Timed {
    fn new(inner: PgProjectionStore, async_commit: bool) -> Self {
        Self { inner, gets: Arc::default(), commits: Arc::default(), async_commit }
    }

    async fn commit_batch(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        if !self.async_commit {
            return self.inner.commit(projection, work).await;
        }
        self.inner
            .commit_with(projection, work, |conn| {
                Box::pin(async move {
                    sqlx::query("SET LOCAL synchronous_commit = off").execute(conn).await?;
                    Ok(())
                })
            })
            .await
    }
}

#[async_trait::async_trait]
impl ProjectionStore for Timed {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        self.gets.time(self.inner.get(projection, id)).await
    }
    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        self.inner.put(projection, id, document).await
    }
    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        self.inner.delete(projection, id).await
    }
    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        self.inner.query(projection, query).await
    }
    async fn checkpoint(&self, projection: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        self.inner.checkpoint(projection).await
    }
    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        self.commits.time(self.commit_batch(projection, work)).await
    }
    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        self.inner.reset(projection).await
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
    let timed = Timed::new(projections.clone(), variant.async_commit);
    let defaults = ReadSideConfig::default();
    let document_cache_bytes = if variant.no_cache { 0 } else { defaults.document_cache_bytes };
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
        gets: (timed.gets.calls(), timed.gets.time_spent()),
        commits: (timed.commits.calls(), timed.commits.time_spent()),
    })
}

/// Runs of each measurement; the fastest counts (the machine is shared, so
/// the slower runs measure the neighbours).
const TRIES: usize = 2;

/// [`rebuild`], [`TRIES`] times; the fastest.
async fn best_rebuild(
    store: &PgEventStore,
    projections: &PgProjectionStore,
    name: &str,
    batch_size: usize,
    head: GlobalPosition,
    variant: Variant,
) -> anyhow::Result<Rebuilt> {
    let mut best = rebuild(store, projections, name, batch_size, head, variant).await?;
    for _ in 1..TRIES {
        let next = rebuild(store, projections, name, batch_size, head, variant).await?;
        if next.elapsed < best.elapsed {
            best = next;
        }
    }
    Ok(best)
}

/// The fastest of [`TRIES`] runs of `read`.
async fn best_read<F, Fut>(read: F) -> anyhow::Result<(Duration, u64)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Duration, u64)>>,
{
    let mut best = read().await?;
    for _ in 1..TRIES {
        let next = read().await?;
        if next.0 < best.0 {
            best = next;
        }
    }
    Ok(best)
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

    println!(
        "projection rebuild from position 0 to the head (events/s, best of {TRIES}), against reads of the same rows"
    );
    println!("  read-modify-write: `{BALANCES}` (get + put of the account's balance per event)");
    println!("  write-only:        `{LAST_DEPOSIT}` (put of the account's last deposit per event)");
    println!(
        "{:>6} | {:>13} | {:>13} | {:>13} | {:>13} | {:>13} | {:>8} | {:>8}",
        "batch",
        "rebuild r-m-w",
        "rebuild w-o",
        "read_all",
        "raw, no dec.",
        "raw, JSON",
        "r-m-w/raw",
        "w-o/raw"
    );
    let mut breakdowns = Vec::new();
    for batch in BATCH_SIZES {
        let rmw = best_rebuild(&store, &projections, BALANCES, batch, head, Variant::default()).await?;
        let write_only =
            best_rebuild(&store, &projections, LAST_DEPOSIT, batch, head, Variant::default()).await?;
        let (read_time, read_count) = best_read(|| read_all(&store, batch)).await?;
        let (raw_time, raw_count) = best_read(|| raw_read(&pool, schema, batch, false)).await?;
        let (json_time, json_count) = best_read(|| raw_read(&pool, schema, batch, true)).await?;
        anyhow::ensure!(
            read_count == total && raw_count == total && json_count == total,
            "read {read_count} / {raw_count} / {json_count} events, stored {total}"
        );
        let raw = rate(raw_count, raw_time);
        let (rmw_rate, wo_rate) = (rate(total, rmw.elapsed), rate(total, write_only.elapsed));
        println!(
            "{:>6} | {:>11.0}/s | {:>11.0}/s | {:>11.0}/s | {:>11.0}/s | {:>11.0}/s | {:>7.1}% | {:>7.1}%",
            batch,
            rmw_rate,
            wo_rate,
            rate(read_count, read_time),
            raw,
            rate(json_count, json_time),
            100.0 * rmw_rate / raw,
            100.0 * wo_rate / raw,
        );
        breakdowns.push((batch, "r-m-w", Variant::default(), rmw));
        breakdowns.push((batch, "w-o", Variant::default(), write_only));
    }
    println!(
        "without the document cache, and a library change simulated around the adapter (rebuild events/s):"
    );
    for batch in [256, 1000] {
        let mut line = format!("  batch {batch:>4}:");
        for (name, kind, variant) in [
            (BALANCES, "r-m-w", Variant { no_cache: true, async_commit: false }),
            (BALANCES, "r-m-w", Variant { no_cache: false, async_commit: true }),
            (LAST_DEPOSIT, "w-o", Variant { no_cache: false, async_commit: true }),
        ] {
            let rebuilt = best_rebuild(&store, &projections, name, batch, head, variant).await?;
            line.push_str(&format!(" {kind} {} {:.0}/s;", variant.label(), rate(total, rebuilt.elapsed)));
            breakdowns.push((batch, kind, variant, rebuilt));
        }
        println!("{line}");
    }
    println!("where a rebuild's time goes (projection store calls, timed around the adapter):");
    for (batch, kind, variant, r) in breakdowns {
        let share = |d: Duration| 100.0 * d.as_secs_f64() / r.elapsed.as_secs_f64();
        let each = |(calls, time): (u64, Duration)| time.as_secs_f64() * 1e3 / calls.max(1) as f64;
        println!(
            "  batch {batch:>4} {kind:<5} {:<20}: {:.2} s; {:>5} gets {:.2} s ({:>2.0}%, {:.3} ms each); {:>4} commits {:.2} s ({:>2.0}%, {:.3} ms each); rest (reads, decoding, runner) {:.0}%",
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
