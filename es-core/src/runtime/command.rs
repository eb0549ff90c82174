//! The command path: validate, rehydrate, decide, append, retry on conflict.

use std::panic::AssertUnwindSafe;

use tracing::Instrument;

use super::rehydrate::{self, Loaded};
use super::Shared;
use crate::aggregate::{Aggregate, Command, Events};
use crate::envelope::{AppendOutcome, Committed, Metadata, NewEvent, Snapshot, Timestamp};
use crate::error::{AppendError, EncodeError, ExecuteError};
use crate::event::EventSet;
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
            Ok(NewEvent::new(A::NAME, event.event_type(), event.schema_version(), payload)
                .with_metadata(metadata.clone()))
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

/// The reload-per-command path: every attempt rebuilds the aggregate from
/// the store. Correct on any number of nodes, O(history) per command.
pub(crate) async fn execute<C: Command>(
    shared: &Shared,
    command: C,
    metadata: Metadata,
) -> Result<CommandOutcome<C::Aggregate>, ExecuteError<<C::Aggregate as Aggregate>::Error>>
where
    C::Aggregate: Aggregate,
{
    command.validate()?;
    let id = command.aggregate_id();
    let span = tracing::debug_span!("command", aggregate = <C::Aggregate as Aggregate>::NAME, command = C::NAME, id = %id);
    execute_reloading::<C::Aggregate, C>(shared, id, command, metadata).instrument(span).await
}

async fn execute_reloading<A: Aggregate, C: Command<Aggregate = A>>(
    shared: &Shared,
    id: String,
    command: C,
    metadata: Metadata,
) -> Result<CommandOutcome<A>, ExecuteError<A::Error>> {
    let stream = StreamId::for_aggregate(A::NAME, &id);
    let command = command.into_aggregate_command();
    let mut attempts = 0;
    while attempts < shared.config.max_attempts {
        attempts += 1;
        let mut loaded: Loaded<A> =
            rehydrate::rehydrate(shared.events.as_ref(), shared.snapshots.as_deref(), &stream, &id, None)
                .await?;
        let decided = handle_guarded(&loaded.state, command.clone(), &id)?;
        match append_decided(shared, &stream, &id, &mut loaded, decided, &metadata).await {
            Ok(outcome) => return Ok(outcome),
            Err(AttemptError::Conflict(error)) => {
                tracing::debug!(attempt = attempts, %error, "concurrency conflict; retrying");
            }
            Err(AttemptError::Fatal(error)) => return Err(error),
        }
    }
    Err(ExecuteError::Conflict { stream, attempts })
}

pub(crate) enum AttemptError<E> {
    Conflict(AppendError),
    Fatal(ExecuteError<E>),
}

/// Appends decided events at `loaded.version`, applies them, and snapshots
/// when due. On success `loaded` holds the new state and version.
pub(crate) async fn append_decided<A: Aggregate>(
    shared: &Shared,
    stream: &StreamId,
    id: &str,
    loaded: &mut Loaded<A>,
    decided: Events<A>,
    metadata: &Metadata,
) -> Result<CommandOutcome<A>, AttemptError<A::Error>> {
    let events = decided.into_vec();
    if events.is_empty() {
        return Ok(CommandOutcome {
            aggregate_id: id.to_owned(),
            version: loaded.version,
            position: None,
            events,
            committed: Vec::new(),
        });
    }
    let envelopes = encode::<A>(&events, metadata).map_err(|e| AttemptError::Fatal(e.into()))?;
    let expected = ExpectedVersion::from_current(loaded.version);
    let outcome: AppendOutcome = match shared
        .events
        .append(stream, expected, envelopes)
        .instrument(tracing::debug_span!("append", events = events.len()))
        .await
    {
        Ok(outcome) => outcome,
        Err(error @ AppendError::WrongExpectedVersion { .. }) => return Err(AttemptError::Conflict(error)),
        Err(error) => return Err(AttemptError::Fatal(ExecuteError::Append(error))),
    };
    let before = loaded.version;
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
    maybe_snapshot(shared, stream, loaded, before).await;
    Ok(CommandOutcome {
        aggregate_id: id.to_owned(),
        version: outcome.stream_version,
        position: outcome.last_position(),
        events,
        committed: outcome.committed,
    })
}

/// Saves a snapshot if the append crossed a multiple of the aggregate's
/// snapshot interval. A failed snapshot is logged, never fatal: the events
/// are the truth.
pub(crate) async fn maybe_snapshot<A: Aggregate>(
    shared: &Shared,
    stream: &StreamId,
    loaded: &Loaded<A>,
    before: Option<StreamVersion>,
) {
    let (Some(every), Some(snapshots), Some(now)) =
        (shared.aggregate_config::<A>().snapshot_every, shared.snapshots.as_ref(), loaded.version)
    else {
        return;
    };
    let before = before.map_or(0, StreamVersion::get);
    if every == 0 || before / every == now.get() / every {
        return;
    }
    let state = match serde_json::to_value(&loaded.state) {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!(aggregate = A::NAME, %stream, %error, "aggregate state does not serialize; no snapshot taken");
            return;
        }
    };
    let snapshot = Snapshot {
        stream_id: stream.clone(),
        aggregate_type: A::NAME.to_owned(),
        stream_version: now,
        schema_version: A::SNAPSHOT_VERSION,
        state,
        taken_at: Timestamp::now(),
    };
    if let Err(error) = snapshots.save_snapshot(snapshot).await {
        tracing::warn!(aggregate = A::NAME, %stream, %error, "saving snapshot failed");
    }
}
