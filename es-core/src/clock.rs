//! Deadlines that never overflow the clock.
//!
//! Users pass durations such as `Duration::MAX` to mean "wait as long as it
//! takes"; adding one to `Instant::now()` with `+` would panic.

use std::time::Duration;

use tokio::time::Instant;

/// About thirty years: later than any deadline that matters (tokio uses the
/// same bound for a sleep that cannot be represented).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `from + after`, or a far-future instant when that sum does not fit.
pub(crate) fn deadline(from: Instant, after: Duration) -> Instant {
    from.checked_add(after).or_else(|| from.checked_add(FAR_FUTURE)).unwrap_or(from)
}

/// `deadline(Instant::now(), after)`.
pub(crate) fn deadline_from_now(after: Duration) -> Instant {
    deadline(Instant::now(), after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representable_deadlines_are_exact_and_others_far_away() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::from_secs(3)), now + Duration::from_secs(3));
        assert_eq!(deadline(now, Duration::MAX), now + FAR_FUTURE);
    }
}
