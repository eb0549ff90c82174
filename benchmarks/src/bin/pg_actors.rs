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
//! - `Es::load` of one aggregate with 10,000 events, without and with a
//!   snapshot (`AggregateConfig::snapshot_every`, `PgEventStore` as the
//!   snapshot store).
//!
//! Run: `cargo run --release -p es-benchmarks --bin pg_actors`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`);
//! add `load` for the load times only.
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use es_benchmarks::pg::{
    admin_pool, analyze, create_raw_table, database_url, drop_schema, fresh_schema, pool, raw_runs,
    raw_single_sql, server,
};
use es_benchmarks::{ms, run_writers, Latencies, Run};
use es_core::runtime::{AggregateConfig, CommandPath};
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{command, event, Aggregate, Apply, Es, Event, Events, Handle, StreamId, StreamVersion};
use es_postgres::{PgEventStore, PgSchema};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Row};

/// Rounds per comparison: ours and raw alternate, so background load that
/// drifts during the run hits both alike.
const ROUNDS: usize = 4;
/// Events in the history the load benchmark reads.
const LOAD_EVENTS: u64 = 10_000;
/// Loads timed per variant.
const LOADS: usize = 20;

// ---- a counter aggregate, written with the es macros ----

/// The counter went up.
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Incremented {
    by: u64,
}

/// Adds to a counter.
#[command(aggregate = Counter)]
#[derive(Debug, Clone)]
struct Increment {
    #[id]
    id: String,
    by: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("counter refused the command")]
struct CounterError;

/// A counter: the sum of its increments.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(name = "counter", error = CounterError, events(Incremented), commands(Increment))]
struct Counter {
    total: u64,
    count: u64,
}

impl Handle<Increment> for Counter {
    fn handle(&self, command: Increment) -> Result<Events<Self>, CounterError> {
        Ok(Events::one(Incremented { by: command.by }))
    }
}

impl Apply<Incremented> for Counter {
    fn apply(&mut self, e: &Incremented) {
        self.total += e.by;
        self.count += 1;
    }
}

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
    execute: Run,
    append: Run,
    statement: Run,
    raw: Run,
}

impl Comparison {
    fn print(&self, label: &str) {
        self.execute.print_as(label, "commands");
        self.append.print_as("EventStore::append, same rows", "events");
        self.statement.print_as("its append SQL via plain sqlx", "events");
        self.raw.print_as("raw single-row INSERT", "rows");
        let of_raw = |run: &Run| 100.0 * run.rate() / self.raw.rate();
        println!(
            "  {:<38} {:>9.0} %   (append / raw {:.0} %, append SQL / raw {:.0} %)",
            "execute / raw",
            of_raw(&self.execute),
            of_raw(&self.append),
            of_raw(&self.statement)
        );
    }
}

/// One comparison: `es` against the event store alone and against raw
/// single-row INSERTs, with `writers` writers and `commands` commands in
/// all, in [`ROUNDS`] alternating rounds. Every aggregate gets one command
/// first, so its actor is live (on the actor path) and its stream exists.
async fn compare(
    es: &Es,
    store: &PgEventStore,
    pool: &PgPool,
    sql: &str,
    writers: usize,
    commands: usize,
    label: &str,
) -> anyhow::Result<Comparison> {
    let tag = format!("{label}{writers}");
    execute_runs(es, writers, 1, &tag).await?;
    append_runs(store, writers, 3, &format!("warm-{tag}")).await?;
    statement_runs(pool, store.schema(), writers, 3, &format!("warm-s-{tag}")).await?;
    let warm = format!("warm-raw-{tag}");
    raw_runs(pool, sql.to_owned(), writers, 3, 1, move |w| aggregate_id(&warm, w), raw_event).await?;
    let per_round = commands / writers / ROUNDS;
    let (mut execute, mut append, mut statement, mut raw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        execute.push(execute_runs(es, writers, per_round, &tag).await?);
        append.push(append_runs(store, writers, per_round, &format!("{tag}a{round}")).await?);
        statement
            .push(statement_runs(pool, store.schema(), writers, per_round, &format!("{tag}s{round}")).await?);
        // Same stream names as `Es` uses (`counter-<id>`), in the raw table.
        let tag = format!("{}-{tag}r{round}", Counter::NAME);
        raw.push(
            raw_runs(pool, sql.to_owned(), writers, per_round, 1, move |w| aggregate_id(&tag, w), raw_event)
                .await?,
        );
    }
    Ok(Comparison {
        execute: Run::merge(execute),
        append: Run::merge(append),
        statement: Run::merge(statement),
        raw: Run::merge(raw),
    })
}

/// Times `Es::load` of counter `id` [`LOADS`] times.
async fn loads(es: &Es, id: &str, expect: u64) -> anyhow::Result<Latencies> {
    let mut samples = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let t = Instant::now();
        let counter = es.load::<Counter>(id).await?;
        samples.push(t.elapsed());
        anyhow::ensure!(counter.count == expect, "loaded {} events, expected {expect}", counter.count);
    }
    Latencies::of(&mut samples).ok_or_else(|| anyhow::anyhow!("no load samples"))
}

async fn load_times(store: &PgEventStore, admin: &PgPool) -> anyhow::Result<()> {
    println!("Es::load of one counter with {LOAD_EVENTS} events (p50 of {LOADS} loads)");
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

    let without = loads(&plain, "big", LOAD_EVENTS).await?;
    let with = loads(&snapshotting, "big", LOAD_EVENTS).await?;
    println!("  {:<38} p50 {}   max {}", "without a snapshot", ms(without.p50), ms(without.max));
    println!("  {:<38} p50 {}   max {}", "with a snapshot at 10,000", ms(with.p50), ms(with.max));
    plain.shutdown().await;
    snapshotting.shutdown().await;
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
    create_raw_table(admin, schema).await?;
    let sql = raw_single_sql(schema);
    let (server, sync) = server(admin).await?;
    println!("pg_actors: Postgres {server} (synchronous_commit = {sync}), schema {schema}");

    let pool = pool(url, 34).await?;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    if std::env::args().nth(1).as_deref() == Some("load") {
        load_times(&store, admin).await?;
        pool.close().await;
        return Ok(());
    }
    let actors = Es::builder().event_store(store.clone()).build().await?;
    let reload = Es::builder().event_store(store.clone()).command_path(CommandPath::Reload).build().await?;

    println!("hot aggregates: one per writer, one event per command (actor path)");
    let mut at_32 = None;
    for writers in [1usize, 8, 32] {
        let commands = if writers == 1 { 3000 } else { 6400 };
        let figures = compare(&actors, &store, &pool, &sql, writers, commands, "hot").await?;
        println!(" {writers} writer(s):");
        figures.print("Es::execute (actors)");
        if writers == 32 {
            at_32 = Some(figures.execute.rate());
        }
    }
    println!("reload path (CommandPath::Reload): every command reads its stream first");
    let figures = compare(&reload, &store, &pool, &sql, 32, 6400, "reload").await?;
    println!(" 32 writers (histories grow from 1 to about 200 events during the run):");
    figures.print("Es::execute (reload)");
    if let Some(actors_rate) = at_32 {
        println!("  {:<38} {:>9.1} x", "actors / reload at 32 writers", actors_rate / figures.execute.rate());
    }
    actors.shutdown().await;
    reload.shutdown().await;

    load_times(&store, admin).await?;

    pool.close().await;
    Ok(())
}
