//! Aggregate actors: one tokio task per live aggregate instance, holding its
//! state in memory and handling its commands one at a time.
//!
//! Why: reloading an aggregate for every command costs O(history); an
//! actor rehydrates once (newest snapshot plus later events) and then pays
//! O(1) per command. Its state is authoritative only while no other node
//! writes the stream, so it appends with expected version = its version,
//! and on a conflict it reads the events it missed and decides again.
//!
//! Lifecycle: the registry (module `registry`) starts an actor for the first
//! command to a cold aggregate. The actor stops when it has been idle for
//! [`EsConfig::idle_timeout`](super::EsConfig::idle_timeout), when the
//! registry evicts it to stay under the live-actor cap, on shutdown, or when
//! user code panics. Whatever stops it, no command is lost: commands already
//! in its mailbox are either handled before it exits (passivation,
//! eviction, shutdown) or handed back to their callers, who route them to a
//! fresh actor (panic).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

mod batch;

use super::attempt::{load_failed, Attempts};
use super::backoff::Contention;
use super::es::Shared;
use super::outcome::CommandOutcome;
use super::registry::{self, ExitSignal};
use super::rehydrate::{self, Loaded};
use super::request::Request;
use super::snapshot;
use super::stats::Stats;
use crate::aggregate::Aggregate;
use crate::error::{ExecuteError, Unknown};
use crate::store::{EventStore, SnapshotStore};
use crate::version::{CommandId, StreamId};

/// A command in an actor's mailbox.
pub(crate) struct Msg<A: Aggregate> {
    pub(crate) request: Request<A>,
    pub(crate) reply: oneshot::Sender<Reply<A>>,
}

/// What an actor answers.
pub(crate) enum Reply<A: Aggregate> {
    /// The command ran (or failed) here.
    Done(Result<CommandOutcome<A>, ExecuteError<A::Error>>),
    /// The actor stopped before it got to the command: route it again.
    Reroute(Request<A>),
}

/// Executes a command through its aggregate's actor.
pub(crate) async fn execute<A: Aggregate>(
    shared: &Arc<Shared>,
    id: String,
    mut request: Request<A>,
) -> Result<CommandOutcome<A>, ExecuteError<A::Error>> {
    loop {
        let (reply, answer) = oneshot::channel();
        let command_id = request.id;
        if shared.registry.deliver::<A>(shared, &id, Msg { request, reply }).await.is_err() {
            return Err(ExecuteError::Shutdown);
        }
        match answer.await {
            Ok(Reply::Done(answered)) => return answered,
            Ok(Reply::Reroute(returned)) => {
                tracing::debug!("actor stopped before handling the command; routing it again");
                request = returned;
            }
            // The actor's task died while it held the command, outside the
            // guarded user code (its drop guard answers in every other case).
            Err(_) => {
                return Err(ExecuteError::OutcomeUnknown {
                    aggregate: A::NAME,
                    id,
                    command_id,
                    cause: Unknown::Interrupted,
                })
            }
        }
    }
}

/// Whether the actor goes on after a command.
enum Next {
    Continue,
    /// User code panicked: the state can no longer be trusted.
    Die,
}

/// The task state of one aggregate instance's actor.
pub(crate) struct Actor<A: Aggregate> {
    id: Arc<str>,
    stream: StreamId,
    generation: u64,
    mailbox: mpsc::Receiver<Msg<A>>,
    /// For leaving the registry; weak so that dropping the last `Es` drops
    /// the registry, whose senders' drop then stops every actor.
    shared: Weak<Shared>,
    events: Arc<dyn EventStore>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    stats: Arc<Stats>,
    idle_timeout: Duration,
    /// `None` until the first command rehydrates it (or after a failed
    /// rehydration, which the next command tries again).
    loaded: Option<Loaded<A>>,
    /// The reply of the command being handled, answered by `Drop` if the
    /// task dies before it replied.
    in_flight: Option<oneshot::Sender<Reply<A>>>,
    /// The command in hand: its id, to name it if the actor ends.
    in_flight_id: Option<CommandId>,
    /// The in-flight command's append has been sent and not answered: if
    /// the actor ends now, its events may or may not be stored.
    appending: AtomicBool,
    /// How contended this aggregate's stream is, as this node sees it.
    contention: Contention,
    /// The first command may run on the default state without reading the
    /// stream (see `EsBuilder::assume_new_aggregates`); cleared once used.
    assume_new: bool,
    /// At most this many queued commands are decided together and
    /// appended in one write (see `batch`).
    max_batch: usize,
    /// The commands of the batch being appended, answered by `Drop` if the
    /// task dies before it replied.
    batch: Vec<batch::Member<A>>,
    /// Commands taken from the mailbox and not yet handled, in order (one
    /// that could not join a batch, those a refused batch runs one by one):
    /// handled before the mailbox, routed again by `Drop` if the task dies.
    held: VecDeque<batch::Held<A>>,
    /// Dropped with the actor: wakes whoever waits for it to exit.
    _exit: watch::Sender<()>,
}

impl<A: Aggregate> Actor<A> {
    pub(crate) fn new(
        shared: &Arc<Shared>,
        id: Arc<str>,
        generation: u64,
        mailbox: mpsc::Receiver<Msg<A>>,
        exit: watch::Sender<()>,
    ) -> Self {
        Self {
            stream: StreamId::for_aggregate(A::NAME, &id),
            id,
            generation,
            mailbox,
            shared: Arc::downgrade(shared),
            events: Arc::clone(&shared.events),
            snapshots: shared.snapshots.clone(),
            stats: Arc::clone(&shared.stats),
            idle_timeout: shared.config.idle_timeout,
            loaded: None,
            in_flight: None,
            in_flight_id: None,
            appending: AtomicBool::new(false),
            contention: Contention::default(),
            assume_new: shared.config.assume_new
                && (shared.snapshots.is_none() || shared.aggregate_config::<A>().snapshot_every.is_none()),
            max_batch: shared.config.max_batch,
            batch: Vec::new(),
            held: VecDeque::new(),
            _exit: exit,
        }
    }

    /// Runs the actor: waits for its predecessor to exit, then handles
    /// `first` and every later command until it stops.
    pub(crate) async fn run(mut self, first: Msg<A>, previous: Option<ExitSignal>) {
        let span =
            tracing::debug_span!("actor", aggregate = A::NAME, id = %self.id, generation = self.generation);
        async move {
            if let Some(previous) = previous {
                registry::exited(previous).await;
            }
            self.held.push_back(batch::Held { msg: first, alone: false });
            // One timer per idle period, not per command: when it fires
            // early (the actor was busy meanwhile) it is pushed back.
            let mut last_active = Instant::now();
            let idle = tokio::time::sleep(self.idle_timeout);
            tokio::pin!(idle);
            let mut stopping = false;
            loop {
                let (msg, alone) = match self.held.pop_front() {
                    Some(held) => (held.msg, held.alone),
                    None => match self.mailbox.try_recv() {
                        Ok(msg) => (msg, false),
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                        Err(mpsc::error::TryRecvError::Empty) if stopping => {
                            match self.mailbox.recv().await {
                                Some(msg) => (msg, false),
                                None => return,
                            }
                        }
                        Err(mpsc::error::TryRecvError::Empty) => {
                            tokio::select! {
                                biased;
                                received = self.mailbox.recv() => match received {
                                    Some(msg) => (msg, false),
                                    None => return,
                                },
                                () = &mut idle => {
                                    let deadline = crate::clock::deadline(last_active, self.idle_timeout);
                                    if Instant::now() >= deadline {
                                        self.passivate();
                                        stopping = true;
                                    } else {
                                        idle.as_mut().reset(deadline);
                                    }
                                    continue;
                                }
                            }
                        }
                    },
                };
                last_active = Instant::now();
                let next_step = if !alone && self.starts_batch(&msg) {
                    // Boxed, like the other cold paths: an idle actor's task
                    // is as large as its largest await state.
                    Box::pin(self.handle_batch(msg)).await
                } else {
                    let span = tracing::debug_span!("handle", attempts = tracing::field::Empty);
                    self.handle(msg).instrument(span).await
                };
                if let Next::Die = next_step {
                    self.hand_back().await;
                    return;
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Leaves the registry after an idle period (unless the registry
    /// already let it go); commands already in the mailbox are still
    /// handled, and the mailbox closes once the last sender is gone.
    fn passivate(&self) {
        let Some(shared) = self.shared.upgrade() else { return };
        if shared.registry.stop_if_current::<A>(&self.id, self.generation, &self.stats.passivations) {
            tracing::debug!("idle; passivating");
        }
    }

    /// Closes the mailbox of a dying actor and hands every command in it
    /// back to its caller for re-routing. Awaits senders that already hold
    /// a slot, so none of their commands is dropped unanswered.
    async fn hand_back(&mut self) {
        for held in std::mem::take(&mut self.held) {
            held.reroute();
        }
        self.mailbox.close();
        while let Some(Msg { request, reply }) = self.mailbox.recv().await {
            let _ = reply.send(Reply::Reroute(request));
        }
    }

    /// Handles one command: rehydrate if needed, then run its attempts
    /// (decide, confirm or append, catch up and retry on conflict), reply,
    /// and take a snapshot if one is due.
    async fn handle(&mut self, msg: Msg<A>) -> Next {
        let Msg { request, reply } = msg;
        if !request.start() {
            // The caller gave up before the command's turn came.
            return Next::Continue;
        }
        self.run_command(request, reply).await
    }

    /// [`handle`](Self::handle) for a command already started.
    async fn run_command(&mut self, mut request: Request<A>, reply: oneshot::Sender<Reply<A>>) -> Next {
        self.in_flight = Some(reply);
        self.in_flight_id = Some(request.id);
        let assumed = std::mem::take(&mut self.assume_new) && self.loaded.is_none();
        let mut loaded = match self.loaded.take() {
            Some(loaded) => loaded,
            // Assumed new: the attempts confirm it (the append expects no
            // stream; a quiet decision checks the head).
            None if assumed => Loaded { state: A::default(), version: None },
            None => {
                let Some(shared) = self.shared.upgrade() else { return self.fail(ExecuteError::Shutdown) };
                shared.stats.rehydration::<A>();
                // Boxed, like the other cold paths: an idle actor's task is as
                // large as its largest await state.
                let rehydrated = Box::pin(rehydrate::rehydrate::<A>(
                    self.events.as_ref(),
                    self.snapshots.as_deref(),
                    &self.stream,
                    &self.id,
                    None,
                ))
                .await;
                match rehydrated {
                    Ok(loaded) => loaded,
                    Err(error) => return self.fail(load_failed::<A>(error, &self.id)),
                }
            }
        };
        let before = loaded.version;
        let Some(shared) = self.shared.upgrade() else { return self.fail(ExecuteError::Shutdown) };
        let attempts = Attempts {
            events: self.events.as_ref(),
            stream: &self.stream,
            id: &self.id,
            stats: &self.stats,
            backoff: shared.config.backoff,
            confirm: shared.config.confirm_decisions,
            assumed,
            appending: Some(&self.appending),
        };
        let ran = Box::pin(attempts.run(&mut loaded, &mut request, &mut self.contention)).await;
        if ran.result.is_ok() && !ran.state_unsure {
            snapshot::after_append(&shared, &self.stream, &loaded, before);
        }
        drop(shared);
        // An unsure state is loaded afresh by the next command, and so is
        // an assumed-new one that a failed command never checked against
        // the store (its append was not sent, or the check failed).
        let unchecked = assumed && ran.result.is_err();
        self.loaded = (!ran.state_unsure && !unchecked).then_some(loaded);
        match ran.result {
            Ok(outcome) => {
                self.reply(Ok(outcome));
                Next::Continue
            }
            Err(error) => self.fail(error),
        }
    }

    fn reply(&mut self, result: Result<CommandOutcome<A>, ExecuteError<A::Error>>) {
        self.in_flight_id = None;
        if let Some(reply) = self.in_flight.take() {
            // The caller may have given up waiting; the command stands anyway.
            let _ = reply.send(Reply::Done(result));
        }
    }

    /// Answers a failed command. A panic in aggregate code kills the actor:
    /// it leaves the registry before replying, so the caller's next command
    /// already finds a fresh actor.
    fn fail(&mut self, error: ExecuteError<A::Error>) -> Next {
        if !matches!(error, ExecuteError::Panicked { .. }) {
            self.reply(Err(error));
            return Next::Continue;
        }
        self.stats.panics.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(aggregate = A::NAME, id = %self.id, "aggregate code panicked; stopping its actor");
        self.loaded = None;
        if let Some(shared) = self.shared.upgrade() {
            shared.registry.remove::<A>(&self.id, self.generation);
        }
        self.reply(Err(error));
        Next::Die
    }
}

impl<A: Aggregate> Drop for Actor<A> {
    /// Runs however the actor ends (stopped, panicked, runtime gone): leave
    /// the registry, answer the command in hand, and hand every command
    /// still in the mailbox back to its caller for re-routing (the last
    /// resort; a dying actor normally does that in `hand_back`).
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.registry.remove::<A>(&self.id, self.generation);
        }
        if let Some(reply) = self.in_flight.take() {
            let (aggregate, id) = (A::NAME, self.id.to_string());
            let error = match self.in_flight_id {
                Some(command_id) if self.appending.load(Ordering::Relaxed) => {
                    ExecuteError::OutcomeUnknown { aggregate, id, command_id, cause: Unknown::Interrupted }
                }
                _ => ExecuteError::Panicked { aggregate, id, appended: false },
            };
            let _ = reply.send(Reply::Done(Err(error)));
        }
        let appending = self.appending.load(Ordering::Relaxed);
        for member in std::mem::take(&mut self.batch) {
            member.abandon(&self.id, appending);
        }
        for held in std::mem::take(&mut self.held) {
            held.reroute();
        }
        self.mailbox.close();
        while let Ok(Msg { request, reply }) = self.mailbox.try_recv() {
            let _ = reply.send(Reply::Reroute(request));
        }
    }
}
