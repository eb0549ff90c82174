//! The Postgres event store.
//!
//! Appends are one statement per batch (`append.sql`); readers of the
//! global stream stop below the oldest transaction still in flight
//! (`read_all.sql`), which keeps the order they see gap-free without
//! serializing writers. The crate docs explain the position scheme.
//!
//! One job per file: [`append`] (the append statement, conflicts, exact
//! retries), [`append_connection`] (the connection an append runs on),
//! [`group`] (group commit: which appends share a statement),
//! [`append_group`] (one group's statement), [`outcome`] (which driver
//! errors leave an append's outcome unknown), [`read`] (streams and the
//! global stream), [`visibility`] (what readers may see, and waiting
//! briefly for more), [`diagnostics`] (what holds readers back), [`wakeup`]
//! (waking caught-up readers), [`warm_up`] (connections primed before the
//! first command), [`writers`] (the store's own connections for group
//! commit) and [`row`] (rows into envelopes). This file holds the store itself and the
//! port's table of contents.

mod append;
mod append_connection;
mod append_group;
mod diagnostics;
mod group;
mod outcome;
mod read;
mod row;
mod visibility;
mod wakeup;
mod warm_up;
mod writers;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, StoreError};
use es_core::store::{
    check_storable, AppendOutcome, Direction, EventStore, ExpectedVersion, NewEvent, ReadBlocker,
    RecordedEvent, ReplayEvent, ReplayVisitor, StreamSummary, WakeupMark,
};
use es_core::{EventId, GlobalPosition, StreamId, StreamVersion};
use sqlx::postgres::PgArguments;
use sqlx::query::{Query, QueryScalar};
use sqlx::{PgPool, Postgres, SqlStr};

use crate::bounded::Calls;
use crate::migrate::{migrate, MigrateError};
use crate::schema::PgSchema;

pub use append::MAX_EVENTS_PER_TRANSACTION;
pub use diagnostics::InFlightTransaction;
pub use group::GroupCommit;
pub(crate) use read::holds_nul;
pub(crate) use row::{column, positive, read_error, schema_version};

/// A statement with its parameters bound, borrowing them for `'q`.
pub(crate) type PgQuery<'q> = Query<'q, Postgres, PgArguments>;
/// The same, for a statement that returns one column.
pub(crate) type PgQueryScalar<'q, T> = QueryScalar<'q, Postgres, T, PgArguments>;

/// An [`EventStore`] and [`SnapshotStore`](es_core::store::SnapshotStore) on
/// Postgres.
///
/// Cheap to clone (clones share the pool and the notification listener).
/// Call [`migrate`](PgEventStore::migrate) once before use.
#[derive(Clone)]
pub struct PgEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    schema: PgSchema,
    channel: String,
    sql: Statements,
    wakeups: wakeup::Wakeups,
    notifier: wakeup::Notifier,
    /// See [`PgEventStore::set_group_commit`].
    groups: group::Groups,
    /// See [`PgEventStore::set_visibility_wait`].
    visibility_wait_micros: AtomicU64,
    /// The pool, and the call timeout ([`PgEventStore::set_call_timeout`]).
    calls: Calls,
    /// The store's own connections for appends that hold a group slot.
    writers: writers::Writers,
}

/// The store's SQL, rendered once for its schema. sqlx prepares each on
/// first use per connection and caches it.
struct Statements {
    append: SqlStr,
    append_single: SqlStr,
    append_group: SqlStr,
    stored_events: SqlStr,
    read_all: SqlStr,
    read_forward: SqlStr,
    read_backward: SqlStr,
    read_replay: SqlStr,
    stream_version: SqlStr,
    streams: SqlStr,
    head_position: SqlStr,
    oldest_in_flight: SqlStr,
    hidden_since: SqlStr,
    oldest_prepared: SqlStr,
    load_snapshot: SqlStr,
    save_snapshot: SqlStr,
}

impl Statements {
    fn new(schema: &PgSchema) -> Self {
        Self {
            append: schema.render(include_str!("append.sql")),
            append_single: schema.render(include_str!("append_single.sql")),
            append_group: schema.render(include_str!("append_group.sql")),
            stored_events: schema.render(include_str!("stored_events.sql")),
            read_all: schema.render(include_str!("read_all.sql")),
            read_forward: schema.render(include_str!("read_forward.sql")),
            read_backward: schema.render(include_str!("read_backward.sql")),
            read_replay: schema.render(include_str!("read_replay.sql")),
            stream_version: schema.render(include_str!("stream_version.sql")),
            streams: schema.render(include_str!("streams.sql")),
            head_position: schema.render(include_str!("head_position.sql")),
            oldest_in_flight: schema.render(include_str!("oldest_in_flight.sql")),
            hidden_since: schema.render(include_str!("hidden_since.sql")),
            oldest_prepared: schema.render(include_str!("oldest_prepared.sql")),
            load_snapshot: schema.render(include_str!("../snapshot_store/load.sql")),
            save_snapshot: schema.render(include_str!("../snapshot_store/save.sql")),
        }
    }
}

impl fmt::Debug for PgEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgEventStore").field("schema", &self.inner.schema).finish_non_exhaustive()
    }
}

impl PgEventStore {
    /// A store in the default schema (`es`) on `pool`. The pool may be
    /// shared with the application's own tables.
    pub fn new(pool: PgPool) -> Self {
        Self::with_schema(pool, PgSchema::default())
    }

    /// A store in `schema` on `pool`.
    pub fn with_schema(pool: PgPool, schema: PgSchema) -> Self {
        let sql = Statements::new(&schema);
        let channel = schema.channel();
        let calls = Calls::new(pool);
        Self {
            inner: Arc::new(Inner {
                schema,
                channel,
                sql,
                wakeups: wakeup::Wakeups::default(),
                notifier: wakeup::Notifier::default(),
                groups: group::Groups::default(),
                visibility_wait_micros: AtomicU64::new(visibility::DEFAULT_WAIT_MICROS),
                calls,
                writers: writers::Writers::default(),
            }),
        }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        self.inner.calls.pool()
    }

    /// Sets how long one call of this store (and of every clone of it) may
    /// take, waiting for a pooled connection included (default
    /// [`DEFAULT_CALL_TIMEOUT`](crate::DEFAULT_CALL_TIMEOUT), 30 s). A call
    /// that overruns fails and its connection is closed: see the crate
    /// docs, "When the server stops answering". Loading an aggregate reads
    /// its whole stream in one call. Takes effect for calls that start
    /// after it.
    pub fn set_call_timeout(&self, timeout: Duration) {
        self.inner.calls.set(timeout);
    }

    /// How this store calls the server (the snapshot store's calls too).
    pub(crate) fn calls(&self) -> &Calls {
        &self.inner.calls
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &PgSchema {
        &self.inner.schema
    }

    /// The snapshot statements: (load, save).
    pub(crate) fn snapshot_sql(&self) -> (&SqlStr, &SqlStr) {
        (&self.inner.sql.load_snapshot, &self.inner.sql.save_snapshot)
    }

    /// Creates or upgrades the tables (see [`migrate`](crate::migrate())).
    ///
    /// # Errors
    /// [`MigrateError`] naming the step that failed.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        migrate(self.inner.calls.pool(), &self.inner.schema).await
    }
}

/// The port, each method in the file that does its job.
#[async_trait]
impl EventStore for PgEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        if events.is_empty() || !self.inner.groups.enabled() {
            return self.append_pooled(stream, expected, &events).await;
        }
        check_storable(stream, &events)?;
        self.submit(group::Request { stream: stream.clone(), expected, events }).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.stream_events(stream, from, direction, limit).await
    }

    /// Reads four of the ten columns: on a long replay the ones left out
    /// (ids, positions, metadata, timestamps) cost the server and the
    /// driver more than the payloads do.
    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        self.replay_events(stream, from, limit).await
    }

    /// One query for the whole range, its rows handed to `visit` as they
    /// arrive (not pages of 1,024: a 10,000-event load is one round trip).
    async fn replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        up_to: Option<StreamVersion>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<(), StoreError> {
        self.replay_streamed(stream, from, up_to, visit).await
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.global_events(after, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.version_of_stream(stream).await
    }

    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.events_with_ids(ids).await
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        self.stream_summaries(prefix, after, limit).await
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.visible_head().await
    }

    /// `transaction:index`: the id of the transaction that stored the event
    /// and the event's place among that transaction's events (positions are
    /// `transaction << 20 | index`).
    fn describe_position(&self, position: GlobalPosition) -> String {
        let raw = position.get();
        format!("{}:{}", raw >> 20, raw & (MAX_EVENTS_PER_TRANSACTION - 1))
    }

    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.wait_for_wakeup(after, None, max_wait).await;
    }

    fn wakeup_mark(&self) -> Option<WakeupMark> {
        self.mark_of_wakeups()
    }

    async fn wait_for_events_since(
        &self,
        after: GlobalPosition,
        mark: Option<WakeupMark>,
        max_wait: Duration,
    ) {
        self.wait_for_wakeup(after, mark, max_wait).await;
    }

    /// Holds two pooled connections at once (opening what the pool lacks),
    /// runs a load's reads (snapshot, replay, stream version) on each, and
    /// hands them back to the pool idle: the first load then opens no
    /// connection and prepares no statement.
    async fn warm_up(&self) -> Result<(), StoreError> {
        self.prime_connections().await
    }

    /// Committed events are hidden while an older transaction runs: names
    /// that transaction ([`PgEventStore::oldest_in_flight`], shown through
    /// [`InFlightTransaction`]'s `Display`, or else the oldest prepared
    /// transaction) with how long events have been hidden. `None` when
    /// nothing committed is hidden, or the blocker ended meanwhile.
    async fn read_blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        self.blocker().await
    }
}
