//! The subscription task: lease, catch-up, live, checkpoints, retries.
//!
//! One task runs one subscription. It holds the subscription's lease while
//! it processes; it reads the global stream after its position with
//! `EventStore::read_all` and, when there is nothing to read, waits with
//! `EventStore::wait_for_events`. Catch-up and live are the same loop, so
//! there is no hand-over where an event could slip through. The position
//! only ever moves to the position of an event that was read, never to a
//! computed `last + 1`: positions may have holes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::cache::SharedCache;
use super::handler::{HandlerCtx, HandlerError, HandlerFuture, HandlerRoute, Replay};

use super::projection::{ProjectionRoute, ProjectionTx};
use super::read_side::ReadSideConfig;
use super::status::SubscriptionState;
use super::subscriber::{Subscriber, SubscriberKind};
use crate::clock::deadline;
use crate::envelope::RecordedEvent;
use crate::error::Failure;
use crate::error::ProjectionError;
use crate::runtime::es::Es;
use crate::runtime::WeakEs;
use crate::store::{Checkpoint, EventStore, Fence, ProjectionStore, UnitOfWork};
use crate::store::{Lease, LeaseStore};
use crate::version::GlobalPosition;

/// What every subscription task of one read side shares.
pub(crate) struct Shared {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) projections: Arc<dyn ProjectionStore>,
    pub(crate) leases: Arc<dyn LeaseStore>,
    pub(crate) owner: String,
    pub(crate) config: ReadSideConfig,
    pub(crate) dispatcher: RwLock<Option<Dispatcher>>,
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
    /// The application handlers dispatch to (`Ok(None)`: none was set);
    /// `Err(Exit::Cancelled)` once the `Es` that owns this read side is
    /// gone: a handler subscription stops with it rather than run on
    /// without a dispatcher.
    fn dispatcher(&self) -> Result<Option<Es>, Exit> {
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
}

/// One named subscription of a read side, running or not.
pub(crate) struct Slot {
    pub(crate) name: Arc<str>,
    pub(crate) subscriber: Arc<Subscriber>,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) task: Mutex<Option<Task>>,
    /// Ends when the most recently spawned task has exited (also by
    /// abort); the next task waits for it, since a stop may still be
    /// waiting for its task when another start spawns the next one.
    pub(crate) exit: Mutex<Option<watch::Receiver<()>>>,
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
        });
        Self { name: name.into(), subscriber, progress, task: Mutex::new(None), exit: Mutex::new(None) }
    }

    pub(crate) fn set_state(&self, state: SubscriptionState) {
        self.progress.send_if_modified(|p| {
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

    fn set_reached(&self, reached: GlobalPosition) {
        self.progress.send_if_modified(|p| {
            let changed = p.reached != reached;
            p.reached = reached;
            changed
        });
    }

    fn set_held_back_by(&self, blocker: Option<String>) {
        self.progress.send_if_modified(|p| {
            let changed = p.held_back_by != blocker;
            p.held_back_by = blocker;
            changed
        });
    }

    fn set_checkpoint(&self, checkpoint: Option<GlobalPosition>) {
        self.progress.send_modify(|p| p.checkpoint = checkpoint);
    }

    /// Records the exit signal of a newly spawned task; returns the one of
    /// the task before it.
    pub(crate) fn replace_exit(&self, exit: watch::Receiver<()>) -> Option<watch::Receiver<()>> {
        match self.exit.lock() {
            Ok(mut last) => last.replace(exit),
            Err(poisoned) => poisoned.into_inner().replace(exit),
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
}

/// Why a subscription stopped processing under its lease.
enum Exit {
    Cancelled,
    LeaseLost,
    Failed(Failure),
}

/// Runs one subscription until it is cancelled or fails, taking the lease
/// again whenever it is lost. Starts once `previous` (the task spawned
/// before it) has exited: a lease is re-entrant for its owner, so it alone
/// would not keep two tasks of one node apart. `_exit` is dropped when this
/// task ends, which tells the next one.
pub(crate) async fn run(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    mut start: Start,
    mut cancel: watch::Receiver<bool>,
    _exit: watch::Sender<()>,
    previous: Option<watch::Receiver<()>>,
) {
    if let Some(mut previous) = previous {
        loop {
            if *cancel.borrow() {
                slot.set_state(SubscriptionState::Stopped);
                return;
            }
            tokio::select! {
                exited = previous.changed() => if exited.is_err() { break },
                _ = cancel.changed() => {}
            }
        }
    }
    loop {
        slot.set_state(SubscriptionState::Standby);
        let Some((lease, asked)) = acquire(&shared, &slot, &mut cancel).await else {
            slot.set_state(SubscriptionState::Stopped);
            return;
        };
        tracing::debug!(subscription = %slot.name, owner = %shared.owner, token = lease.token, "lease acquired");
        let mut runner = Runner::new(&shared, &slot, &mut cancel, lease, asked);
        let exit = match runner.run(&mut start).await {
            Err(exit) => exit,
            Ok(never) => match never {},
        };
        // Not reading any more: what held it back is no longer its concern.
        slot.set_held_back_by(None);
        let final_state = match exit {
            Exit::LeaseLost => {
                tracing::warn!(subscription = %slot.name, "lease lost; waiting to take it again");
                continue;
            }
            Exit::Cancelled => {
                // A lost lease needs no release; stopping is all that is left.
                let _lost = runner.flush().await;
                SubscriptionState::Stopped
            }
            Exit::Failed(failure) => {
                tracing::error!(subscription = %slot.name, position = %failure.position, error = %failure.error, "subscription stopped on a failing event");
                SubscriptionState::Failed(failure)
            }
        };
        let lease = runner.keeper.lease;
        if let Err(error) = shared.leases.release(&lease).await {
            tracing::warn!(subscription = %slot.name, error = %describe(&error), "releasing the lease failed; it will expire");
        }
        slot.set_state(final_state);
        return;
    }
}

/// Waits until the lease is ours; `None` if cancelled first. Returns it with
/// the instant the granting request was sent: the store may have granted it
/// any time after that, so its TTL is counted from there.
async fn acquire(
    shared: &Shared,
    slot: &Slot,
    cancel: &mut watch::Receiver<bool>,
) -> Option<(Lease, Instant)> {
    loop {
        if *cancel.borrow() {
            return None;
        }
        let asked = Instant::now();
        match shared.leases.try_acquire(&slot.name, &shared.owner, shared.config.lease_ttl).await {
            Ok(Some(lease)) => return Some((lease, asked)),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(subscription = %slot.name, error = %describe(&error), "acquiring the lease failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(shared.config.lease_retry) => {}
            _ = cancel.changed() => return None,
        }
    }
}

/// Keeps a lease alive: renews it every third of its TTL.
struct LeaseKeeper {
    lease: Lease,
    ttl: Duration,
    next_renew: Instant,
    expires: Instant,
}

impl LeaseKeeper {
    /// `asked`: when the request that granted `lease` was sent.
    fn new(lease: Lease, ttl: Duration, asked: Instant) -> Self {
        Self { lease, ttl, next_renew: deadline(asked, ttl / 3), expires: deadline(asked, ttl) }
    }

    fn until_renew(&self) -> Duration {
        self.next_renew.saturating_duration_since(Instant::now())
    }

    /// Renews the lease if due. `Err(LeaseLost)` once it is gone.
    async fn ensure(&mut self, store: &dyn LeaseStore) -> Result<(), Exit> {
        let now = Instant::now();
        if now < self.next_renew {
            return Ok(());
        }
        match store.renew(&self.lease, self.ttl).await {
            Ok(true) => {
                self.expires = deadline(now, self.ttl);
                self.next_renew = deadline(now, self.ttl / 3);
                Ok(())
            }
            Ok(false) => Err(Exit::LeaseLost),
            Err(error) if deadline(now, self.ttl / 3) < self.expires => {
                tracing::warn!(lease = %self.lease.name, error = %describe(&error), "renewing the lease failed; retrying");
                self.next_renew = deadline(now, (self.ttl / 10).max(Duration::from_millis(1)));
                Ok(())
            }
            Err(error) => {
                tracing::warn!(lease = %self.lease.name, error = %describe(&error), "renewing the lease failed too long; giving it up");
                Err(Exit::LeaseLost)
            }
        }
    }
}

struct Runner<'a> {
    shared: &'a Shared,
    slot: &'a Slot,
    cancel: &'a mut watch::Receiver<bool>,
    keeper: LeaseKeeper,
    /// Every event up to here is handled or filtered out, and the effects of
    /// the handled ones are committed.
    position: GlobalPosition,
    /// The checkpoint last committed (or read at start).
    committed: GlobalPosition,
    /// Filtered-out events passed since the last commit.
    skipped: usize,
    /// Events up to here are replayed history.
    replay_until: GlobalPosition,
    /// When a caught-up subscription asks the store next what holds it back.
    next_blocker_check: Instant,
    /// When it last warned about a transaction holding it back.
    last_held_back_warning: Option<Instant>,
    /// A projection's documents as this run read or committed them.
    cache: SharedCache,
}

impl<'a> Runner<'a> {
    fn new(
        shared: &'a Shared,
        slot: &'a Slot,
        cancel: &'a mut watch::Receiver<bool>,
        lease: Lease,
        asked: Instant,
    ) -> Self {
        Self {
            shared,
            slot,
            cancel,
            keeper: LeaseKeeper::new(lease, shared.config.lease_ttl, asked),
            position: GlobalPosition::START,
            committed: GlobalPosition::START,
            skipped: 0,
            replay_until: GlobalPosition::START,
            next_blocker_check: Instant::now(),
            last_held_back_warning: None,
            cache: SharedCache::new(shared.config.document_cache_bytes),
        }
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Stops on cancellation, renews the lease when due.
    async fn check(&mut self) -> Result<(), Exit> {
        if self.cancelled() {
            return Err(Exit::Cancelled);
        }
        self.keeper.ensure(self.shared.leases.as_ref()).await
    }

    /// Sleeps for `pause`, renewing the lease meanwhile; stops early on
    /// cancellation.
    async fn pause(&mut self, pause: Duration) -> Result<(), Exit> {
        let until = deadline(Instant::now(), pause);
        loop {
            let step = until.saturating_duration_since(Instant::now()).min(self.keeper.until_renew());
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                _ = self.cancel.changed() => return Err(Exit::Cancelled),
            }
            self.check().await?;
            if Instant::now() >= until {
                return Ok(());
            }
        }
    }

    /// Runs a storage read until it succeeds: reads change nothing, so a
    /// store outage pauses the subscription instead of failing it.
    async fn store_read<T, E, F, Fut>(&mut self, what: &str, mut read: F) -> Result<T, Exit>
    where
        E: std::error::Error,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match read().await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    attempt += 1;
                    tracing::warn!(subscription = %self.slot.name, attempt, error = %describe(&error), "{what} failed; retrying");
                    self.pause(self.shared.config.store_retry.backoff(attempt)).await?;
                }
            }
        }
    }

    /// The checkpoint to store at `position`: with the end of the replay
    /// while the replay lasts.
    fn checkpoint_at(&self, position: GlobalPosition) -> Checkpoint {
        let replaying = self.replay_until > position;
        Checkpoint::at(position).replaying_until(replaying.then_some(self.replay_until))
    }

    /// Commits `work` with the checkpoint `checkpoint` under the lease,
    /// fenced with the lease's token, retrying per the subscriber's policy.
    /// A store that refuses the fence means the lease is lost:
    /// `Err(LeaseLost)`, with nothing stored or advanced.
    async fn commit(&mut self, mut work: UnitOfWork, checkpoint: GlobalPosition) -> Result<(), Exit> {
        let retry = self.slot.subscriber.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.check_lease_only().await?;
            let lease = &self.keeper.lease;
            work.fence(Fence::new(lease.name.clone(), lease.token));
            work.checkpoint(self.checkpoint_at(checkpoint));
            let outcome = self.shared.projections.commit(&self.slot.name, work.clone()).await;
            if outcome.is_err() {
                // It may or may not have been applied.
                self.cache.clear();
            }
            match outcome {
                Ok(()) => {
                    self.cache.committed(work.changes);
                    self.committed = checkpoint;
                    self.skipped = 0;
                    self.slot.set_checkpoint(Some(checkpoint));
                    return Ok(());
                }
                Err(ProjectionError::Fenced { lease, token, .. }) => {
                    tracing::warn!(subscription = %self.slot.name, %lease, token, "commit refused: the lease is no longer held with this token");
                    return Err(Exit::LeaseLost);
                }
                Err(error) if attempt < retry.max_attempts => {
                    tracing::warn!(subscription = %self.slot.name, attempt, error = %describe(&error), "commit failed; retrying");
                    self.pause(retry.backoff(attempt)).await?;
                }
                Err(error) => {
                    return Err(Exit::Failed(Failure {
                        error: format!("committing the checkpoint failed: {}", describe(&error)),
                        position: checkpoint,
                        event_id: None,
                        event_type: None,
                        attempts: attempt,
                    }));
                }
            }
        }
    }

    /// Renews the lease if due, without looking at cancellation (a commit
    /// of work already done goes ahead when stopping).
    async fn check_lease_only(&mut self) -> Result<(), Exit> {
        self.keeper.ensure(self.shared.leases.as_ref()).await
    }

    /// Commits the position reached if the stored checkpoint lags behind it
    /// (filtered-out events, or handled events before a stop). Best effort:
    /// used when stopping. `Err(LeaseLost)` if the lease turned out lost.
    async fn flush(&mut self) -> Result<(), Exit> {
        if self.position <= self.committed {
            return Ok(());
        }
        let position = self.position;
        match self.commit(UnitOfWork::new(), position).await {
            Err(Exit::LeaseLost) => Err(Exit::LeaseLost),
            // A failed flush only means the filtered events are read again.
            Err(Exit::Failed(failure)) => {
                tracing::warn!(subscription = %self.slot.name, error = %failure.error, "final checkpoint not stored");
                Ok(())
            }
            Err(Exit::Cancelled) | Ok(()) => Ok(()),
        }
    }

    async fn run(&mut self, start: &mut Start) -> Result<Infallible, Exit> {
        let shared = self.shared;
        let slot = self.slot;
        let namespace = &*slot.name;
        let projections: &dyn ProjectionStore = shared.projections.as_ref();
        if *start == Start::Rebuild {
            self.rebuild().await?;
            *start = Start::Resume;
        }
        let checkpoint =
            self.store_read("reading the checkpoint", move || projections.checkpoint(namespace)).await?;
        self.committed = checkpoint.map_or(GlobalPosition::START, |c| c.position);
        self.position = self.committed;
        if let Some(until) = checkpoint.and_then(|c| c.replay_until) {
            self.replay_until = until;
        }
        slot.progress.send_modify(|p| {
            p.reached = self.position;
            p.checkpoint = checkpoint.map(|c| c.position);
            p.state = SubscriptionState::Running;
        });
        let events: &dyn EventStore = shared.events.as_ref();
        loop {
            self.check().await?;
            let after = self.position;
            let batch_size = shared.config.batch_size;
            let batch = self.store_read("reading events", move || events.read_all(after, batch_size)).await?;
            if batch.is_empty() {
                if self.position > self.committed {
                    // Caught up after filtered-out events: store how far we got,
                    // so other nodes waiting on the checkpoint see it.
                    self.commit(UnitOfWork::new(), self.position).await?;
                }
                slot.set_state(SubscriptionState::CaughtUp);
                self.check_held_back().await;
                let wait = shared.config.idle_wait.min(self.keeper.until_renew());
                tokio::select! {
                    () = events.wait_for_events(after, wait) => {}
                    _ = self.cancel.changed() => return Err(Exit::Cancelled),
                }
                continue;
            }
            slot.set_state(SubscriptionState::Running);
            // Events came through: whatever held them back has ended.
            slot.set_held_back_by(None);
            match &slot.subscriber.kind {
                SubscriberKind::Handler { routes, replay } => {
                    self.handle_batch(&batch, routes, *replay).await?
                }
                SubscriberKind::Projection { routes } => self.project_batch(&batch, routes).await?,
            }
        }
    }

    /// While caught up, asks the store (at most every half of the warning
    /// threshold) whether a transaction keeps committed events hidden, and
    /// reports and warns about one that has done so past the threshold.
    /// Best effort: a failed check is logged at debug level and skipped.
    async fn check_held_back(&mut self) {
        let now = Instant::now();
        if now < self.next_blocker_check {
            return;
        }
        let threshold = self.shared.config.held_back_warning;
        self.next_blocker_check = now + threshold / 2;
        let blocker = match self.shared.events.read_blocker().await {
            Ok(blocker) => blocker.filter(|b| b.hiding_for >= threshold),
            Err(error) => {
                tracing::debug!(subscription = %self.slot.name, error = %describe(&error), "asking what holds readers back failed");
                return;
            }
        };
        let Some(blocker) = blocker else {
            self.slot.set_held_back_by(None);
            return;
        };
        let due = self.last_held_back_warning.is_none_or(|last| now.duration_since(last) >= threshold);
        if due {
            self.last_held_back_warning = Some(now);
            tracing::warn!(
                subscription = %self.slot.name,
                position = %self.position,
                hidden_for = ?blocker.hiding_for,
                blocker = %blocker.description,
                "a running transaction keeps committed events hidden from this subscription"
            );
        }
        self.slot.set_held_back_by(Some(blocker.description));
    }

    /// Starts over: a projection's documents and checkpoint are deleted; a
    /// handler's checkpoint goes back to the start, with the current head
    /// stored as the end of the replay (in the same commit, so a crash
    /// mid-replay still knows which events are history).
    async fn rebuild(&mut self) -> Result<(), Exit> {
        let shared = self.shared;
        let namespace = &*self.slot.name;
        let events: &dyn EventStore = shared.events.as_ref();
        let head = self.store_read("reading the head position", move || events.head_position()).await?;
        self.check_lease_only().await?;
        match self.slot.subscriber.kind {
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

    /// After failed attempt `attempt` on `event`: pauses before the next
    /// try, or returns the failure if that was the last attempt.
    async fn after_failure(
        &mut self,
        event: &RecordedEvent,
        attempt: u32,
        error: HandlerError,
    ) -> Result<(), Exit> {
        let retry = self.slot.subscriber.retry;
        let error = describe(&error);
        if attempt >= retry.max_attempts {
            return Err(Exit::Failed(Failure {
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

    async fn handle_batch(
        &mut self,
        batch: &[RecordedEvent],
        routes: &BTreeMap<&'static str, Box<dyn HandlerRoute>>,
        replay_mode: Replay,
    ) -> Result<(), Exit> {
        let mut handled = 0usize;
        for event in batch {
            if self.cancelled() {
                break;
            }
            let replay = event.global_position <= self.replay_until;
            match routes.get(event.event_type.as_str()) {
                Some(route) if !(replay && replay_mode == Replay::Skip) => {
                    self.check_lease_only().await?;
                    let ctx = HandlerCtx::for_event(
                        Arc::clone(&self.slot.name),
                        event,
                        replay,
                        self.shared.dispatcher()?,
                    );
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let outcome = CatchPanic(route.call(event, &ctx)).await;
                        let Err(error) = outcome else { break };
                        if let Err(exit) = self.after_failure(event, attempt, error).await {
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
        }
        if handled > 0 || self.skipped >= self.shared.config.checkpoint_every {
            self.commit(UnitOfWork::new(), self.position).await?;
        }
        Ok(())
    }

    async fn project_batch(
        &mut self,
        batch: &[RecordedEvent],
        routes: &BTreeMap<&'static str, Box<dyn ProjectionRoute>>,
    ) -> Result<(), Exit> {
        let mut tx = ProjectionTx::new(Arc::clone(&self.shared.projections), Arc::clone(&self.slot.name))
            .with_cache(self.cache.clone());
        let mut done = self.position;
        let mut projected = 0usize;
        let mut skipped = 0usize;
        for event in batch {
            if self.cancelled() {
                break;
            }
            if let Some(route) = routes.get(event.event_type.as_str()) {
                self.check_lease_only().await?;
                tx.set_replay(event.global_position <= self.replay_until);
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let mark = tx.mark();
                    let outcome = CatchPanic(route.call(event, &mut tx)).await;
                    let Err(error) = outcome else { break };
                    tx.rollback(mark);
                    if let Err(exit) = self.after_failure(event, attempt, error).await {
                        if !matches!(exit, Exit::LeaseLost) && (tx.has_changes() || done > self.committed) {
                            // Keep what the batch did before the failing event.
                            match self.commit(tx.work(), done).await {
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
        }
        self.skipped += skipped;
        if projected > 0 || self.skipped >= self.shared.config.checkpoint_every {
            self.commit(tx.work(), done).await?;
        }
        self.position = done;
        self.slot.set_reached(done);
        Ok(())
    }
}

/// The error chain of `error`, joined with `: `.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Turns a panic in a subscriber's future into an error.
struct CatchPanic<'a>(HandlerFuture<'a>);

impl Future for CatchPanic<'_> {
    type Output = Result<(), HandlerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_owned());
                Poll::Ready(Err(HandlerError::msg(format!("panicked: {message}"))))
            }
        }
    }
}
