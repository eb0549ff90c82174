//! The in-memory event store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, StoreError};
use es_core::store::{
    classify_stored, AppendOutcome, Committed, Direction, EventStore, ExpectedVersion, NewEvent,
    RecordedEvent, ReplayEvent, Snapshot, SnapshotStore, StreamSummary, Timestamp,
};
use es_core::{EventId, GlobalPosition, StreamId, StreamVersion};
use tokio::sync::watch;

/// An event store that keeps everything in memory.
///
/// One mutex guards the log; appends are short critical sections (no I/O),
/// so the lock is never held across an `.await`.
#[derive(Clone)]
pub struct InMemoryEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// The head position, published after every append so that waiting
    /// subscribers wake at once.
    head: watch::Sender<GlobalPosition>,
}

#[derive(Default)]
struct State {
    /// Every row in global order; `log[i]` has position `i + 1`.
    log: Vec<Row>,
    /// Indexes into `log`, per stream, in version order.
    streams: HashMap<StreamId, Vec<usize>>,
    /// Where each event id landed: its index in `log`.
    ids: HashMap<EventId, usize>,
    snapshots: HashMap<StreamId, Snapshot>,
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InMemoryEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryEventStore").finish_non_exhaustive()
    }
}

/// One row of the log: an event, or (planted by a test through
/// [`InMemoryEventStore::plant_corrupt_row`]) a row no envelope can be made
/// of, as a hand-edited database row would be.
enum Row {
    Event(Arc<RecordedEvent>),
    Corrupt { stream: StreamId },
}

impl Row {
    fn event(&self) -> Option<&RecordedEvent> {
        match self {
            Self::Event(event) => Some(event),
            Self::Corrupt { .. } => None,
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("in-memory event store lock poisoned by a panic in another task".into())
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        let (head, _) = watch::channel(GlobalPosition::START);
        Self { inner: Arc::new(Inner { state: Mutex::new(State::default()), head }) }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.inner.state.lock().map_err(|_| poisoned())
    }

    /// How many events the store holds (with any corrupt row a test planted).
    pub fn len(&self) -> usize {
        self.lock().map(|s| s.log.len()).unwrap_or(0)
    }

    /// Whether the store holds no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores, after everything stored so far, a row of `stream` that no
    /// envelope can be made of (its stream version is 0), as an operator's
    /// hand edit of a database could; returns its global position. The row
    /// belongs to no stream's index (stream reads do not see it), but
    /// [`read_all`](EventStore::read_all) stops at it as at any corrupt row.
    ///
    /// For the conformance suite's poison-row case: not part of the public
    /// API, and never needed by applications.
    #[doc(hidden)]
    pub fn plant_corrupt_row(&self, stream: &StreamId) -> Result<GlobalPosition, StoreError> {
        let mut state = self.lock()?;
        state.log.push(Row::Corrupt { stream: stream.clone() });
        let head = GlobalPosition(state.log.len() as u64);
        self.inner.head.send_replace(head);
        Ok(head)
    }
}

impl State {
    /// The events of `stream` from version `from` on, at most `limit`.
    fn forward<'a>(
        &'a self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> impl Iterator<Item = &'a RecordedEvent> + 'a {
        // Version v sits at indexes[v - 1].
        let start = usize::try_from(from.get().saturating_sub(1)).unwrap_or(usize::MAX);
        let indexes = self.streams.get(stream).map_or(&[][..], Vec::as_slice);
        indexes.iter().skip(start).take(limit).filter_map(|&i| self.log[i].event())
    }

    /// The event at `index` of the log. Stream and id indexes only point at
    /// events, never at corrupt rows.
    fn event_at(&self, index: usize) -> Option<&RecordedEvent> {
        self.log.get(index).and_then(Row::event)
    }

    /// The version of the last event of `stream`.
    fn version_of(&self, stream: &StreamId) -> Option<StreamVersion> {
        let last = *self.streams.get(stream)?.last()?;
        self.event_at(last).map(|e| e.stream_version)
    }

    /// The placement of an exact retry of `events` (`Ok(None)`: none of
    /// their ids is stored), by es-core's one rule for every store.
    fn check_ids(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<Vec<Committed>>, AppendError> {
        let stored: Vec<&RecordedEvent> =
            events.iter().filter_map(|e| self.ids.get(&e.event_id).and_then(|&i| self.event_at(i))).collect();
        if stored.is_empty() {
            return Ok(None);
        }
        classify_stored(stream, expected, events, &stored)
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        let backend = |e: StoreError| AppendError::Backend { stream: stream.clone(), source: Box::new(e) };
        es_core::store::check_storable(stream, &events)?;
        let mut state = self.lock().map_err(backend)?;
        if let Some(committed) = state.check_ids(stream, expected, &events)? {
            return Ok(AppendOutcome { stream_version: state.version_of(stream), committed });
        }
        let current = state.version_of(stream);
        if !expected.accepts(current) {
            return Err(AppendError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: current,
            });
        }
        if events.is_empty() {
            return Ok(AppendOutcome { stream_version: current, committed: Vec::new() });
        }
        let recorded_at = Timestamp::now();
        let mut version = current.map_or(0, StreamVersion::get);
        let mut committed = Vec::with_capacity(events.len());
        let state = &mut *state;
        let indexes = state.streams.entry(stream.clone()).or_default();
        for event in events {
            version += 1;
            let index = state.log.len();
            let recorded = RecordedEvent {
                event_id: event.event_id,
                stream_id: stream.clone(),
                aggregate_type: event.aggregate_type,
                stream_version: StreamVersion(version),
                global_position: GlobalPosition(index as u64 + 1),
                event_type: event.event_type,
                schema_version: event.schema_version,
                payload: event.payload,
                metadata: event.metadata,
                recorded_at,
            };
            committed.push(Committed {
                event_id: recorded.event_id,
                stream_version: recorded.stream_version,
                global_position: recorded.global_position,
            });
            state.ids.insert(recorded.event_id, index);
            indexes.push(index);
            state.log.push(Row::Event(Arc::new(recorded)));
        }
        let head = GlobalPosition(state.log.len() as u64);
        self.inner.head.send_replace(head);
        Ok(AppendOutcome { stream_version: Some(StreamVersion(version)), committed })
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock()?;
        match direction {
            Direction::Forward => Ok(state.forward(stream, from, limit).cloned().collect()),
            Direction::Backward => {
                let indexes = state.streams.get(stream).map_or(&[][..], Vec::as_slice);
                // Version v sits at indexes[v - 1]; from 0 there is nothing.
                let end = usize::try_from(from.get()).unwrap_or(usize::MAX).min(indexes.len());
                Ok(indexes[..end]
                    .iter()
                    .rev()
                    .take(limit)
                    .filter_map(|&i| state.event_at(i))
                    .cloned()
                    .collect())
            }
        }
    }

    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        let state = self.lock()?;
        Ok(state.forward(stream, from, limit).map(ReplayEvent::from).collect())
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        // Under the lock, only the page's handles are taken; the events are
        // copied after it is released, so appends do not wait while a
        // subscription catching up copies thousands of them.
        let page: Vec<Arc<RecordedEvent>> = {
            let state = self.lock()?;
            let start = usize::try_from(after.get()).unwrap_or(usize::MAX);
            let mut page = Vec::with_capacity(state.log.len().saturating_sub(start).min(limit));
            for (index, row) in state.log.iter().enumerate().skip(start).take(limit) {
                match row {
                    Row::Event(event) => page.push(Arc::clone(event)),
                    // A corrupt row ends the page: the events before it are
                    // returned, and the read that starts at it fails.
                    Row::Corrupt { stream } if page.is_empty() => {
                        let position = GlobalPosition(index as u64 + 1);
                        return Err(StoreError::Corrupt {
                            location: format!("stream `{stream}` version 0 (global position {position})"),
                            position: Some(position),
                            detail: "stream version 0 is not positive".to_owned(),
                        });
                    }
                    Row::Corrupt { .. } => break,
                }
            }
            page
        };
        Ok(page.iter().map(|event| RecordedEvent::clone(event)).collect())
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        let state = self.lock()?;
        Ok(state.version_of(stream))
    }

    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock()?;
        Ok(ids
            .iter()
            .filter_map(|id| state.ids.get(id))
            .filter_map(|&i| state.log[i].event())
            .cloned()
            .collect())
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        let state = self.lock()?;
        let mut names: Vec<&StreamId> = state
            .streams
            .keys()
            .filter(|s| s.as_str().starts_with(prefix) && after.is_none_or(|after| *s > after))
            .collect();
        names.sort_unstable();
        Ok(names
            .into_iter()
            .take(limit)
            .filter_map(|name| Some(StreamSummary::new(name.clone(), state.version_of(name)?)))
            .collect())
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        Ok(*self.inner.head.borrow())
    }

    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        let mut head = self.inner.head.subscribe();
        let _ = tokio::time::timeout(max_wait, head.wait_for(|h| *h > after)).await;
    }
}

#[async_trait]
impl SnapshotStore for InMemoryEventStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.lock()?.snapshots.get(stream).cloned())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let newer = state
            .snapshots
            .get(&snapshot.stream_id)
            .is_none_or(|old| old.stream_version <= snapshot.stream_version);
        if newer {
            state.snapshots.insert(snapshot.stream_id.clone(), snapshot);
        }
        Ok(())
    }
}
