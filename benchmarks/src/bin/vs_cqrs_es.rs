//! es against cqrs-es 0.5 (with postgres-es) on one Postgres, in one run.
//!
//! Both drive the same counter (one `Incremented { by }` event per command)
//! through their own front door, as a new user would: `Es::execute` with
//! the defaults (actors, group commit, one round trip for a new aggregate),
//! and `CqrsFramework::execute` of `postgres_cqrs` (every command loads the
//! aggregate's events, decides, and inserts in a transaction). Each side has
//! a pool of 34 connections and its own tables in the same fresh schema.
//!
//! Prints, each figure the median of 5 runs with min and max (the two sides
//! alternate within each round, ratios per round):
//! - fresh aggregates: 32 writers, every command to an aggregate that does
//!   not exist yet;
//! - hot aggregates: 32 writers and 1 writer, each on its own aggregate,
//!   100 commands per writer and run (histories grow from 0 to 100 events
//!   within a run; each run uses new aggregates);
//! - a load of a 10,000-event aggregate, 20 loads per side taken in turns:
//!   `Es::load` against cqrs-es's `EventStore::load_aggregate`, in ms.
//!
//! Run: `cargo run --release -p es-benchmarks --bin vs_cqrs_es`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{DomainEvent, EventStore as _};
use es_benchmarks::counter::{Counter, Increment, Incremented};
use es_benchmarks::pg::{in_fresh_schema, pool, print_server};
use es_benchmarks::{run_writers, Run, Runs, Spread, RUNS};
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{Aggregate, Es, Event, StreamId};
use es_postgres::{PgEventStore, PgSchema};
use postgres_es::{PostgresCqrs, PostgresEventRepository};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx08::postgres::PgPoolOptions;

/// The counter as cqrs-es declares an aggregate.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CqrsCounter {
    total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CounterEvent {
    Incremented { by: u64 },
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        "Incremented".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The counter refuses nothing.
#[derive(Debug, thiserror::Error)]
#[error("the counter refused")]
struct Refused;

impl cqrs_es::Aggregate for CqrsCounter {
    const TYPE: &'static str = "counter";
    type Command = u64;
    type Event = CounterEvent;
    type Error = Refused;
    type Services = ();

    async fn handle(&mut self, by: u64, _: &(), sink: &EventSink<Self>) -> Result<(), Refused> {
        sink.write(CounterEvent::Incremented { by }, self).await;
        Ok(())
    }

    fn apply(&mut self, event: CounterEvent) {
        match event {
            CounterEvent::Incremented { by } => self.total += by,
        }
    }
}

/// cqrs-es on tables `cqrs_events` and `cqrs_snapshots` of `schema`
/// (postgres-es's own table layout).
async fn cqrs_app(url: &str, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<CqrsSide> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {schema}.cqrs_events (
            aggregate_type text NOT NULL,
            aggregate_id text NOT NULL,
            sequence bigint CHECK (sequence >= 0) NOT NULL,
            event_type text NOT NULL,
            event_version text NOT NULL,
            payload json NOT NULL,
            metadata json NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id, sequence)
        );
        CREATE TABLE {schema}.cqrs_snapshots (
            aggregate_type text NOT NULL,
            aggregate_id text NOT NULL,
            last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
            current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
            payload json NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
        )"
    )))
    .execute(admin)
    .await?;
    let pool = PgPoolOptions::new().max_connections(34).connect(url).await?;
    let repository = || {
        PostgresEventRepository::new(pool.clone())
            .with_tables(&format!("{schema}.cqrs_events"), &format!("{schema}.cqrs_snapshots"))
    };
    // What `postgres_es::postgres_cqrs` builds, on a pool of the same size as es's.
    let framework =
        cqrs_es::CqrsFramework::new(PersistedEventStore::new_event_store(repository()), Vec::new(), ());
    Ok(CqrsSide { framework: Arc::new(framework), store: PersistedEventStore::new_event_store(repository()) })
}

/// cqrs-es: its framework, and its event store for loads.
struct CqrsSide {
    framework: Arc<PostgresCqrs<CqrsCounter>>,
    store: PersistedEventStore<PostgresEventRepository, CqrsCounter>,
}

/// Events in the history the loads read.
const LOAD_EVENTS: u64 = 10_000;
/// Loads timed per side.
const LOADS: usize = 20;

/// Stores counter `big` with [`LOAD_EVENTS`] increments on both sides.
async fn prefill_big(es_store: &PgEventStore, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    let stream = StreamId::for_aggregate(Counter::NAME, "big");
    for _ in 0..LOAD_EVENTS / 1_000 {
        let events = (0..1_000)
            .map(|_| NewEvent::new(Counter::NAME, Incremented::TYPE, 1, serde_json::json!({ "by": 1 })))
            .collect();
        es_store.append(&stream, ExpectedVersion::Any, events).await?;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"INSERT INTO {schema}.cqrs_events
         SELECT 'counter', 'big', n, 'Incremented', '1', '{{"Incremented":{{"by":1}}}}', '{{}}'
         FROM generate_series(1, {LOAD_EVENTS}) AS n;
         ANALYZE {schema}.events; ANALYZE {schema}.cqrs_events"#
    )))
    .execute(admin)
    .await?;
    Ok(())
}

/// `Es::load` and cqrs-es's `load_aggregate` of counter `big`, [`LOADS`]
/// times each, in turns; milliseconds.
async fn loads(es: &Es, cqrs: &CqrsSide) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut ours, mut theirs) = (Vec::with_capacity(LOADS), Vec::with_capacity(LOADS));
    for _ in 0..LOADS {
        let t = Instant::now();
        let counter = es.load::<Counter>("big").await?;
        ours.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(counter.count == LOAD_EVENTS, "es loaded {} events", counter.count);
        let t = Instant::now();
        let mut context =
            cqrs.store.load_aggregate("big").await.map_err(|e| anyhow::anyhow!("cqrs-es: {e}"))?;
        theirs.push(t.elapsed().as_secs_f64() * 1e3);
        let total = cqrs_es::AggregateContext::aggregate(&mut context).total;
        anyhow::ensure!(total == LOAD_EVENTS, "cqrs-es loaded {total} events");
    }
    Ok((ours, theirs))
}

/// `writers` tasks, each sending `per_writer` increments through `Es`, to
/// `{tag}-{writer}` (`fresh`: to `{tag}-{writer}-{n}`, a new aggregate each).
async fn es_run(es: &Es, writers: usize, per_writer: usize, tag: &str, fresh: bool) -> anyhow::Result<Run> {
    let (es, tag) = (es.clone(), tag.to_owned());
    run_writers(writers, per_writer, 1, move |w, i| {
        let es = es.clone();
        let id = if fresh { format!("{tag}-{w}-{i}") } else { format!("{tag}-{w}") };
        async move {
            es.execute(Increment { id, by: 1 }).await?;
            Ok(())
        }
    })
    .await
}

/// The same through cqrs-es.
async fn cqrs_run(
    cqrs: &Arc<PostgresCqrs<CqrsCounter>>,
    writers: usize,
    per_writer: usize,
    tag: &str,
    fresh: bool,
) -> anyhow::Result<Run> {
    let (cqrs, tag) = (cqrs.clone(), tag.to_owned());
    run_writers(writers, per_writer, 1, move |w, i| {
        let cqrs = cqrs.clone();
        let id = if fresh { format!("{tag}-{w}-{i}") } else { format!("{tag}-{w}") };
        async move {
            cqrs.execute(&id, 1).await.map_err(|error| anyhow::anyhow!("cqrs-es: {error}"))?;
            Ok(())
        }
    })
    .await
}

/// One comparison: `RUNS` rounds, es then cqrs-es in each.
async fn compare(
    label: &str,
    es: &Es,
    cqrs: &Arc<PostgresCqrs<CqrsCounter>>,
    writers: usize,
    per_writer: usize,
    fresh: bool,
) -> anyhow::Result<()> {
    let tag = format!("{}-{writers}", if fresh { "fresh" } else { "hot" });
    // Warm up both: connections open, statements prepared.
    es_run(es, writers, 2, &format!("{tag}-warm"), fresh).await?;
    cqrs_run(cqrs, writers, 2, &format!("{tag}-warm"), fresh).await?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..RUNS {
        ours.push(es_run(es, writers, per_writer, &format!("{tag}-es{round}"), fresh).await?);
        theirs.push(cqrs_run(cqrs, writers, per_writer, &format!("{tag}-cqrs{round}"), fresh).await?);
    }
    let (ours, theirs) = (Runs::of(ours), Runs::of(theirs));
    println!("{label}: {writers} writer(s), {per_writer} commands each per run");
    ours.print("Es::execute", "commands");
    theirs.print("cqrs-es CqrsFramework::execute", "commands");
    ours.print_ratio("es / cqrs-es", &theirs);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    in_fresh_schema(run).await
}

async fn run(url: &str, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    print_server("vs_cqrs_es", admin, schema).await?;
    println!("every figure: median of {RUNS} runs (min, max); the sides alternate; ratios per round");
    let es_pool = pool(url, 34).await?;
    let es =
        Es::builder().event_store(PgEventStore::with_schema(es_pool.clone(), schema.clone())).build().await?;
    let cqrs = cqrs_app(url, admin, schema).await?;
    compare("fresh aggregates", &es, &cqrs.framework, 32, 60, true).await?;
    compare("hot aggregates", &es, &cqrs.framework, 32, 100, false).await?;
    compare("hot aggregates", &es, &cqrs.framework, 1, 300, false).await?;
    prefill_big(&PgEventStore::with_schema(es_pool.clone(), schema.clone()), admin, schema).await?;
    let (ours, theirs) = loads(&es, &cqrs).await?;
    let show = |samples: &[f64]| Spread::of(samples).map_or_else(String::new, |s| s.show(3));
    println!("load of a {LOAD_EVENTS}-event aggregate, {LOADS} loads per side, in turns:");
    println!("  {:<40} {} ms", "Es::load", show(&ours));
    println!("  {:<40} {} ms", "cqrs-es load_aggregate", show(&theirs));
    if let Some(ratio) = Spread::of_ratios(&ours, &theirs) {
        println!("  {:<40} {} (per pair of loads)", "es time / cqrs-es time", ratio.show(2));
    }
    es.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), es_pool.close()).await?;
    Ok(())
}
