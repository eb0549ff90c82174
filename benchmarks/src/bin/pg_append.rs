//! Append throughput and latency of the Postgres event store against raw
//! INSERTs of the same rows, and the time to load one 10,000-event stream.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_append`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use es_benchmarks::{ms, rate, Latencies};
use es_core::{Direction, EventStore, ExpectedVersion, NewEvent, StreamId, StreamVersion};
use es_postgres::{PgEventStore, PgSchema};
use serde::Deserialize;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::types::Json;
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
const LOAD_PAGE: usize = 1000;

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

/// One run's figures.
struct Run {
    events: u64,
    elapsed: Duration,
    latencies: Option<Latencies>,
    samples: Vec<Duration>,
}

impl Run {
    /// The rounds of one side taken together.
    fn merge(runs: Vec<Run>) -> Run {
        let events = runs.iter().map(|r| r.events).sum();
        let elapsed = runs.iter().map(|r| r.elapsed).sum();
        let mut samples: Vec<Duration> = runs.into_iter().flat_map(|r| r.samples).collect();
        Run { events, elapsed, latencies: Latencies::of(&mut samples), samples: Vec::new() }
    }

    fn rate(&self) -> f64 {
        rate(self.events, self.elapsed)
    }

    fn print(&self, label: &str) {
        match &self.latencies {
            Some(l) => println!(
                "  {label:<38} {:>9.0} events/s   p50 {}   p99 {}",
                self.rate(),
                ms(l.p50),
                ms(l.p99)
            ),
            None => println!("  {label:<38} {:>9.0} events/s", self.rate()),
        }
    }
}

/// Runs `writers` tasks, each calling `op(writer, i)` `per_writer` times,
/// timing every call.
async fn run<F, Fut>(writers: usize, per_writer: usize, events_per_op: usize, op: F) -> anyhow::Result<Run>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let t = Instant::now();
                op(w, i).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let elapsed = start.elapsed();
    let latencies = Latencies::of(&mut samples);
    Ok(Run { events: (writers * per_writer * events_per_op) as u64, elapsed, latencies, samples })
}

async fn pool(url: &str, connections: u32) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new().max_connections(connections).connect(url).await?)
}

/// The raw table: same columns, keys and uniqueness as `events`, none of the
/// position scheme, trigger or notification.
async fn create_raw_table(pool: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"CREATE TABLE {schema}.raw_events (
            global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id uuid NOT NULL UNIQUE,
            stream_id text COLLATE "C" NOT NULL,
            stream_version bigint NOT NULL,
            aggregate_type text NOT NULL,
            event_type text NOT NULL,
            schema_version bigint NOT NULL,
            payload jsonb NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{{}}',
            recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
            UNIQUE (stream_id, stream_version)
        )"#
    )))
    .execute(pool)
    .await?;
    Ok(())
}

async fn raw_insert(
    pool: &PgPool,
    sql: &str,
    stream: &str,
    first_version: usize,
    events: &[NewEvent],
) -> anyhow::Result<()> {
    let ids: Vec<_> = events.iter().map(|e| e.event_id.as_uuid()).collect();
    let versions: Vec<i64> = (0..events.len()).map(|i| (first_version + i) as i64).collect();
    let aggregate_types: Vec<&str> = events.iter().map(|e| e.aggregate_type.as_str()).collect();
    let event_types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let schema_versions: Vec<i64> = events.iter().map(|e| i64::from(e.schema_version)).collect();
    let payloads: Vec<Json<&serde_json::Value>> = events.iter().map(|e| Json(&e.payload)).collect();
    let metadata: Vec<Json<&es_core::Metadata>> = events.iter().map(|e| Json(&e.metadata)).collect();
    if events.len() == 1 {
        sqlx::query(AssertSqlSafe(sql))
            .bind(ids[0])
            .bind(stream)
            .bind(versions[0])
            .bind(aggregate_types[0])
            .bind(event_types[0])
            .bind(schema_versions[0])
            .bind(payloads[0])
            .bind(metadata[0])
            .execute(pool)
            .await?;
    } else {
        sqlx::query(AssertSqlSafe(sql))
            .bind(&ids)
            .bind(stream)
            .bind(&versions)
            .bind(&aggregate_types)
            .bind(&event_types)
            .bind(&schema_versions)
            .bind(&payloads)
            .bind(&metadata)
            .execute(pool)
            .await?;
    }
    Ok(())
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
    run(writers, per_writer, batch, move |w, i| {
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

async fn raw_runs(
    pool: &PgPool,
    sql: String,
    writers: usize,
    per_writer: usize,
    batch: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let pool = pool.clone();
    let tag = tag.to_owned();
    let sql = Arc::new(sql);
    run(writers, per_writer, batch, move |w, i| {
        let (pool, sql) = (pool.clone(), sql.clone());
        let stream = format!("{tag}-{w}");
        async move {
            let events: Vec<NewEvent> = (0..batch).map(|n| event(i * batch + n)).collect();
            raw_insert(&pool, &sql, &stream, i * batch + 1, &events).await
        }
    })
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = pool(&url, 2).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach Postgres at {url} ({e}): set DATABASE_URL or run scripts/test.sh, which starts one"
        )
    })?;
    let schema = PgSchema::new(format!("es_bench_{}", uuid::Uuid::now_v7().simple()))?;
    es_postgres::migrate(&admin, &schema).await?;
    create_raw_table(&admin, &schema).await?;
    let single_sql = format!(
        "INSERT INTO {schema}.raw_events (event_id, stream_id, stream_version, aggregate_type, event_type,
             schema_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    );
    let batch_sql = format!(
        "INSERT INTO {schema}.raw_events (event_id, stream_id, stream_version, aggregate_type, event_type,
             schema_version, payload, metadata)
         SELECT u.id, $2, u.v, u.a, u.t, u.s, u.p, u.m
         FROM unnest($1::uuid[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::jsonb[], $8::jsonb[])
             AS u(id, v, a, t, s, p, m)"
    );
    let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(&admin).await?;
    let fsync: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&admin).await?;
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
        "loading one {LOAD_EVENTS}-event stream (read_stream forward, pages of {LOAD_PAGE}, JSON decode)"
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
    sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE {schema}.events"))).execute(&admin).await?;
    let mut loads = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut total = 0u64;
        let mut count = 0usize;
        let mut from = StreamVersion(1);
        loop {
            let page = store.read_stream(&stream, from, Direction::Forward, LOAD_PAGE).await?;
            let last = page.last().map(|e| e.stream_version);
            let full = page.len() == LOAD_PAGE;
            for e in page {
                let d: Deposited = serde_json::from_value(e.payload)?;
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
    }
    let l = Latencies::of(&mut loads).ok_or_else(|| anyhow::anyhow!("no load samples"))?;
    println!("  {:<38} p50 {}   max {}   (20 loads)", "load 10k events", ms(l.p50), ms(l.max));
    // The same reads without the typed decode, and one query for all rows
    // straight from the pool, to show where the time goes.
    let mut reads = Vec::new();
    let mut one_query = Vec::new();
    let all_rows = format!(
        "SELECT global_position, event_id, stream_id, stream_version, aggregate_type, event_type,
                schema_version, payload, metadata, recorded_at
         FROM {schema}.events WHERE stream_id = 'load' ORDER BY stream_version"
    );
    for _ in 0..20 {
        let t = Instant::now();
        let mut from = StreamVersion(1);
        loop {
            let page = store.read_stream(&stream, from, Direction::Forward, LOAD_PAGE).await?;
            match page.last() {
                Some(last) if page.len() == LOAD_PAGE => from = last.stream_version.next(),
                _ => break,
            }
        }
        reads.push(t.elapsed());
        let t = Instant::now();
        let rows = sqlx::query(AssertSqlSafe(all_rows.as_str())).fetch_all(&pool).await?;
        anyhow::ensure!(rows.len() == LOAD_EVENTS, "fetched {} rows", rows.len());
        one_query.push(t.elapsed());
    }
    let r = Latencies::of(&mut reads).ok_or_else(|| anyhow::anyhow!("no read samples"))?;
    println!("  {:<38} p50 {}", "  of which read_stream (no typed decode)", ms(r.p50));
    let mut single_page = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let page = store.read_stream(&stream, StreamVersion(1), Direction::Forward, LOAD_EVENTS).await?;
        anyhow::ensure!(page.len() == LOAD_EVENTS, "read {} events", page.len());
        single_page.push(t.elapsed());
    }
    let sp = Latencies::of(&mut single_page).ok_or_else(|| anyhow::anyhow!("no samples"))?;
    println!("  {:<38} p50 {}", "  read_stream, one page of 10k", ms(sp.p50));
    let q = Latencies::of(&mut one_query).ok_or_else(|| anyhow::anyhow!("no query samples"))?;
    println!("  {:<38} p50 {}", "  raw rows, one query, no decode", ms(q.p50));

    pool.close().await;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await?;
    Ok(())
}
