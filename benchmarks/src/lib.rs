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

/// Formats a duration in milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

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
    fn rate_is_operations_per_second() {
        assert_eq!(rate(500, Duration::from_millis(250)), 2000.0);
    }
}
