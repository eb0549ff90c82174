//! Commands on aggregates that do not exist yet: one round trip against
//! reading the empty stream first, with group commit on and off.

use es_benchmarks::counter::Increment;
use es_benchmarks::pg::{raw_runs, RawTable};
use es_benchmarks::{run_writers, Run, Runs, RUNS};
use es_core::Es;
use es_postgres::{GroupCommit, PgEventStore};
use sqlx::PgPool;

use super::{aggregate_id, raw_event};

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
pub(crate) async fn fresh_aggregates(store: &PgEventStore, pool: &PgPool) -> anyhow::Result<()> {
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
