//! The cost of one command against the length of its aggregate's history:
//! the OTP post's claim that an actor holding the state makes a command
//! O(1), where reloading the history for every command is O(N).
//!
//! For each history length N, a counter is given N events written straight
//! through the [`EventStore`] port in batches (no command runs for them),
//! then commands are timed on two applications over the same store:
//!
//! - **actors** ([`CommandPath::Actors`], the default): the first command
//!   rehydrates the counter once (not timed); the timed ones find its state
//!   in memory and only append;
//! - **reload** ([`CommandPath::Reload`]): every command reads the N events
//!   again, decides, and appends.
//!
//! Each sample is the mean time of a run of commands; a row shows the
//! median of the samples with their minimum and maximum. No snapshots are
//! configured, so a reload reads the whole history.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use es_core::runtime::CommandPath;
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{Es, Event, StreamId, StreamVersion};

use crate::store::Backend;
use crate::{Created, Increment, Incremented};

/// How many events one seeding append writes.
const SEED_BATCH: u64 = 1_000;

/// Median, minimum and maximum of the per-command times of the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// The median sample.
    pub median: Duration,
    /// The fastest sample.
    pub min: Duration,
    /// The slowest sample.
    pub max: Duration,
}

impl Cost {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let (min, max) = (samples[0], samples[samples.len() - 1]);
        Self { median: samples[samples.len() / 2], min, max }
    }
}

/// One row of the table: the costs at one history length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostRow {
    /// Events in the counter's history before the timed commands.
    pub history: u64,
    /// Per command, with actors.
    pub actors: Cost,
    /// Commands per sample, with actors.
    pub actor_commands: u64,
    /// Per command, reloading the history each time.
    pub reload: Cost,
    /// Commands per sample, reloading.
    pub reload_commands: u64,
}

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostPlan {
    /// The history lengths, one row each.
    pub histories: Vec<u64>,
    /// Samples per cell (the median of at least 5 is reported).
    pub samples: usize,
    /// Commands per sample with actors.
    pub actor_commands: u64,
    /// At most this many commands per sample when reloading; fewer for
    /// long histories, so that a sample reads at most about 20,000 events
    /// (at least one command).
    pub reload_commands: u64,
}

impl CostPlan {
    /// The full table: 10, 1,000 and 100,000 events.
    pub fn full() -> Self {
        Self { histories: vec![10, 1_000, 100_000], samples: 5, actor_commands: 20, reload_commands: 20 }
    }

    /// A short run for the test script: 10 and 1,000 events.
    pub fn quick() -> Self {
        Self { histories: vec![10, 1_000], samples: 5, actor_commands: 10, reload_commands: 5 }
    }

    fn reload_commands_at(&self, history: u64) -> u64 {
        (20_000 / history.max(1)).clamp(1, self.reload_commands)
    }
}

/// Writes a counter's history straight through the port: `Created`, then
/// `history - 1` increments of 1, in batches of 1,000.
///
/// # Errors
/// If an append fails.
pub async fn seed(events: &dyn EventStore, id: &str, history: u64) -> anyhow::Result<()> {
    let stream = StreamId::for_aggregate("counter", id);
    let increment = serde_json::to_value(Incremented { by: 1 })?;
    let mut batch =
        vec![NewEvent::new("counter", Created::TYPE, Created::VERSION, serde_json::to_value(Created)?)];
    let mut written = 0;
    while written < history {
        while written + (batch.len() as u64) < history && (batch.len() as u64) < SEED_BATCH {
            batch.push(NewEvent::new("counter", Incremented::TYPE, Incremented::VERSION, increment.clone()));
        }
        let expected = match written {
            0 => ExpectedVersion::NoStream,
            n => ExpectedVersion::Exact(StreamVersion(n)),
        };
        written += batch.len() as u64;
        events.append(&stream, expected, std::mem::take(&mut batch)).await?;
    }
    Ok(())
}

/// Times `samples` runs of `commands` increments of counter `id`, per command.
async fn time(es: &Es, id: &str, samples: usize, commands: u64) -> anyhow::Result<Cost> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        for _ in 0..commands {
            es.execute(Increment { counter_id: id.to_owned(), by: 1 }).await?;
        }
        times.push(started.elapsed() / u32::try_from(commands)?);
    }
    Ok(Cost::of(times))
}

/// Measures `plan` on `backend`, with counters named `cost-<run>-<N>`.
///
/// # Errors
/// If seeding or a command fails.
pub async fn measure(backend: &Backend, run: &str, plan: &CostPlan) -> anyhow::Result<Vec<CostRow>> {
    let mut rows = Vec::with_capacity(plan.histories.len());
    for &history in &plan.histories {
        let id = format!("cost-{run}-{history}");
        seed(backend.events().as_ref(), &id, history).await?;

        let actors_app = backend.builder().command_path(CommandPath::Actors).build().await?;
        // The first command rehydrates the counter: O(N) once, not timed.
        actors_app.execute(Increment { counter_id: id.clone(), by: 1 }).await?;
        let actors = time(&actors_app, &id, plan.samples, plan.actor_commands).await?;
        actors_app.shutdown().await;

        let reload_app = backend.builder().command_path(CommandPath::Reload).build().await?;
        let reload_commands = plan.reload_commands_at(history);
        let reload = time(&reload_app, &id, plan.samples, reload_commands).await?;
        reload_app.shutdown().await;

        rows.push(CostRow { history, actors, actor_commands: plan.actor_commands, reload, reload_commands });
    }
    Ok(rows)
}

fn cell(cost: &Cost) -> String {
    format!("{:.3} ms ({:.3}-{:.3})", ms(cost.median), ms(cost.min), ms(cost.max))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// The rows as a Markdown table: median per command (min-max), and how
/// many times slower reloading is.
pub fn table(rows: &[CostRow], samples: usize) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "| history (events) | actors, per command | reload, per command | reload / actors |");
    let _ = writeln!(out, "|---:|---:|---:|---:|");
    for row in rows {
        let ratio = row.reload.median.as_secs_f64() / row.actors.median.as_secs_f64().max(f64::MIN_POSITIVE);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio:.1}x |",
            thousands(row.history),
            cell(&row.actors),
            cell(&row.reload)
        );
    }
    let per = rows
        .iter()
        .map(|r| format!("{}: {} / {}", thousands(r.history), r.actor_commands, r.reload_commands));
    let _ = writeln!(
        out,
        "median of {samples} samples (min-max); commands per sample, actors / reload: {}",
        per.collect::<Vec<_>>().join(", ")
    );
    out
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_the_samples_with_their_range() {
        let ms = Duration::from_millis;
        let cost = Cost::of(vec![ms(5), ms(1), ms(9), ms(3), ms(4)]);
        assert_eq!(cost, Cost { median: ms(4), min: ms(1), max: ms(9) });
    }

    #[test]
    fn long_histories_reload_fewer_commands_per_sample() {
        let plan = CostPlan::full();
        assert_eq!(plan.reload_commands_at(10), 20);
        assert_eq!(plan.reload_commands_at(1_000), 20);
        assert_eq!(plan.reload_commands_at(100_000), 1);
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(10), "10");
    }
}
