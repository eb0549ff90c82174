//! Rehydration: rebuilding an aggregate's state from its snapshot and events.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;

use tracing::Instrument;

use crate::aggregate::Aggregate;
use crate::envelope::ReplayEvent;
use crate::error::{DecodeError, LoadError};
use crate::event::EventSet;
use crate::store::{EventStore, SnapshotStore};
use crate::version::{StreamId, StreamVersion};

/// An aggregate state and the version of the last event folded into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The version of the last event applied (`None`: no events).
    pub version: Option<StreamVersion>,
}

/// Decodes one stored event of `stream` into the aggregate's event enum.
pub(crate) fn decode<A: Aggregate>(stream: &StreamId, event: ReplayEvent) -> Result<A::Event, DecodeError> {
    let ReplayEvent { stream_version, event_type, schema_version, payload } = event;
    A::Event::from_stored(&event_type, schema_version, &payload).map_err(|kind| DecodeError {
        stream: stream.clone(),
        version: stream_version,
        event_type,
        schema_version,
        kind,
    })
}

/// Rebuilds the state of `stream` up to `up_to` (inclusive; `None`: the
/// newest event), starting from the newest usable snapshot.
pub(crate) async fn rehydrate<A: Aggregate>(
    events: &dyn EventStore,
    snapshots: Option<&dyn SnapshotStore>,
    stream: &StreamId,
    id: &str,
    up_to: Option<StreamVersion>,
) -> Result<Loaded<A>, LoadError> {
    let span = tracing::debug_span!(
        "rehydrate",
        aggregate = A::NAME,
        id,
        from_snapshot = tracing::field::Empty,
        events = tracing::field::Empty
    );
    let fut = async {
        let mut loaded = Loaded { state: A::default(), version: None };
        if let Some(snapshots) = snapshots {
            if let Some(snapshot) = snapshots.load_snapshot(stream).await? {
                let usable = snapshot.schema_version == A::SNAPSHOT_VERSION
                    && up_to.is_none_or(|limit| snapshot.stream_version <= limit);
                if usable {
                    match serde_json::from_value::<A>(snapshot.state) {
                        Ok(state) => {
                            loaded = Loaded { state, version: Some(snapshot.stream_version) };
                            tracing::Span::current().record("from_snapshot", snapshot.stream_version.get());
                        }
                        Err(error) => tracing::warn!(
                            aggregate = A::NAME, id, %error,
                            "snapshot does not deserialize; replaying from the first event"
                        ),
                    }
                } else {
                    tracing::debug!(
                        aggregate = A::NAME,
                        id,
                        snapshot_version = snapshot.schema_version,
                        current = A::SNAPSHOT_VERSION,
                        "ignoring snapshot"
                    );
                }
            }
        }
        let applied = catch_up(events, stream, id, &mut loaded, up_to).await?;
        tracing::Span::current().record("events", applied);
        Ok(loaded)
    };
    fut.instrument(span).await
}

/// Applies every event of `stream` after `loaded.version` (up to `up_to`)
/// to `loaded`, as the store hands them over ([`EventStore::replay`]: one
/// streamed read where the adapter has one), so only one event is held at a
/// time. Returns how many events were applied.
pub(crate) async fn catch_up<A: Aggregate>(
    events: &dyn EventStore,
    stream: &StreamId,
    id: &str,
    loaded: &mut Loaded<A>,
    up_to: Option<StreamVersion>,
) -> Result<u64, LoadError> {
    let from = match loaded.version {
        None => StreamVersion::FIRST,
        Some(version) => match version.get().checked_add(1) {
            Some(next) => StreamVersion(next),
            // Only a corrupt snapshot claims the last version: nothing can follow it.
            None => return Ok(0),
        },
    };
    if up_to.is_some_and(|limit| from > limit) {
        return Ok(0);
    }
    let mut applied = 0;
    let mut failed = None;
    let mut fold = |recorded: ReplayEvent| {
        let version = recorded.stream_version;
        if up_to.is_some_and(|limit| version > limit) {
            return ControlFlow::Break(());
        }
        let folded = decode::<A>(stream, recorded)
            .map_err(LoadError::from)
            .and_then(|event| apply_guarded(&mut loaded.state, &event, id));
        match folded {
            Ok(()) => {
                loaded.version = Some(version);
                applied += 1;
                ControlFlow::Continue(())
            }
            Err(error) => {
                failed = Some(error);
                ControlFlow::Break(())
            }
        }
    };
    events.replay(stream, from, up_to, &mut fold).await?;
    match failed {
        Some(error) => Err(error),
        None => Ok(applied),
    }
}

/// Applies one event, turning a panic in user code into a typed error.
pub(crate) fn apply_guarded<A: Aggregate>(
    state: &mut A,
    event: &A::Event,
    id: &str,
) -> Result<(), LoadError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| state.apply_event(event)))
        .map_err(|_| LoadError::Panicked { aggregate: A::NAME, id: id.to_owned() })
}
