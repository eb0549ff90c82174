//! Reading the global stream under a subscription, and stopping at a
//! stored row that is not an event (a poison row).
//!
//! The store returns the events before such a row and fails the read that
//! starts at it with [`StoreError::Corrupt`], naming the row's stream,
//! version and position. Everything before the row is delivered and
//! checkpointed; the subscription then stops `Failed` at the row, loudly,
//! until an operator fixes the row and restarts it, or skips the row
//! deliberately ([`ReadSide::skip`](crate::ReadSide::skip)), which is
//! logged. Retrying would not help and moving on silently would lose an
//! event, so neither happens by itself.

use super::{Exit, Runner};
use crate::envelope::RecordedEvent;
use crate::error::{Failure, FailureKind, StoreError};
use crate::version::GlobalPosition;

impl Runner<'_> {
    /// The next batch after `after`, waiting out store outages; an empty
    /// batch when caught up. `Err(Failed)` at a corrupt row.
    pub(super) async fn read_events(
        &mut self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Exit> {
        let mut after = after;
        loop {
            match self.shared.events.read_all(after, limit).await {
                Ok(batch) => {
                    self.store_recovered();
                    return Ok(batch);
                }
                Err(StoreError::Corrupt { position: Some(row), location, detail }) => {
                    self.store_recovered();
                    let error = format!("stored event at {location} is corrupt: {detail}");
                    if self.skip_row != Some(row) {
                        return Err(self.stop_at_corrupt_row(row, error).await);
                    }
                    self.skip_row = None;
                    tracing::warn!(subscription = %self.slot.name, position = %row, %error, "skipping the corrupt row, as the operator asked");
                    // Passed over like a filtered-out event: the checkpoint
                    // moves past it with the next commit. What comes before
                    // it is stored first, so that reaching the row means
                    // everything before it is stored too.
                    self.settle().await?;
                    self.position = row;
                    self.skipped += 1;
                    self.slot.set_reached(row);
                    after = row;
                }
                Err(error) => {
                    let pause = self.store_failed("reading events", &error);
                    self.pause(pause).await?;
                }
            }
        }
    }

    /// Commits how far the subscription got before the row, and the
    /// failure to stop with.
    async fn stop_at_corrupt_row(&mut self, row: GlobalPosition, error: String) -> Exit {
        if let Err(exit @ Exit::LeaseLost) = self.flush().await {
            return exit;
        }
        Exit::Failed(Failure {
            kind: FailureKind::CorruptRow,
            error,
            position: row,
            event_id: None,
            event_type: None,
            attempts: 1,
        })
    }
}
