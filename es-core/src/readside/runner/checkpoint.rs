//! Committing under the lease: a batch's work with its checkpoint, fenced
//! with the lease's token, and the replay marker a rebuild stores.

use super::panics::store_call;
use super::{describe, Exit, Runner};
use crate::error::{Failure, FailureKind, ProjectionError};
use crate::readside::subscriber::SubscriberKind;
use crate::store::{Checkpoint, EventStore, Fence, ProjectionStore, UnitOfWork};
use crate::version::GlobalPosition;

impl Runner<'_> {
    /// The checkpoint to store at `position`: with the end of the replay
    /// while the replay lasts.
    pub(super) fn checkpoint_at(&self, position: GlobalPosition) -> Checkpoint {
        let replaying = self.replay_until > position;
        Checkpoint::at(position).replaying_until(replaying.then_some(self.replay_until))
    }

    /// Commits `work` with the checkpoint `checkpoint` under the lease,
    /// fenced with the lease's token, retrying per the subscriber's policy,
    /// once the commit in flight (if any) went through. A store that
    /// refuses the fence means the lease is lost: `Err(LeaseLost)`, with
    /// nothing stored or advanced.
    pub(super) async fn commit(&mut self, work: UnitOfWork, checkpoint: GlobalPosition) -> Result<(), Exit> {
        self.settle().await?;
        self.commit_now(work, checkpoint, 0).await
    }

    /// [`commit`](Self::commit), with no commit in flight and `tried`
    /// attempts already made (and paused after).
    pub(super) async fn commit_now(
        &mut self,
        mut work: UnitOfWork,
        checkpoint: GlobalPosition,
        tried: u32,
    ) -> Result<(), Exit> {
        let mut attempt = tried;
        loop {
            attempt += 1;
            self.seal(&mut work, checkpoint).await?;
            match store_call(self.shared.projections.commit(&self.slot.name, work.clone())).await {
                Ok(()) => {
                    self.cache.committed(work.changes);
                    self.stored(checkpoint);
                    return Ok(());
                }
                Err(error) => self.commit_failed(error, &mut attempt, checkpoint).await?,
            }
        }
    }

    /// Renews the lease if due, and puts its fence and the checkpoint at
    /// `checkpoint` on `work`.
    pub(super) async fn seal(
        &mut self,
        work: &mut UnitOfWork,
        checkpoint: GlobalPosition,
    ) -> Result<(), Exit> {
        self.check_lease_only().await?;
        let lease = &self.keeper.lease;
        work.fence(Fence::new(lease.name.clone(), lease.token));
        work.checkpoint(self.checkpoint_at(checkpoint));
        Ok(())
    }

    /// After try number `attempt` of the commit at `checkpoint` failed with
    /// `error`: pauses before the next try, or says why there is none. A
    /// store failure is waited out however long it lasts and is not
    /// counted in `attempt`.
    pub(super) async fn commit_failed(
        &mut self,
        error: ProjectionError,
        attempt: &mut u32,
        checkpoint: GlobalPosition,
    ) -> Result<(), Exit> {
        // It may or may not have been applied.
        self.cache.clear();
        let retry = self.slot.subscriber.retry;
        match error {
            ProjectionError::Fenced { lease, token, .. } => {
                tracing::warn!(subscription = %self.slot.name, %lease, token, "commit refused: the lease is no longer held with this token");
                Err(Exit::LeaseLost)
            }
            error @ ProjectionError::Backend(_) => {
                // The store failed, not the batch (a commit that may have
                // gone through is repeated whole, which stores the same
                // documents).
                self.count_panic(&error, checkpoint)?;
                *attempt -= 1;
                let pause = self.store_failed("committing", &error);
                self.pause(pause).await
            }
            error if *attempt < retry.max_attempts => {
                tracing::warn!(subscription = %self.slot.name, attempt, error = %describe(&error), "commit failed; retrying");
                self.pause(retry.backoff(*attempt)).await
            }
            error => Err(Exit::Failed(Failure {
                kind: FailureKind::Commit,
                error: format!("committing the checkpoint failed: {}", describe(&error)),
                position: checkpoint,
                event_id: None,
                event_type: None,
                attempts: *attempt,
            })),
        }
    }

    /// The checkpoint `checkpoint` was stored.
    pub(super) fn stored(&mut self, checkpoint: GlobalPosition) {
        self.store_recovered();
        self.panics = 0;
        self.committed = checkpoint;
        self.skipped = 0;
        self.slot.set_checkpoint(Some(checkpoint));
    }

    /// Renews the lease if due, without looking at cancellation (a commit
    /// of work already done goes ahead when stopping).
    pub(super) async fn check_lease_only(&mut self) -> Result<(), Exit> {
        self.keeper.ensure(self.shared.leases.as_ref()).await
    }

    /// Commits the position reached if the stored checkpoint lags behind it
    /// (filtered-out events, or handled events before a stop). Best effort:
    /// used when stopping. `Err(LeaseLost)` if the lease turned out lost.
    pub(super) async fn flush(&mut self) -> Result<(), Exit> {
        let flushed = match self.settle().await {
            Ok(()) if self.position <= self.committed => return Ok(()),
            Ok(()) => {
                let position = self.position;
                self.commit(UnitOfWork::new(), position).await
            }
            Err(exit) => Err(exit),
        };
        match flushed {
            Err(Exit::LeaseLost) => Err(Exit::LeaseLost),
            // A failed flush only means the events after the checkpoint
            // are read (and, if projected, projected) again.
            Err(Exit::Failed(failure)) => {
                tracing::warn!(subscription = %self.slot.name, error = %failure.error, "final checkpoint not stored");
                Ok(())
            }
            Err(Exit::Cancelled) | Ok(()) => Ok(()),
        }
    }

    /// Starts over: a projection's documents and checkpoint are deleted (a
    /// table projection's tables are reset by its own code); a
    /// handler's checkpoint goes back to the start, with the current head
    /// stored as the end of the replay (in the same commit, so a crash
    /// mid-replay still knows which events are history).
    pub(super) async fn rebuild(&mut self) -> Result<(), Exit> {
        let shared = self.shared;
        let namespace = &*self.slot.name;
        let events: &dyn EventStore = shared.events.as_ref();
        let head = self.store_read("reading the head position", move || events.head_position()).await?;
        self.check_lease_only().await?;
        match &self.slot.subscriber.kind {
            SubscriberKind::Table(table) => {
                self.replay_until = head;
                self.reset_tables(table.as_ref()).await?;
            }
            SubscriberKind::Projection { .. } => {
                let projections: &dyn ProjectionStore = shared.projections.as_ref();
                self.store_read("resetting the projection", move || projections.reset(namespace)).await?;
                self.cache.emptied();
                self.replay_until = head;
            }
            SubscriberKind::Handler { .. } => {
                self.replay_until = head;
                self.commit(UnitOfWork::new(), GlobalPosition::START).await?;
            }
        }
        self.slot.progress.send_modify(|p| {
            p.reached = GlobalPosition::START;
            p.checkpoint = None;
            p.rebuilding = false;
        });
        tracing::info!(subscription = %self.slot.name, replay_until = %head, "replaying from the start");
        Ok(())
    }
}
