//! Waiting until subscriptions reach a position: read your own writes, and
//! the strong consistency `Es::execute` waits for.

use std::sync::Arc;
use std::time::Duration;

use super::read_side::ReadSide;
use super::runner::{self, Slot};
use super::status::SubscriptionState;
use super::subscriber::Consistency;
use crate::error::ConsistencyError;
use crate::version::GlobalPosition;

impl ReadSide {
    /// Waits until subscription `name` has handled every event up to
    /// `position` (read your own writes), on this node or, when another
    /// node runs it, through its stored checkpoint.
    ///
    /// # Errors
    /// [`ConsistencyError::Timeout`] after `timeout`;
    /// [`ConsistencyError::Failed`] if it stopped on a failing event;
    /// [`ConsistencyError::Unknown`] for an unknown name.
    pub async fn wait_for(
        &self,
        name: &str,
        position: GlobalPosition,
        timeout: Duration,
    ) -> Result<(), ConsistencyError> {
        let slot =
            self.slots.0.get(name).ok_or_else(|| ConsistencyError::Unknown { name: name.to_owned() })?;
        let deadline = crate::clock::deadline_from_now(timeout);
        self.wait_slot(slot, position, timeout, deadline).await
    }

    /// Waits until every [`Consistency::Strong`] subscription has handled
    /// every event up to `position`. This is what `Es::execute` calls after
    /// appending (except for commands a handler dispatches through its
    /// [`HandlerCtx`](crate::HandlerCtx): the calling subscription cannot
    /// move until the handler returns, so they do not wait).
    ///
    /// # Errors
    /// The first [`ConsistencyError`] met, naming the subscription.
    pub async fn wait_for_strong(
        &self,
        position: GlobalPosition,
        timeout: Duration,
    ) -> Result<(), ConsistencyError> {
        self.wait_for_strong_consumers(position, timeout, None).await
    }

    /// Whether a [`Consistency::Strong`] subscription consumes any of
    /// `event_types`: whether a command that appended events of these
    /// types must wait.
    pub(crate) fn strong_consumes(&self, event_types: &[&str]) -> bool {
        self.strong_slots(Some(event_types)).next().is_some()
    }

    /// Waits for the [`Consistency::Strong`] subscriptions that consume
    /// one of `event_types` (every one if `None`) to reach `position`.
    ///
    /// A command waits only for the strong subscriptions its events go
    /// to: one that consumes none of them has nothing of the command's to
    /// run, and what it owes earlier commands those commands waited for.
    pub(crate) async fn wait_for_strong_consumers(
        &self,
        position: GlobalPosition,
        timeout: Duration,
        event_types: Option<&[&str]>,
    ) -> Result<(), ConsistencyError> {
        let deadline = crate::clock::deadline_from_now(timeout);
        for slot in self.strong_slots(event_types) {
            self.wait_slot(slot, position, timeout, deadline).await?;
        }
        Ok(())
    }

    fn strong_slots<'a>(
        &'a self,
        event_types: Option<&'a [&'a str]>,
    ) -> impl Iterator<Item = &'a Arc<Slot>> + 'a {
        self.slots.0.values().filter(move |s| {
            s.subscriber.consistency == Consistency::Strong
                && event_types.is_none_or(|types| types.iter().any(|t| s.subscriber.consumes(t)))
        })
    }

    async fn wait_slot(
        &self,
        slot: &Slot,
        position: GlobalPosition,
        timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<(), ConsistencyError> {
        let mut progress = slot.progress.subscribe();
        loop {
            let (reached, state, rebuilding) = {
                let now = progress.borrow_and_update();
                (now.reached, now.state.clone(), now.rebuilding)
            };
            // What this node reached counts only while it processes the
            // subscription (or stopped on a failure here): once it stopped,
            // another node may have rebuilt it, and only the stored
            // checkpoint tells.
            let here = state.is_active() || matches!(state, SubscriptionState::Failed(_));
            if here && reached >= position {
                return Ok(());
            }
            let timed_out =
                || ConsistencyError::Timeout { name: slot.name.to_string(), position, reached, timeout };
            match state {
                SubscriptionState::Failed(failure) => {
                    return Err(ConsistencyError::Failed { name: slot.name.to_string(), position, failure });
                }
                SubscriptionState::Running
                | SubscriptionState::CaughtUp
                | SubscriptionState::WaitingForStore(_) => {
                    tokio::select! {
                        changed = progress.changed() => if changed.is_err() { return Err(timed_out()) },
                        () = tokio::time::sleep_until(deadline) => return Err(timed_out()),
                    }
                }
                _ => {
                    // Not processing here: another node may run it. (While a
                    // rebuild is pending here, the stored checkpoint is stale.)
                    // The read is bounded by the deadline too: a store that
                    // stops answering must not hold the caller past it.
                    let stored = if rebuilding {
                        Ok(None)
                    } else {
                        let read = self.shared.projections.checkpoint(&slot.name);
                        match tokio::time::timeout_at(deadline, read).await {
                            Ok(stored) => stored,
                            Err(_) => return Err(timed_out()),
                        }
                    };
                    match stored {
                        Ok(Some(stored)) if stored.position >= position => return Ok(()),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(subscription = %slot.name, error = %runner::describe(&error), "reading the checkpoint failed");
                        }
                    }
                    tokio::select! {
                        _ = progress.changed() => {}
                        () = tokio::time::sleep(self.shared.config.remote_poll) => {}
                        () = tokio::time::sleep_until(deadline) => return Err(timed_out()),
                    }
                }
            }
        }
    }
}
