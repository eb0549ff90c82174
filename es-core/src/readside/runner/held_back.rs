//! Held-back diagnostics: which running transaction keeps committed events
//! hidden from a caught-up subscription, reported and warned about.

use tokio::time::Instant;

use super::{describe, Runner};

impl Runner<'_> {
    /// While caught up, asks the store (at most every half of the warning
    /// threshold) whether a transaction keeps committed events hidden, and
    /// reports and warns about one that has done so past the threshold.
    /// Best effort: a failed check is logged at debug level and skipped.
    pub(super) async fn check_held_back(&mut self) {
        let now = Instant::now();
        if now < self.next_blocker_check {
            return;
        }
        let threshold = self.shared.config.held_back_warning;
        self.next_blocker_check = now + threshold / 2;
        let blocker = match self.shared.events.read_blocker().await {
            Ok(blocker) => blocker.filter(|b| b.hiding_for >= threshold),
            Err(error) => {
                tracing::debug!(subscription = %self.slot.name, error = %describe(&error), "asking what holds readers back failed");
                return;
            }
        };
        let Some(blocker) = blocker else {
            self.slot.set_held_back_by(None);
            return;
        };
        let due = self.last_held_back_warning.is_none_or(|last| now.duration_since(last) >= threshold);
        if due {
            self.last_held_back_warning = Some(now);
            tracing::warn!(
                subscription = %self.slot.name,
                position = %self.position,
                hidden_for = ?blocker.hiding_for,
                blocker = %blocker.description,
                "a running transaction keeps committed events hidden from this subscription"
            );
        }
        self.slot.set_held_back_by(Some((blocker.description, blocker.hiding_for)));
    }
}
