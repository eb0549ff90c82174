//! The event store port.

use std::ops::ControlFlow;
use std::time::Duration;

use async_trait::async_trait;

use crate::envelope::{AppendOutcome, NewEvent, RecordedEvent, ReplayEvent};
use crate::error::{AppendError, StoreError};
use crate::version::{EventId, ExpectedVersion, GlobalPosition, StreamId, StreamVersion};

/// How many events one read fetches when [`EventStore::replay`] pages
/// through [`EventStore::read_replay`] (its default).
const REPLAY_PAGE: usize = 1024;

/// What [`EventStore::replay`] calls with each event: it answers
/// [`ControlFlow::Continue`] for the next event, [`ControlFlow::Break`] to
/// stop reading.
pub type ReplayVisitor<'v> = dyn FnMut(ReplayEvent) -> ControlFlow<()> + Send + 'v;

/// A count of the wake-ups a store has delivered, as
/// [`EventStore::wakeup_mark`] reads it; only ever compared for equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WakeupMark(pub u64);

/// Which way to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Oldest first, starting at the given version (inclusive).
    Forward,
    /// Newest first, starting at the given version (inclusive).
    Backward,
}

/// The event store port.
///
/// Appends are atomic: all events of a batch are stored, or none. Stream
/// versions are 1-based and gap-free; global positions strictly increase in
/// the order readers of [`read_all`](EventStore::read_all) see them, and a
/// reader never sees a position below one it has already been shown.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if the stream matches `expected`.
    ///
    /// An exact retry (same event ids with the same content, same stream,
    /// and an expectation that admitted the original placement, as after a
    /// lost reply) succeeds, stores nothing and returns the original
    /// versions and positions; any other reuse of a stored id is
    /// [`AppendError::DuplicateEventId`]. Adapters decide this with
    /// [`classify_stored`](crate::store::classify_stored), so all agree.
    ///
    /// [`ExpectedVersion::Exact`] with version 0 means "no stream yet", like
    /// [`ExpectedVersion::NoStream`]: a stream version is never 0.
    ///
    /// # Errors
    /// [`AppendError::WrongExpectedVersion`] if the stream does not match
    /// `expected`; [`AppendError::DuplicateEventId`] if an event id is
    /// already stored otherwise; [`AppendError::Unstorable`] if the batch
    /// breaks a limit of [`check_storable`](crate::store::check_storable);
    /// [`AppendError::Backend`] if storage fails before anything could be
    /// written; [`AppendError::OutcomeUnknown`] if the store cannot tell
    /// whether the batch was stored (a connection lost while its commit was
    /// in flight): retrying the same events is then safe. Only this last
    /// error may leave anything stored.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError>;

    /// Reads up to `limit` events of `stream` starting at version `from`
    /// (inclusive), in `direction`. Reading backward from
    /// `StreamVersion(u64::MAX)` starts at the newest event.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a row is corrupt.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `limit` events of `stream` forward from version `from`
    /// (inclusive), with only what rebuilding an aggregate needs. Aggregates
    /// replay through this.
    ///
    /// The default reads [`read_stream`](EventStore::read_stream) and keeps
    /// those fields; an adapter overrides it to read less (on Postgres the
    /// columns replay skips are most of a row's cost).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a row is corrupt.
    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        let events = self.read_stream(stream, from, Direction::Forward, limit).await?;
        Ok(events.into_iter().map(ReplayEvent::from).collect())
    }

    /// Calls `visit` with every event of `stream` from version `from` up to
    /// `up_to` (both inclusive; `None`: up to the newest), oldest first, with
    /// the fields of [`read_replay`](EventStore::read_replay), until `visit`
    /// answers [`ControlFlow::Break`]. Aggregates rehydrate through this.
    ///
    /// The events are handed over as they are read, never gathered into one
    /// collection first, so a caller that folds them holds one at a time.
    /// The default pages through `read_replay` (1,024 events a page); an
    /// adapter overrides it to read the whole range in one streamed query
    /// (Postgres does).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a row is corrupt. Events before
    /// the failure may have been handed to `visit` already.
    async fn replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        up_to: Option<StreamVersion>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<(), StoreError> {
        let mut from = from;
        loop {
            let page_len = match up_to {
                Some(limit) if from > limit => return Ok(()),
                // `from <= limit` here, so the difference does not wrap.
                Some(limit) => usize::try_from(limit.get() - from.get())
                    .map_or(REPLAY_PAGE, |n| n.saturating_add(1).min(REPLAY_PAGE)),
                None => REPLAY_PAGE,
            };
            let page = self.read_replay(stream, from, page_len).await?;
            let fetched = page.len();
            for event in page {
                let version = event.stream_version;
                if up_to.is_some_and(|limit| version > limit) || visit(event).is_break() {
                    return Ok(());
                }
                match version.get().checked_add(1) {
                    Some(next) => from = StreamVersion(next),
                    None => return Ok(()),
                }
            }
            if fetched < page_len {
                return Ok(());
            }
        }
    }

    /// Reads up to `limit` events of the global stream with a position
    /// strictly greater than `after`, in position order.
    ///
    /// Never returns an event while an event with a lower position may still
    /// commit: readers see a gap-free order.
    ///
    /// A stored row that cannot be turned into an envelope (a poison row,
    /// such as one edited by hand) ends the page: the events before it are
    /// returned; a read that starts at it (`after` is the position before
    /// it) fails with [`StoreError::Corrupt`] carrying its `position`; a read
    /// after its position goes on with the events after it. So a reader
    /// gets everything before the row, then a typed error naming it, and can
    /// skip it deliberately.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the first row after `after` is corrupt;
    /// [`StoreError::Backend`] if storage fails.
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The version of the stream's last event, or `None` if it has none.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError>;

    /// The stored events whose ids are among `ids`, in any order (ids that
    /// are not stored are left out). The runtime asks this when a command
    /// id is executed again, to return the original outcome.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a row is corrupt.
    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` streams whose name starts with `prefix`, ordered by name
    /// (bytewise), after the stream named `after` (exclusive; `None`: from the
    /// first). For operators and inspectors, which page through streams.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError>;

    /// `position` as a person reads it. Positions are opaque and ordered; an
    /// adapter that builds them from parts says which (Postgres:
    /// `transaction:index`). The default is the number.
    fn describe_position(&self, position: GlobalPosition) -> String {
        position.to_string()
    }

    /// The position of the last event visible to [`read_all`](EventStore::read_all).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn head_position(&self) -> Result<GlobalPosition, StoreError>;

    /// Waits until events after `after` may be readable, or until `max_wait`
    /// passes, whichever is first. Subscriptions call this when caught up.
    /// The default polls (sleeps for `max_wait`); adapters with a wake-up
    /// channel (broadcast, LISTEN/NOTIFY) return as soon as something lands.
    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        let _ = after;
        tokio::time::sleep(max_wait).await;
    }

    /// How many wake-ups this store has delivered so far, for a reader to
    /// take before a read and give to
    /// [`wait_for_events_since`](EventStore::wait_for_events_since) once
    /// it is caught up. A store that returns a mark promises that every
    /// event committed after the mark was taken changes it (a wake-up is
    /// delivered after each commit). `None`, the default: no such mark.
    fn wakeup_mark(&self) -> Option<WakeupMark> {
        None
    }

    /// [`wait_for_events`](EventStore::wait_for_events) for a reader that
    /// took `mark` before the read that found it caught up: returns at once
    /// if a wake-up came since the mark, else waits for the next one or
    /// `max_wait`. Events that landed between the read and this call
    /// changed the mark, so the store need not look for them (Postgres
    /// skips a query per wait). The default ignores the mark.
    async fn wait_for_events_since(
        &self,
        after: GlobalPosition,
        mark: Option<WakeupMark>,
        max_wait: Duration,
    ) {
        let _ = mark;
        self.wait_for_events(after, max_wait).await;
    }

    /// Readies the store for the first command, off the command path:
    /// [`EsBuilder::build`](crate::runtime::EsBuilder::build) calls it once
    /// (for at most a second) before it returns. A store with connections
    /// opens and primes them here (Postgres: two pooled connections, the
    /// reads of a load run once on each), so the first load does not pay
    /// for a new connection or its first statements. The default does
    /// nothing.
    ///
    /// # Errors
    /// [`StoreError`] if storage cannot be reached. Building logs it and
    /// goes on: the first command then connects as it would have.
    async fn warm_up(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// What keeps committed events hidden from [`read_all`](EventStore::read_all)
    /// right now, if anything: a store that orders the global stream by
    /// transaction (Postgres) cannot show events committed after a
    /// transaction that is still running. Subscriptions that are caught up
    /// ask this now and then, and warn when it lasts. The default (stores
    /// that show every committed event at once) is `Ok(None)`.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn read_blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        Ok(None)
    }
}

/// One stream, as [`EventStore::streams`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct StreamSummary {
    /// The stream's name.
    pub stream_id: StreamId,
    /// The version of its last event.
    pub version: StreamVersion,
}

impl StreamSummary {
    /// A stream named `stream_id` whose last event has `version`.
    pub fn new(stream_id: StreamId, version: StreamVersion) -> Self {
        Self { stream_id, version }
    }
}

/// A running transaction that keeps committed events hidden from readers of
/// the global stream, as [`EventStore::read_blocker`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadBlocker {
    /// Names the transaction for an operator, in the store's terms (for
    /// Postgres: pid, transaction id, state, age, database and the start
    /// of its query).
    pub description: String,
    /// How long the transaction has been running.
    pub age: Duration,
    /// How long committed events have been hidden by it (at least): the age
    /// of the oldest hidden event.
    pub hiding_for: Duration,
}

impl ReadBlocker {
    /// A blocker described by `description`, running for `age`, that has
    /// hidden committed events for `hiding_for`.
    pub fn new(description: impl Into<String>, age: Duration, hiding_for: Duration) -> Self {
        Self { description: description.into(), age, hiding_for }
    }
}
