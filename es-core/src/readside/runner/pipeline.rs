//! Pipelined projection: while one batch commits, the next is projected.
//!
//! A catch-up or rebuild of a document projection spends most of each
//! batch's time in its commit, and the projection of the next batch needs
//! nothing from that commit but the documents it writes. So when a full
//! batch of a projection has been projected and the next one is already
//! read, its work is kept as [`Pending`] instead of committed; the next
//! batch is then projected while the pending one commits, reading the
//! pending documents before the cache and the store (the overlay).
//!
//! What stays as without pipelining:
//! - commits land in batch order: the next batch's work is committed only
//!   after the pending one was (its first attempt overlaps; a failed
//!   attempt is retried whole, with the usual outage and retry rules,
//!   before anything else happens);
//! - the position, the checkpoint and what status calls reached move only
//!   when a commit lands: a pending batch is not "handled" yet;
//! - a runner that stops commits its pending work first (as it does with
//!   filtered events); one that loses its lease drops it unsent, so no
//!   commit is ever left running without the runner that made it;
//! - only full batches whose successor is already read are kept pending;
//!   a short batch (caught up, live) commits at once, with no added delay.

use std::sync::Arc;

use super::batch::Projected;
use super::{Exit, Runner};
use crate::envelope::RecordedEvent;
use crate::error::ProjectionError;
use crate::readside::projection::ProjectionTx;
use crate::readside::route::Routes;
use crate::store::{DocumentChange, EventStore, Fence, UnitOfWork};
use crate::version::GlobalPosition;

/// A projected batch whose commit has not landed yet.
pub(super) struct Pending {
    /// Its net document changes, sorted by id (shared with the next
    /// batch's reads while they commit).
    changes: Arc<Vec<DocumentChange>>,
    /// The position of its last event.
    done: GlobalPosition,
}

impl Runner<'_> {
    /// Commits the pending batch, if any (retrying as commits do), and
    /// moves the position to its end.
    pub(super) async fn settle(&mut self) -> Result<(), Exit> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        let work = UnitOfWork { changes: pending.changes.to_vec(), checkpoint: None, fence: None };
        self.commit(work, pending.done).await?;
        self.reached(pending.done);
        Ok(())
    }

    /// Projects the full `batch` (ending at `last`) while the pending batch
    /// commits and the batch after it is read; keeps `batch` pending when
    /// it was projected to its end and that next batch is there, else
    /// commits it at once. Returns the next batch when it follows on.
    pub(super) async fn project_pipelined(
        &mut self,
        batch: &[RecordedEvent],
        routes: &Routes<ProjectionTx>,
        last: GlobalPosition,
    ) -> Result<Option<Vec<RecordedEvent>>, Exit> {
        let shared = self.shared;
        let previous = self.pending.take();
        // The previous batch's first commit attempt, fenced like any other.
        let first_try = previous.as_ref().map(|p| {
            let lease = &self.keeper.lease;
            let mut work = UnitOfWork { changes: p.changes.to_vec(), checkpoint: None, fence: None };
            work.fence(Fence::new(lease.name.clone(), lease.token)).checkpoint(self.checkpoint_at(p.done));
            work
        });
        let (store, name) = (Arc::clone(&shared.projections), Arc::clone(&self.slot.name));
        let commit = async move {
            match first_try {
                Some(work) => Some(store.commit(&name, work).await),
                None => None,
            }
        };
        let overlay = previous.as_ref().map(|p| Arc::clone(&p.changes));
        let from = previous.as_ref().map_or(self.position, |p| p.done);
        let events: &dyn EventStore = shared.events.as_ref();
        let (tried, projected, ahead) = tokio::join!(
            commit,
            self.project_events(batch, routes, overlay, from),
            events.read_all(last, shared.config.batch_size)
        );
        if let Some(previous) = previous {
            self.landed(previous, tried).await?;
        }
        let keep = projected.stop.is_none() && projected.projected > 0 && projected.done == last;
        match ahead {
            Ok(next) if keep && !next.is_empty() => {
                let Projected { work, done, skipped, .. } = projected;
                self.skipped += skipped;
                self.pending = Some(Pending { changes: Arc::new(work.changes), done });
                Ok(Some(next))
            }
            ahead => {
                self.finish(projected).await?;
                match ahead {
                    Ok(next) if !next.is_empty() && self.position == last => Ok(Some(next)),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Takes in the outcome of the previous batch's first commit attempt,
    /// and settles it as commits are settled: a failed attempt (which may
    /// or may not have been applied) counts as the first of the attempts,
    /// and the whole work is committed again.
    async fn landed(
        &mut self,
        previous: Pending,
        tried: Option<Result<(), ProjectionError>>,
    ) -> Result<(), Exit> {
        let changes = Arc::try_unwrap(previous.changes).unwrap_or_else(|shared| shared.to_vec());
        let work = UnitOfWork { changes, checkpoint: None, fence: None };
        self.commit_after(work, previous.done, tried).await?;
        self.reached(previous.done);
        Ok(())
    }

    /// Every event up to `position` is handled and committed.
    fn reached(&mut self, position: GlobalPosition) {
        self.position = position;
        self.slot.set_reached(position);
    }
}
