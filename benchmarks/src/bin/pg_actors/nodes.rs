//! Several `Es` nodes on one hot aggregate (conflicts per command), and
//! the refusal path with and without the head check.

use std::time::Instant;

use es_benchmarks::counter::{Increment, Take};
use es_benchmarks::{Spread, RUNS};
use es_core::Es;
use es_postgres::PgEventStore;

/// Several `Es` nodes on one store, all sending increments to one hot
/// aggregate: commands/s over all nodes, and conflicts per command (from
/// each node's `Es::stats`).
pub(crate) async fn contention(store: &PgEventStore) -> anyhow::Result<()> {
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
pub(crate) async fn refusal_path(store: &PgEventStore) -> anyhow::Result<()> {
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
