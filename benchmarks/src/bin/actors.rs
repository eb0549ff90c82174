//! Aggregate actors against reload-per-command, on the in-memory store.
//!
//! Prints, in one run:
//! - hot-aggregate commands/s for histories of 0, 100, 1,000 and 10,000
//!   events, on the actor path and the reload path, and their ratio;
//! - commands/s over 1,000 distinct aggregates with at most 100 live actors;
//! - memory per idle live actor (process RSS before and after 10,000);
//! - cold rehydration time of 10,000 events, with and without a snapshot.
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
use es_benchmarks::{ms, rate};
use es_core::error::DecodeErrorKind;
use es_core::runtime::CommandPath;
use es_core::store::{EventStore, ExpectedVersion, NewEvent, Payload, Snapshot, SnapshotStore, Timestamp};
use es_core::{Aggregate, Apply, Command, Es, Event, EventSet, Events, Handle, StreamId, StreamVersion};
use es_memory::InMemoryEventStore;
use serde::{Deserialize, Serialize};

// ---- a counter aggregate, written the way the derives will generate it ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Incremented {
    by: u64,
}
impl Event for Incremented {
    const TYPE: &'static str = "Incremented";
}

#[derive(Debug, Clone, PartialEq)]
enum CounterEvent {
    Incremented(Incremented),
}
impl From<Incremented> for CounterEvent {
    fn from(e: Incremented) -> Self {
        Self::Incremented(e)
    }
}
impl EventSet for CounterEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Incremented(_) => Incremented::TYPE,
        }
    }
    fn schema_version(&self) -> u32 {
        match self {
            Self::Incremented(_) => Incremented::VERSION,
        }
    }
    fn to_payload(&self) -> Result<Payload, serde_json::Error> {
        match self {
            Self::Incremented(e) => Payload::encode(e),
        }
    }
    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &Payload,
    ) -> Result<Self, DecodeErrorKind> {
        match event_type {
            Incremented::TYPE => {
                es_core::__private::decode_event(schema_version, payload).map(Self::Incremented)
            }
            _ => Err(DecodeErrorKind::UnknownType),
        }
    }
    fn event_types() -> &'static [&'static str] {
        &[Incremented::TYPE]
    }
}

/// Adds to a counter.
#[derive(Debug, Clone)]
struct Increment {
    id: String,
    by: u64,
}
/// Produces no event: starts (and keeps) an actor without appending.
#[derive(Debug, Clone)]
struct Touch {
    id: String,
}
#[derive(Debug, Clone)]
enum CounterCommand {
    Increment(Increment),
    Touch(Touch),
}
impl Command for Increment {
    type Aggregate = Counter;
    const NAME: &'static str = "Increment";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
    fn into_aggregate_command(self) -> CounterCommand {
        CounterCommand::Increment(self)
    }
}
impl Command for Touch {
    type Aggregate = Counter;
    const NAME: &'static str = "Touch";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
    fn into_aggregate_command(self) -> CounterCommand {
        CounterCommand::Touch(self)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
    count: u64,
}
#[derive(Debug, thiserror::Error)]
#[error("counter refused the command")]
struct CounterError;

impl Aggregate for Counter {
    const NAME: &'static str = "counter";
    type Event = CounterEvent;
    type Command = CounterCommand;
    type Error = CounterError;
    fn apply_event(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Incremented(e) => Apply::apply(self, e),
        }
    }
    fn handle_command(&self, command: CounterCommand) -> Result<Events<Self>, CounterError> {
        match command {
            CounterCommand::Increment(c) => Handle::handle(self, c),
            CounterCommand::Touch(c) => Handle::handle(self, c),
        }
    }
}
impl Handle<Increment> for Counter {
    fn handle(&self, command: Increment) -> Result<Events<Self>, CounterError> {
        Ok(Events::one(Incremented { by: command.by }))
    }
}
impl Handle<Touch> for Counter {
    fn handle(&self, _: Touch) -> Result<Events<Self>, CounterError> {
        Ok(Events::none())
    }
}
impl Apply<Incremented> for Counter {
    fn apply(&mut self, e: &Incremented) {
        self.total += e.by;
        self.count += 1;
    }
}

// ---- helpers ----

fn increment(id: &str) -> Increment {
    Increment { id: id.to_owned(), by: 1 }
}

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

impl Run {
    const NONE: Run = Run { rate: 0.0, cpu_us: f64::INFINITY };

    fn best(self, other: Run) -> Run {
        Run { rate: self.rate.max(other.rate), cpu_us: self.cpu_us.min(other.cpu_us) }
    }
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

fn human(rate: f64) -> String {
    format!("{:>12.0}/s", rate)
}

// ---- the figures ----

const HISTORIES: [u64; 4] = [0, 100, 1_000, 10_000];

async fn hot_aggregate() -> anyhow::Result<()> {
    println!("hot aggregate: commands/s against history length (one aggregate; best of 3 rounds)");
    // Warm up the runtime's threads and the allocator.
    let warm = app(&InMemoryEventStore::new(), CommandPath::Actors).await?;
    for _ in 0..2 {
        hot_rate(&warm, "warm", 1, 100_000, Duration::from_secs(1)).await?;
        hot_rate(&warm, "warm", 64, 100_000, Duration::from_secs(1)).await?;
    }
    warm.shutdown().await;
    drop(warm);

    // One application per history length, each with its actor started
    // (its one rehydration). The rounds interleave the lengths, so drift
    // on a shared machine hits them alike; the best round counts.
    let mut apps = Vec::new();
    for history in HISTORIES {
        let store = InMemoryEventStore::new();
        prefill(&store, "hot", history).await?;
        let actors = app(&store, CommandPath::Actors).await?;
        actors.execute(increment("hot")).await?;
        apps.push(actors);
    }
    let mut sequential = [Run::NONE; HISTORIES.len()];
    let mut concurrent = [Run::NONE; HISTORIES.len()];
    for _round in 0..3 {
        for (i, actors) in apps.iter().enumerate() {
            let run = hot_rate(actors, "hot", 1, 30_000, Duration::from_secs(1)).await?;
            sequential[i] = sequential[i].best(run);
            let run = hot_rate(actors, "hot", 64, 30_000, Duration::from_secs(1)).await?;
            concurrent[i] = concurrent[i].best(run);
        }
    }
    for actors in apps {
        actors.shutdown().await;
    }

    println!(
        "{:>8} | {:>14} {:>8} | {:>14} {:>8} | {:>14} | {:>13}",
        "history", "actors, 1 task", "cpu/cmd", "actors, 64", "cpu/cmd", "reload, 1 task", "actors/reload"
    );
    for (i, history) in HISTORIES.into_iter().enumerate() {
        // Reload: few commands, so the history stays near its nominal length.
        let store = InMemoryEventStore::new();
        prefill(&store, "hot", history).await?;
        let reload = app(&store, CommandPath::Reload).await?;
        let mut reloading = Run::NONE;
        for _ in 0..3 {
            reloading = reloading.best(hot_rate(&reload, "hot", 1, 100, Duration::from_secs(1)).await?);
        }
        println!(
            "{:>8} | {} {:>5.2} us | {} {:>5.2} us | {} | {:>12.1}x",
            history,
            human(sequential[i].rate),
            sequential[i].cpu_us,
            human(concurrent[i].rate),
            concurrent[i].cpu_us,
            human(reloading.rate),
            sequential[i].rate / reloading.rate
        );
    }
    println!(
        "cost per command with actors, 10,000-event history vs empty: wall {:.2}x / cpu {:.2}x (1 task), wall {:.2}x / cpu {:.2}x (64 tasks)",
        sequential[0].rate / sequential[3].rate,
        sequential[3].cpu_us / sequential[0].cpu_us,
        concurrent[0].rate / concurrent[3].rate,
        concurrent[3].cpu_us / concurrent[0].cpu_us,
    );
    Ok(())
}

/// The hot path on a current-thread runtime: no cross-thread wake-ups
/// between caller and actor, so the figure is the framework's own cost.
fn hot_on_one_thread() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut line = String::from("current-thread runtime, actors, 1 task:");
        for history in [0u64, 10_000] {
            let store = InMemoryEventStore::new();
            prefill(&store, "hot", history).await?;
            let actors = app(&store, CommandPath::Actors).await?;
            actors.execute(increment("hot")).await?;
            let mut best = Run::NONE;
            for _ in 0..3 {
                best = best.best(hot_rate(&actors, "hot", 1, 100_000, Duration::from_secs(1)).await?);
            }
            line.push_str(&format!(
                " {} ({:.2} us cpu) at {history} events;",
                human(best.rate).trim(),
                best.cpu_us
            ));
            actors.shutdown().await;
        }
        println!("{line}");
        anyhow::Ok(())
    })
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
        "1,000 aggregates, cap 100 live actors, 32 tasks, uniform access: {} ({} rehydrations, {} evictions, {} live at the end)",
        human(rate(commands, elapsed)).trim(),
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

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
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
        "cold rehydration of 10,000 events (median of {COLD_SAMPLES}): {} without a snapshot, {} with one",
        ms(median(without)),
        ms(median(with))
    );
    println!(
        "first command to a cold aggregate of 10,000 events: {} without a snapshot, {} with one",
        ms(median(first_without)),
        ms(median(first_with))
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `actors hot` runs only the hot-aggregate table, `actors cold` only the
    // cold rehydration figures; `actors one <history>
    // <commands>` only sends commands to one hot aggregate, for counting
    // instructions with `perf stat`, which a busy machine does not disturb.
    let mut args = std::env::args().skip(1);
    let mode = args.next();
    if mode.as_deref() == Some("one") {
        let history: u64 = args.next().context("history length")?.parse()?;
        let commands: u64 = args.next().context("command count")?.parse()?;
        let store = InMemoryEventStore::new();
        prefill(&store, "hot", history).await?;
        let actors = app(&store, CommandPath::Actors).await?;
        actors.execute(increment("hot")).await?;
        hot_rate(&actors, "hot", 1, commands, Duration::from_secs(3600)).await?;
        return Ok(());
    }
    if mode.as_deref() == Some("cold") {
        return cold_rehydration().await;
    }
    let only_hot = mode.as_deref() == Some("hot");
    println!("es aggregate actors benchmark (in-memory store)\n");
    hot_aggregate().await?;
    tokio::task::spawn_blocking(hot_on_one_thread).await??;
    if only_hot {
        return Ok(());
    }
    println!();
    many_aggregates().await?;
    idle_actor_memory().await?;
    cold_rehydration().await?;
    Ok(())
}
