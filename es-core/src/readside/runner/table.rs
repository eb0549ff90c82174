//! Running a table projection: a batch in one transaction of the store
//! (the projection's SQL, its flush, the fenced checkpoint), narrowed to
//! the events before a failing one and then to the failing event alone.

use super::{describe, Exit, Runner};
use crate::envelope::RecordedEvent;
use crate::error::{Failure, FailureKind, ProjectionError};
use crate::readside::table::{TableBatch, TableFailure, TableRunner};
use crate::store::{Checkpoint, Fence, ProjectionTransactions, UnitOfWork};
use crate::version::GlobalPosition;

/// How much of the batch the next transaction takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Span {
    /// Everything left.
    Rest,
    /// The events before this index of the batch (they went through before
    /// a later event failed).
    Before(usize),
    /// Up to and including the next consumed event (to find, or retry, a
    /// failing one).
    NextConsumed,
}

impl<'a> Runner<'a> {
    fn transactions(&self) -> Result<&'a dyn ProjectionTransactions, Exit> {
        let shared = self.shared;
        shared.projections.transactions().ok_or_else(|| {
            // The build refuses a table projection on such a store.
            Exit::Failed(Failure {
                kind: FailureKind::Commit,
                error: "the projection store lends no transactions for table projections".into(),
                position: self.position,
                event_id: None,
                event_type: None,
                attempts: 0,
            })
        })
    }

    fn fenced_work(&self, checkpoint: Checkpoint) -> UnitOfWork {
        let lease = &self.keeper.lease;
        let mut work = UnitOfWork::new();
        work.fence(Fence::new(lease.name.clone(), lease.token)).checkpoint(checkpoint);
        work
    }

    pub(super) async fn table_batch(
        &mut self,
        batch: &[RecordedEvent],
        table: &dyn TableRunner,
    ) -> Result<(), Exit> {
        let store = self.transactions()?;
        let mut start = 0;
        let mut span = Span::Rest;
        let mut attempt = 0;
        while start < batch.len() && !self.cancelled() {
            let rest = &batch[start..];
            let Some(first) = rest.iter().position(|event| table.routes_event(event)) else {
                // Nothing left that it consumes.
                self.skipped += rest.len();
                self.passed(rest);
                if self.skipped >= self.shared.config.checkpoint_every {
                    self.commit(UnitOfWork::new(), self.position).await?;
                }
                return Ok(());
            };
            let end = match span {
                Span::Rest => batch.len(),
                Span::Before(end) => end,
                Span::NextConsumed => start + first + 1,
            };
            let segment = &batch[start..end];
            let Some(last) = segment.last().map(|event| event.global_position) else { break };
            self.check_lease_only().await?;
            let (slot, shared) = (self.slot, self.shared);
            let run = table.run(
                store,
                TableBatch {
                    name: &slot.name,
                    events: segment,
                    replay_until: self.replay_until,
                    // Refused if an earlier commit of these events
                    // landed after all (see `landed` below).
                    work: {
                        let mut work = self.fenced_work(self.checkpoint_at(last));
                        work.after(self.committed);
                        work
                    },
                    state: shared.state_for(slot),
                },
            );
            let outcome = self.keeper.renewing_during(shared.leases.as_ref(), run).await;
            let committed = match outcome {
                Ok(()) => true,
                // Waited out (then tried again) unless it landed after all.
                Err(TableFailure::Store(error)) => self.store_failed_but_landed(error, last).await?,
                Err(TableFailure::Event(index, error)) => {
                    if segment[..index].iter().any(|event| table.routes_event(event)) {
                        // Commit what went through before the failing event.
                        span = Span::Before(start + index);
                    } else {
                        self.after_failure(&segment[index], &mut attempt, error).await?;
                        span = Span::NextConsumed;
                    }
                    false
                }
                Err(TableFailure::Flush(error)) => {
                    // With one consumed event the flush failed on it; with
                    // more, find the culprit one event at a time.
                    if segment.iter().filter(|event| table.routes_event(event)).count() <= 1 {
                        self.after_failure(&rest[first], &mut attempt, error).await?;
                    }
                    span = Span::NextConsumed;
                    false
                }
            };
            if committed {
                self.stored(last);
                self.passed(segment);
                start = end;
                attempt = 0;
                span = Span::Rest;
            }
        }
        Ok(())
    }

    /// Starts a table projection over: its `reset` runs in the transaction
    /// that sets the checkpoint back to the start (marking history up to
    /// `replay_until` as replayed), fenced with the lease.
    pub(super) async fn reset_tables(&mut self, table: &dyn TableRunner) -> Result<(), Exit> {
        let store = self.transactions()?;
        let mut attempt = 0;
        loop {
            self.check_lease_only().await?;
            let outcome = table
                .reset(
                    store,
                    TableBatch {
                        name: &self.slot.name,
                        events: &[],
                        replay_until: self.replay_until,
                        work: self.fenced_work(self.checkpoint_at(GlobalPosition::START)),
                        state: self.shared.state_for(self.slot),
                    },
                )
                .await;
            let error = match outcome {
                Ok(()) => {
                    self.stored(GlobalPosition::START);
                    return Ok(());
                }
                Err(TableFailure::Store(error)) => {
                    self.store_refused(error, GlobalPosition::START).await?;
                    continue;
                }
                Err(TableFailure::Event(_, error) | TableFailure::Flush(error)) => error,
            };
            attempt += 1;
            let retry = self.slot.subscriber.retry;
            if attempt >= retry.max_attempts {
                return Err(Exit::Failed(Failure {
                    kind: FailureKind::Reset,
                    error: format!("resetting the tables failed: {}", describe(&error)),
                    position: GlobalPosition::START,
                    event_id: None,
                    event_type: None,
                    attempts: attempt,
                }));
            }
            tracing::warn!(subscription = %self.slot.name, attempt, error = %describe(&error), "resetting the tables failed; retrying");
            self.pause(retry.backoff(attempt)).await?;
        }
    }

    /// The store refused a table projection's transaction: a lost lease
    /// ends the run, an outage is waited out (the caller tries again), any
    /// other refusal stops the subscription.
    async fn store_refused(&mut self, error: ProjectionError, at: GlobalPosition) -> Result<(), Exit> {
        match error {
            ProjectionError::Fenced { lease, token, .. } => {
                tracing::warn!(subscription = %self.slot.name, %lease, token, "transaction refused: the lease is no longer held with this token");
                Err(Exit::LeaseLost)
            }
            error @ ProjectionError::Backend(_) => {
                self.count_panic(&error, at)?;
                let pause = self.store_failed("committing the tables", &error);
                self.pause(pause).await
            }
            error => Err(Exit::Failed(Failure {
                kind: FailureKind::Commit,
                error: format!("committing the tables failed: {}", describe(&error)),
                position: at,
                event_id: None,
                event_type: None,
                attempts: 1,
            })),
        }
    }

    /// After the store failed the transaction of the batch ending at
    /// `last`: whether that batch's commit landed all the same, which the
    /// stored checkpoint tells (under the lease only this runner moves it).
    /// A commit whose reply was lost, or whose adapter panicked after it,
    /// may have landed, and a batch of incremental SQL must not run twice;
    /// a store that checks [`UnitOfWork::after`] refuses the next try with
    /// `CheckpointMoved` if it landed only meanwhile. Otherwise the
    /// failure is waited out or stops the subscription, as
    /// [`store_refused`](Self::store_refused) says.
    async fn store_failed_but_landed(
        &mut self,
        error: ProjectionError,
        last: GlobalPosition,
    ) -> Result<bool, Exit> {
        let projections = self.shared.projections.as_ref();
        let name = &*self.slot.name;
        let landed =
            |stored: Option<Checkpoint>| stored.is_some_and(|checkpoint| checkpoint.position >= last);
        if matches!(error, ProjectionError::CheckpointMoved { .. })
            && landed(self.store_read("reading the checkpoint", move || projections.checkpoint(name)).await?)
        {
            return Ok(true);
        }
        self.store_refused(error, last).await?;
        Ok(landed(self.store_read("reading the checkpoint", move || projections.checkpoint(name)).await?))
    }

    /// Every event of `events` is handled or filtered out.
    fn passed(&mut self, events: &[RecordedEvent]) {
        let Some(last) = events.last() else { return };
        for (i, event) in events.iter().enumerate() {
            self.slot.handled(event, events.get(i + 1));
        }
        self.position = last.global_position;
        self.slot.set_reached(self.position);
    }
}
