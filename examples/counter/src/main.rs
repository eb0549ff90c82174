//! `cargo run -p counter -- [--store memory|sqlite|postgres|redis] [--file PATH] [--quick] [--passivation]`
//!
//! Without `--passivation`: the OTP post's counter. A double increment
//! decided in one call, a racing burst on one counter (one live actor, an
//! exact count), the `counters` read model, and the cost of a command at
//! 10 / 1,000 / 100,000 events of history with actors and with
//! reload-per-command (`--quick`: 10 and 1,000 only).
//!
//! With `--passivation`: the Erlang experiment's idle counters going away
//! and coming back from the store.
//!
//! The store defaults to SQLite in a temporary file; see `counter::store`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use counter::cost::{self, CostPlan};
use counter::store::{Backend, StoreKind};
use counter::{passivation, race, Create, IncrementTwice};

/// How long the read model may take to catch up.
const READ_MODEL_WAIT: Duration = Duration::from_secs(30);

struct Args {
    store: StoreKind,
    file: Option<PathBuf>,
    quick: bool,
    passivation: bool,
}

const USAGE: &str =
    "usage: counter [--store memory|sqlite|postgres|redis] [--file PATH] [--quick] [--passivation]";

fn args() -> anyhow::Result<Args> {
    let mut args = Args { store: StoreKind::default(), file: None, quick: false, passivation: false };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--store" => args.store = given.next().context(USAGE)?.parse()?,
            "--file" => args.file = Some(given.next().context(USAGE)?.into()),
            "--quick" => args.quick = true,
            "--passivation" => args.passivation = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if args.file.is_some() && args.store != StoreKind::Sqlite {
        bail!("--file is for --store sqlite\n{USAGE}");
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let backend = Backend::open(args.store, args.file.clone()).await?;
    println!("counter on {}: {}\n", backend.kind(), backend.location);
    // Counter names unique to this run, so a kept SQLite file can be run again.
    let run = uuid::Uuid::now_v7().simple().to_string()[24..].to_owned();
    let result = if args.passivation {
        passivation_demo(&backend, &run).await
    } else {
        otp_demo(&backend, &run, args.quick).await
    };
    backend.close().await;
    result
}

async fn otp_demo(backend: &Backend, run: &str, quick: bool) -> anyhow::Result<()> {
    let es = backend.builder().read_side(backend.read_side()?).build().await?;

    let hits = format!("hits-{run}");
    es.execute(Create { counter_id: hits.clone() }).await?;
    let twice = es.execute(IncrementTwice { counter_id: hits.clone(), by: 5 }).await?;
    println!(
        "IncrementTwice {{ by: 5 }} on `{hits}`: {} events from one decision, now at version {}",
        twice.events.len(),
        twice.version.map_or(0, |v| v.get())
    );
    for event in &twice.events {
        println!("  {event:?}");
    }

    let racer = format!("race-{run}");
    let (tasks, per_task) = (50, 20);
    let report = race::race(&es, &racer, tasks, per_task).await?;
    println!("\n{tasks} tasks racing {per_task} increments each on `{racer}`:");
    println!("  value {} of {} sent (exact: {})", report.value, report.sent, report.value == report.sent);
    println!(
        "  actors started for it: {}, conflicts: {}, live actors: {} (one per counter used: `{hits}` and `{racer}`)",
        report.actors_started, report.conflicts, report.live_actors
    );

    let read_side = es.read_side().context("the application runs a read side")?;
    let head = backend.events().head_position().await?;
    read_side.wait_for(backend.counters_subscription(), head, READ_MODEL_WAIT).await?;
    let shape = match backend.kind() {
        StoreKind::Sqlite | StoreKind::Postgres => "table `counters`, written with the application's own SQL",
        StoreKind::Memory | StoreKind::Redis => "documents of projection `counters`",
    };
    println!("\nthe counters read model ({shape}):");
    for id in [&hits, &racer] {
        let row = backend.counter_row(id).await?.context("the read model has every counter")?;
        println!("  {id}: value {} at version {} (position {})", row.value, row.version, row.position);
    }
    es.shutdown().await;

    let plan = if quick { CostPlan::quick() } else { CostPlan::full() };
    println!("\ncost of one Increment against the counter's history (history written in batches through the EventStore port):\n");
    let rows = cost::measure(backend, run, &plan).await?;
    print!("{}", cost::table(&rows, plan.samples));
    Ok(())
}

async fn passivation_demo(backend: &Backend, run: &str) -> anyhow::Result<()> {
    let ids: Vec<String> = (1..=3).map(|n| format!("idle-{run}-{n}")).collect();
    println!(
        "3 counters, each created and incremented 6 times; actors passivate after {:?} idle, a snapshot every {} events\n",
        passivation::IDLE,
        passivation::SNAPSHOT_EVERY
    );
    let report = passivation::run(backend, &ids).await?;
    println!("live actors while busy: {}", report.live_busy);
    println!(
        "live actors after idling: {} ({} passivated, the last {:?} after the last command)",
        report.live_idle, report.passivations, report.idle_for
    );
    let snapshots: Vec<String> =
        report.snapshots.iter().map(|s| s.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))).collect();
    println!("snapshots in the store: {}", snapshots.join(", "));
    println!(
        "one more Increment each: {} rehydrations (snapshot + later events), live actors: {}",
        report.rehydrations, report.live_again
    );
    for (id, value) in ids.iter().zip(&report.values) {
        println!("  {id}: value {value}");
    }
    Ok(())
}
