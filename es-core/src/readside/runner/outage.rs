//! Store outages: a store that fails under a running subscription is waited
//! out, never blamed on the event at hand.
//!
//! A failed read, a failed commit, a pool with no free connection: none of
//! them says anything about the event being processed, so they are retried
//! for as long as they last, with capped, jittered backoff
//! ([`ReadSideConfig::store_retry`](crate::readside::ReadSideConfig::store_retry)),
//! and never count against the subscriber's retry policy. Meanwhile the
//! status says [`SubscriptionState::WaitingForStore`], with the error and
//! since when; the first success puts it back to running.

use std::future::Future;
use std::time::Duration;

use super::{describe, Exit, Runner};
use crate::envelope::Timestamp;
use crate::readside::status::{StoreOutage, SubscriptionState};
use crate::runtime::backoff::jitter;

impl Runner<'_> {
    /// Records a failed store call (`what` was being done) and returns how
    /// long to pause before the next try: half the policy's backoff for
    /// this attempt plus a random part of the other half, so nodes that
    /// lost one database do not all come back at once.
    pub(super) fn store_failed(&mut self, what: &str, error: &dyn std::error::Error) -> Duration {
        let error = describe(error);
        let outage = self.outage.get_or_insert_with(|| StoreOutage {
            error: String::new(),
            since: Timestamp::now(),
            attempts: 0,
        });
        outage.attempts = outage.attempts.saturating_add(1);
        outage.error = format!("{what}: {error}");
        let attempts = outage.attempts;
        tracing::warn!(subscription = %self.slot.name, attempts, %error, "{what} failed; waiting for the store");
        self.slot.set_state(SubscriptionState::WaitingForStore(outage.clone()));
        let backoff = self.shared.config.store_retry.backoff(attempts);
        backoff / 2 + jitter(backoff / 2)
    }

    /// A store call succeeded: an outage being waited out is over.
    pub(super) fn store_recovered(&mut self) {
        if let Some(outage) = self.outage.take() {
            tracing::info!(subscription = %self.slot.name, attempts = outage.attempts, "the store answers again; going on");
            self.slot.set_state(SubscriptionState::Running);
        }
    }

    /// Runs a storage read until it succeeds: reads change nothing, so a
    /// store outage pauses the subscription instead of failing it.
    pub(super) async fn store_read<T, E, F, Fut>(&mut self, what: &str, mut read: F) -> Result<T, Exit>
    where
        E: std::error::Error,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        loop {
            match read().await {
                Ok(value) => {
                    self.store_recovered();
                    return Ok(value);
                }
                Err(error) => {
                    let pause = self.store_failed(what, &error);
                    self.pause(pause).await?;
                }
            }
        }
    }
}
