//! Measurement helpers shared by the benchmark programs in `src/bin/`.
//!
//! Benchmarks print figures; they never assert on time. Run them in release
//! mode: `cargo run --release -p es-benchmarks --bin <name>`.

use std::time::Duration;

/// Latency figures of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latencies {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latencies {
    /// Computes the figures of `samples` (sorted in place). `None` if empty.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((samples.len() as f64) * q).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Some(Self { p50: at(0.50), p99: at(0.99), max: samples[samples.len() - 1] })
    }
}

/// Operations per second.
pub fn rate(operations: u64, elapsed: Duration) -> f64 {
    operations as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Timed runs behind every figure: each is the median of this many runs,
/// printed with the min and the max (never the best run alone).
pub const RUNS: usize = 5;

/// The median, min and max of several runs of one figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median (of an even count, the upper middle value).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`. `None` if empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self { median: *sorted.get(sorted.len() / 2)?, min: *sorted.first()?, max: *sorted.last()? })
    }

    /// The spread of the per-run ratios `a[i] / b[i]` (runs of two sides
    /// that alternated, so each ratio is of runs taken side by side).
    pub fn of_ratios(a: &[f64], b: &[f64]) -> Option<Self> {
        let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b.max(f64::MIN_POSITIVE)).collect();
        Self::of(&ratios)
    }

    /// `median (min .., max ..)` with `decimals` decimals.
    pub fn show(&self, decimals: usize) -> String {
        format!("{:.decimals$} (min {:.decimals$}, max {:.decimals$})", self.median, self.min, self.max)
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.show(0))
    }
}

/// The rates of several runs of one figure, with the latencies of all
/// their operations taken together.
#[derive(Debug, Clone)]
pub struct Runs {
    /// Operations per second of each run.
    pub rates: Vec<f64>,
    /// Figures of every operation of every run.
    pub latencies: Option<Latencies>,
}

impl Runs {
    /// Gathers `runs`.
    pub fn of(runs: Vec<Run>) -> Self {
        let rates = runs.iter().map(Run::rate).collect();
        let merged = Run::merge(runs);
        Self { rates, latencies: merged.latencies }
    }

    /// Median, min and max of the rates.
    pub fn spread(&self) -> Spread {
        Spread::of(&self.rates).unwrap_or(Spread { median: 0.0, min: 0.0, max: 0.0 })
    }

    /// Prints one line: `label`, the median `unit`/s with min and max, and
    /// p50 and p99 over all runs.
    pub fn print(&self, label: &str, unit: &str) {
        let s = self.spread();
        let latency = match &self.latencies {
            Some(l) => format!("   p50 {}   p99 {}", ms(l.p50), ms(l.p99)),
            None => String::new(),
        };
        println!("  {label:<40} {:>8.0} {unit}/s (min {:.0}, max {:.0}){latency}", s.median, s.min, s.max);
    }

    /// Prints this run's ratio to `base` (per-run ratios, median with min
    /// and max), in percent.
    pub fn print_ratio(&self, label: &str, base: &Runs) {
        if let Some(r) = Spread::of_ratios(&self.rates, &base.rates) {
            println!(
                "  {label:<40} {:>8.0} %  (min {:.0} %, max {:.0} %)",
                100.0 * r.median,
                100.0 * r.min,
                100.0 * r.max
            );
        }
    }
}

/// Formats a duration in milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// One timed run of several writers: how many events they wrote, the wall
/// time, and the latency of each operation.
#[derive(Debug, Clone)]
pub struct Run {
    /// Events written.
    pub events: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Figures of `samples` (or of the merged samples).
    pub latencies: Option<Latencies>,
    /// Time of each operation; emptied by [`Run::merge`].
    pub samples: Vec<Duration>,
}

impl Run {
    /// The rounds of one side taken together.
    pub fn merge(runs: Vec<Run>) -> Run {
        let events = runs.iter().map(|r| r.events).sum();
        let elapsed = runs.iter().map(|r| r.elapsed).sum();
        let mut samples: Vec<Duration> = runs.into_iter().flat_map(|r| r.samples).collect();
        Run { events, elapsed, latencies: Latencies::of(&mut samples), samples: Vec::new() }
    }

    /// Events per second.
    pub fn rate(&self) -> f64 {
        rate(self.events, self.elapsed)
    }

    /// Prints one line: `label`, events/s, p50 and p99.
    pub fn print(&self, label: &str) {
        self.print_as(label, "events");
    }

    /// As [`print`](Run::print), counting `unit` (say `commands`) instead of events.
    pub fn print_as(&self, label: &str, unit: &str) {
        match &self.latencies {
            Some(l) => println!(
                "  {label:<38} {:>9.0} {unit}/s   p50 {}   p99 {}",
                self.rate(),
                ms(l.p50),
                ms(l.p99)
            ),
            None => println!("  {label:<38} {:>9.0} {unit}/s", self.rate()),
        }
    }
}

/// Runs `writers` tasks, each calling `op(writer, i)` `per_writer` times
/// one after another, timing every call; each call writes `events_per_op`
/// events.
///
/// # Errors
/// The first error of `op`, or a writer task that panicked.
pub async fn run_writers<F, Fut>(
    writers: usize,
    per_writer: usize,
    events_per_op: usize,
    op: F,
) -> anyhow::Result<Run>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = std::sync::Arc::new(op);
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let t = std::time::Instant::now();
                op(w, i).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let elapsed = start.elapsed();
    let latencies = Latencies::of(&mut samples);
    Ok(Run { events: (writers * per_writer * events_per_op) as u64, elapsed, latencies, samples })
}

/// The counter the runtime benchmarks drive, declared as users write an aggregate.
pub mod counter;

/// Postgres helpers: connecting, a throwaway schema, the raw-INSERT baseline.
pub mod pg;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let l = Latencies::of(&mut samples).unwrap();
        assert_eq!(l.p50, Duration::from_millis(50));
        assert_eq!(l.p99, Duration::from_millis(99));
        assert_eq!(l.max, Duration::from_millis(100));
        assert!(Latencies::of(&mut []).is_none());
    }

    #[test]
    fn a_spread_is_median_min_and_max() {
        let s = Spread::of(&[3.0, 1.0, 5.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        assert!(Spread::of(&[]).is_none());
        let r = Spread::of_ratios(&[2.0, 6.0, 3.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((r.median, r.min, r.max), (2.0, 1.0, 3.0));
    }

    #[test]
    fn rate_is_operations_per_second() {
        assert_eq!(rate(500, Duration::from_millis(250)), 2000.0);
    }
}
