//! The command path: validate, then decide and append through the
//! aggregate's actor ([`CommandPath::Actors`]) or by reloading the
//! aggregate for every command ([`CommandPath::Reload`]).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::Instrument;

use super::config::CommandPath;
use super::es::Shared;
use super::rehydrate::{self, Loaded};
use super::{actor, snapshot};
use crate::aggregate::{Aggregate, Command, Events};
use crate::envelope::{AppendOutcome, Committed, Metadata, NewEvent};
use crate::error::{AppendError, EncodeError, ExecuteError, LoadError};
use crate::event::EventSet;
use crate::store::EventStore;
use crate::version::{ExpectedVersion, GlobalPosition, StreamId, StreamVersion};

/// What a successful command did.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOutcome<A: Aggregate> {
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The aggregate's version after the command (`None`: the command
    /// produced no events on an aggregate that has none).
    pub version: Option<StreamVersion>,
    /// The global position of the last appended event; wait for a read
    /// model to reach it to read your own writes. `None` if no event was
    /// appended.
    pub position: Option<GlobalPosition>,
    /// The events the command produced, in order.
    pub events: Vec<A::Event>,
    /// Where each event landed.
    pub committed: Vec<Committed>,
}

/// Turns decided events into envelopes for the store.
pub(crate) fn encode<A: Aggregate>(
    events: &[A::Event],
    metadata: &Metadata,
) -> Result<Vec<NewEvent>, EncodeError> {
    events
        .iter()
        .map(|event| {
            let payload = event
                .to_payload()
                .map_err(|source| EncodeError { event_type: event.event_type(), source })?;
            let mut envelope = NewEvent::new(A::NAME, event.event_type(), event.schema_version(), payload);
            if !metadata.is_empty() {
                envelope.metadata = metadata.clone();
            }
            Ok(envelope)
        })
        .collect()
}

/// Runs `handle_command`, turning a panic in user code into a typed error.
pub(crate) fn handle_guarded<A: Aggregate>(
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

/// The command path's entry: validates, then hands the command to its
/// aggregate's actor or reloads the aggregate, as configured.
pub(crate) async fn execute<C: Command>(
    shared: &Arc<Shared>,
    command: C,
    metadata: Metadata,
) -> Result<CommandOutcome<C::Aggregate>, ExecuteError<<C::Aggregate as Aggregate>::Error>> {
    command.validate()?;
    let id = command.aggregate_id();
    let span = tracing::debug_span!("command", aggregate = <C::Aggregate as Aggregate>::NAME, command = C::NAME, id = %id);
    let command = command.into_aggregate_command();
    match shared.config.command_path {
        CommandPath::Actors => {
            actor::execute::<C::Aggregate>(shared, id, command, metadata).instrument(span).await
        }
        CommandPath::Reload => {
            execute_reloading::<C::Aggregate>(shared, id, command, metadata).instrument(span).await
        }
    }
}

/// The reload-per-command path: every attempt rebuilds the aggregate from
/// the store. Correct on any number of nodes, O(history) per command.
async fn execute_reloading<A: Aggregate>(
    shared: &Shared,
    id: String,
    command: A::Command,
    metadata: Metadata,
) -> Result<CommandOutcome<A>, ExecuteError<A::Error>> {
    if shared.registry.is_shut_down() {
        return Err(ExecuteError::Shutdown);
    }
    let stream = StreamId::for_aggregate(A::NAME, &id);
    let snapshot_every = shared.aggregate_config::<A>().snapshot_every;
    let mut attempts = 0;
    while attempts < shared.config.max_attempts {
        attempts += 1;
        shared.stats.rehydrations.fetch_add(1, Ordering::Relaxed);
        let mut loaded: Loaded<A> =
            rehydrate::rehydrate(shared.events.as_ref(), shared.snapshots.as_deref(), &stream, &id, None)
                .await
                .map_err(|error| load_failed::<A>(error, &id))?;
        let decided = handle_guarded(&loaded.state, command.clone(), &id)?;
        let before = loaded.version;
        match append_decided(shared.events.as_ref(), &stream, &id, &mut loaded, decided, &metadata).await {
            Ok(mut outcome) => {
                if let Some(store) = &shared.snapshots {
                    if snapshot::due(snapshot_every, before, loaded.version) {
                        if let Some(taken) = snapshot::capture(&stream, &loaded) {
                            let (store, stats) = (Arc::clone(store), Arc::clone(&shared.stats));
                            tokio::spawn(async move { snapshot::save(store.as_ref(), taken, &stats).await });
                        }
                    }
                }
                outcome.aggregate_id = id;
                return Ok(outcome);
            }
            Err(AttemptError::Conflict(error)) => {
                shared.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(attempt = attempts, %error, "concurrency conflict; reloading and retrying");
            }
            Err(AttemptError::Fatal(error)) => return Err(error),
        }
    }
    Err(ExecuteError::Conflict { stream, attempts })
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

/// Why one attempt at a command did not succeed.
pub(crate) enum AttemptError<E> {
    /// Another writer changed the stream first: catch up and decide again.
    Conflict(AppendError),
    /// Anything else: give up with this error.
    Fatal(ExecuteError<E>),
}

/// Appends decided events at `loaded.version` and applies them. On success
/// `loaded` holds the new state and version. The outcome's `aggregate_id`
/// is left empty for the caller, who owns the id, to fill in.
pub(crate) async fn append_decided<A: Aggregate>(
    events_store: &dyn EventStore,
    stream: &StreamId,
    id: &str,
    loaded: &mut Loaded<A>,
    decided: Events<A>,
    metadata: &Metadata,
) -> Result<CommandOutcome<A>, AttemptError<A::Error>> {
    let events = decided.into_vec();
    if events.is_empty() {
        return Ok(CommandOutcome {
            aggregate_id: String::new(),
            version: loaded.version,
            position: None,
            events,
            committed: Vec::new(),
        });
    }
    let envelopes = encode_guarded::<A>(&events, metadata, id)?;
    let expected = ExpectedVersion::from_current(loaded.version);
    let outcome: AppendOutcome = match events_store
        .append(stream, expected, envelopes)
        .instrument(tracing::debug_span!("append", events = events.len()))
        .await
    {
        Ok(outcome) => outcome,
        Err(error @ AppendError::WrongExpectedVersion { .. }) => return Err(AttemptError::Conflict(error)),
        Err(error) => return Err(AttemptError::Fatal(ExecuteError::Append(error))),
    };
    for event in &events {
        if rehydrate::apply_guarded(&mut loaded.state, event, id).is_err() {
            return Err(AttemptError::Fatal(ExecuteError::Panicked {
                aggregate: A::NAME,
                id: id.to_owned(),
                appended: true,
            }));
        }
    }
    loaded.version = outcome.stream_version;
    Ok(CommandOutcome {
        aggregate_id: String::new(),
        version: outcome.stream_version,
        position: outcome.last_position(),
        events,
        committed: outcome.committed,
    })
}

/// [`encode`], turning a panic in a user's `Serialize` impl into a typed error.
fn encode_guarded<A: Aggregate>(
    events: &[A::Event],
    metadata: &Metadata,
    id: &str,
) -> Result<Vec<NewEvent>, AttemptError<A::Error>> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| encode::<A>(events, metadata))) {
        Ok(Ok(envelopes)) => Ok(envelopes),
        Ok(Err(error)) => Err(AttemptError::Fatal(error.into())),
        Err(_) => Err(AttemptError::Fatal(ExecuteError::Panicked {
            aggregate: A::NAME,
            id: id.to_owned(),
            appended: false,
        })),
    }
}
