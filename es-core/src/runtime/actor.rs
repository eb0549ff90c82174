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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::command::{self, AttemptError, CommandOutcome};
use super::es::Shared;
use super::registry::{self, ExitSignal};
use super::rehydrate::{self, Loaded};
use super::snapshot;
use super::stats::Stats;
use crate::aggregate::Aggregate;
use crate::envelope::Metadata;
use crate::error::ExecuteError;
use crate::store::{EventStore, SnapshotStore};
use crate::version::StreamId;

/// A command in an actor's mailbox.
///
/// Metadata is boxed, and absent when empty (the common case), to keep
/// messages small: a mailbox allocates its slots in blocks, so the message
/// size is most of an idle actor's memory.
pub(crate) struct Msg<A: Aggregate> {
    pub(crate) command: A::Command,
    pub(crate) metadata: Option<Box<Metadata>>,
    pub(crate) reply: oneshot::Sender<Reply<A>>,
}

/// What an actor answers.
pub(crate) enum Reply<A: Aggregate> {
    /// The command ran (or failed) here.
    Done(Result<CommandOutcome<A>, ExecuteError<A::Error>>),
    /// The actor stopped before it got to the command: route it again.
    Reroute { command: A::Command, metadata: Option<Box<Metadata>> },
}

/// Executes a command through its aggregate's actor.
pub(crate) async fn execute<A: Aggregate>(
    shared: &Arc<Shared>,
    id: String,
    mut command: A::Command,
    metadata: Metadata,
) -> Result<CommandOutcome<A>, ExecuteError<A::Error>> {
    let mut metadata = (!metadata.is_empty()).then(|| Box::new(metadata));
    loop {
        let (reply, answer) = oneshot::channel();
        if shared.registry.deliver::<A>(shared, &id, Msg { command, metadata, reply }).await.is_err() {
            return Err(ExecuteError::Shutdown);
        }
        match answer.await {
            Ok(Reply::Done(Ok(mut outcome))) => {
                outcome.aggregate_id = id;
                return Ok(outcome);
            }
            Ok(Reply::Done(Err(error))) => return Err(error),
            Ok(Reply::Reroute { command: returned, metadata: returned_metadata }) => {
                tracing::debug!("actor stopped before handling the command; routing it again");
                command = returned;
                metadata = returned_metadata;
            }
            // The actor's task died while it held the command, outside the
            // guarded user code (its drop guard answers in every other case).
            Err(_) => return Err(ExecuteError::Panicked { aggregate: A::NAME, id, appended: false }),
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
    max_attempts: u32,
    idle_timeout: Duration,
    snapshot_every: Option<u64>,
    /// `None` until the first command rehydrates it (or after a failed
    /// rehydration, which the next command tries again).
    loaded: Option<Loaded<A>>,
    /// The reply of the command being handled, answered by `Drop` if the
    /// task dies before it replied.
    in_flight: Option<oneshot::Sender<Reply<A>>>,
    /// The in-flight command's append has been sent and not answered: if
    /// the actor ends now, its events may or may not be stored.
    appending: bool,
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
            max_attempts: shared.config.max_attempts,
            idle_timeout: shared.config.idle_timeout,
            snapshot_every: shared.aggregate_config::<A>().snapshot_every,
            loaded: None,
            in_flight: None,
            appending: false,
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
            let mut next = Some(first);
            // One timer per idle period, not per command: when it fires
            // early (the actor was busy meanwhile) it is pushed back.
            let mut last_active = Instant::now();
            let idle = tokio::time::sleep(self.idle_timeout);
            tokio::pin!(idle);
            let mut stopping = false;
            loop {
                let msg = match next.take() {
                    Some(msg) => msg,
                    None => match self.mailbox.try_recv() {
                        Ok(msg) => msg,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                        Err(mpsc::error::TryRecvError::Empty) if stopping => {
                            match self.mailbox.recv().await {
                                Some(msg) => msg,
                                None => return,
                            }
                        }
                        Err(mpsc::error::TryRecvError::Empty) => {
                            tokio::select! {
                                biased;
                                received = self.mailbox.recv() => match received {
                                    Some(msg) => msg,
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
                let span = tracing::debug_span!("handle", attempts = tracing::field::Empty);
                if let Next::Die = self.handle(msg).instrument(span).await {
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
        if shared.registry.stop_if_current::<A>(&self.id, self.generation) {
            self.stats.passivations.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("idle; passivating");
        }
    }

    /// Closes the mailbox of a dying actor and hands every command in it
    /// back to its caller for re-routing. Awaits senders that already hold
    /// a slot, so none of their commands is dropped unanswered.
    async fn hand_back(&mut self) {
        self.mailbox.close();
        while let Some(Msg { command, metadata, reply }) = self.mailbox.recv().await {
            let _ = reply.send(Reply::Reroute { command, metadata });
        }
    }

    /// Handles one command: rehydrate if needed, decide, append, apply,
    /// reply; on a conflict catch up and decide again.
    async fn handle(&mut self, msg: Msg<A>) -> Next {
        let Msg { command, metadata, reply } = msg;
        let metadata = metadata.map_or_else(Metadata::default, |boxed| *boxed);
        self.in_flight = Some(reply);
        let mut loaded = match self.loaded.take() {
            Some(loaded) => loaded,
            None => {
                self.stats.rehydrations.fetch_add(1, Ordering::Relaxed);
                // Boxed, like the other cold paths below: an idle actor's
                // task is as large as its largest await state.
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
                    Err(error) => return self.fail(command::load_failed::<A>(error, &self.id)),
                }
            }
        };
        let mut pending = Some(command);
        let mut attempt = 0;
        while let Some(command) = pending.take() {
            attempt += 1;
            if attempt < self.max_attempts {
                pending = Some(command.clone());
            }
            let decided = match command::handle_guarded(&loaded.state, command, &self.id) {
                Ok(decided) => decided,
                Err(error) => {
                    // The state is untouched: `handle` only reads it.
                    self.loaded = Some(loaded);
                    return self.fail(error);
                }
            };
            let before = loaded.version;
            self.appending = true;
            let appended = command::append_decided(
                self.events.as_ref(),
                &self.stream,
                &self.id,
                &mut loaded,
                decided,
                &metadata,
            )
            .await;
            self.appending = false;
            match appended {
                Ok(outcome) => {
                    tracing::Span::current().record("attempts", attempt);
                    self.reply(Ok(outcome));
                    if snapshot::due(self.snapshot_every, before, loaded.version) {
                        self.save_snapshot(&loaded).await;
                    }
                    self.loaded = Some(loaded);
                    return Next::Continue;
                }
                Err(AttemptError::Conflict(error)) => {
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(attempt, %error, "another writer changed the stream; catching up");
                    // Also after the last attempt: a stale actor would
                    // otherwise conflict on every later command too.
                    let caught_up = Box::pin(rehydrate::catch_up(
                        self.events.as_ref(),
                        &self.stream,
                        &self.id,
                        &mut loaded,
                        None,
                    ))
                    .instrument(tracing::debug_span!("catch_up", attempt))
                    .await;
                    if let Err(error) = caught_up {
                        // The state is consistent at the version it reached
                        // (unless apply panicked, and then the actor dies).
                        self.loaded = Some(loaded);
                        return self.fail(command::load_failed::<A>(error, &self.id));
                    }
                    if pending.is_none() {
                        break;
                    }
                }
                Err(AttemptError::Fatal(error)) => {
                    // Nothing was applied, unless apply panicked (then the
                    // actor dies with its state).
                    self.loaded = Some(loaded);
                    return self.fail(error);
                }
            }
        }
        self.reply(Err(ExecuteError::Conflict { stream: self.stream.clone(), attempts: attempt }));
        self.loaded = Some(loaded);
        Next::Continue
    }

    fn reply(&mut self, result: Result<CommandOutcome<A>, ExecuteError<A::Error>>) {
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

    /// Saves a snapshot of `loaded`. Runs after the reply, before the next
    /// command.
    async fn save_snapshot(&self, loaded: &Loaded<A>) {
        let Some(store) = &self.snapshots else { return };
        if let Some(taken) = snapshot::capture(&self.stream, loaded) {
            Box::pin(snapshot::save(store.as_ref(), taken, &self.stats)).await;
        }
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
            let error = if self.appending {
                ExecuteError::Interrupted { aggregate, id }
            } else {
                ExecuteError::Panicked { aggregate, id, appended: false }
            };
            let _ = reply.send(Reply::Done(Err(error)));
        }
        self.mailbox.close();
        while let Ok(Msg { command, metadata, reply }) = self.mailbox.try_recv() {
            let _ = reply.send(Reply::Reroute { command, metadata });
        }
    }
}
