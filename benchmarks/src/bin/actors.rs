//! Aggregate actors against reload-per-command, on the in-memory store.
//!
//! Prints, in one run:
//! - hot-aggregate commands/s for histories of 0, 100, 1,000 and 10,000
//!   events, on the actor path (one caller awaiting each command, and 64
//!   callers) and the reload path, and their ratio;
//! - refusals/s on a hot aggregate with the head check that confirms a
//!   refusal by default, and without it (`EsBuilder::single_writer`);
//! - commands/s over 1,000 distinct aggregates with at most 100 live actors;
//! - memory per idle live actor (process RSS before and after 10,000);
//! - cold rehydration time of 10,000 events, with and without a snapshot.
//!
//! The counter is declared with the es macros (`es_benchmarks::counter`),
//! as users write an aggregate. Every figure is the median of 5 runs with
//! the min and max.
//!
//! Run: `cargo run --release -p es-benchmarks --bin actors` (add `hot` for
//! the hot-aggregate figures only, `cold` for rehydration only). Wall-clock
//! rates move with the load on the machine; the CPU time per command beside
//! them, and
//! `perf stat -e task-clock target/release/actors one <history> <commands>`,
//! are steadier ways to compare history lengths on a shared machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use es_benchmarks::counter::{increment, Counter, Incremented, Take, Touch};
use es_benchmarks::{rate, Spread, RUNS};
use es_core::runtime::CommandPath;
use es_core::store::{EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, Timestamp};
use es_core::{Aggregate, Es, Event, StreamId, StreamVersion};
use es_memory::InMemoryEventStore;

// ---- helpers ----

/// Appends `events` increments to counter `id`, straight into the store.
async fn prefill(store: &InMemoryEventStore, id: &str, events: u64) -> anyhow::Result<()> {
    let stream = StreamId::for_aggregate(Counter::NAME, id);
    let mut left = events;
    while left > 0 {
        let batch = left.min(1_000);
        let envelopes = (0..batch)
            .map(|_| NewEvent::new(Counter::NAME, Incremented::TYPE, 1, serde_json::json!({"by": 1})))
            .collect();
        store.append(&stream, ExpectedVersion::Any, envelopes).await?;
        left -= batch;
    }
    Ok(())
}

async fn app(store: &InMemoryEventStore, path: CommandPath) -> anyhow::Result<Es> {
    Ok(Es::builder().event_store(store.clone()).command_path(path).build().await?)
}

/// What one measured run gave.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Commands per second of wall time.
    rate: f64,
    /// Process CPU time (user + system, all threads) per command, in
    /// microseconds: steadier than wall time on a shared machine.
    cpu_us: f64,
}

/// The median, min and max rate of `runs`, and their median CPU time per
/// command.
fn spread(runs: &[Run]) -> (Spread, f64) {
    let rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
    let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_us).collect();
    let none = Spread { median: 0.0, min: 0.0, max: 0.0 };
    (Spread::of(&rates).unwrap_or(none), Spread::of(&cpu).map_or(0.0, |s| s.median))
}

/// CPU time this process has used (user + system), in microseconds.
fn cpu_time_us() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the parenthesized command name: state is the first,
    // utime the 12th and stime the 13th (clock ticks of 1/100 s).
    let after_name = stat.rsplit_once(')').context("malformed /proc/self/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("no utime")?.parse::<u64>()?
        + fields.get(12).context("no stime")?.parse::<u64>()?;
    Ok(ticks as f64 * 10_000.0)
}

/// `callers` tasks each sending commands to counter `id` one after
/// another, until `count` commands ran or `budget` passed.
async fn hot_rate(es: &Es, id: &str, callers: usize, count: u64, budget: Duration) -> anyhow::Result<Run> {
    let cpu_before = cpu_time_us()?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (es, id) = (es.clone(), id.to_owned());
            let per_caller = count / callers as u64;
            tokio::spawn(async move {
                let mut done = 0u64;
                while done < per_caller && started.elapsed() < budget {
                    es.execute(increment(&id)).await?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time_us()? - cpu_before;
    Ok(Run { rate: rate(done, elapsed), cpu_us: cpu / done.max(1) as f64 })
}

/// Resident set size of this process, in bytes.
fn rss() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("reading /proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).context("statm has no resident field")?.parse()?;
    Ok(pages * 4096)
}

// ---- the figures ----

const HISTORIES: [u64; 4] = [0, 100, 1_000, 10_000];

async fn hot_aggregate() -> anyhow::Result<()> {
    println!(
        "hot aggregate: commands/s against history length (one aggregate; median of {RUNS} runs, min, max; \
         multi-threaded runtime)"
    );
    // Warm up the runtime's threads and the allocator.
    let warm = app(&InMemoryEventStore::new(), CommandPath::Actors).await?;
    for _ in 0..2 {
        hot_rate(&warm, "warm", 1, 100_000, Duration::from_secs(1)).await?;
        hot_rate(&warm, "warm", 64, 100_000, Duration::from_secs(1)).await?;
    }
    warm.shutdown().await;
    drop(warm);

    // One application per history length, each with its actor started
    // (its one rehydration). The runs interleave the lengths, so drift on
    // a shared machine hits them alike.
    let mut apps = Vec::new();
    for history in HISTORIES {
        let store = InMemoryEventStore::new();
        prefill(&store, "hot", history).await?;
        let actors = app(&store, CommandPath::Actors).await?;
        actors.execute(increment("hot")).await?;
        apps.push(actors);
    }
    let mut single: Vec<Vec<Run>> = vec![Vec::new(); HISTORIES.len()];
    let mut many: Vec<Vec<Run>> = vec![Vec::new(); HISTORIES.len()];
    for _ in 0..RUNS {
        for (i, actors) in apps.iter().enumerate() {
            single[i].push(hot_rate(actors, "hot", 1, 30_000, Duration::from_secs(1)).await?);
            many[i].push(hot_rate(actors, "hot", 64, 30_000, Duration::from_secs(1)).await?);
        }
    }
    for actors in apps {
        actors.shutdown().await;
    }

    let mut medians = Vec::new();
    for (i, history) in HISTORIES.into_iter().enumerate() {
        // Reload: few commands, so the history stays near its nominal length.
        let store = InMemoryEventStore::new();
        prefill(&store, "hot", history).await?;
        let reload = app(&store, CommandPath::Reload).await?;
        let mut reloading = Vec::new();
        for _ in 0..RUNS {
            reloading.push(hot_rate(&reload, "hot", 1, 100, Duration::from_secs(1)).await?);
        }
        let (one, one_cpu) = spread(&single[i]);
        let (sixty_four, many_cpu) = spread(&many[i]);
        let (reloaded, _) = spread(&reloading);
        println!(" history {history}:");
        println!("  {:<34} {} /s, {one_cpu:.2} us cpu/cmd", "actors, 1 caller awaiting each", one);
        println!("  {:<34} {} /s, {many_cpu:.2} us cpu/cmd", "actors, 64 callers", sixty_four);
        println!("  {:<34} {} /s", "reload per command, 1 caller", reloaded);
        println!("  {:<34} {:.1}x (medians)", "actors / reload, 1 caller", one.median / reloaded.median);
        medians.push((one.median, one_cpu, sixty_four.median, many_cpu));
    }
    let (first, last) = (medians[0], medians[HISTORIES.len() - 1]);
    println!(
        "cost per command with actors, 10,000-event history vs empty (medians): wall {:.2}x / cpu {:.2}x \
         (1 caller), wall {:.2}x / cpu {:.2}x (64 callers)",
        first.0 / last.0,
        last.1 / first.1,
        first.2 / last.2,
        last.3 / first.3,
    );
    Ok(())
}

/// The hot path on a current-thread runtime: no cross-thread wake-ups
/// between caller and actor, so the figure is the framework's own cost.
fn hot_on_one_thread() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut line = String::from("current-thread runtime, actors, 1 caller:");
        for history in [0u64, 10_000] {
            let store = InMemoryEventStore::new();
            prefill(&store, "hot", history).await?;
            let actors = app(&store, CommandPath::Actors).await?;
            actors.execute(increment("hot")).await?;
            let mut runs = Vec::new();
            for _ in 0..RUNS {
                runs.push(hot_rate(&actors, "hot", 1, 100_000, Duration::from_secs(1)).await?);
            }
            let (rates, cpu) = spread(&runs);
            line.push_str(&format!(" {rates} /s ({cpu:.2} us cpu) at {history} events;"));
            actors.shutdown().await;
        }
        println!("{line}");
        anyhow::Ok(())
    })
}

/// Refusals per second on a hot aggregate, with the head check every
/// refusal makes by default (other writers may have moved the stream) and
/// without it (`EsBuilder::single_writer`).
async fn refusal_path() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    prefill(&store, "r", 100).await?;
    let checked = Es::builder().event_store(store.clone()).build().await?;
    let unchecked = Es::builder().event_store(store.clone()).single_writer().build().await?;
    let refuse = || Take { id: "r".into(), by: u64::MAX };
    for es in [&checked, &unchecked] {
        anyhow::ensure!(es.execute(refuse()).await.is_err(), "the take was not refused");
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for (es, runs) in [(&checked, &mut with), (&unchecked, &mut without)] {
            let count = 30_000u64;
            let started = Instant::now();
            let mut done = 0;
            while done < count && started.elapsed() < Duration::from_secs(1) {
                anyhow::ensure!(es.execute(refuse()).await.is_err(), "the take was not refused");
                done += 1;
            }
            runs.push(rate(done, started.elapsed()));
        }
    }
    let (with_check, without_check) = (Spread::of(&with), Spread::of(&without));
    let ratio = Spread::of_ratios(&with, &without);
    if let (Some(a), Some(b), Some(r)) = (with_check, without_check, ratio) {
        println!("refusal path, hot aggregate, 1 caller awaiting each (in memory; median of {RUNS} runs, min, max):");
        println!("  {:<34} {a} refusals/s", "with the head check (default)");
        println!("  {:<34} {b} refusals/s", "without (EsBuilder::single_writer)");
        println!("  {:<34} {} (per-run ratios)", "with / without", r.show(2));
    }
    checked.shutdown().await;
    unchecked.shutdown().await;
    Ok(())
}

async fn many_aggregates() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    for n in 0..1_000 {
        prefill(&store, &format!("c-{n}"), 10).await?;
    }
    let es = Es::builder().event_store(store.clone()).max_live_actors(100).build().await?;
    let commands = 100_000u64;
    let callers = 32u64;
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let es = es.clone();
            tokio::spawn(async move {
                // xorshift: a uniform spread over the 1,000 aggregates.
                let mut x = caller * 2_654_435_761 + 1;
                for _ in 0..commands / callers {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    es.execute(increment(&format!("c-{}", x % 1_000))).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let stats = es.stats();
    println!(
        "1,000 aggregates, cap 100 live actors, 32 tasks, uniform access: {:.0}/s ({} rehydrations, {} evictions, {} live at the end)",
        rate(commands, elapsed),
        stats.rehydrations,
        stats.evictions,
        stats.live_actors
    );
    es.shutdown().await;
    Ok(())
}

async fn idle_actor_memory() -> anyhow::Result<()> {
    let actors = 10_000;
    let store = InMemoryEventStore::new();
    for n in 0..actors {
        prefill(&store, &format!("m-{n}"), 1).await?;
    }
    let es = Es::builder().event_store(store.clone()).max_live_actors(2 * actors).build().await?;
    // Warm the allocator and the registry map with a throwaway set first.
    for n in 0..1_000 {
        es.execute(Touch { id: format!("warm-{n}") }).await?;
    }
    let before = rss()?;
    for n in 0..actors {
        es.execute(Touch { id: format!("m-{n}") }).await?;
    }
    let after = rss()?;
    println!(
        "memory per idle live actor (counter state, 1-event history): {} bytes RSS ({} live actors)",
        (after.saturating_sub(before)) / actors as u64,
        es.live_actors()
    );
    es.shutdown().await;
    Ok(())
}

/// Samples per cold-rehydration figure (each on a fresh application).
const COLD_SAMPLES: usize = 9;

/// `median (min .., max ..)` of `samples`, in milliseconds.
fn spread_ms(samples: Vec<Duration>) -> String {
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    Spread::of(&ms).map_or_else(|| "no samples".to_owned(), |s| format!("{} ms", s.show(3)))
}

async fn cold_rehydration() -> anyhow::Result<()> {
    let events = 10_000u64;
    let store = InMemoryEventStore::new();
    prefill(&store, "cold", events).await?;
    let state = app(&store, CommandPath::Actors).await?.load::<Counter>("cold").await?;
    store
        .save_snapshot(Snapshot {
            stream_id: StreamId::for_aggregate(Counter::NAME, "cold"),
            aggregate_type: Counter::NAME.into(),
            stream_version: StreamVersion(events),
            schema_version: Counter::SNAPSHOT_VERSION,
            state: serde_json::to_value(&state)?,
            taken_at: Timestamp::now(),
        })
        .await?;
    // Each sample starts a fresh application, so every load and every first
    // command rehydrates from the store: without snapshots (the plain one
    // has no snapshot store) or from the snapshot at 10,000.
    let (mut without, mut with, mut first_without, mut first_with) = (vec![], vec![], vec![], vec![]);
    for _ in 0..COLD_SAMPLES {
        for snapshots in [false, true] {
            let mut builder = Es::builder().event_store(store.clone());
            if snapshots {
                builder = builder.snapshot_store(Arc::new(store.clone()));
            }
            let es = builder.build().await?;
            let started = Instant::now();
            let loaded = es.load::<Counter>("cold").await?;
            let load = started.elapsed();
            anyhow::ensure!(loaded.total == state.total, "rehydrated state differs");
            let started = Instant::now();
            es.execute(Touch { id: "cold".into() }).await?;
            let first = started.elapsed();
            es.shutdown().await;
            let (loads, firsts) =
                if snapshots { (&mut with, &mut first_with) } else { (&mut without, &mut first_without) };
            loads.push(load);
            firsts.push(first);
        }
    }
    println!(
        "cold rehydration of 10,000 events (median of {COLD_SAMPLES}, min, max): {} without a snapshot, {} with one",
        spread_ms(without),
        spread_ms(with)
    );
    println!(
        "first command to a cold aggregate of 10,000 events: {} without a snapshot, {} with one",
        spread_ms(first_without),
        spread_ms(first_with)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `actors hot` runs only the hot-aggregate table, `actors cold` only the
    // cold rehydration figures; `actors one <history> <commands>
    // [callers]` only sends commands to one hot aggregate (from 1 caller
    // unless told), for counting instructions with `perf stat`, which a busy
    // machine does not disturb, or for a profile.
    let mut args = std::env::args().skip(1);
    let mode = args.next();
    if mode.as_deref() == Some("one") {
        let history: u64 = args.next().context("history length")?.parse()?;
        let commands: u64 = args.next().context("command count")?.parse()?;
        let callers: usize = args.next().map_or(Ok(1), |n| n.parse())?;
        let store = InMemoryEventStore::new();
        prefill(&store, "hot", history).await?;
        let actors = app(&store, CommandPath::Actors).await?;
        actors.execute(increment("hot")).await?;
        let run = hot_rate(&actors, "hot", callers, commands, Duration::from_secs(3600)).await?;
        println!("{callers} caller(s): {:.0} commands/s, {:.2} us cpu/cmd", run.rate, run.cpu_us);
        return Ok(());
    }
    if mode.as_deref() == Some("cold") {
        return cold_rehydration().await;
    }
    let only_hot = mode.as_deref() == Some("hot");
    println!("es aggregate actors benchmark (in-memory store)\n");
    hot_aggregate().await?;
    tokio::task::spawn_blocking(hot_on_one_thread).await??;
    refusal_path().await?;
    if only_hot {
        return Ok(());
    }
    println!();
    many_aggregates().await?;
    idle_actor_memory().await?;
    cold_rehydration().await?;
    Ok(())
}
