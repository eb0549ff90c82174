//! The subscription task: lease, catch-up, live, checkpoints, retries.
//!
//! One task runs one subscription. It holds the subscription's lease while
//! it processes; it reads the global stream after its position with
//! `EventStore::read_all` and, when there is nothing to read, waits with
//! `EventStore::wait_for_events`. Catch-up and live are the same loop, so
//! there is no hand-over where an event could slip through. The position
//! only ever moves to the position of an event that was read, never to a
//! computed `last + 1`: positions may have holes. While a full batch is
//! processed, the next one is read (`read_ahead`).

mod batch;
mod checkpoint;
mod held_back;
mod in_flight;
mod lease_keeper;
mod outage;
mod panics;
mod poison;
mod read_ahead;
mod slot;
mod table;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use self::in_flight::InFlight;
use self::lease_keeper::{acquire, LeaseKeeper};
pub(crate) use self::panics::{store_call, CatchPanic};
pub(crate) use self::slot::{Dispatcher, Progress, Shared, Slot, Start, Task};
use super::cache::SharedCache;
use super::status::{StoreOutage, SubscriptionState};
use crate::clock::deadline;
use crate::envelope::RecordedEvent;
use crate::error::{Failure, FailureKind};
use crate::readside::subscriber::{Consistency, SubscriberKind};
use crate::store::{EventStore, Lease, ProjectionStore, UnitOfWork, WakeupMark};
use crate::unwind::Unwound;
use crate::version::GlobalPosition;

/// Why a subscription stopped processing under its lease.
enum Exit {
    Cancelled,
    LeaseLost,
    Failed(Failure),
}

/// Runs one subscription until it is cancelled or fails, taking the lease
/// again whenever it is lost. Starts once `previous` (the task spawned
/// before it) has exited: the owner that holds a lease is granted it again
/// (under a new token, which fences off the earlier task's commits only on
/// stores that check fences, and only from its next commit on), so the
/// lease alone would not keep two tasks of one node apart. `_exit` is
/// dropped when this task ends, which tells the next one.
pub(crate) async fn run(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    start: Start,
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
    // Panics inside a run under the lease are caught in `supervise`; one
    // outside it (taking the lease, settling or releasing at the end) stops
    // the subscription too, saying so, with the lease given back.
    if let Err(panic) = Unwound(Box::pin(supervise(&shared, &slot, start, &mut cancel))).await {
        if let Some(lease) = slot.take_held() {
            if !matches!(Unwound(shared.leases.release(&lease)).await, Ok(Ok(()))) {
                tracing::warn!(subscription = %slot.name, "releasing the lease failed; it will expire");
            }
        }
        let position = slot.progress.borrow().checkpoint.unwrap_or(GlobalPosition::START);
        tracing::error!(subscription = %slot.name, %panic, "subscription stopped: its task panicked");
        slot.set_state(SubscriptionState::Failed(panicked(&panic, position)));
    }
}

/// The failure of a subscription whose task panicked with `panic`, its
/// checkpoint at `position`.
fn panicked(panic: &str, position: GlobalPosition) -> Failure {
    Failure {
        kind: FailureKind::Panicked,
        error: format!("the subscription's task panicked: {panic}"),
        position,
        event_id: None,
        event_type: None,
        attempts: 1,
    }
}

/// Takes the lease, runs, and takes it again whenever it is lost, until
/// the subscription stops or fails.
async fn supervise(
    shared: &Arc<Shared>,
    slot: &Arc<Slot>,
    mut start: Start,
    cancel: &mut watch::Receiver<bool>,
) {
    let (shared, slot) = (shared.as_ref(), slot.as_ref());
    loop {
        slot.set_state(SubscriptionState::Standby);
        let Some((lease, asked)) = acquire(shared, slot, cancel).await else {
            slot.set_state(SubscriptionState::Stopped);
            return;
        };
        tracing::debug!(subscription = %slot.name, owner = %shared.owner, token = lease.token, "lease acquired");
        slot.hold(Some(lease.clone()));
        let mut runner = Runner::new(shared, slot, cancel, lease, asked);
        let exit = match Unwound(Box::pin(runner.run(&mut start))).await {
            Ok(Err(exit)) => exit,
            Ok(Ok(never)) => match never {},
            // Outside the subscriber's own code (caught per event) and the
            // projection store's commits (waited out like an outage): a
            // store adapter or the runner itself. Stop, saying so, rather
            // than leave a dead task that looks alive.
            Err(panic) => Exit::Failed(panicked(&panic, runner.committed)),
        };
        // Not reading any more: what held it back is no longer its concern.
        slot.set_held_back_by(None);
        let final_state = match exit {
            Exit::LeaseLost => {
                runner.abandon().await;
                slot.hold(None);
                tracing::warn!(subscription = %slot.name, "lease lost; waiting to take it again");
                continue;
            }
            Exit::Cancelled => {
                // A lost lease needs no release; stopping is all that is left.
                let _lost = runner.flush().await;
                SubscriptionState::Stopped
            }
            Exit::Failed(failure) => {
                // Keep the batches before the failure that are in flight.
                if runner.settle().await.is_err() {
                    tracing::warn!(subscription = %slot.name, "the commit in flight at the failure did not go through");
                }
                tracing::error!(subscription = %slot.name, position = %failure.position, kind = ?failure.kind, error = %failure.error, "subscription stopped");
                SubscriptionState::Failed(failure)
            }
        };
        let lease = runner.keeper.lease;
        slot.hold(None);
        if let Err(error) = shared.leases.release(&lease).await {
            tracing::warn!(subscription = %slot.name, error = %describe(&error), "releasing the lease failed; it will expire");
        }
        slot.set_state(final_state);
        return;
    }
}

struct Runner<'a> {
    shared: &'a Shared,
    slot: &'a Slot,
    cancel: &'a mut watch::Receiver<bool>,
    keeper: LeaseKeeper,
    /// Every event up to here is handled or filtered out, and the effects of
    /// the handled ones are committed or in the commit in flight.
    position: GlobalPosition,
    /// The checkpoint last committed (or read at start). Behind `position`
    /// while a commit is in flight.
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
    /// The store outage it is waiting out, if any.
    outage: Option<StoreOutage>,
    /// Commits in a row whose adapter panicked (see `panics.rs`).
    panics: u32,
    /// The corrupt row an operator asked to skip, if it meets it.
    skip_row: Option<GlobalPosition>,
    /// A projection's commit sent while the next batch is projected.
    in_flight: Option<InFlight>,
    /// The last read came back full: the subscription is behind.
    behind: bool,
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
            outage: None,
            panics: 0,
            skip_row: None,
            in_flight: None,
            behind: false,
        }
    }

    /// How many events the next read asks for: [`ReadSideConfig::batch_size`],
    /// or [`ReadSideConfig::catch_up_batch_size`] while a projection is
    /// behind. A handler keeps to `batch_size`: its effects are not undone
    /// with its checkpoint, so a bigger batch would only mean more events
    /// delivered again after a crash.
    ///
    /// [`ReadSideConfig::batch_size`]: super::ReadSideConfig::batch_size
    /// [`ReadSideConfig::catch_up_batch_size`]: super::ReadSideConfig::catch_up_batch_size
    fn read_limit(&self) -> usize {
        let config = &self.shared.config;
        let projection = !matches!(self.slot.subscriber.kind, SubscriberKind::Handler { .. });
        if self.behind && projection {
            config.catch_up_batch_size.max(config.batch_size)
        } else {
            config.batch_size
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

    async fn run(&mut self, start: &mut Start) -> Result<Infallible, Exit> {
        let shared = self.shared;
        let slot = self.slot;
        let namespace = &*slot.name;
        let projections: &dyn ProjectionStore = shared.projections.as_ref();
        match *start {
            Start::Rebuild => self.rebuild().await?,
            Start::Skip(position) => self.skip_row = Some(position),
            Start::Resume => {}
        }
        // Done: a lease lost later resumes from the stored checkpoint.
        *start = Start::Resume;
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
        // The next batch, when it was read while the last one was processed.
        let mut ahead: Option<Read> = None;
        // The store's wake-up mark from before the last read, while that
        // read came back short and was processed to its end: caught up as
        // of it. If the mark has not moved since, nothing was committed
        // after that read began, and the read that would find nothing is
        // skipped.
        let mut quiet: Option<WakeupMark> = None;
        loop {
            self.check().await?;
            let after = self.position;
            let Read { batch, limit, mark } = match ahead.take() {
                Some(ahead) => {
                    self.store_recovered();
                    ahead
                }
                None => {
                    let limit = self.read_limit();
                    let mark = events.wakeup_mark();
                    let unchanged = quiet.take().is_some_and(|quiet| mark == Some(quiet));
                    let batch = if unchanged { Vec::new() } else { self.read_events(after, limit).await? };
                    Read { batch, limit, mark }
                }
            };
            self.behind = batch.len() >= limit;
            slot.read(&batch, self.behind);
            if batch.is_empty() {
                self.settle().await?;
                if self.position > self.committed {
                    // Caught up after filtered-out events: store how far we got,
                    // so other nodes waiting on the checkpoint see it.
                    self.commit(UnitOfWork::new(), self.position).await?;
                }
                slot.set_state(SubscriptionState::CaughtUp);
                self.check_held_back().await;
                let wait = shared.config.idle_wait.min(self.keeper.until_renew());
                tokio::select! {
                    () = events.wait_for_events_since(after, mark, wait) => {}
                    _ = self.cancel.changed() => return Err(Exit::Cancelled),
                }
                if slot.subscriber.consistency != Consistency::Strong {
                    // Woken by an append: let what is already waiting run
                    // first (tokio runs a yielded task after the ready ones
                    // and after polling for I/O), so the command that
                    // appended answers its caller before eventual
                    // subscriptions take the worker. A `Strong` one goes at
                    // once: the command waits for it.
                    tokio::task::yield_now().await;
                }
                continue;
            }
            slot.set_state(SubscriptionState::Running);
            // Events came through: whatever held them back has ended.
            slot.set_held_back_by(None);
            if slot.subscriber.consistency != Consistency::Strong {
                // An eventual subscription's batch waits for what the same
                // wake-up made ready (a request's socket, a command's
                // reply): tokio runs a yielded task after those and after
                // polling for I/O. Commands answer sooner, and under load
                // the subscription finds more events per batch. Measured
                // with `http_load` (one run each): Postgres, HTTP / direct
                // at 1 client 85 -> 99 %, 64 clients 66 -> 72 %; in memory,
                // direct at 64 callers with the read side caught up
                // 148,080 -> 228,490 commands/s.
                tokio::task::yield_now().await;
            }
            let last = batch.last().map(|event| event.global_position);
            ahead = self.process(&batch).await?;
            if !self.behind && last == Some(self.position) {
                quiet = mark;
            }
        }
    }
}

/// One read of the global stream: its events, the limit it was read with,
/// and the store's wake-up mark from before it.
struct Read {
    batch: Vec<RecordedEvent>,
    limit: usize,
    mark: Option<WakeupMark>,
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
