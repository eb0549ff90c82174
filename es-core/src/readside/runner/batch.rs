//! Processing one batch of events: a handler's, event by event, or a
//! projection's, into one unit of work; retries of a failing event.

use std::sync::Arc;

use super::panics::CatchPanic;
use super::{describe, Exit, Runner};
use crate::envelope::RecordedEvent;
use crate::error::{Failure, FailureKind};
use crate::readside::handler::{HandlerCtx, HandlerError, Replay};
use crate::readside::projection::{DocumentIds, ProjectionTx};
use crate::readside::route::{Decoded, Routes};
use crate::store::UnitOfWork;

impl Runner<'_> {
    /// After a failed try at `event`: pauses before the next try, or
    /// returns the failure if that was the last attempt. A store failure
    /// (the projection's documents could not be read) is an outage, not
    /// the event's fault: it is retried for as long as it lasts and does
    /// not count in `attempt`, which counts the subscriber's own failures.
    pub(super) async fn after_failure(
        &mut self,
        event: &RecordedEvent,
        attempt: &mut u32,
        error: HandlerError,
    ) -> Result<(), Exit> {
        if error.is_store_failure() {
            let pause = self.store_failed("reading documents", &error);
            return self.pause(pause).await;
        }
        *attempt += 1;
        let attempt = *attempt;
        let retry = self.slot.subscriber.retry;
        let error = describe(&error);
        if attempt >= retry.max_attempts {
            return Err(Exit::Failed(Failure {
                kind: FailureKind::Event,
                error,
                position: event.global_position,
                event_id: Some(event.event_id),
                event_type: Some(event.event_type.clone()),
                attempts: attempt,
            }));
        }
        tracing::warn!(subscription = %self.slot.name, position = %event.global_position, event_type = %event.event_type, attempt, %error, "event failed; retrying");
        self.pause(retry.backoff(attempt)).await
    }

    pub(super) async fn handle_batch(
        &mut self,
        batch: &[RecordedEvent],
        routes: &Routes<HandlerCtx>,
        replay_mode: Replay,
    ) -> Result<(), Exit> {
        let mut handled = 0usize;
        for (i, event) in batch.iter().enumerate() {
            if self.cancelled() {
                break;
            }
            let replay = event.global_position <= self.replay_until;
            match routes.get(event) {
                Some(route) if !(replay && replay_mode == Replay::Skip) => {
                    self.check_lease_only().await?;
                    let mut ctx = HandlerCtx::for_event(
                        Arc::clone(&self.slot.name),
                        event,
                        replay,
                        self.shared.dispatcher()?,
                        self.shared.state_for(self.slot),
                    );
                    ctx.dispatch_log.clone_from(&self.shared.dispatch_log);
                    let mut attempt = 0;
                    loop {
                        // The lease is renewed while the handler runs: one
                        // call slower than the TTL would otherwise lose it,
                        // and another node would handle the event again.
                        let call = CatchPanic(route.call(event, &mut ctx));
                        let outcome = self.keeper.renewing_during(self.shared.leases.as_ref(), call).await;
                        let Err(error) = outcome else {
                            self.store_recovered();
                            break;
                        };
                        if let Err(exit) = self.after_failure(event, &mut attempt, error).await {
                            if matches!(exit, Exit::Failed(_)) {
                                // Keep the events handled before the failing one.
                                self.flush().await?;
                            }
                            return Err(exit);
                        }
                    }
                    handled += 1;
                }
                _ => self.skipped += 1,
            }
            self.position = event.global_position;
            self.slot.set_reached(self.position);
            self.slot.handled(event, batch.get(i + 1));
        }
        if handled > 0 || self.skipped >= self.shared.config.checkpoint_every {
            self.commit(UnitOfWork::new(), self.position).await?;
        }
        Ok(())
    }

    pub(super) async fn project_batch(
        &mut self,
        batch: &[RecordedEvent],
        routes: &Routes<ProjectionTx>,
    ) -> Result<(), Exit> {
        let mut tx = ProjectionTx::new(Arc::clone(&self.shared.projections), Arc::clone(&self.slot.name))
            .with_cache(self.cache.clone())
            .with_state(self.shared.state_for(self.slot));
        // The events the prefetch pass decoded, by index in the batch.
        let mut decoded =
            if routes.prefetches() { self.prefetch(batch, routes, &mut tx).await? } else { Vec::new() };
        let mut done = self.position;
        let mut projected = 0usize;
        let mut skipped = 0usize;
        for (i, event) in batch.iter().enumerate() {
            if self.cancelled() {
                break;
            }
            if let Some(route) = routes.get(event) {
                self.check_lease_only().await?;
                tx.set_replay(event.global_position <= self.replay_until);
                // Used by the first try; a retry decodes the event again.
                let mut ready = decoded.get_mut(i).and_then(Option::take);
                let mut attempt = 0;
                loop {
                    tx.begin_event();
                    // Under a renewed lease, as a handler's call.
                    let call = CatchPanic(route.call_decoded(event, ready.take(), &mut tx));
                    let outcome = self.keeper.renewing_during(self.shared.leases.as_ref(), call).await;
                    let Err(error) = outcome else {
                        self.store_recovered();
                        break;
                    };
                    tx.rollback();
                    if let Err(exit) = self.after_failure(event, &mut attempt, error).await {
                        if !matches!(exit, Exit::LeaseLost) && (tx.has_changes() || done > self.committed) {
                            // Keep what the batch did before the failing event.
                            match self.commit(tx.into_work(), done).await {
                                Ok(()) => {
                                    self.position = done;
                                    self.slot.set_reached(done);
                                }
                                Err(Exit::LeaseLost) => return Err(Exit::LeaseLost),
                                Err(_) => {}
                            }
                        }
                        return Err(exit);
                    }
                }
                projected += 1;
            } else {
                skipped += 1;
            }
            done = event.global_position;
            self.slot.handled(event, batch.get(i + 1));
        }
        // Counted after the commit in flight settles, which zeroes the count.
        self.settle().await?;
        self.skipped += skipped;
        if projected > 0 || self.skipped >= self.shared.config.checkpoint_every {
            self.send_commit(tx.into_work(), done).await?;
        }
        self.position = done;
        if self.in_flight.is_none() {
            // Otherwise reached once its commit went through: a reader
            // waiting for a position must find its documents there.
            self.slot.set_reached(done);
        }
        Ok(())
    }

    /// Reads, in one [`ProjectionStore::get_many`](crate::store::ProjectionStore::get_many),
    /// the documents the batch's prefetching events name, less those the
    /// cache answers, into `tx`. Returns the events decoded to name them,
    /// by index in the batch, for their calls.
    ///
    /// A failed read is a store outage, waited out like a failed read of
    /// events or of the checkpoint: the batch has not started, so nothing
    /// is lost by waiting, and falling back to one `get` per event would
    /// only meet the same outage once per event.
    async fn prefetch(
        &mut self,
        batch: &[RecordedEvent],
        routes: &Routes<ProjectionTx>,
        tx: &mut ProjectionTx,
    ) -> Result<Vec<Option<Decoded>>, Exit> {
        let mut named = DocumentIds::default();
        let decoded = batch
            .iter()
            .map(|event| routes.get(event).and_then(|route| route.documents(event, &mut named)))
            .collect();
        let wanted = tx.to_prefetch(named.into_vec());
        if wanted.is_empty() {
            return Ok(decoded);
        }
        let projections = self.shared.projections.as_ref();
        let name = &*self.slot.name;
        let found = self.store_read("prefetching documents", || projections.get_many(name, &wanted)).await?;
        tx.prefetched(wanted, found);
        Ok(decoded)
    }
}
