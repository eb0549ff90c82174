//! Pipelined commits: a projection's batch commits while the next batch is
//! projected.
//!
//! A document projection's catch-up spends most of each batch's time in
//! its commit (the documents and the checkpoint in one transaction). The
//! next batch needs nothing from that commit but the documents it wrote,
//! which the runner already has: so the commit is sent on its own task,
//! its changes are staged in the runner's cache (read before anything else
//! and never evicted), and the next batch is projected meanwhile.
//!
//! Exactly once still holds, because commits stay in order and one at a
//! time: a batch's commit is sent only after the one before it went
//! through ([`Runner::settle`]). If the commit in flight fails, it is made
//! again from its staged changes by the usual retry loop; if it cannot be
//! made, the batch projected on top of it is dropped with it and the
//! position goes back to the stored checkpoint. Every way out of a run
//! settles or awaits the commit in flight first, so a commit never lands
//! after its runner has let go of the lease.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::panics::AdapterPanicked;
use super::{Exit, Runner};
use crate::error::ProjectionError;
use crate::store::UnitOfWork;
use crate::version::GlobalPosition;

/// A commit sent and not yet known to have gone through.
pub(super) struct InFlight {
    commit: JoinHandle<Result<(), ProjectionError>>,
    /// Its fence and checkpoint; its changes are staged in the cache.
    work: UnitOfWork,
    checkpoint: GlobalPosition,
}

impl Drop for InFlight {
    /// A runner dropped mid-commit (its task aborted) takes the commit with
    /// it, as a commit made in the runner's own task would be.
    fn drop(&mut self) {
        self.commit.abort();
    }
}

impl Runner<'_> {
    /// Sends `work` with the checkpoint `checkpoint` under the lease, after
    /// the commit in flight (if any) went through, and returns without
    /// waiting for it.
    pub(super) async fn send_commit(
        &mut self,
        mut work: UnitOfWork,
        checkpoint: GlobalPosition,
    ) -> Result<(), Exit> {
        self.settle().await?;
        self.seal(&mut work, checkpoint).await?;
        let sent = work.clone();
        let store = Arc::clone(&self.shared.projections);
        let name = Arc::clone(&self.slot.name);
        let commit = tokio::spawn(async move { store.commit(&name, sent).await });
        self.cache.stage(std::mem::take(&mut work.changes));
        self.in_flight = Some(InFlight { commit, work, checkpoint });
        Ok(())
    }

    /// Waits for the commit in flight, if any. One that failed is made
    /// again from its staged changes, as [`commit`](Self::commit) retries
    /// (that try counted); if it cannot be made, the position goes back to
    /// the stored checkpoint, dropping whatever was projected on top of it.
    pub(super) async fn settle(&mut self) -> Result<(), Exit> {
        // Awaited in place and taken only once it answered: a runner dropped
        // meanwhile (a panic beside it) leaves it for the exit to settle.
        let Some(waiting) = self.in_flight.as_mut() else { return Ok(()) };
        let answer = (&mut waiting.commit).await;
        let Some(mut in_flight) = self.in_flight.take() else { return Ok(()) };
        let checkpoint = in_flight.checkpoint;
        let error = match answer {
            Ok(Ok(())) => {
                self.cache.staged_committed();
                self.stored(checkpoint);
                self.slot.set_reached(checkpoint);
                return Ok(());
            }
            Ok(Err(error)) => error,
            // The adapter panicked (or the task was cancelled): the commit
            // may or may not have been applied, as after a lost connection.
            Err(ended) => AdapterPanicked::or_cancelled(ended),
        };
        let mut work = std::mem::take(&mut in_flight.work);
        work.changes = self.cache.unstage();
        let mut attempt = 1;
        let made = match self.commit_failed(error, &mut attempt, checkpoint).await {
            Ok(()) => self.commit_now(work, checkpoint, attempt).await,
            Err(exit) => Err(exit),
        };
        match made {
            Ok(()) => self.slot.set_reached(checkpoint),
            Err(_) => {
                self.position = self.committed;
                self.slot.set_reached(self.committed);
            }
        }
        made
    }

    /// Waits for the commit in flight without looking at its outcome: the
    /// lease is lost, and the next run must not start while it may land.
    pub(super) async fn abandon(&mut self) {
        if let Some(mut in_flight) = self.in_flight.take() {
            let _outcome = (&mut in_flight.commit).await;
        }
    }
}
