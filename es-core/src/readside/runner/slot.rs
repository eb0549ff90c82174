//! What the read side and its subscription tasks share: the stores and
//! settings of one read side, and per subscription its slot (progress,
//! running task, exit signal).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Exit;
use crate::envelope::{RecordedEvent, Timestamp};
use crate::readside::config::ReadSideConfig;
use crate::readside::state::{StateMap, SubscriberState};
use crate::readside::status::{Backlog, SubscriptionState};
use crate::readside::subscriber::Subscriber;
use crate::runtime::es::Es;
use crate::runtime::WeakEs;
use crate::store::{EventStore, Lease, LeaseStore, ProjectionStore};
use crate::version::GlobalPosition;

/// What every subscription task of one read side shares.
pub(crate) struct Shared {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) projections: Arc<dyn ProjectionStore>,
    pub(crate) leases: Arc<dyn LeaseStore>,
    pub(crate) owner: String,
    pub(crate) config: ReadSideConfig,
    pub(crate) dispatcher: RwLock<Option<Dispatcher>>,
    /// The values the application gave its subscribers.
    pub(crate) state: Arc<StateMap>,
    /// Where a test kit records the commands handlers dispatch.
    pub(crate) dispatch_log: Option<crate::testkit::DispatchLog>,
}

/// The application a read side's handlers dispatch commands to.
#[derive(Clone)]
pub(crate) enum Dispatcher {
    /// Set by the user: kept alive by the read side.
    Strong(Es),
    /// The `Es` that owns the read side: not kept alive by it.
    Weak(WeakEs),
}

impl Shared {
    /// What the subscriber of `slot` may read of the state.
    pub(super) fn state_for(&self, slot: &Slot) -> SubscriberState {
        SubscriberState::new(Arc::clone(&self.state), Arc::clone(&slot.subscriber.uses))
    }

    /// The application handlers dispatch to (`Ok(None)`: none was set);
    /// `Err(Exit::Cancelled)` once the `Es` that owns this read side is
    /// gone: a handler subscription stops with it rather than run on
    /// without a dispatcher.
    pub(super) fn dispatcher(&self) -> Result<Option<Es>, Exit> {
        let dispatcher = match self.dispatcher.read() {
            Ok(dispatcher) => dispatcher.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        match dispatcher {
            None => Ok(None),
            Some(Dispatcher::Strong(es)) => Ok(Some(es)),
            Some(Dispatcher::Weak(es)) => es.upgrade().map(Some).ok_or(Exit::Cancelled),
        }
    }
}

/// What a subscription has reached, published to status readers and
/// waiters.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub(crate) state: SubscriptionState,
    /// Every event up to here is handled and its effects committed.
    pub(crate) reached: GlobalPosition,
    /// The checkpoint last committed.
    pub(crate) checkpoint: Option<GlobalPosition>,
    /// A rebuild was asked for and has not reset the store yet: the stored
    /// checkpoint is stale.
    pub(crate) rebuilding: bool,
    /// The transaction keeping committed events hidden past the warning
    /// threshold, as the store describes it.
    pub(crate) held_back_by: Option<String>,
    /// Since when that transaction has hidden committed events.
    pub(crate) hidden_since: Option<Instant>,
    /// Events read and not handled yet.
    pub(crate) backlog: Backlog,
    /// When the oldest of them was recorded.
    pub(crate) oldest_pending: Option<Timestamp>,
}

/// One named subscription of a read side, running or not.
pub(crate) struct Slot {
    pub(crate) name: Arc<str>,
    pub(crate) subscriber: Arc<Subscriber>,
    /// What it reached, its state, backlog and checkpoint. Receivers (the
    /// callers waiting in `wait_for` and `Es::execute`'s strong
    /// consistency) are woken only when what they wait on changes: the
    /// position reached, the state, a rebuild starting. The backlog, the
    /// checkpoint and what holds it back are updated in place for status
    /// readers without waking them, so a busy subscription does not wake
    /// every waiting caller several times per batch.
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) task: Mutex<Option<Task>>,
    /// Ends when the most recently spawned task has exited (also by
    /// abort); the next task waits for it, since a stop may still be
    /// waiting for its task when another start spawns the next one.
    pub(crate) exit: Mutex<Option<watch::Receiver<()>>>,
    /// The lease its task holds, if any: released on its behalf when the
    /// read side is dropped without a shutdown.
    held: Mutex<Option<Lease>>,
}

/// A running subscription task and the switch that stops it.
pub(crate) struct Task {
    pub(crate) cancel: watch::Sender<bool>,
    pub(crate) join: JoinHandle<()>,
}

impl Slot {
    pub(crate) fn new(name: String, subscriber: Arc<Subscriber>) -> Self {
        let (progress, _) = watch::channel(Progress {
            state: SubscriptionState::Stopped,
            reached: GlobalPosition::START,
            checkpoint: None,
            rebuilding: false,
            held_back_by: None,
            hidden_since: None,
            backlog: Backlog::Unknown,
            oldest_pending: None,
        });
        Self {
            name: name.into(),
            subscriber,
            progress,
            task: Mutex::new(None),
            exit: Mutex::new(None),
            held: Mutex::new(None),
        }
    }

    pub(crate) fn set_state(&self, state: SubscriptionState) {
        self.progress.send_if_modified(|p| {
            if matches!(state, SubscriptionState::Stopped | SubscriptionState::Standby) {
                // Not reading here any more: nothing known about what waits.
                p.backlog = Backlog::Unknown;
                p.oldest_pending = None;
            }
            let changed = p.state != state;
            p.state = state;
            changed
        });
    }

    /// Marks the start of a task: a rebuild resets the progress at once,
    /// so nobody waiting sees the old position as reached.
    pub(crate) fn starting(&self, start: Start) {
        self.progress.send_modify(|p| {
            p.state = SubscriptionState::Standby;
            p.rebuilding = start == Start::Rebuild;
            if start == Start::Rebuild {
                p.reached = GlobalPosition::START;
                p.checkpoint = None;
            }
        });
    }

    pub(super) fn set_reached(&self, reached: GlobalPosition) {
        self.progress.send_if_modified(|p| {
            let changed = p.reached != reached;
            p.reached = reached;
            changed
        });
    }

    /// A read of the global stream returned `batch` (`full`: as many events
    /// as asked for, so more may wait behind it).
    pub(super) fn read(&self, batch: &[RecordedEvent], full: bool) {
        let count = batch.len() as u64;
        self.progress.send_if_modified(|p| {
            p.backlog = if full { Backlog::AtLeast(count) } else { Backlog::Exactly(count) };
            p.oldest_pending = batch.first().map(|e| e.recorded_at);
            false
        });
    }

    /// Event `done` of a batch is handled (or filtered out) and `next` is
    /// the event after it in the batch, if any. Moves the backlog only (a
    /// projection's position moves when its batch commits); status readers
    /// see it, waiters are not woken for it.
    pub(super) fn handled(&self, done: &RecordedEvent, next: Option<&RecordedEvent>) {
        self.progress.send_if_modified(|p| {
            p.backlog = match p.backlog {
                Backlog::Exactly(n) => Backlog::Exactly(n.saturating_sub(1)),
                Backlog::AtLeast(n) => Backlog::AtLeast(n.saturating_sub(1)),
                Backlog::Unknown => Backlog::Unknown,
            };
            // At the end of a full batch the next event is not read yet:
            // the one just handled bounds how old it is.
            p.oldest_pending = match (next, p.backlog) {
                (Some(next), _) => Some(next.recorded_at),
                (None, Backlog::AtLeast(_)) => Some(done.recorded_at),
                (None, _) => None,
            };
            false
        });
    }

    pub(super) fn set_held_back_by(&self, blocker: Option<(String, Duration)>) {
        self.progress.send_if_modified(|p| {
            let description = blocker.as_ref().map(|(description, _)| description.clone());
            p.hidden_since = blocker.map(|(_, hidden_for)| {
                let now = Instant::now();
                now.checked_sub(hidden_for).unwrap_or(now)
            });
            p.held_back_by = description;
            false
        });
    }

    pub(super) fn set_checkpoint(&self, checkpoint: Option<GlobalPosition>) {
        self.progress.send_if_modified(|p| {
            p.checkpoint = checkpoint;
            false
        });
    }

    /// Records the exit signal of a newly spawned task; returns the one of
    /// the task before it.
    pub(crate) fn replace_exit(&self, exit: watch::Receiver<()>) -> Option<watch::Receiver<()>> {
        match self.exit.lock() {
            Ok(mut last) => last.replace(exit),
            Err(poisoned) => poisoned.into_inner().replace(exit),
        }
    }

    /// Records the lease its task holds (`None`: none any more).
    pub(super) fn hold(&self, lease: Option<Lease>) {
        match self.held.lock() {
            Ok(mut held) => *held = lease,
            Err(poisoned) => *poisoned.into_inner() = lease,
        }
    }

    /// The lease its task held, taken.
    pub(crate) fn take_held(&self) -> Option<Lease> {
        match self.held.lock() {
            Ok(mut held) => held.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    pub(crate) fn take_task(&self) -> Option<Task> {
        match self.task.lock() {
            Ok(mut task) => task.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

/// How a subscription task starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// From the stored checkpoint.
    Resume,
    /// Reset the namespace (projection) or the checkpoint (handler), then
    /// replay from the start.
    Rebuild,
    /// From the stored checkpoint, passing over the corrupt row at this
    /// position when the read meets it (an operator's
    /// [`ReadSide::skip`](crate::ReadSide::skip)).
    Skip(GlobalPosition),
}
