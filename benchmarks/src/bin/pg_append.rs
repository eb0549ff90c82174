//! Append throughput and latency of the Postgres event store against raw
//! INSERTs of the same rows, and the time to load one 10,000-event stream.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_append`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

use std::time::Instant;

use es_benchmarks::pg::{
    admin_pool, analyze, create_raw_table, database_url, drop_schema, fresh_schema, pool, raw_batch_sql,
    raw_single_sql, server,
};
use es_benchmarks::{ms, run_writers, Latencies, Run};
use es_core::store::{Direction, EventStore, ExpectedVersion, NewEvent};
use es_core::{StreamId, StreamVersion};
use es_postgres::PgEventStore;
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

/// Rounds per comparison: ours and raw alternate, so background load that
/// drifts during the run hits both alike.
const ROUNDS: usize = 4;

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
    sql: String,
    writers: usize,
    per_writer: usize,
    batch: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let tag = tag.to_owned();
    es_benchmarks::pg::raw_runs(pool, sql, writers, per_writer, batch, move |w| format!("{tag}-{w}"), event)
        .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = database_url();
    let admin = admin_pool(&url).await?;
    let schema = fresh_schema(&admin).await?;
    create_raw_table(&admin, &schema).await?;
    let single_sql = raw_single_sql(&schema);
    let batch_sql = raw_batch_sql(&schema);
    let (server, fsync) = server(&admin).await?;
    println!("pg_append: Postgres {server} (synchronous_commit = {fsync}), schema {schema}");

    println!("single-event appends (one event per append, own stream per writer, exact expected version)");
    for writers in [1usize, 8, 32] {
        let per_writer = SINGLE_APPENDS / writers;
        let pool = pool(&url, writers as u32 + 1).await?;
        let store = PgEventStore::with_schema(pool.clone(), schema.clone());
        // Warm up: connections and prepared statements.
        store_runs(&store, writers, 5, 1, &format!("warm{writers}")).await?;
        raw_runs(&pool, single_sql.clone(), writers, 5, 1, &format!("warm{writers}")).await?;
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let tag = format!("s{writers}r{round}");
            ours.push(store_runs(&store, writers, per_writer / ROUNDS, 1, &tag).await?);
            raw.push(raw_runs(&pool, single_sql.clone(), writers, per_writer / ROUNDS, 1, &tag).await?);
        }
        let (ours, raw) = (Run::merge(ours), Run::merge(raw));
        println!(" {writers} writer(s):");
        ours.print("EventStore::append");
        raw.print("raw single-row INSERT");
        println!("  {:<38} {:>9.0} %", "ratio", 100.0 * ours.rate() / raw.rate());
        pool.close().await;
    }

    println!("batched appends ({BATCH} events per append, {BATCH_WRITERS} writers)");
    let pool = pool(&url, BATCH_WRITERS as u32 + 1).await?;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    store_runs(&store, BATCH_WRITERS, 2, BATCH, "warmb").await?;
    raw_runs(&pool, batch_sql.clone(), BATCH_WRITERS, 2, BATCH, "warmb").await?;
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let tag = format!("br{round}");
        ours.push(store_runs(&store, BATCH_WRITERS, BATCHES_PER_WRITER / ROUNDS, BATCH, &tag).await?);
        raw.push(
            raw_runs(&pool, batch_sql.clone(), BATCH_WRITERS, BATCHES_PER_WRITER / ROUNDS, BATCH, &tag)
                .await?,
        );
    }
    let (ours, raw) = (Run::merge(ours), Run::merge(raw));
    ours.print("EventStore::append (100 events)");
    raw.print("raw 100-row INSERT");
    println!("  {:<38} {:>9.0} %", "ratio", 100.0 * ours.rate() / raw.rate());

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
    analyze(&admin, &schema, "events").await?;
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
        let l = Latencies::of(samples).ok_or_else(|| anyhow::anyhow!("no samples for {label}"))?;
        println!("  {label:<38} p50 {}   max {}", ms(l.p50), ms(l.max));
    }

    pool.close().await;
    drop_schema(&admin, &schema).await?;
    Ok(())
}
