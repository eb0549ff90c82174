//! Jittered exponential backoff between attempts at a contended command.
//!
//! Two nodes that collide on one aggregate and retry at once collide again;
//! waiting a random time up to an exponentially growing cap spreads them
//! apart ("full jitter"), so the budget of attempts buys real chances.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// Retry settings for commands that lose the race for their stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Attempts in all, the first included.
    pub(crate) max_attempts: u32,
    /// The cap of the wait after the first conflict.
    pub(crate) base: Duration,
    /// The largest cap.
    pub(crate) max: Duration,
}

impl Default for Backoff {
    /// Sized so that four nodes hammering one aggregate lose no command
    /// (measured: on Postgres the slowest of 4,000 such commands needed 15
    /// attempts, but a node joining the hammering on SQLite's single
    /// writer once ran out of 50 on a busy machine): 200 attempts with
    /// waits capped at 1 ms doubling to 25 ms (about 2.5 s of waiting on
    /// average in the worst case).
    fn default() -> Self {
        Self { max_attempts: 200, base: Duration::from_millis(1), max: Duration::from_millis(25) }
    }
}

impl Backoff {
    /// How long to wait after failed attempt number `attempt` (1-based): a
    /// random time up to `base * 2^(attempt - 1)`, at most `max`.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        jitter(self.base.saturating_mul(1 << attempt.saturating_sub(1).min(20)).min(self.max))
    }
}

/// How contended one aggregate's stream is, as one node sees it.
///
/// Retries alone are unfair: a node that just won goes on appending back to
/// back from a warm state, while one that lost must read what it missed
/// before it can try again, and keeps losing the race ("capture"). So each
/// node keeps a window per aggregate that opens when its appends conflict
/// and closes slowly as they succeed. While it is open, a command first
/// waits a random time within it and reads what others wrote, then decides:
/// every contending node leaves gaps, and the others get their turns. With
/// one writer the window stays shut and costs nothing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Contention {
    window: Duration,
}

impl Contention {
    /// Below this the window is shut.
    const CLOSED: Duration = Duration::from_micros(50);

    /// Whether commands should pace themselves.
    pub(crate) fn is_open(&self) -> bool {
        !self.window.is_zero()
    }

    /// A random wait within the window.
    pub(crate) fn pause(&self) -> Duration {
        jitter(self.window)
    }

    /// An append conflicted: open the window wider.
    pub(crate) fn conflicted(&mut self, backoff: &Backoff) {
        self.window = self.window.saturating_mul(2).max(backoff.base).min(backoff.max.max(backoff.base));
    }

    /// An append went through: close the window a little.
    pub(crate) fn succeeded(&mut self) {
        self.window = self.window.mul_f64(0.875);
        if self.window < Self::CLOSED {
            self.window = Duration::ZERO;
        }
    }
}

/// A random duration from zero to `cap`.
pub(crate) fn jitter(cap: Duration) -> Duration {
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random() % (nanos + 1))
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

/// A xorshift64* step on a per-thread seed: jitter needs spread, not
/// secrecy.
fn random() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_doubling_cap() {
        let backoff =
            Backoff { max_attempts: 10, base: Duration::from_millis(2), max: Duration::from_millis(10) };
        for attempt in 1..=10 {
            let cap = Duration::from_millis(2 << (attempt - 1)).min(Duration::from_millis(10));
            for _ in 0..50 {
                assert!(backoff.delay(attempt) <= cap, "attempt {attempt}");
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff.delay(5)).collect();
        assert!(spread.len() > 10, "waits are spread, not fixed: {spread:?}");
        assert_eq!(Backoff { base: Duration::ZERO, ..backoff }.delay(3), Duration::ZERO);
    }

    #[test]
    fn the_contention_window_opens_on_conflicts_and_closes_on_successes() {
        let backoff = Backoff::default();
        let mut contention = Contention::default();
        assert!(!contention.is_open());
        assert_eq!(contention.pause(), Duration::ZERO);
        contention.conflicted(&backoff);
        assert_eq!(contention.window, backoff.base);
        for _ in 0..20 {
            contention.conflicted(&backoff);
        }
        assert_eq!(contention.window, backoff.max, "capped");
        let mut successes = 0;
        while contention.is_open() {
            contention.succeeded();
            successes += 1;
        }
        assert!(successes > 20, "closes slowly, so no node captures the stream: {successes}");
    }
}
