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
//!   within a run; each run uses new aggregates).
//!
//! Run: `cargo run --release -p es-benchmarks --bin vs_cqrs_es`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::Arc;
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::DomainEvent;
use es_benchmarks::counter::Increment;
use es_benchmarks::pg::{in_fresh_schema, pool, print_server};
use es_benchmarks::{run_writers, Run, Runs, RUNS};
use es_core::Es;
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
async fn cqrs_app(url: &str, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<PostgresCqrs<CqrsCounter>> {
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
    let repository = PostgresEventRepository::new(pool)
        .with_tables(&format!("{schema}.cqrs_events"), &format!("{schema}.cqrs_snapshots"));
    // What `postgres_es::postgres_cqrs` builds, on a pool of the same size as es's.
    let store = cqrs_es::persist::PersistedEventStore::new_event_store(repository);
    Ok(cqrs_es::CqrsFramework::new(store, Vec::new(), ()))
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
    let cqrs = Arc::new(cqrs_app(url, admin, schema).await?);
    compare("fresh aggregates", &es, &cqrs, 32, 60, true).await?;
    compare("hot aggregates", &es, &cqrs, 32, 100, false).await?;
    compare("hot aggregates", &es, &cqrs, 1, 300, false).await?;
    es.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), es_pool.close()).await?;
    Ok(())
}
