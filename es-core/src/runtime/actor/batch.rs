//! Commands that queued up while an actor was busy, decided one after the
//! other on the state each predecessor left and appended in one write.
//!
//! A hot aggregate with many callers otherwise pays one append (on
//! Postgres, one round trip and one transaction) per command. Each command
//! is still decided and answered on its own; only the write is shared:
//!
//! | the shared append | each command of the batch |
//! |---|---|
//! | stored | answered with its own events, versions and positions; a refusal or an empty decision too, confirmed by the append (the stream was where the actor thought it was) |
//! | refused, nothing written (another writer moved the stream, the store failed) | the state is reloaded and the commands run one by one, in order, as without batching |
//! | outcome unknown | the commands with events: [`ExecuteError::OutcomeUnknown`]; the others run one by one on a reloaded state |
//!
//! A batch starts only on a loaded, uncontended actor with more commands
//! waiting, and never takes a command whose id was given: it may be a
//! retry, which is checked against what its id stored, so it runs alone.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tracing::Instrument;

use super::{Actor, Msg, Next, Reply};
use crate::aggregate::Aggregate;
use crate::envelope::{Committed, NewEvent};
use crate::error::{AppendError, ExecuteError, Unknown};
use crate::runtime::attempt::{decide, encode_guarded};
use crate::runtime::outcome::CommandOutcome;
use crate::runtime::rehydrate::{apply_guarded, Loaded};
use crate::runtime::request::Request;
use crate::runtime::snapshot;
use crate::version::{ExpectedVersion, StreamVersion};

/// A command of a batch and what was decided for it.
pub(super) struct Member<A: Aggregate> {
    request: Request<A>,
    reply: oneshot::Sender<Reply<A>>,
    decided: Decided<A>,
}

enum Decided<A: Aggregate> {
    /// Events, applied to the state and queued for the shared append.
    Events(Vec<A::Event>),
    /// Nothing to append: an empty decision (`Ok`) or a refusal.
    Quiet(Result<(), A::Error>),
}

impl<A: Aggregate> Member<A> {
    /// Answers a member of the batch of an actor that is dying: an append
    /// that may be stored is an unknown outcome; anything else is routed
    /// again.
    pub(super) fn abandon(self, id: &str, appending: bool) {
        let reply = match self.decided {
            Decided::Events(_) if appending => Reply::Done(Err(ExecuteError::OutcomeUnknown {
                aggregate: A::NAME,
                id: id.to_owned(),
                command_id: self.request.id,
                cause: Unknown::Interrupted,
            })),
            _ => return reroute(self.request, self.reply),
        };
        let _ = self.reply.send(reply);
    }

    fn answer(self, result: Result<CommandOutcome<A>, ExecuteError<A::Error>>) {
        // The caller may have given up waiting; the command stands anyway.
        let _ = self.reply.send(Reply::Done(result));
    }
}

/// A command the actor took from its mailbox and handles later (see
/// `Actor::held`).
pub(super) struct Held<A: Aggregate> {
    pub(super) msg: Msg<A>,
    /// Runs on its own, never in a batch: a command a refused batch runs
    /// again, or one whose decision panicked.
    pub(super) alone: bool,
}

impl<A: Aggregate> Held<A> {
    /// Sends the command back to its caller to be routed to a fresh actor.
    pub(super) fn reroute(self) {
        reroute(self.msg.request, self.msg.reply);
    }
}

/// Sends `request` back to its caller for a fresh actor, in line again
/// (or drops it if its caller gave up meanwhile: nothing of it is stored).
fn reroute<A: Aggregate>(request: Request<A>, reply: oneshot::Sender<Reply<A>>) {
    if request.requeue() {
        let _ = reply.send(Reply::Reroute(request));
    }
}

/// Above this many events a batch takes no more commands, well below what
/// one append may carry (`store::MAX_BATCH_EVENTS`).
const MAX_BATCH_EVENTS: usize = 1_024;

/// The batch as decided: its members, their events as envelopes, and what
/// ended it.
struct Decisions<A: Aggregate> {
    members: Vec<Member<A>>,
    envelopes: Vec<NewEvent>,
    /// Applying the last member's events panicked: the state is lost.
    broken: bool,
    /// A command whose decision panicked (or whose events did not
    /// serialize with a panic): it runs alone after the batch, where the
    /// panic is handled as always.
    alone: Option<Msg<A>>,
}

impl<A: Aggregate> Actor<A> {
    /// Whether `msg` starts a batch: batching is on, the actor is loaded
    /// and uncontended, more commands wait, and `msg` may join one.
    pub(super) fn starts_batch(&self, msg: &Msg<A>) -> bool {
        self.max_batch > 1
            && self.loaded.is_some()
            && !self.contention.is_open()
            && !(self.mailbox.is_empty() && self.held.is_empty())
            && !msg.request.repeatable
    }

    /// The next command that may join the batch: the next held one, else
    /// the next in the mailbox. One that may not join stays (or is held)
    /// first in line, and ends the batch.
    fn next_for_batch(&mut self) -> Option<Msg<A>> {
        match self.held.front() {
            Some(held) if held.alone || held.msg.request.repeatable => None,
            Some(_) => self.held.pop_front().map(|held| held.msg),
            None => match self.mailbox.try_recv() {
                Ok(msg) if !msg.request.repeatable => Some(msg),
                Ok(msg) => {
                    self.held.push_back(Held { msg, alone: false });
                    None
                }
                Err(_) => None,
            },
        }
    }

    /// Runs the batch that starts with `first`: decides each command, appends
    /// their events in one write and answers each. Commands that must run
    /// on their own afterwards are left first in `held`.
    pub(super) async fn handle_batch(&mut self, first: Msg<A>) -> Next {
        let Some(mut loaded) = self.loaded.take() else { return self.handle(first).await };
        let base = loaded.version;
        let Decisions { members, envelopes, broken, alone } = self.decide_batch(first, &mut loaded);
        if let Some(Msg { request, reply }) = alone {
            // Started already: in line again, first, to run on its own.
            if request.requeue() {
                self.held.push_front(Held { msg: Msg { request, reply }, alone: true });
            }
        }
        let span = tracing::debug_span!("batch", commands = members.len(), events = envelopes.len());
        if members.is_empty() {
            self.loaded = Some(loaded);
            Next::Continue
        } else if envelopes.is_empty() {
            self.confirm_quiet(members, loaded, base).instrument(span).await
        } else {
            self.append_batch(members, envelopes, loaded, base, broken).instrument(span).await
        }
    }

    /// Decides `first` and the commands waiting behind it that may join,
    /// each on the state its predecessors left (their events applied).
    fn decide_batch(&mut self, first: Msg<A>, loaded: &mut Loaded<A>) -> Decisions<A> {
        let mut batch = Decisions { members: Vec::new(), envelopes: Vec::new(), broken: false, alone: None };
        let mut msg = Some(first);
        while let Some(Msg { request, reply }) = msg.take() {
            // A caller that gave up before the command's turn came: skip it.
            if request.start() && !self.decide_member(request, reply, loaded, &mut batch) {
                break;
            }
            if batch.members.len() >= self.max_batch || batch.envelopes.len() >= MAX_BATCH_EVENTS {
                break;
            }
            msg = self.next_for_batch();
        }
        batch
    }

    /// Decides one command of the batch and adds it; false when the batch
    /// ends with it.
    fn decide_member(
        &self,
        request: Request<A>,
        reply: oneshot::Sender<Reply<A>>,
        loaded: &mut Loaded<A>,
        batch: &mut Decisions<A>,
    ) -> bool {
        let events = match decide(&loaded.state, request.command.clone(), &self.id) {
            Ok(events) if !events.is_empty() => events.into_vec(),
            Ok(_) => {
                batch.members.push(Member { request, reply, decided: Decided::Quiet(Ok(())) });
                return true;
            }
            Err(ExecuteError::Rejected(refusal)) => {
                batch.members.push(Member { request, reply, decided: Decided::Quiet(Err(refusal)) });
                return true;
            }
            Err(_) => {
                batch.alone = Some(Msg { request, reply });
                return false;
            }
        };
        match encode_guarded::<A>(&events, &request, &self.id) {
            Err(ExecuteError::Panicked { .. }) => {
                batch.alone = Some(Msg { request, reply });
                false
            }
            Err(error) => {
                let _ = reply.send(Reply::Done(Err(error)));
                true
            }
            Ok(_) if !request.appending() => {
                // The caller's deadline passed before the append.
                let (aggregate, id, command_id) = (A::NAME, self.id.to_string(), request.id);
                let _ = reply.send(Reply::Done(Err(ExecuteError::Timeout { aggregate, id, command_id })));
                true
            }
            Ok(envelopes) => {
                batch.broken =
                    events.iter().any(|event| apply_guarded(&mut loaded.state, event, &self.id).is_err());
                batch.envelopes.extend(envelopes);
                batch.members.push(Member { request, reply, decided: Decided::Events(events) });
                !batch.broken
            }
        }
    }

    /// A batch that appends nothing: its answers rest on the state, so
    /// when other processes may write the store the stream's head is
    /// checked first; if it moved, the commands run one by one.
    async fn confirm_quiet(
        &mut self,
        members: Vec<Member<A>>,
        loaded: Loaded<A>,
        base: Option<StreamVersion>,
    ) -> Next {
        let Some(confirm) = self.shared.upgrade().map(|shared| shared.config.confirm_decisions) else {
            return self.one_by_one(members);
        };
        let members = if confirm {
            // Held where `Drop` finds them while the head is read.
            self.batch = members;
            let head = self.events.stream_version(&self.stream).await;
            let members = std::mem::take(&mut self.batch);
            match head {
                Ok(head) if head == base => members,
                Ok(_) => {
                    self.stats.stale_decision();
                    return self.one_by_one(members);
                }
                // Each command meets the store's trouble on its own.
                Err(_) => return self.one_by_one(members),
            }
        } else {
            members
        };
        self.loaded = Some(loaded);
        self.answer_stored(members, Vec::new(), base);
        Next::Continue
    }

    /// Appends the batch's events in one write at the version the state
    /// was loaded at, and answers each member with its share.
    async fn append_batch(
        &mut self,
        members: Vec<Member<A>>,
        envelopes: Vec<NewEvent>,
        mut loaded: Loaded<A>,
        base: Option<StreamVersion>,
        broken: bool,
    ) -> Next {
        self.batch = members;
        let started = std::time::Instant::now();
        self.appending.store(true, Ordering::Relaxed);
        let appended = self
            .events
            .append(&self.stream, ExpectedVersion::from_current(base), envelopes)
            .instrument(tracing::debug_span!("append"))
            .await;
        self.appending.store(false, Ordering::Relaxed);
        // A member whose append stored or may have stored stays
        // `APPENDING`: a caller who gives up from now on hears that the
        // outcome is unknown to it, never that nothing was stored.
        let members = std::mem::take(&mut self.batch);
        self.stats.append_took::<A>(started.elapsed());
        match appended {
            Ok(stored) => {
                self.contention.succeeded();
                loaded.version = stored.stream_version;
                let mut members = members;
                let panicked = if broken { members.pop() } else { None };
                if panicked.is_some() {
                    // Applying the last member's events panicked after they
                    // were stored: the state can no longer be trusted. Leave
                    // the registry first, so answered callers' next commands
                    // already find a fresh actor.
                    self.stats.panics.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(aggregate = A::NAME, id = %self.id, "aggregate code panicked; stopping its actor");
                    if let Some(shared) = self.shared.upgrade() {
                        shared.registry.remove::<A>(&self.id, self.generation);
                    }
                }
                self.answer_stored(members, stored.committed, base);
                if let Some(member) = panicked {
                    let (aggregate, id) = (A::NAME, self.id.to_string());
                    member.answer(Err(ExecuteError::Panicked { aggregate, id, appended: true }));
                    return Next::Die;
                }
                if let Some(shared) = self.shared.upgrade() {
                    snapshot::after_append(&shared, &self.stream, &loaded, base);
                }
                self.loaded = Some(loaded);
                Next::Continue
            }
            Err(error) if error.outcome_unknown() => {
                let message = error.to_string();
                let mut error = Some(error);
                let mut again = Vec::new();
                for member in members {
                    match member.decided {
                        Decided::Events(_) => {
                            let cause = error.take().unwrap_or_else(|| AppendError::OutcomeUnknown {
                                stream: self.stream.clone(),
                                source: message.clone().into(),
                            });
                            let command_id = member.request.id;
                            member.answer(Err(ExecuteError::OutcomeUnknown {
                                aggregate: A::NAME,
                                id: self.id.to_string(),
                                command_id,
                                cause: Unknown::Store(Box::new(cause)),
                            }));
                        }
                        Decided::Quiet(_) => again.push(member),
                    }
                }
                self.one_by_one(again)
            }
            Err(error) => {
                if let AppendError::WrongExpectedVersion { .. } = error {
                    self.stats.conflict::<A>();
                    if let Some(shared) = self.shared.upgrade() {
                        self.contention.conflicted(&shared.config.backoff);
                    }
                }
                tracing::debug!(%error, "the batch's append stored nothing; running its commands one by one");
                self.one_by_one(members)
            }
        }
    }

    /// Answers each member of a stored batch: its events' placements are
    /// the next `n` of `committed`, in order.
    fn answer_stored(&self, members: Vec<Member<A>>, committed: Vec<Committed>, base: Option<StreamVersion>) {
        if members.len() > 1 {
            self.stats.batch::<A>(members.len());
        }
        let mut committed = committed.into_iter();
        let mut version = base;
        for member in members {
            let command_id = member.request.id;
            let Member { reply, decided, .. } = member;
            let result = match decided {
                Decided::Events(events) => {
                    let placed: Vec<Committed> = committed.by_ref().take(events.len()).collect();
                    version = placed.last().map(|c| c.stream_version).or(version);
                    Ok(CommandOutcome::new(&self.id, command_id, version, events, placed))
                }
                Decided::Quiet(Ok(())) => {
                    Ok(CommandOutcome::new(&self.id, command_id, version, Vec::new(), Vec::new()))
                }
                Decided::Quiet(Err(refusal)) => Err(ExecuteError::Rejected(refusal)),
            };
            let _ = reply.send(Reply::Done(result));
        }
    }

    /// Puts `members` first in line to run one by one on a reloaded state,
    /// as without batching (a member whose caller gave up is dropped:
    /// nothing of it is stored).
    fn one_by_one(&mut self, members: Vec<Member<A>>) -> Next {
        self.loaded = None;
        if !members.is_empty() {
            self.stats.batch_fallback::<A>();
        }
        for Member { request, reply, .. } in members.into_iter().rev() {
            if request.requeue() {
                self.held.push_front(Held { msg: Msg { request, reply }, alone: true });
            }
        }
        Next::Continue
    }
}
