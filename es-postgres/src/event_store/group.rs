//! Group commit (write combining): appends to different streams that
//! arrive while other appends are committing share one statement, one
//! transaction and one commit.
//!
//! Every pool append queues its request. While fewer than
//! [`GroupCommit::max_in_flight`] groups are running, the append leads: it
//! takes the queued requests (its own, and whatever queued meanwhile; at
//! most one per stream) and runs them as one group in a spawned task, which
//! answers each request, so the group finishes even if the caller that
//! started it goes away. Otherwise it waits for its answer or a free slot,
//! at most [`GroupCommit::max_wait`]; then, if no group has taken it, it
//! appends alone. A lone append at low load finds a free slot at once and
//! runs as a group of one: the single-event statement, no waiting, in the
//! caller's own task. Groups run on the store's own connections, kept
//! between appends (`writers.rs`); appends that went alone take the pool's.
//!
//! Each request keeps its own stream expectation (see `append_group.rs` for
//! how a group decides each and what it does on a conflict).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use es_core::error::AppendError;
use es_core::store::{AppendOutcome, ExpectedVersion, NewEvent};
use es_core::StreamId;
use tokio::sync::{oneshot, Notify};

use super::PgEventStore;

/// The most appends one group commits together.
const MAX_GROUP_APPENDS: usize = 128;
/// The most events one group commits together (a group takes at least one
/// append, however large).
const MAX_GROUP_EVENTS: usize = 8_192;

/// How a [`PgEventStore`] combines concurrent appends (see
/// [`PgEventStore::set_group_commit`]).
///
/// ```
/// use std::time::Duration;
/// use es_postgres::GroupCommit;
///
/// let settings = GroupCommit::default().max_wait(Duration::from_micros(500)).max_in_flight(2);
/// let off = GroupCommit::off();
/// # let _ = (settings, off);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommit {
    /// Whether appends are combined at all (default on).
    pub enabled: bool,
    /// How long an append waits for a group to take it before it is
    /// appended alone (default 50 ms). The wait only happens while
    /// `max_in_flight` groups are committing, and ends as soon as one of
    /// them does (the next group takes every queued append); the bound is
    /// for a group that stalls. An append that gives up adds a transaction
    /// to a server that is already behind: with 2 ms, under 64 HTTP
    /// clients on two cores most appends gave up and went alone (single
    /// appends outnumbered group statements about 12 to 1 among the
    /// server's active queries), where 50 ms kept them in groups (HTTP
    /// deposits 6,277-8,217 -> 8,807-8,937 /s in `http_load`, two runs
    /// each, alternating).
    pub max_wait: Duration,
    /// How many groups may commit at once (default 2). Fewer means larger
    /// groups (fewer transactions) under load; an append that finds a free
    /// slot and nothing queued runs at once, in its caller's task. Measured
    /// with `pg_actors hot` on two cores: at 32 writers 2 gave 1.26-1.27x
    /// raw single-row INSERTs where 8 gave 0.86-1.00x; at 8 writers both
    /// were level with group commit off.
    pub max_in_flight: usize,
    /// Whether lone appends and groups run on connections the store opens
    /// and keeps itself, one per slot (default on; see the crate docs,
    /// *Group commit*). Off, they take the pool's connections, each checked
    /// by sqlx with a round trip before and after use: for an application
    /// whose pool sets its connections up in an `after_connect` hook (a
    /// `SET ROLE`, say) that the store's own connections would lack.
    pub own_connections: bool,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self { enabled: true, max_wait: Duration::from_millis(50), max_in_flight: 2, own_connections: true }
    }
}

impl GroupCommit {
    /// Every append in its own transaction, as without group commit.
    pub fn off() -> Self {
        Self { enabled: false, ..Self::default() }
    }

    /// Sets [`max_wait`](GroupCommit::max_wait).
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Sets [`max_in_flight`](GroupCommit::max_in_flight) (at least 1).
    #[must_use]
    pub fn max_in_flight(mut self, groups: usize) -> Self {
        self.max_in_flight = groups.max(1);
        self
    }

    /// Sets [`own_connections`](GroupCommit::own_connections).
    #[must_use]
    pub fn own_connections(mut self, own: bool) -> Self {
        self.own_connections = own;
        self
    }
}

/// One queued append.
pub(super) struct Request {
    pub(super) stream: StreamId,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<NewEvent>,
}

pub(super) type Outcome = Result<AppendOutcome, AppendError>;

/// A request and where its answer goes.
pub(super) struct Waiting {
    id: u64,
    pub(super) request: Request,
    pub(super) reply: oneshot::Sender<Outcome>,
}

/// The store's group-commit state: settings, the queue, the running groups.
pub(super) struct Groups {
    enabled: AtomicBool,
    max_wait_micros: AtomicU64,
    max_in_flight: AtomicUsize,
    own_connections: AtomicBool,
    in_flight: AtomicUsize,
    /// Signalled when a group gives its slot back while appends are queued.
    slot_freed: Notify,
    next_id: AtomicU64,
    waiting: Mutex<VecDeque<Waiting>>,
}

impl Default for Groups {
    fn default() -> Self {
        let settings = GroupCommit::default();
        Self {
            enabled: AtomicBool::new(settings.enabled),
            max_wait_micros: AtomicU64::new(micros(settings.max_wait)),
            max_in_flight: AtomicUsize::new(settings.max_in_flight),
            own_connections: AtomicBool::new(settings.own_connections),
            in_flight: AtomicUsize::new(0),
            slot_freed: Notify::new(),
            next_id: AtomicU64::new(0),
            waiting: Mutex::new(VecDeque::new()),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Groups {
    fn set(&self, settings: GroupCommit) {
        self.enabled.store(settings.enabled, Ordering::Relaxed);
        self.max_wait_micros.store(micros(settings.max_wait), Ordering::Relaxed);
        self.max_in_flight.store(settings.max_in_flight.max(1), Ordering::Relaxed);
        self.own_connections.store(settings.own_connections, Ordering::Relaxed);
        // Waiters re-read the limit.
        self.slot_freed.notify_waiters();
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// How many groups may commit at once: also how many connections the
    /// store keeps for them (see `writers.rs`).
    pub(super) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::Relaxed)
    }

    /// Whether slot holders append on the store's own connections.
    pub(super) fn own_connections(&self) -> bool {
        self.own_connections.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiting>> {
        // Nothing panics while holding the lock, and a queue of requests
        // stays consistent whatever happened: go on with it.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, request: Request, reply: oneshot::Sender<Outcome>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push_back(Waiting { id, request, reply });
        id
    }

    /// Takes request `id` back if no group has taken it yet.
    fn withdraw(&self, id: u64) -> Option<Request> {
        let mut waiting = self.lock();
        let at = waiting.iter().position(|w| w.id == id)?;
        waiting.remove(at).map(|w| w.request)
    }

    /// The oldest waiting requests, as many as one group takes, at most one
    /// per stream (a later append to a stream in the group waits for the
    /// next group, so it is decided after the earlier one).
    pub(super) fn take_group(&self) -> Vec<Waiting> {
        let mut waiting = self.lock();
        let mut group = Vec::new();
        let mut streams = HashSet::new();
        let mut events = 0;
        let mut at = 0;
        while at < waiting.len() && group.len() < MAX_GROUP_APPENDS {
            let next = &waiting[at].request;
            if streams.contains(&next.stream) {
                at += 1;
                continue;
            }
            if !group.is_empty() && events + next.events.len() > MAX_GROUP_EVENTS {
                break;
            }
            events += next.events.len();
            streams.insert(next.stream.clone());
            group.extend(waiting.remove(at));
        }
        group
    }

    /// Takes a slot for a group if fewer than the limit are running.
    fn try_take_slot(&self) -> bool {
        let max = self.max_in_flight.load(Ordering::Relaxed);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    /// Gives a slot back and, if appends are queued, wakes one waiter to
    /// lead the next group (one: it takes every queued append, so waking
    /// all would only make the others look and sleep again).
    fn free_slot(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !self.lock().is_empty() {
            self.slot_freed.notify_one();
        }
    }

    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.lock().len()
    }
}

/// The group that took a request ended without answering it (its task
/// panicked or its runtime shut down): the append may or may not be stored.
#[derive(Debug, thiserror::Error)]
#[error("the append's group commit ended without an answer; the events may or may not be stored")]
struct Unanswered;

impl PgEventStore {
    /// Sets how this store (and every clone of it) combines concurrent
    /// appends; see [`GroupCommit`]. Takes effect for appends that start
    /// after the call. Turning it off, or its
    /// [`own_connections`](GroupCommit::own_connections), closes the store's
    /// idle connections for appends: appends then take the pool's.
    pub fn set_group_commit(&self, settings: GroupCommit) {
        self.inner.groups.set(settings);
        if !settings.enabled || !settings.own_connections {
            self.inner.writers.close_idle();
        }
    }

    /// Queues `request` and waits for its outcome, leading a group when a
    /// slot is free, appending alone when no group took it in time.
    pub(super) async fn submit(&self, request: Request) -> Outcome {
        let groups = &self.inner.groups;
        let stream = request.stream.clone();
        let (reply, mut answer) = oneshot::channel();
        let id = groups.push(request, reply);
        let max_wait = Duration::from_micros(groups.max_wait_micros.load(Ordering::Relaxed));
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            // Registered before looking at the slots, so a slot freed in
            // between is not missed.
            let freed = groups.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if groups.try_take_slot() {
                let mut group = groups.take_group();
                if group.is_empty() {
                    groups.free_slot();
                } else if group.len() == 1 && group[0].id == id {
                    // Alone after all: append here, without handing the
                    // request to a task of its own (no other caller waits
                    // on it, so it may end with this caller).
                    let _slot = Slot(Some(self.clone()));
                    let Waiting { request, .. } = group.swap_remove(0);
                    return self.append_kept(&request.stream, request.expected, &request.events).await;
                } else {
                    let (store, slot) = (self.clone(), Slot(Some(self.clone())));
                    tokio::spawn(async move {
                        store.run_group(slot, group).await;
                    });
                }
            }
            tokio::select! {
                biased;
                outcome = &mut answer => return unanswered(&stream, outcome),
                () = &mut freed => {}
                () = tokio::time::sleep_until(deadline) => {
                    return match groups.withdraw(id) {
                        Some(request) => {
                            self.append_pooled(&request.stream, request.expected, &request.events).await
                        }
                        // A group has it: its answer comes.
                        None => unanswered(&stream, answer.await),
                    };
                }
            }
        }
    }

    /// Runs one group, answers each of its requests, and gives the slot
    /// back as soon as the group's statement is done.
    async fn run_group(&self, mut slot: Slot, group: Vec<Waiting>) {
        let (requests, replies): (Vec<Request>, Vec<_>) =
            group.into_iter().map(|w| (w.request, w.reply)).unzip();
        let decided = match requests.as_slice() {
            // A group of one is a plain append: the cheaper statement.
            [r] => vec![Some(self.append_kept(&r.stream, r.expected, &r.events).await)],
            _ => self.append_group(&requests).await,
        };
        slot.free();
        // Answer the decided ones first; then append the rest one by one,
        // in queue order, each as if alone.
        let mut again = Vec::new();
        for ((request, reply), decided) in requests.into_iter().zip(replies).zip(decided) {
            match decided {
                // A caller that went away needs no answer.
                Some(outcome) => drop(reply.send(outcome)),
                None => again.push((request, reply)),
            }
        }
        for (request, reply) in again {
            let outcome = self.append_pooled(&request.stream, request.expected, &request.events).await;
            drop(reply.send(outcome));
        }
    }
}

/// A running group's slot, given back once (also if the group panics or
/// its task never runs).
struct Slot(Option<PgEventStore>);

impl Slot {
    fn free(&mut self) {
        if let Some(store) = self.0.take() {
            store.inner.groups.free_slot();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.free();
    }
}

/// The answer a group sent, or (its task ended without one) an unknown
/// outcome: the group's statement may have committed.
fn unanswered(stream: &StreamId, answer: Result<Outcome, oneshot::error::RecvError>) -> Outcome {
    answer.unwrap_or_else(|_| {
        Err(AppendError::OutcomeUnknown { stream: stream.clone(), source: Box::new(Unanswered) })
    })
}

#[cfg(test)]
mod tests;
