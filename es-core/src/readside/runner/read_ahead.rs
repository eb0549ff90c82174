//! Reading ahead: while a full batch is processed and committed, the next
//! batch is already being read (a pipelined catch-up or rebuild; a
//! projection's commit overlaps the next batch too, see `in_flight`).
//!
//! A catch-up spends each batch's time on a read, then on handling and
//! committing; the read of batch N + 1 needs nothing from batch N but the
//! position of its last event, so the two overlap. Only a full batch reads
//! ahead (a short one means the subscription is caught up, where reading
//! ahead would only double the reads), and at most one batch is read
//! ahead, so a runner holds two batches at most. The batch read ahead is
//! used only if the one before it was processed to its end (not cancelled
//! or failed part way); a read ahead that fails is dropped, and the next
//! read is made the usual way, which waits out outages and stops at
//! corrupt rows as it always does.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::{Exit, Read, Runner};
use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::readside::subscriber::SubscriberKind;

impl Runner<'_> {
    /// Handles or projects `batch` (non-empty) and commits it as its kind
    /// does; when the batch came full (`behind`), reads the next batch
    /// meanwhile and returns it (with the limit it was read with and the
    /// store's wake-up mark from before it) if it follows on from where
    /// processing ended.
    pub(super) async fn process(&mut self, batch: &[RecordedEvent]) -> Result<Option<Read>, Exit> {
        let shared = self.shared;
        let slot = self.slot;
        let limit = self.read_limit();
        let full = self.behind;
        let Some(last) = batch.last().map(|event| event.global_position) else {
            return Ok(None);
        };
        let process = async {
            match &slot.subscriber.kind {
                SubscriberKind::Handler { routes, replay } => self.handle_batch(batch, routes, *replay).await,
                SubscriberKind::Projection { routes } => self.project_batch(batch, routes).await,
                SubscriberKind::Table(table) => self.table_batch(batch, table.as_ref()).await,
            }
        };
        if !full {
            process.await?;
            // Caught up: no next batch to overlap a projection's commit with.
            self.settle().await?;
            return Ok(None);
        }
        // On a task of its own, so the read's rows are taken off the
        // socket and decoded on another worker while this one projects.
        let events = Arc::clone(&shared.events);
        let mark = events.wakeup_mark();
        let ahead = ReadAhead(tokio::spawn(async move { events.read_all(last, limit).await }));
        process.await?;
        match ahead.finish().await {
            Some(batch) if !batch.is_empty() && self.position == last => {
                Ok(Some(Read { batch, limit, mark }))
            }
            _ => Ok(None),
        }
    }
}

/// A read ahead on its own task; dropped unfinished (the batch before it
/// failed or the runner stopped), it cancels the read.
struct ReadAhead(JoinHandle<Result<Vec<RecordedEvent>, StoreError>>);

impl ReadAhead {
    /// The events read; `None` when the read failed or panicked (the next
    /// read is made the usual way).
    async fn finish(mut self) -> Option<Vec<RecordedEvent>> {
        (&mut self.0).await.ok().and_then(Result::ok)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.0.abort();
    }
}
