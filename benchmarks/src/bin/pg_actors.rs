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
//! add `hot`, `one`, `load`, `fresh` or `nodes` for only the hot aggregates
//! at 8 and 32 writers, the same at 1 writer, the load times, the fresh
//! aggregates, or the contention and refusal figures. `GROUPS_IN_FLIGHT=<n>` sets
//! `GroupCommit::max_in_flight` of the grouped store.
//! Everything runs in a fresh schema `es_bench_<uuid>`, dropped at the end.

#[path = "pg_actors/compare.rs"]
mod compare;
#[path = "pg_actors/fresh.rs"]
mod fresh;
#[path = "pg_actors/load.rs"]
mod load;
#[path = "pg_actors/nodes.rs"]
mod nodes;

use es_benchmarks::counter::{Counter, Incremented};
use es_benchmarks::pg::{create_raw_tables, in_fresh_schema, pool, print_server};
use es_benchmarks::RUNS;
use es_core::runtime::CommandPath;
use es_core::store::NewEvent;
use es_core::{Aggregate, Es, Event};
use es_postgres::{GroupCommit, PgEventStore, PgSchema};
use sqlx::PgPool;

use compare::compare;
use fresh::fresh_aggregates;
use load::load_times;
use nodes::{contention, refusal_path};

/// The row `Es::execute` appends for `Increment { by: 1 }`, as a raw insert.
fn raw_event(_: usize) -> NewEvent {
    NewEvent::new(Counter::NAME, Incremented::TYPE, 1, serde_json::json!({ "by": 1 }))
}

fn aggregate_id(tag: &str, writer: usize) -> String {
    format!("{tag}-{writer}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    in_fresh_schema(run).await
}

async fn run(url: &str, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    create_raw_tables(admin, schema).await?;
    print_server("pg_actors", admin, schema).await?;
    println!("every figure: median of {RUNS} runs (min, max); es and raw runs alternate; ratios per run");

    let pool = pool(url, 34).await?;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    if let Some(groups) = std::env::var("GROUPS_IN_FLIGHT").ok().and_then(|v| v.parse().ok()) {
        store.set_group_commit(GroupCommit::default().max_in_flight(groups));
        println!("group commit: {groups} groups in flight (GROUPS_IN_FLIGHT)");
    }
    let only = std::env::args().nth(1);
    match only.as_deref() {
        Some("hot") => hot(&store, &pool, &[8, 32]).await?,
        Some("one") => hot(&store, &pool, &[1]).await?,
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

/// Only the hot-aggregate comparison, at each of `writers`.
async fn hot(store: &PgEventStore, pool: &PgPool, writers: &[usize]) -> anyhow::Result<()> {
    let actors = Es::builder().event_store(store.clone()).build().await?;
    let ungrouped_store = PgEventStore::with_schema(pool.clone(), store.schema().clone());
    ungrouped_store.set_group_commit(GroupCommit::off());
    let ungrouped = Es::builder().event_store(ungrouped_store).build().await?;
    for &writers in writers {
        let commands = if writers == 1 { 600 } else { 1600 };
        let figures = compare(&actors, &ungrouped, store, pool, writers, commands, "hot").await?;
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
