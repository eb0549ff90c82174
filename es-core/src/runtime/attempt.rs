//! One command, decided and appended: the loop both command paths share.
//!
//! ```text
//! decide on the state ──► events? ──no──► confirm against the stream head ──► answer
//!        ▲                  │yes              (moved: catch up, decide again)
//!        │                  ▼
//!   wait, catch up ◄── append at the state's version ──► apply, answer
//!   (jittered backoff)   (conflict)
//! ```
//!
//! A decision with events is confirmed by its append (the store refuses it
//! if the stream moved). A new actor with no snapshot to start from may
//! assume its aggregate is new (`EsBuilder::assume_new_aggregates`): it
//! decides on the default state, so a new aggregate's command costs one
//! append and no read; a refused append or a moved head then loads the
//! stream and decides again. A refusal or an empty decision appends nothing, so
//! when other processes may write the store it is confirmed against the
//! stream's head first: no answer is ever based on a state the store
//! contradicts. A command whose id may have run before (the caller gave it,
//! or a handler derived it) is checked against what that id stored, so a
//! retry after an unknown outcome returns the original outcome.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Instrument;

use super::backoff::{Backoff, Contention};
use super::ids;
use super::outcome::CommandOutcome;
use super::rehydrate::{self, Loaded};
use super::request::Request;
use super::stats::Stats;
use crate::aggregate::{Aggregate, Events};
use crate::envelope::{Committed, Metadata, NewEvent, RecordedEvent};
use crate::error::{AppendError, EncodeError, ExecuteError, LoadError, Unknown};
use crate::event::EventSet;
use crate::store::EventStore;
use crate::version::{CommandId, EventId, ExpectedVersion, StreamId, StreamVersion};

/// What one command's attempts run against.
pub(crate) struct Attempts<'a> {
    pub(crate) events: &'a dyn EventStore,
    pub(crate) stream: &'a StreamId,
    pub(crate) id: &'a str,
    pub(crate) stats: &'a Stats,
    pub(crate) backoff: Backoff,
    /// Other processes may write the store: confirm decisions that append
    /// nothing.
    pub(crate) confirm: bool,
    /// The state is the aggregate's default, assumed (not read) for a new
    /// aggregate: a quiet decision is confirmed whatever `confirm` says,
    /// and a refused append is a wrong guess, not a lost race.
    pub(crate) assumed: bool,
    /// Set while an append is in flight, for an actor that must say so if
    /// it ends meanwhile.
    pub(crate) appending: Option<&'a AtomicBool>,
}

/// How the attempts ended, for the caller's bookkeeping.
pub(crate) struct Ran<A: Aggregate> {
    pub(crate) result: Result<CommandOutcome<A>, ExecuteError<A::Error>>,
    /// `loaded` may no longer match the store (an append's outcome is
    /// unknown, or applying its events panicked): load it afresh.
    pub(crate) state_unsure: bool,
}

impl<A: Aggregate> Ran<A> {
    fn sure(result: Result<CommandOutcome<A>, ExecuteError<A::Error>>) -> Self {
        Self { result, state_unsure: false }
    }
}

impl Attempts<'_> {
    /// Runs `request` against `loaded` until it is answered. On success
    /// `loaded` holds the new state.
    ///
    /// `contention` is what this node knows of the stream's contention (see
    /// [`Contention`]): while it is open, the command first waits a random
    /// time within it and reads what others wrote.
    pub(crate) async fn run<A: Aggregate>(
        &self,
        loaded: &mut Loaded<A>,
        request: &mut Request<A>,
        contention: &mut Contention,
    ) -> Ran<A> {
        // `&mut`, and no shared borrow of it across an await: that would
        // need the command to be `Sync`.
        let mut assumed = self.assumed;
        if contention.is_open() {
            tokio::time::sleep(contention.pause()).await;
            if let Err(error) = self.catch_up(loaded).await {
                return Ran::sure(Err(error));
            }
            assumed = false;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let decided = match decide(&loaded.state, request.command.clone(), self.id) {
                Ok(events) => Ok(events.into_vec()),
                Err(ExecuteError::Rejected(refusal)) => Err(refusal),
                Err(other) => return Ran::sure(Err(other)),
            };
            let events = match decided {
                Ok(events) if !events.is_empty() => events,
                quiet => {
                    // Nothing to append: confirm the state the answer rests on.
                    if self.confirm || assumed {
                        match self.stale(loaded).await {
                            Ok(false) => {}
                            Ok(true) if assumed => {
                                // Not new after all: load it and decide again.
                                assumed = false;
                                attempt -= 1;
                                self.stats.rehydration::<A>();
                                if let Err(error) = self.catch_up(loaded).await {
                                    return Ran::sure(Err(error));
                                }
                                continue;
                            }
                            Ok(true) if attempt < self.backoff.max_attempts => {
                                self.stats.stale_decision();
                                if let Err(error) = self.catch_up(loaded).await {
                                    return Ran::sure(Err(error));
                                }
                                continue;
                            }
                            Ok(true) => {
                                return Ran::sure(Err(ExecuteError::Conflict {
                                    stream: self.stream.clone(),
                                    attempts: attempt,
                                }))
                            }
                            Err(error) => return Ran::sure(Err(error)),
                        }
                    }
                    if request.repeatable {
                        match self.recorded::<A>(request.id).await {
                            Ok(Some(original)) => return Ran::sure(Ok(original)),
                            Ok(None) => {}
                            Err(error) => return Ran::sure(Err(error)),
                        }
                    }
                    return Ran::sure(match quiet {
                        Ok(_) => Ok(self.outcome(request.id, loaded.version, Vec::new(), Vec::new())),
                        Err(refusal) => Err(ExecuteError::Rejected(refusal)),
                    });
                }
            };
            let envelopes = match encode_guarded::<A>(&events, request, self.id) {
                Ok(envelopes) => envelopes,
                Err(error) => return Ran::sure(Err(error)),
            };
            if !request.appending() {
                // The caller's deadline passed before the append was sent.
                return Ran::sure(Err(ExecuteError::Timeout {
                    aggregate: A::NAME,
                    id: self.id.to_owned(),
                    command_id: request.id,
                }));
            }
            let expected = ExpectedVersion::from_current(loaded.version);
            let started = std::time::Instant::now();
            if let Some(flag) = self.appending {
                flag.store(true, Ordering::Relaxed);
            }
            let appended = self
                .events
                .append(self.stream, expected, envelopes)
                .instrument(tracing::debug_span!("append", events = events.len(), attempt))
                .await;
            if let Some(flag) = self.appending {
                flag.store(false, Ordering::Relaxed);
            }
            self.stats.append_took::<A>(started.elapsed());
            match appended {
                Ok(stored) => {
                    tracing::Span::current().record("attempts", attempt);
                    contention.succeeded();
                    for event in &events {
                        if rehydrate::apply_guarded(&mut loaded.state, event, self.id).is_err() {
                            return Ran {
                                result: Err(ExecuteError::Panicked {
                                    aggregate: A::NAME,
                                    id: self.id.to_owned(),
                                    appended: true,
                                }),
                                state_unsure: true,
                            };
                        }
                    }
                    loaded.version = stored.stream_version;
                    let outcome = self.outcome(request.id, stored.stream_version, events, stored.committed);
                    return Ran::sure(Ok(outcome));
                }
                Err(AppendError::WrongExpectedVersion { .. }) if assumed => {
                    // The aggregate exists: nothing was written. Load it
                    // and decide again; no race was lost, so no backoff.
                    request.appended();
                    assumed = false;
                    attempt -= 1;
                    self.stats.rehydration::<A>();
                    if let Err(error) = self.catch_up(loaded).await {
                        return Ran::sure(Err(error));
                    }
                }
                Err(conflict @ AppendError::WrongExpectedVersion { .. }) => {
                    request.appended();
                    self.stats.conflict::<A>();
                    contention.conflicted(&self.backoff);
                    tracing::debug!(attempt, error = %conflict, "another writer changed the stream; catching up");
                    if attempt < self.backoff.max_attempts {
                        // Wait first, then catch up: what others write while
                        // we wait is read before deciding again.
                        self.stats.retry::<A>();
                        tokio::time::sleep(self.backoff.delay(attempt)).await;
                    }
                    // Catch up also after the last attempt: a stale actor
                    // would otherwise conflict on every later command too.
                    if let Err(error) = self.catch_up(loaded).await {
                        return Ran::sure(Err(error));
                    }
                    if attempt >= self.backoff.max_attempts {
                        return Ran::sure(Err(ExecuteError::Conflict {
                            stream: self.stream.clone(),
                            attempts: attempt,
                        }));
                    }
                }
                Err(AppendError::DuplicateEventId { event_id, .. })
                    if request.repeatable && ours(request, event_id, events.len()) =>
                {
                    // This command id stored its events before (a retry after
                    // an unknown outcome): answer with what it stored.
                    return match self.recorded::<A>(request.id).await {
                        Ok(Some(original)) => Ran::sure(Ok(original)),
                        Ok(None) => Ran::sure(Err(ExecuteError::Append(AppendError::DuplicateEventId {
                            event_id,
                            stream: self.stream.clone(),
                        }))),
                        Err(error) => Ran::sure(Err(error)),
                    };
                }
                Err(error) if error.outcome_unknown() => {
                    return Ran {
                        result: Err(ExecuteError::OutcomeUnknown {
                            aggregate: A::NAME,
                            id: self.id.to_owned(),
                            command_id: request.id,
                            cause: Unknown::Store(Box::new(error)),
                        }),
                        state_unsure: true,
                    };
                }
                Err(error) => return Ran::sure(Err(ExecuteError::Append(error))),
            }
        }
    }

    fn outcome<A: Aggregate>(
        &self,
        command_id: CommandId,
        version: Option<StreamVersion>,
        events: Vec<A::Event>,
        committed: Vec<Committed>,
    ) -> CommandOutcome<A> {
        CommandOutcome::new(self.id, command_id, version, events, committed)
    }

    /// Whether the stream moved past `loaded`.
    async fn stale<A: Aggregate>(&self, loaded: &Loaded<A>) -> Result<bool, ExecuteError<A::Error>> {
        let head = self
            .events
            .stream_version(self.stream)
            .instrument(tracing::debug_span!("confirm"))
            .await
            .map_err(|error| ExecuteError::Load(LoadError::Store(error)))?;
        Ok(head != loaded.version)
    }

    async fn catch_up<A: Aggregate>(&self, loaded: &mut Loaded<A>) -> Result<(), ExecuteError<A::Error>> {
        Box::pin(rehydrate::catch_up(self.events, self.stream, self.id, loaded, None))
            .instrument(tracing::debug_span!("catch_up"))
            .await
            .map(drop)
            .map_err(|error| load_failed::<A>(error, self.id))
    }

    /// What `request`'s id stored before, if it did: its events, decoded,
    /// with their placement.
    async fn recorded<A: Aggregate>(
        &self,
        command_id: CommandId,
    ) -> Result<Option<CommandOutcome<A>>, ExecuteError<A::Error>> {
        const PAGE: usize = 16;
        let store_error = |error| ExecuteError::Load(LoadError::Store(error));
        let mut found: Vec<RecordedEvent> = Vec::new();
        loop {
            let ids: Vec<EventId> =
                (found.len()..found.len() + PAGE).map(|n| ids::event_id(command_id, n)).collect();
            let mut page = self.events.events_by_id(&ids).await.map_err(store_error)?;
            let complete = page.len() < PAGE;
            page.sort_by_key(|e| e.stream_version);
            found.extend(page);
            if complete {
                break;
            }
        }
        let Some(last) = found.last() else { return Ok(None) };
        if let Some(elsewhere) = found.iter().find(|e| &e.stream_id != self.stream) {
            return Err(ExecuteError::CommandIdReused {
                command_id,
                stream: self.stream.clone(),
                ran_on: elsewhere.stream_id.clone(),
            });
        }
        let version = Some(last.stream_version);
        let committed = found
            .iter()
            .map(|e| Committed {
                event_id: e.event_id,
                stream_version: e.stream_version,
                global_position: e.global_position,
            })
            .collect();
        let events = found
            .into_iter()
            .map(|e| rehydrate::decode::<A>(self.stream, e.into()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ExecuteError::Load(LoadError::Decode(error)))?;
        tracing::debug!(%command_id, "the command id ran before: answering with what it stored");
        Ok(Some(self.outcome(command_id, version, events, committed)))
    }
}

/// Whether `event_id` is one of the ids `request`'s `count` events got.
fn ours<A: Aggregate>(request: &Request<A>, event_id: EventId, count: usize) -> bool {
    (0..count).any(|n| ids::event_id(request.id, n) == event_id)
}

/// Runs `handle_command`, turning a refusal into [`ExecuteError::Rejected`]
/// and a panic in user code into [`ExecuteError::Panicked`].
pub(crate) fn decide<A: Aggregate>(
    state: &A,
    command: A::Command,
    id: &str,
) -> Result<Events<A>, ExecuteError<A::Error>> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| state.handle_command(command))) {
        Ok(Ok(events)) => Ok(events),
        Ok(Err(refusal)) => Err(ExecuteError::Rejected(refusal)),
        Err(_) => Err(ExecuteError::Panicked { aggregate: A::NAME, id: id.to_owned(), appended: false }),
    }
}

/// The metadata of a command's events: the caller's, with causation and
/// correlation defaulting to the command id.
fn event_metadata<A: Aggregate>(request: &Request<A>) -> Metadata {
    let mut metadata = request.metadata.as_deref().cloned().unwrap_or_default();
    let command = request.id.as_uuid();
    metadata.causation_id.get_or_insert(command);
    metadata.correlation_id.get_or_insert(command);
    metadata
}

/// Turns decided events into envelopes for the store, with ids derived from
/// the command id.
pub(crate) fn encode<A: Aggregate>(
    events: &[A::Event],
    request: &Request<A>,
) -> Result<Vec<NewEvent>, EncodeError> {
    let metadata = event_metadata(request);
    events
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let payload = event
                .to_payload()
                .map_err(|source| EncodeError { event_type: event.event_type(), source })?;
            Ok(NewEvent {
                event_id: ids::event_id(request.id, n),
                aggregate_type: A::NAME.to_owned(),
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                payload,
                metadata: metadata.clone(),
            })
        })
        .collect()
}

/// [`encode`], turning a panic in a user's `Serialize` impl into a typed error.
pub(crate) fn encode_guarded<A: Aggregate>(
    events: &[A::Event],
    request: &Request<A>,
    id: &str,
) -> Result<Vec<NewEvent>, ExecuteError<A::Error>> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| encode::<A>(events, request))) {
        Ok(Ok(envelopes)) => Ok(envelopes),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(ExecuteError::Panicked { aggregate: A::NAME, id: id.to_owned(), appended: false }),
    }
}

/// A failed load on the command path. A panic while applying stored
/// events is a panic in user code, reported as such.
pub(crate) fn load_failed<A: Aggregate>(error: LoadError, id: &str) -> ExecuteError<A::Error> {
    match error {
        LoadError::Panicked { .. } => {
            ExecuteError::Panicked { aggregate: A::NAME, id: id.to_owned(), appended: false }
        }
        other => ExecuteError::Load(other),
    }
}
