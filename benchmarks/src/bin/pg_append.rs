//! Append throughput and latency of the Postgres event store against raw
//! INSERTs of the same rows, and the time to load one 10,000-event stream.
//!
//! Single-event appends run with group commit on (the default) and off.
//!
//! Raw baselines, each printed: `raw_minimal` (an identity key and a JSONB
//! payload: the plain INSERT) and `raw_events` (es's columns, keys and
//! unique indexes). Appends run three ways, each labelled: the best case
//! (each writer on its own stream), writers sharing streams (conflicts,
//! retried after reading the version again), and version-checked batches.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_append`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use es_benchmarks::pg::{analyze, create_raw_tables, in_fresh_schema, pool, print_server, RawTable};
use es_benchmarks::{run_writers, Run, Runs, Spread, RUNS};
use es_core::error::AppendError;
use es_core::store::{Direction, EventStore, ExpectedVersion, NewEvent};
use es_core::{StreamId, StreamVersion};
use es_postgres::{GroupCommit, PgEventStore, PgSchema};
use serde::Deserialize;
use serde_json::json;
use sqlx::{AssertSqlSafe, PgPool};

/// Appends per writer in the single-event runs.
const SINGLE_APPENDS: usize = 4000;
/// Events per append in the batched runs.
const BATCH: usize = 100;
/// Batched appends per writer.
const BATCHES_PER_WRITER: usize = 40;
/// Writers in the batched runs.
const BATCH_WRITERS: usize = 8;
/// Writers in the shared-stream run, and the streams they share.
const SHARED_WRITERS: usize = 32;
const SHARED_STREAMS: usize = 4;
/// Events in the stream the load benchmark reads.
const LOAD_EVENTS: usize = 10_000;
/// Events per read when loading.
const LOAD_PAGE: usize = 1024;

#[derive(Debug, Deserialize)]
struct Deposited {
    account: String,
    amount: u64,
    #[allow(dead_code)] // decoded to measure a realistic payload, never read
    reference: Option<String>,
}

fn event(n: usize) -> NewEvent {
    NewEvent::new(
        "account",
        "MoneyDeposited",
        1,
        json!({ "account": "acc-0001", "amount": n, "reference": format!("ref-{n:08}") }),
    )
}

async fn store_runs(
    store: &PgEventStore,
    writers: usize,
    per_writer: usize,
    batch: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let store = store.clone();
    let tag = tag.to_owned();
    run_writers(writers, per_writer, batch, move |w, i| {
        let store = store.clone();
        let stream = StreamId::new(format!("{tag}-{w}"));
        async move {
            let expected = match i * batch {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(StreamVersion(v as u64)),
            };
            let events = (0..batch).map(|n| event(i * batch + n)).collect();
            store.append(&stream, expected, events).await?;
            Ok(())
        }
    })
    .await
}

/// Raw inserts of the same rows as [`store_runs`], into streams `{tag}-{writer}`.
async fn raw_runs(
    pool: &PgPool,
    schema: &PgSchema,
    table: RawTable,
    writers: usize,
    per_writer: usize,
    batch: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let tag = tag.to_owned();
    es_benchmarks::pg::raw_runs(
        pool,
        schema,
        table,
        writers,
        per_writer,
        batch,
        move |w| format!("{tag}-{w}"),
        event,
    )
    .await
}

/// `writers` writers sharing `streams` streams (writer `w` on stream `w %
/// streams`), each appending `per_writer` single events as a command does:
/// read the stream's version, append expecting exactly it, and on a
/// conflict read again and retry. Returns the run and the conflicts.
async fn shared_runs(
    store: &PgEventStore,
    writers: usize,
    streams: usize,
    per_writer: usize,
    tag: &str,
) -> anyhow::Result<(Run, u64)> {
    let conflicts = Arc::new(AtomicU64::new(0));
    let (store, tag, counted) = (store.clone(), tag.to_owned(), conflicts.clone());
    let run = run_writers(writers, per_writer, 1, move |w, i| {
        let (store, conflicts) = (store.clone(), counted.clone());
        let stream = StreamId::new(format!("{tag}-{}", w % streams));
        async move {
            loop {
                let current = store.stream_version(&stream).await?;
                let expected = ExpectedVersion::from_current(current);
                match store.append(&stream, expected, vec![event(i)]).await {
                    Ok(_) => return Ok(()),
                    Err(AppendError::WrongExpectedVersion { .. }) => {
                        conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(other) => return Err(other.into()),
                }
            }
        }
    })
    .await?;
    Ok((run, conflicts.load(Ordering::Relaxed)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    in_fresh_schema(run).await
}

async fn run(url: &str, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    create_raw_tables(admin, schema).await?;
    print_server("pg_append", admin, schema).await?;
    println!("every figure: median of {RUNS} runs (min, max); es and raw runs alternate; ratios per run");

    println!(
        "best case: single-event appends, each writer on its own stream, exact expected version (no conflicts)"
    );
    for writers in [1usize, 8, 32] {
        let per_writer = SINGLE_APPENDS / writers / RUNS;
        let pool = pool(url, writers as u32 + 1).await?;
        let store = PgEventStore::with_schema(pool.clone(), schema.clone());
        let ungrouped_store = PgEventStore::with_schema(pool.clone(), schema.clone());
        ungrouped_store.set_group_commit(GroupCommit::off());
        // Warm up: connections and prepared statements.
        store_runs(&store, writers, 5, 1, &format!("warm{writers}")).await?;
        store_runs(&ungrouped_store, writers, 5, 1, &format!("warm-off{writers}")).await?;
        for table in RawTable::BOTH {
            raw_runs(&pool, schema, table, writers, 5, 1, &format!("warm{writers}{table:?}")).await?;
        }
        let (mut ours, mut ungrouped, mut minimal, mut es_columns) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..RUNS {
            let tag = format!("s{writers}r{round}");
            ours.push(store_runs(&store, writers, per_writer, 1, &tag).await?);
            ungrouped.push(store_runs(&ungrouped_store, writers, per_writer, 1, &format!("{tag}off")).await?);
            minimal.push(raw_runs(&pool, schema, RawTable::Minimal, writers, per_writer, 1, &tag).await?);
            es_columns
                .push(raw_runs(&pool, schema, RawTable::EsColumns, writers, per_writer, 1, &tag).await?);
        }
        let (ours, ungrouped) = (Runs::of(ours), Runs::of(ungrouped));
        let (minimal, es_columns) = (Runs::of(minimal), Runs::of(es_columns));
        println!(" {writers} writer(s):");
        ours.print("EventStore::append", "events");
        ungrouped.print("EventStore::append, group commit off", "events");
        minimal.print(RawTable::Minimal.label(), "rows");
        es_columns.print(RawTable::EsColumns.label(), "rows");
        ours.print_ratio("append / raw minimal", &minimal);
        ours.print_ratio("append / raw es columns", &es_columns);
        ungrouped.print_ratio("group commit off / raw minimal", &minimal);
        pool.close().await;
    }

    println!(
        "writers sharing streams: {SHARED_WRITERS} writers on {SHARED_STREAMS} streams, single events, \
         read version then append expecting it, retry on conflict"
    );
    let shared_pool = pool(url, SHARED_WRITERS as u32 + 1).await?;
    let store = PgEventStore::with_schema(shared_pool.clone(), schema.clone());
    shared_runs(&store, SHARED_WRITERS, SHARED_STREAMS, 2, "warm-shared").await?;
    let (mut runs, mut per_append) = (Vec::new(), Vec::new());
    for round in 0..RUNS {
        let per_writer = SINGLE_APPENDS / SHARED_WRITERS / RUNS;
        let (run, conflicts) =
            shared_runs(&store, SHARED_WRITERS, SHARED_STREAMS, per_writer, &format!("sh{round}")).await?;
        per_append.push(conflicts as f64 / run.events as f64);
        runs.push(run);
    }
    Runs::of(runs).print("EventStore::append (with conflicts)", "events");
    if let Some(conflicts) = Spread::of(&per_append) {
        println!("  {:<40} {}", "conflicts per stored event", conflicts.show(2));
    }
    shared_pool.close().await;

    println!("version-checked batches ({BATCH} events per append, {BATCH_WRITERS} writers, each on its own stream, exact expected version)");
    let pool = pool(url, BATCH_WRITERS as u32 + 1).await?;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    store_runs(&store, BATCH_WRITERS, 2, BATCH, "warmb").await?;
    for table in RawTable::BOTH {
        raw_runs(&pool, schema, table, BATCH_WRITERS, 2, BATCH, &format!("warmb{table:?}")).await?;
    }
    let (mut ours, mut minimal, mut es_columns) = (Vec::new(), Vec::new(), Vec::new());
    let per_writer = BATCHES_PER_WRITER / RUNS;
    for round in 0..RUNS {
        let tag = format!("br{round}");
        ours.push(store_runs(&store, BATCH_WRITERS, per_writer, BATCH, &tag).await?);
        minimal
            .push(raw_runs(&pool, schema, RawTable::Minimal, BATCH_WRITERS, per_writer, BATCH, &tag).await?);
        es_columns.push(
            raw_runs(&pool, schema, RawTable::EsColumns, BATCH_WRITERS, per_writer, BATCH, &tag).await?,
        );
    }
    let (ours, minimal, es_columns) = (Runs::of(ours), Runs::of(minimal), Runs::of(es_columns));
    ours.print("EventStore::append (100 events)", "events");
    minimal.print("raw 100-row INSERT, minimal table", "rows");
    es_columns.print("raw 100-row INSERT, es columns", "rows");
    ours.print_ratio("append / raw minimal", &minimal);
    ours.print_ratio("append / raw es columns", &es_columns);

    println!(
        "loading one {LOAD_EVENTS}-event stream as an aggregate does (read_replay, pages of {LOAD_PAGE}, \
         typed decode)"
    );
    let stream = StreamId::new("load");
    for chunk in 0..LOAD_EVENTS / 1000 {
        let expected = match chunk {
            0 => ExpectedVersion::NoStream,
            c => ExpectedVersion::Exact(StreamVersion((c * 1000) as u64)),
        };
        store.append(&stream, expected, (0..1000).map(|n| event(chunk * 1000 + n)).collect()).await?;
    }
    // Fresh tables have no statistics until autovacuum gets to them; give
    // the planner what a running database has.
    analyze(admin, schema, "events").await?;
    // Each round times the four reads back to back, so background load on
    // the machine falls on all of them alike.
    let replay_rows = format!(
        "SELECT stream_version, event_type, schema_version, payload
         FROM {schema}.events WHERE stream_id = 'load' ORDER BY stream_version"
    );
    let all_rows = format!(
        "SELECT global_position, event_id, stream_id, stream_version, aggregate_type, event_type,
                schema_version, payload, metadata, recorded_at
         FROM {schema}.events WHERE stream_id = 'load' ORDER BY stream_version"
    );
    let (mut loads, mut raw_replay, mut envelopes, mut raw_all) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        let (mut total, mut count) = (0u64, 0usize);
        let mut from = StreamVersion(1);
        loop {
            let page = store.read_replay(&stream, from, LOAD_PAGE).await?;
            let last = page.last().map(|e| e.stream_version);
            let full = page.len() == LOAD_PAGE;
            for e in page {
                let d: Deposited = e.payload.decode()?;
                total += d.amount + d.account.len() as u64;
                count += 1;
            }
            match last {
                Some(last) if full => from = last.next(),
                _ => break,
            }
        }
        loads.push(t.elapsed());
        anyhow::ensure!(count == LOAD_EVENTS && total > 0, "loaded {count} events");

        let t = Instant::now();
        let rows = sqlx::query(AssertSqlSafe(replay_rows.as_str())).fetch_all(&pool).await?;
        anyhow::ensure!(rows.len() == LOAD_EVENTS, "fetched {} rows", rows.len());
        raw_replay.push(t.elapsed());

        let t = Instant::now();
        let mut from = StreamVersion(1);
        loop {
            let page = store.read_stream(&stream, from, Direction::Forward, LOAD_PAGE).await?;
            match page.last() {
                Some(last) if page.len() == LOAD_PAGE => from = last.stream_version.next(),
                _ => break,
            }
        }
        envelopes.push(t.elapsed());

        let t = Instant::now();
        let rows = sqlx::query(AssertSqlSafe(all_rows.as_str())).fetch_all(&pool).await?;
        anyhow::ensure!(rows.len() == LOAD_EVENTS, "fetched {} rows", rows.len());
        raw_all.push(t.elapsed());
    }
    for (label, samples) in [
        ("load 10k events (20 loads)", &mut loads),
        ("  raw: those 4 columns, one query", &mut raw_replay),
        ("  read_stream, whole envelopes", &mut envelopes),
        ("  raw: all 10 columns, one query", &mut raw_all),
    ] {
        let samples: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let l = Spread::of(&samples).ok_or_else(|| anyhow::anyhow!("no samples for {label}"))?;
        println!("  {label:<38} {} ms", l.show(3));
    }

    pool.close().await;
    Ok(())
}
