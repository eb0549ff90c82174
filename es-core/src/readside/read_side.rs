//! [`ReadSide`]: the handle that runs, watches and controls subscriptions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::builder::ReadSideBuilder;
use super::runner::{self, Dispatcher, Progress, Shared, Slot, Start, Task};
use super::status::{SubscriptionState, SubscriptionStatus};
use crate::envelope::Timestamp;
use crate::error::{FailureKind, ReadSideError};
use crate::runtime::es::Es;
use crate::store::LeaseStore;
use crate::version::GlobalPosition;

/// The subscriptions of one read side, and the lease store their leases
/// are in.
///
/// Dropping the last handle without [`ReadSide::shutdown`] stops their
/// tasks as `shutdown` would and releases the leases they held, best effort
/// and off the drop path: on a task spawned on the current tokio runtime
/// (outside one, the tasks are aborted and the leases expire). A task that
/// does not stop within 10 s is aborted; its next holder redoes its work
/// from the checkpoint, and a commit it still had in flight is fenced out
/// once the lease has passed on. Another node then takes over within its
/// `lease_retry`, not after the lease's TTL; a crash still leaves the
/// leases to expire.
pub(super) struct Slots(pub(super) BTreeMap<String, Arc<Slot>>, pub(super) Arc<dyn LeaseStore>);

impl Drop for Slots {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to finish on: stop the tasks where they are.
            for slot in self.0.values() {
                if let Some(task) = slot.take_task() {
                    task.join.abort();
                }
            }
            if self.0.values().any(|slot| slot.take_held().is_some()) {
                tracing::warn!("read side dropped outside a tokio runtime; its leases will expire");
            }
            return;
        };
        // Ask each task to stop as `shutdown` does: it finishes the event
        // at hand and ends its unit of work (an abort in the middle of a
        // store transaction could leave the transaction open on a pooled
        // connection). One that does not stop in time is aborted.
        let stopping: Vec<_> = self
            .0
            .values()
            .filter_map(|slot| slot.take_task().map(|task| (Arc::clone(slot), task)))
            .collect();
        let leases = Arc::clone(&self.1);
        let slots: Vec<Arc<Slot>> = self.0.values().cloned().collect();
        runtime.spawn(async move {
            for (slot, task) in stopping {
                task.cancel.send_replace(true);
                let mut join = task.join;
                if tokio::time::timeout(DROP_STOP_WITHIN, &mut join).await.is_err() {
                    tracing::warn!(subscription = %slot.name, "a dropped read side's task did not stop in time; aborted");
                    join.abort();
                }
            }
            for lease in slots.iter().filter_map(|slot| slot.take_held()) {
                match leases.release(&lease).await {
                    Ok(()) => tracing::info!(lease = %lease.name, "read side dropped without shutdown; lease released"),
                    Err(error) => {
                        tracing::warn!(lease = %lease.name, error = %runner::describe(&error), "releasing the lease of a dropped read side failed; it will expire")
                    }
                }
            }
        });
    }
}

/// How long a dropped read side's tasks get to stop cleanly before they are
/// aborted.
const DROP_STOP_WITHIN: Duration = Duration::from_secs(10);

/// Runs the read side: one subscription task per selected handler or
/// projection, each holding its lease while it processes. Cheap to clone;
/// clones control the same tasks.
///
/// ```
/// use std::time::Duration;
/// use es_core::ReadSide;
/// use es_core::readside::Registry;
/// # use es_core::{HandlerError, Project, ProjectionTx, Recorded};
/// # use es_core::readside::Subscriber;
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// # struct Pinged;
/// # impl es_core::Event for Pinged { const TYPE: &'static str = "Pinged"; }
/// # struct Pings;
/// # impl Project<Pinged> for Pings {
/// #     async fn project(&self, _: &Recorded<Pinged>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
/// #         let n: u64 = tx.get("count").await?.unwrap_or(0);
/// #         Ok(tx.put("count", &(n + 1))?)
/// #     }
/// # }
/// # async fn demo(events: impl es_core::store::EventStore, documents: impl es_core::store::ProjectionStore) -> Result<(), Box<dyn std::error::Error>> {
/// let mut registry = Registry::new();
/// registry.register("pings", Subscriber::projection(Pings).on::<Pinged>().build())?;
/// let read_side = ReadSide::builder()
///     .event_store(events)
///     .projection_store(documents)
///     .registry(registry)
///     .start()?;
/// // ... append events, then read your own writes:
/// # let position = es_core::GlobalPosition(1);
/// read_side.wait_for("pings", position, Duration::from_secs(5)).await?;
/// read_side.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReadSide {
    pub(super) shared: Arc<Shared>,
    pub(super) slots: Arc<Slots>,
}

impl std::fmt::Debug for ReadSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSide")
            .field("owner", &self.shared.owner)
            .field("subscriptions", &self.slots.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ReadSide {
    /// Starts building a read side.
    pub fn builder() -> ReadSideBuilder {
        ReadSideBuilder::default()
    }

    /// This node's name in leases.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// The names of the subscriptions, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.0.keys().map(String::as_str)
    }

    /// Sets (or, with `None`, clears) the application handlers dispatch
    /// commands to. The read side keeps `es` alive; for a read side that
    /// `es` itself owns ([`EsBuilder::read_side`](crate::runtime::EsBuilder::read_side))
    /// that makes a cycle, and dropping the `Es` no longer stops it: the
    /// builder already set the dispatcher there.
    pub fn set_dispatcher(&self, es: Option<Es>) {
        let es = es.map(Dispatcher::Strong);
        match self.shared.dispatcher.write() {
            Ok(mut slot) => *slot = es,
            Err(poisoned) => *poisoned.into_inner() = es,
        }
    }

    pub(super) fn slot(&self, name: &str) -> Result<&Arc<Slot>, ReadSideError> {
        self.slots.0.get(name).ok_or_else(|| ReadSideError::UnknownSubscription { name: name.to_owned() })
    }

    /// Starts every subscription that is not running (stopped, failed or
    /// never started).
    ///
    /// # Errors
    /// [`ReadSideError::NoRuntime`] outside a tokio runtime.
    pub fn start(&self) -> Result<(), ReadSideError> {
        for slot in self.slots.0.values() {
            self.spawn(slot, Start::Resume)?;
        }
        Ok(())
    }

    fn spawn(&self, slot: &Arc<Slot>, start: Start) -> Result<(), ReadSideError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ReadSideError::NoRuntime)?;
        let mut task = match slot.task.lock() {
            Ok(task) => task,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(running) = task.as_ref().filter(|t| !t.join.is_finished()) {
            if start == Start::Resume {
                return Ok(());
            }
            // A rebuild is never dropped for a task started meanwhile (a
            // start racing with the rebuild's stop): that task is stopped,
            // and the rebuilding one waits for it to exit.
            running.cancel.send_replace(true);
        }
        slot.starting(start);
        let (cancel, cancelled) = watch::channel(false);
        let (exit, exited) = watch::channel(());
        let previous = slot.replace_exit(exited);
        let run = runner::run(Arc::clone(&self.shared), Arc::clone(slot), start, cancelled, exit, previous);
        let join = runtime.spawn(run);
        *task = Some(Task { cancel, join });
        Ok(())
    }

    async fn stop_slot(slot: &Slot) {
        let Some(task) = slot.take_task() else { return };
        task.cancel.send_replace(true);
        if let Err(error) = task.join.await {
            tracing::error!(subscription = %slot.name, %error, "subscription task ended abnormally");
            slot.set_state(SubscriptionState::Stopped);
        }
    }

    /// Stops one subscription on this node: it finishes the event at hand
    /// (a handler that never returns keeps this waiting), commits how far
    /// it got and releases its lease (another node may take over).
    ///
    /// # Errors
    /// [`ReadSideError::UnknownSubscription`].
    pub async fn stop(&self, name: &str) -> Result<(), ReadSideError> {
        Self::stop_slot(self.slot(name)?).await;
        Ok(())
    }

    /// Stops one subscription and starts it again from its stored
    /// checkpoint (after a failure: retries the failing event).
    ///
    /// # Errors
    /// [`ReadSideError::UnknownSubscription`]; [`ReadSideError::NoRuntime`].
    pub async fn restart(&self, name: &str) -> Result<(), ReadSideError> {
        let slot = self.slot(name)?;
        Self::stop_slot(slot).await;
        self.spawn(slot, Start::Resume)
    }

    /// Skips the corrupt row a subscription stopped at, deliberately: an
    /// operator's decision that the row's event is lost to this
    /// subscription, logged as a warning with the row's position. The
    /// subscription starts again from its checkpoint and passes over that
    /// row (and only that one) when it meets it. Returns the row's
    /// position. The other way out is to fix the row and
    /// [`restart`](ReadSide::restart).
    ///
    /// # Errors
    /// [`ReadSideError::NothingToSkip`] unless the subscription has stopped
    /// at a corrupt row ([`FailureKind::CorruptRow`]);
    /// [`ReadSideError::UnknownSubscription`]; [`ReadSideError::NoRuntime`].
    pub async fn skip(&self, name: &str) -> Result<GlobalPosition, ReadSideError> {
        let slot = self.slot(name)?;
        let row = match &slot.progress.borrow().state {
            SubscriptionState::Failed(failure) if failure.kind == FailureKind::CorruptRow => failure.position,
            _ => return Err(ReadSideError::NothingToSkip { name: name.to_owned() }),
        };
        tracing::warn!(subscription = %slot.name, position = %row, "an operator skips the corrupt row this subscription stopped at");
        Self::stop_slot(slot).await;
        self.spawn(slot, Start::Skip(row))?;
        Ok(row)
    }

    /// Rebuilds a projection: stops it, deletes its documents and
    /// checkpoint ([`ProjectionStore::reset`](crate::store::ProjectionStore::reset)) once it holds the lease, and
    /// replays every event from the start (flagged as replay), then goes on
    /// live. For a handler, its checkpoint goes back to the start and every
    /// event up to the current head is delivered again, flagged as replay:
    /// a handler with [`Replay::Skip`](crate::readside::Replay::Skip) is not
    /// run for them (its checkpoint just moves). The end of the replay is
    /// stored with the checkpoint, so a crash mid-replay does not turn
    /// history into news.
    ///
    /// # Errors
    /// [`ReadSideError::UnknownSubscription`]; [`ReadSideError::NoRuntime`].
    pub async fn rebuild(&self, name: &str) -> Result<(), ReadSideError> {
        let slot = self.slot(name)?;
        Self::stop_slot(slot).await;
        self.spawn(slot, Start::Rebuild)
    }

    /// Stops every subscription cleanly (releasing leases) and drops the
    /// dispatcher. Dropping the last handle instead does the same off the
    /// drop path, best effort (on the current tokio runtime), so another
    /// node takes over within seconds; only a crash leaves the leases to
    /// expire.
    pub async fn shutdown(&self) {
        for slot in self.slots.0.values() {
            Self::stop_slot(slot).await;
        }
        self.set_dispatcher(None);
    }

    fn status_of(slot: &Slot) -> SubscriptionStatus {
        let progress: Progress = slot.progress.borrow().clone();
        let now = Timestamp::now().as_micros();
        let behind_for = progress.oldest_pending.map_or(Duration::ZERO, |oldest| {
            Duration::from_micros(u64::try_from(now.saturating_sub(oldest.as_micros())).unwrap_or(0))
        });
        SubscriptionStatus {
            name: slot.name.to_string(),
            kind: slot.subscriber.kind(),
            consistency: slot.subscriber.consistency,
            state: progress.state,
            position: progress.reached,
            checkpoint: progress.checkpoint,
            behind: progress.backlog,
            behind_for,
            hidden_for: progress.hidden_since.map(|since| since.elapsed()),
            held_back_by: progress.held_back_by,
        }
    }

    /// The status of one subscription, from memory: it never waits on a
    /// store, also not while one is down.
    ///
    /// # Errors
    /// [`ReadSideError::UnknownSubscription`].
    pub fn status(&self, name: &str) -> Result<SubscriptionStatus, ReadSideError> {
        Ok(Self::status_of(self.slot(name)?))
    }

    /// The status of every subscription, ordered by name, from memory.
    pub fn statuses(&self) -> Vec<SubscriptionStatus> {
        self.slots.0.values().map(|slot| Self::status_of(slot)).collect()
    }

    /// The head of the global stream, read from the event store (unlike
    /// [`status`](ReadSide::status)): the position to
    /// [`wait_for`](ReadSide::wait_for) to see everything stored so far.
    ///
    /// # Errors
    /// [`ReadSideError::Store`] if the event store fails.
    pub async fn head_position(&self) -> Result<GlobalPosition, ReadSideError> {
        Ok(self.shared.events.head_position().await?)
    }
}
