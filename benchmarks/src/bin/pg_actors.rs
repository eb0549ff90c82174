//! Aggregate actors on Postgres: `Es::execute` on hot aggregates against raw
//! single-row INSERTs of the same rows, and the load time of a long history
//! with and without a snapshot.
//!
//! Prints, in one run on one server:
//! - commands/s and p50/p99 of `Es::execute` with 1, 8 and 32 concurrent
//!   writers, each on its own hot aggregate (one event per command), beside
//!   raw single-row INSERT transactions of the same rows, and the ratio; and,
//!   to show where a gap comes from, `EventStore::append` of the same rows
//!   without `Es`, and the adapter's own append statement run through plain
//!   sqlx (no adapter code, no `NOTIFY`);
//! - the same at 32 writers on the reload-per-command path, for contrast;
//! - commands on aggregates that do not exist yet (32 writers);
//! - contention: 1, 2 and 4 `Es` nodes on one hot aggregate, commands/s and
//!   conflicts per command (from `Es::stats`);
//! - the refusal path with and without the head check;
//! - `Es::load` of one aggregate with 10,000 events, without and with a
//!   snapshot (`AggregateConfig::snapshot_every`, `PgEventStore` as the
//!   snapshot store), beside the raw query of the same columns, and the
//!   first load on a fresh application (with how long building it took:
//!   `EsBuilder::build` opens and primes two connections before it returns).
//!
//! `Es::execute` runs with group commit on (the default) and off
//! (`GroupCommit::off`), side by side in each comparison.
//!
//! Raw baselines, each printed: `raw_minimal` (an identity key and a JSONB
//! payload) and `raw_events` (es's columns, keys and unique indexes). Every
//! figure is the median of 5 runs with the min and max.
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_actors`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`);
//! add `hot`, `load`, `fresh` or `nodes` for only the hot aggregates at 8
//! and 32 writers, the load times, the fresh aggregates, or the contention
//! and refusal figures. `GROUPS_IN_FLIGHT=<n>` sets
//! `GroupCommit::max_in_flight` of the grouped store.
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use es_benchmarks::counter::{Counter, Increment, Incremented, Take};
use es_benchmarks::pg::{
    admin_pool, analyze, create_raw_tables, database_url, drop_schema, fresh_schema, pool, raw_runs, server,
    RawTable,
};
use es_benchmarks::{ms, run_writers, Run, Runs, Spread, RUNS};
use es_core::runtime::{AggregateConfig, CommandPath};
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{Aggregate, Es, Event, StreamId, StreamVersion};
use es_postgres::{GroupCommit, PgEventStore, PgSchema};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Row};

/// Events in the history the load benchmark reads.
const LOAD_EVENTS: u64 = 10_000;
/// Loads timed per variant.
const LOADS: usize = 20;
/// First loads on a fresh application, timed per variant.
const COLD: usize = 9;

/// The row `Es::execute` appends for `Increment { by: 1 }`, as a raw insert.
fn raw_event(_: usize) -> NewEvent {
    NewEvent::new(Counter::NAME, Incremented::TYPE, 1, serde_json::json!({ "by": 1 }))
}

fn aggregate_id(tag: &str, writer: usize) -> String {
    format!("{tag}-{writer}")
}

/// `writers` tasks, each sending `per_writer` increments to its own counter
/// `{tag}-{writer}` one after another.
async fn execute_runs(es: &Es, writers: usize, per_writer: usize, tag: &str) -> anyhow::Result<Run> {
    let es = es.clone();
    let tag = tag.to_owned();
    run_writers(writers, per_writer, 1, move |w, _| {
        let es = es.clone();
        let id = aggregate_id(&tag, w);
        async move {
            es.execute(Increment { id, by: 1 }).await?;
            Ok(())
        }
    })
    .await
}

/// `writers` tasks, each appending `per_writer` single events of the same
/// shape straight to the event store (no `Es`), into a new stream
/// `counter-{tag}-{writer}` with exact expected versions.
async fn append_runs(
    store: &PgEventStore,
    writers: usize,
    per_writer: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let store = store.clone();
    let tag = tag.to_owned();
    run_writers(writers, per_writer, 1, move |w, i| {
        let store = store.clone();
        let stream = StreamId::for_aggregate(Counter::NAME, &aggregate_id(&tag, w));
        async move {
            let expected = match i {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(StreamVersion(v as u64)),
            };
            store.append(&stream, expected, vec![raw_event(i)]).await?;
            Ok(())
        }
    })
    .await
}

/// The statement `PgEventStore::append` runs for one event, read from the
/// adapter's source so the figure follows it.
const STORE_APPEND_SQL: &str = include_str!("../../../es-postgres/src/event_store/append_single.sql");

/// `writers` tasks running the event store's own single-event append
/// statement through plain sqlx (no adapter code around it, no `NOTIFY`
/// after it), into a new stream `counter-{tag}-{writer}` each.
async fn statement_runs(
    pool: &PgPool,
    schema: &PgSchema,
    writers: usize,
    per_writer: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let sql = Arc::new(STORE_APPEND_SQL.replace("{schema}", &format!("\"{schema}\"")));
    let pool = pool.clone();
    let tag = tag.to_owned();
    run_writers(writers, per_writer, 1, move |w, i| {
        let (pool, sql) = (pool.clone(), sql.clone());
        let stream = StreamId::for_aggregate(Counter::NAME, &aggregate_id(&tag, w));
        async move {
            // Expectation codes of the statement: 1 no stream, 3 exact.
            let (kind, exact) = if i == 0 { (1i32, 0i64) } else { (3, i as i64) };
            let event = raw_event(i);
            let row = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(stream.as_str())
                .bind(kind)
                .bind(exact)
                .bind(event.event_id.as_uuid())
                .bind(event.aggregate_type.as_str())
                .bind(event.event_type.as_str())
                .bind(i64::from(event.schema_version))
                .bind(Json(&event.payload))
                .bind(Json(&event.metadata))
                .fetch_one(&pool)
                .await?;
            let inserted: i64 = row.try_get("inserted")?;
            anyhow::ensure!(inserted == 1, "the append statement inserted {inserted} rows");
            Ok(())
        }
    })
    .await
}

/// The figures of one comparison.
struct Comparison {
    execute: Runs,
    ungrouped: Runs,
    append: Runs,
    statement: Runs,
    minimal: Runs,
    es_columns: Runs,
}

impl Comparison {
    fn print(&self, label: &str) {
        self.execute.print(label, "commands");
        self.ungrouped.print("  the same, group commit off", "commands");
        self.append.print("EventStore::append, same rows", "events");
        self.statement.print("its append SQL via plain sqlx", "events");
        self.minimal.print(RawTable::Minimal.label(), "rows");
        self.es_columns.print(RawTable::EsColumns.label(), "rows");
        self.execute.print_ratio("execute / raw minimal", &self.minimal);
        self.execute.print_ratio("execute / raw es columns", &self.es_columns);
        self.ungrouped.print_ratio("execute, group commit off / raw minimal", &self.minimal);
        self.append.print_ratio("append / raw es columns", &self.es_columns);
        self.statement.print_ratio("append SQL / raw es columns", &self.es_columns);
        if let (Some(ours), Some(raw)) = (&self.execute.latencies, &self.minimal.latencies) {
            println!(
                "  {:<40} {:>8.2} x   (p99 execute {} / raw minimal {})",
                "p99 latency, execute / raw minimal",
                ours.p99.as_secs_f64() / raw.p99.as_secs_f64().max(f64::MIN_POSITIVE),
                ms(ours.p99),
                ms(raw.p99)
            );
        }
    }
}

/// One comparison: `es` against the event store alone and against raw
/// single-row INSERTs, with `writers` writers and `commands` commands per
/// run, in [`RUNS`] alternating runs. Every aggregate gets one command
/// first, so its actor is live (on the actor path) and its stream exists.
async fn compare(
    es: &Es,
    ungrouped_es: &Es,
    store: &PgEventStore,
    pool: &PgPool,
    writers: usize,
    commands: usize,
    label: &str,
) -> anyhow::Result<Comparison> {
    let schema = store.schema();
    let tag = format!("{label}{writers}");
    execute_runs(es, writers, 1, &tag).await?;
    execute_runs(ungrouped_es, writers, 1, &format!("{tag}-off")).await?;
    append_runs(store, writers, 3, &format!("warm-{tag}")).await?;
    statement_runs(pool, schema, writers, 3, &format!("warm-s-{tag}")).await?;
    for table in RawTable::BOTH {
        let warm = format!("warm-raw-{tag}-{table:?}");
        raw_runs(pool, schema, table, writers, 3, 1, move |w| aggregate_id(&warm, w), raw_event).await?;
    }
    let per_round = commands / writers;
    let (mut execute, mut ungrouped, mut append, mut statement, mut minimal, mut es_columns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..RUNS {
        execute.push(execute_runs(es, writers, per_round, &tag).await?);
        ungrouped.push(execute_runs(ungrouped_es, writers, per_round, &format!("{tag}-off")).await?);
        append.push(append_runs(store, writers, per_round, &format!("{tag}a{round}")).await?);
        statement.push(statement_runs(pool, schema, writers, per_round, &format!("{tag}s{round}")).await?);
        for (table, runs) in [(RawTable::Minimal, &mut minimal), (RawTable::EsColumns, &mut es_columns)] {
            // Same stream names as `Es` uses (`counter-<id>`).
            let tag = format!("{}-{tag}r{round}", Counter::NAME);
            runs.push(
                raw_runs(
                    pool,
                    schema,
                    table,
                    writers,
                    per_round,
                    1,
                    move |w| aggregate_id(&tag, w),
                    raw_event,
                )
                .await?,
            );
        }
    }
    Ok(Comparison {
        execute: Runs::of(execute),
        ungrouped: Runs::of(ungrouped),
        append: Runs::of(append),
        statement: Runs::of(statement),
        minimal: Runs::of(minimal),
        es_columns: Runs::of(es_columns),
    })
}

/// `writers` tasks, each sending `per_writer` increments, every one to a
/// counter that does not exist yet (`{tag}-{writer}-{n}`).
async fn fresh_runs(es: &Es, writers: usize, per_writer: usize, tag: &str) -> anyhow::Result<Run> {
    let es = es.clone();
    let tag = tag.to_owned();
    run_writers(writers, per_writer, 1, move |w, i| {
        let es = es.clone();
        let id = format!("{tag}-{w}-{i}");
        async move {
            es.execute(Increment { id, by: 1 }).await?;
            Ok(())
        }
    })
    .await
}

/// Commands on aggregates that do not exist yet, 32 writers: `Es::execute`
/// (one round trip: decided on the default state, appended expecting no
/// stream), the same reading the empty stream first
/// (`assume_new_aggregates(false)`, two round trips), each with group commit
/// on and off, against raw single-row INSERTs.
async fn fresh_aggregates(store: &PgEventStore, pool: &PgPool) -> anyhow::Result<()> {
    const WRITERS: usize = 32;
    const PER_WRITER: usize = 60;
    println!("fresh aggregates: every command to a new aggregate, {WRITERS} writers, one event per command");
    let ungrouped_store = PgEventStore::with_schema(pool.clone(), store.schema().clone());
    ungrouped_store.set_group_commit(GroupCommit::off());
    let mut apps = Vec::new();
    for (label, events, assume) in [
        ("Es::execute, 1 round trip", store, true),
        ("  the same, group commit off", &ungrouped_store, true),
        ("Es::execute, read first (2 round trips)", store, false),
        ("  the same, group commit off", &ungrouped_store, false),
    ] {
        let es = Es::builder().event_store(events.clone()).assume_new_aggregates(assume).build().await?;
        fresh_runs(&es, WRITERS, 3, &format!("fresh-warm-{}", apps.len())).await?;
        apps.push((label, es, Vec::new()));
    }
    let mut minimal = Vec::new();
    for round in 0..RUNS {
        for (n, (_, es, runs)) in apps.iter_mut().enumerate() {
            runs.push(fresh_runs(es, WRITERS, PER_WRITER, &format!("fresh{round}-{n}")).await?);
        }
        let tag = format!("fresh-raw{round}");
        let ids = move |w| aggregate_id(&tag, w);
        minimal.push(
            raw_runs(pool, store.schema(), RawTable::Minimal, WRITERS, PER_WRITER, 1, ids, raw_event).await?,
        );
    }
    let minimal = Runs::of(minimal);
    let mut all = Vec::new();
    for (label, es, runs) in apps {
        let runs = Runs::of(runs);
        runs.print(label, "commands");
        es.shutdown().await;
        all.push(runs);
    }
    minimal.print(RawTable::Minimal.label(), "rows");
    all[0].print_ratio("1 round trip / raw minimal", &minimal);
    all[0].print_ratio("1 round trip / read first", &all[2]);
    all[1].print_ratio("1 rt, no group commit / read first, none", &all[3]);
    Ok(())
}

/// Several `Es` nodes on one store, all sending increments to one hot
/// aggregate: commands/s over all nodes, and conflicts per command (from
/// each node's `Es::stats`).
async fn contention(store: &PgEventStore) -> anyhow::Result<()> {
    const CALLERS_PER_NODE: usize = 2;
    const PER_CALLER: usize = 50;
    println!(
        "contention: 1, 2 and 4 Es nodes on one Postgres, one hot aggregate, {CALLERS_PER_NODE} callers per node \
         ({PER_CALLER} commands each)"
    );
    for nodes in [1usize, 2, 4] {
        let mut apps = Vec::new();
        for _ in 0..nodes {
            apps.push(Es::builder().event_store(store.clone()).build().await?);
        }
        let id = format!("contended-{nodes}");
        for es in &apps {
            es.execute(Increment { id: id.clone(), by: 1 }).await?;
        }
        let (mut rates, mut per_command) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let before: u64 = apps.iter().map(|es| es.stats().conflicts).sum();
            let started = Instant::now();
            let mut tasks = Vec::new();
            for es in &apps {
                for _ in 0..CALLERS_PER_NODE {
                    let (es, id) = (es.clone(), id.clone());
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..PER_CALLER {
                            es.execute(Increment { id: id.clone(), by: 1 }).await?;
                        }
                        anyhow::Ok(())
                    }));
                }
            }
            for task in tasks {
                task.await??;
            }
            let commands = (nodes * CALLERS_PER_NODE * PER_CALLER) as u64;
            rates.push(es_benchmarks::rate(commands, started.elapsed()));
            let after: u64 = apps.iter().map(|es| es.stats().conflicts).sum();
            per_command.push((after - before) as f64 / commands as f64);
        }
        if let (Some(rate), Some(conflicts)) = (Spread::of(&rates), Spread::of(&per_command)) {
            println!("  {nodes} node(s): {rate} commands/s, {} conflicts per command", conflicts.show(2));
        }
        for es in apps {
            es.shutdown().await;
        }
    }
    Ok(())
}

/// Refusals per second on a hot aggregate on Postgres, with the head check
/// (a single-row read per refusal) and without it (`single_writer`).
async fn refusal_path(store: &PgEventStore) -> anyhow::Result<()> {
    const PER_RUN: u64 = 1000;
    let checked = Es::builder().event_store(store.clone()).build().await?;
    let unchecked = Es::builder().event_store(store.clone()).single_writer().build().await?;
    checked.execute(Increment { id: "refuser".into(), by: 1 }).await?;
    let refuse = || Take { id: "refuser".into(), by: u64::MAX };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for (es, runs) in [(&checked, &mut with), (&unchecked, &mut without)] {
            let started = Instant::now();
            for _ in 0..PER_RUN {
                anyhow::ensure!(es.execute(refuse()).await.is_err(), "the take was not refused");
            }
            runs.push(es_benchmarks::rate(PER_RUN, started.elapsed()));
        }
    }
    println!("refusal path on Postgres, hot aggregate, 1 caller awaiting each:");
    if let (Some(a), Some(b), Some(r)) =
        (Spread::of(&with), Spread::of(&without), Spread::of_ratios(&with, &without))
    {
        println!("  {:<40} {a} refusals/s", "with the head check (default)");
        println!("  {:<40} {b} refusals/s", "without (EsBuilder::single_writer)");
        println!("  {:<40} {}", "with / without (per-run ratios)", r.show(2));
    }
    checked.shutdown().await;
    unchecked.shutdown().await;
    Ok(())
}

/// Times `Es::load` of counter `id` [`LOADS`] times, in milliseconds.
async fn loads(es: &Es, id: &str, expect: u64) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let t = Instant::now();
        let counter = es.load::<Counter>(id).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(counter.count == expect, "loaded {} events, expected {expect}", counter.count);
    }
    Ok(samples)
}

/// Times the raw query of the columns a load reads, [`LOADS`] times, in
/// milliseconds: one statement fetching every row, decoding each payload.
async fn raw_loads(pool: &PgPool, schema: &PgSchema, stream: &StreamId) -> anyhow::Result<Vec<f64>> {
    let sql = format!(
        "SELECT stream_version, event_type, schema_version, payload
         FROM {schema}.events WHERE stream_id = $1 ORDER BY stream_version"
    );
    let mut samples = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let t = Instant::now();
        let rows = sqlx::query(AssertSqlSafe(sql.as_str())).bind(stream.as_str()).fetch_all(pool).await?;
        let mut total = 0u64;
        for row in &rows {
            let Json(payload): Json<Incremented> = row.try_get("payload")?;
            total += payload.by;
        }
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(total == LOAD_EVENTS, "summed {total} from {} rows", rows.len());
    }
    Ok(samples)
}

/// The first `Es::load` of a fresh application (new pool, store and `Es`
/// each time; the pool's connection is open, nothing else has run on it),
/// [`COLD`] times, in milliseconds; and, beside each, how long
/// `EsBuilder::build` took (it opens and primes two connections first).
async fn cold_loads(url: &str, schema: &PgSchema, snapshots: bool) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut samples, mut builds) = (Vec::with_capacity(COLD), Vec::with_capacity(COLD));
    for _ in 0..COLD {
        let pool = pool(url, 4).await?;
        let store = PgEventStore::with_schema(pool.clone(), schema.clone());
        let mut builder = Es::builder().event_store(store.clone());
        if snapshots {
            builder = builder.snapshot_store(store.clone());
        }
        let t = Instant::now();
        let es = builder.build().await?;
        builds.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let counter = es.load::<Counter>("big").await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(counter.count == LOAD_EVENTS, "loaded {} events", counter.count);
        es.shutdown().await;
        pool.close().await;
    }
    Ok((samples, builds))
}

async fn load_times(url: &str, store: &PgEventStore, admin: &PgPool) -> anyhow::Result<()> {
    // All but the last event straight into the store; the last one through
    // an application that snapshots every 1,000 events, so its append
    // crosses 10,000 and takes the snapshot.
    let stream = StreamId::for_aggregate(Counter::NAME, "big");
    let mut written = 0u64;
    while written < LOAD_EVENTS - 1 {
        let batch = (LOAD_EVENTS - 1 - written).min(1000);
        let events = (0..batch).map(|n| raw_event(n as usize)).collect();
        store.append(&stream, ExpectedVersion::Any, events).await?;
        written += batch;
    }
    analyze(admin, store.schema(), "events").await?;

    let plain = Es::builder().event_store(store.clone()).build().await?;
    let snapshotting = Es::builder()
        .event_store(store.clone())
        .snapshot_store(store.clone())
        .aggregate::<Counter>(AggregateConfig { snapshot_every: Some(1000) })
        .build()
        .await?;
    snapshotting.execute(Increment { id: "big".into(), by: 1 }).await?;
    // The actor saves the snapshot off the reply path: wait until it is in.
    let deadline = Instant::now() + Duration::from_secs(10);
    while snapshotting.stats().snapshots_saved == 0 {
        anyhow::ensure!(Instant::now() < deadline, "no snapshot saved within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    analyze(admin, store.schema(), "snapshots").await?;

    println!("Es::load of one counter with {LOAD_EVENTS} events (median of {LOADS} loads, min, max; ms)");
    let without = loads(&plain, "big", LOAD_EVENTS).await?;
    let raw = raw_loads(store.pool(), store.schema(), &stream).await?;
    let with = loads(&snapshotting, "big", LOAD_EVENTS).await?;
    let show = |samples: &[f64]| Spread::of(samples).map_or_else(String::new, |s| s.show(3));
    println!("  {:<40} {}", "without a snapshot (warm pool)", show(&without));
    println!("  {:<40} {}", "raw: the same 4 columns, one query", show(&raw));
    let ratios: Vec<f64> = without.iter().zip(&raw).map(|(a, b)| a / b).collect();
    println!("  {:<40} {}", "load / raw (per-sample ratios)", show(&ratios));
    println!("  {:<40} {}", "with a snapshot at 10,000 (warm pool)", show(&with));
    plain.shutdown().await;
    snapshotting.shutdown().await;
    println!(
        "first Es::load on a fresh application (new pool, store and Es; median of {COLD}, min, max; ms)"
    );
    let (with, build_with) = cold_loads(url, store.schema(), true).await?;
    let (without, build_without) = cold_loads(url, store.schema(), false).await?;
    println!("  {:<40} {}", "with a snapshot", show(&with));
    println!("  {:<40} {}", "without a snapshot", show(&without));
    let builds: Vec<f64> = build_with.into_iter().chain(build_without).collect();
    println!("  {:<40} {}", "EsBuilder::build before it (both)", show(&builds));
    Ok(())
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
    create_raw_tables(admin, schema).await?;
    let (server, sync) = server(admin).await?;
    println!("pg_actors: Postgres {server} (synchronous_commit = {sync}), schema {schema}");
    println!("every figure: median of {RUNS} runs (min, max); es and raw runs alternate; ratios per run");

    let pool = pool(url, 34).await?;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    if let Some(groups) = std::env::var("GROUPS_IN_FLIGHT").ok().and_then(|v| v.parse().ok()) {
        store.set_group_commit(GroupCommit::default().max_in_flight(groups));
        println!("group commit: {groups} groups in flight (GROUPS_IN_FLIGHT)");
    }
    let only = std::env::args().nth(1);
    match only.as_deref() {
        Some("hot") => hot(&store, &pool).await?,
        Some("load") => load_times(url, &store, admin).await?,
        Some("fresh") => fresh_aggregates(&store, &pool).await?,
        Some("nodes") => {
            contention(&store).await?;
            refusal_path(&store).await?;
        }
        _ => everything(url, admin, &store, &pool).await?,
    }
    pool.close().await;
    Ok(())
}

/// Only the hot-aggregate comparison at 8 and 32 writers.
async fn hot(store: &PgEventStore, pool: &PgPool) -> anyhow::Result<()> {
    let actors = Es::builder().event_store(store.clone()).build().await?;
    let ungrouped_store = PgEventStore::with_schema(pool.clone(), store.schema().clone());
    ungrouped_store.set_group_commit(GroupCommit::off());
    let ungrouped = Es::builder().event_store(ungrouped_store).build().await?;
    for writers in [8usize, 32] {
        let figures = compare(&actors, &ungrouped, store, pool, writers, 1600, "hot").await?;
        println!(" {writers} writer(s):");
        figures.print("Es::execute (actors)");
    }
    actors.shutdown().await;
    ungrouped.shutdown().await;
    Ok(())
}

async fn everything(url: &str, admin: &PgPool, store: &PgEventStore, pool: &PgPool) -> anyhow::Result<()> {
    let actors = Es::builder().event_store(store.clone()).build().await?;
    let reload = Es::builder().event_store(store.clone()).command_path(CommandPath::Reload).build().await?;
    // The same schema and pool, every append in its own transaction.
    let ungrouped_store = PgEventStore::with_schema(pool.clone(), store.schema().clone());
    ungrouped_store.set_group_commit(GroupCommit::off());
    let ungrouped = Es::builder().event_store(ungrouped_store.clone()).build().await?;
    let ungrouped_reload =
        Es::builder().event_store(ungrouped_store).command_path(CommandPath::Reload).build().await?;

    println!("hot aggregates: one per writer, one event per command (actor path)");
    let mut at_32 = None;
    for writers in [1usize, 8, 32] {
        let commands = if writers == 1 { 600 } else { 1600 };
        let figures = compare(&actors, &ungrouped, store, pool, writers, commands, "hot").await?;
        println!(
            " {writers} writer(s){}:",
            if writers == 1 { " (one caller awaiting each command)" } else { "" }
        );
        figures.print("Es::execute (actors)");
        if writers == 32 {
            at_32 = Some(figures.execute.spread().median);
        }
    }
    println!("reload path (CommandPath::Reload): every command reads its stream first");
    let figures = compare(&reload, &ungrouped_reload, store, pool, 32, 1600, "reload").await?;
    println!(" 32 writers:");
    figures.print("Es::execute (reload)");
    if let Some(actors_rate) = at_32 {
        println!(
            "  {:<40} {:>8.1} x (medians)",
            "actors / reload at 32 writers",
            actors_rate / figures.execute.spread().median
        );
    }
    fresh_aggregates(store, pool).await?;
    for es in [actors, reload, ungrouped, ungrouped_reload] {
        es.shutdown().await;
    }

    contention(store).await?;
    refusal_path(store).await?;
    load_times(url, store, admin).await?;
    Ok(())
}
