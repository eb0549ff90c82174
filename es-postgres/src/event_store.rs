//! The Postgres event store.
//!
//! Appends are one statement per batch (`event_store/append.sql`); readers
//! of the global stream stop below the oldest transaction still in flight
//! (`event_store/read_all.sql`), which keeps the order they see gap-free
//! without serializing writers. The crate docs explain the position scheme.

mod row;
mod wakeup;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, StoreError};
use es_core::store::{
    AppendOutcome, Committed, Direction, EventStore, ExpectedVersion, NewEvent, Payload, ReadBlocker,
    RecordedEvent, ReplayEvent, StreamSummary,
};
use es_core::{EventId, GlobalPosition, Metadata, StreamId, StreamVersion};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool, Row, SqlStr};
use uuid::Uuid;

use crate::error::BatchTooLarge;
use crate::migrate::{migrate, MigrateError};
use crate::schema::PgSchema;

pub(crate) use row::{column, positive, read_error, schema_version};

/// The most events one transaction can append (over all its appends): the
/// size of one transaction's range of global positions, 2^20.
pub const MAX_EVENTS_PER_TRANSACTION: u64 = 1 << 20;

/// How often an append with [`ExpectedVersion::Any`] or
/// [`ExpectedVersion::StreamExists`] is retried when a concurrent writer
/// takes the stream's next version first.
const MAX_ATTEMPTS: u32 = 16;

/// See [`PgEventStore::set_visibility_wait`].
const DEFAULT_VISIBILITY_WAIT_MICROS: u64 = 100_000;

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
    pool: PgPool,
    schema: PgSchema,
    channel: String,
    sql: Statements,
    wakeups: wakeup::Wakeups,
    notifier: wakeup::Notifier,
    visibility_wait_micros: AtomicU64,
}

/// The store's SQL, rendered once for its schema. sqlx prepares each on
/// first use per connection and caches it.
struct Statements {
    append: SqlStr,
    append_single: SqlStr,
    read_all: SqlStr,
    read_forward: SqlStr,
    read_backward: SqlStr,
    read_replay: SqlStr,
    stream_version: SqlStr,
    streams: SqlStr,
    head_position: SqlStr,
    stored_ids: SqlStr,
    oldest_in_flight: SqlStr,
    hidden_since: SqlStr,
    oldest_prepared: SqlStr,
    load_snapshot: SqlStr,
    save_snapshot: SqlStr,
}

impl Statements {
    fn new(schema: &PgSchema) -> Self {
        // A stream read knows its stream: the rows leave the column out (a
        // NULL keeps the column positions) and take the name from the query.
        let select =
            include_str!("event_store/select_events.sql").replacen(", stream_id,", ", NULL::text,", 1);
        let events = |tail: &str| schema.render(&format!("{select}{tail}"));
        Self {
            append: schema.render(include_str!("event_store/append.sql")),
            append_single: schema.render(include_str!("event_store/append_single.sql")),
            read_all: schema.render(include_str!("event_store/read_all.sql")),
            read_forward: events(
                "WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3",
            ),
            read_backward: events(
                "WHERE stream_id = $1 AND stream_version <= $2 ORDER BY stream_version DESC LIMIT $3",
            ),
            read_replay: schema.render(
                "SELECT stream_version, event_type, schema_version, payload FROM {schema}.events
                 WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3",
            ),
            stream_version: schema
                .render("SELECT max(stream_version) FROM {schema}.events WHERE stream_id = $1"),
            streams: schema.render(include_str!("event_store/streams.sql")),
            head_position: schema.render(include_str!("event_store/head_position.sql")),
            stored_ids: schema.render(include_str!("event_store/stored_ids.sql")),
            oldest_in_flight: schema.render(include_str!("event_store/oldest_in_flight.sql")),
            hidden_since: schema.render(include_str!("event_store/hidden_since.sql")),
            oldest_prepared: schema.render(include_str!("event_store/oldest_prepared.sql")),
            load_snapshot: schema.render(include_str!("snapshot_store/load.sql")),
            save_snapshot: schema.render(include_str!("snapshot_store/save.sql")),
        }
    }
}

impl fmt::Debug for PgEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgEventStore").field("schema", &self.inner.schema).finish_non_exhaustive()
    }
}

/// A running transaction that holds readers of the global stream back: its
/// events (and every later one) stay invisible to
/// [`read_all`](EventStore::read_all) until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightTransaction {
    /// The backend process id (for `pg_terminate_backend`).
    pub pid: i32,
    /// Its transaction id, as Postgres shows it.
    pub xid: String,
    /// The database it runs in.
    pub database: Option<String>,
    /// The backend state (`active`, `idle in transaction`, ...).
    pub state: Option<String>,
    /// The start of its current or last statement.
    pub query: Option<String>,
    /// How long the transaction has been running.
    pub age: Duration,
}

/// The first characters of a query kept in a [`ReadBlocker`]'s description.
const QUERY_SHOWN: usize = 200;

impl fmt::Display for InFlightTransaction {
    /// `transaction 1234 (pid 42, idle in transaction, running for 12.5s,
    /// database app): INSERT INTO ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transaction {} (pid {}", self.xid, self.pid)?;
        if let Some(state) = &self.state {
            write!(f, ", {state}")?;
        }
        write!(f, ", running for {:.1?}", self.age)?;
        if let Some(database) = &self.database {
            write!(f, ", database {database}")?;
        }
        f.write_str(")")?;
        if let Some(query) = &self.query {
            let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let shown: String = query.chars().take(QUERY_SHOWN).collect();
            let more = if shown.len() < query.len() { "..." } else { "" };
            write!(f, ": {shown}{more}")?;
        }
        Ok(())
    }
}

/// What one run of the append statement did.
enum Attempt {
    /// The batch was inserted after `version` starting at `first_position`.
    Inserted { version: u64, first_position: u64 },
    /// The expectation did not hold for the stream at `version`.
    Refused { version: Option<StreamVersion> },
    /// The transaction's position range is full.
    Overflow { used: u64 },
    /// A unique index refused the batch.
    Conflict(Conflict),
}

/// Which unique index refused an append.
enum Conflict {
    EventId,
    StreamVersion,
}

/// The batch as the parallel arrays the append statement unnests.
struct Batch<'a> {
    ids: Vec<Uuid>,
    aggregate_types: Vec<&'a str>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i64>,
    payloads: Vec<Json<&'a Payload>>,
    metadata: Vec<Json<&'a Metadata>>,
}

impl<'a> Batch<'a> {
    fn new(events: &'a [NewEvent]) -> Self {
        Self {
            ids: events.iter().map(|e| e.event_id.as_uuid()).collect(),
            aggregate_types: events.iter().map(|e| e.aggregate_type.as_str()).collect(),
            event_types: events.iter().map(|e| e.event_type.as_str()).collect(),
            schema_versions: events.iter().map(|e| i64::from(e.schema_version)).collect(),
            payloads: events.iter().map(|e| Json(&e.payload)).collect(),
            metadata: events.iter().map(|e| Json(&e.metadata)).collect(),
        }
    }
}

/// Whether `stream` holds a NUL character: Postgres cannot take it as a
/// parameter, and no such stream can have been stored
/// ([`es_core::store::check_storable`]), so reads of it find nothing.
pub(crate) fn holds_nul(stream: &StreamId) -> bool {
    stream.as_str().contains('\0')
}

/// Refuses a batch that repeats an id or cannot fit one transaction.
fn check_batch(stream: &StreamId, events: &[NewEvent]) -> Result<(), AppendError> {
    check_len(stream, events.len() as u64)?;
    let mut seen = HashSet::with_capacity(events.len());
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(AppendError::DuplicateInBatch { event_id: event.event_id, stream: stream.clone() });
        }
    }
    Ok(())
}

/// Refuses a batch longer than one transaction's position range.
fn check_len(stream: &StreamId, len: u64) -> Result<(), AppendError> {
    if len > MAX_EVENTS_PER_TRANSACTION {
        return Err(too_large(stream, len));
    }
    Ok(())
}

fn too_large(stream: &StreamId, requested: u64) -> AppendError {
    AppendError::Backend {
        stream: stream.clone(),
        source: Box::new(BatchTooLarge { requested, max: MAX_EVENTS_PER_TRANSACTION }),
    }
}

fn expectation(expected: ExpectedVersion) -> (i32, i64) {
    match expected {
        ExpectedVersion::Any => (0, 0),
        ExpectedVersion::NoStream => (1, 0),
        ExpectedVersion::StreamExists => (2, 0),
        ExpectedVersion::Exact(v) => (3, i64::try_from(v.get()).unwrap_or(i64::MAX)),
    }
}

fn version_of(raw: i64) -> Option<StreamVersion> {
    u64::try_from(raw).ok().filter(|v| *v > 0).map(StreamVersion)
}

/// Which unique index a driver error reports, if it is a unique violation.
fn conflict_of(error: &sqlx::Error) -> Option<Conflict> {
    let db = error.as_database_error()?;
    if db.code().as_deref() != Some("23505") {
        return None;
    }
    match db.constraint() {
        Some("events_event_id_key") => Some(Conflict::EventId),
        Some("events_stream_version_key") => Some(Conflict::StreamVersion),
        _ => None,
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
        Self {
            inner: Arc::new(Inner {
                pool,
                schema,
                channel,
                sql,
                wakeups: wakeup::Wakeups::default(),
                notifier: wakeup::Notifier::default(),
                visibility_wait_micros: AtomicU64::new(DEFAULT_VISIBILITY_WAIT_MICROS),
            }),
        }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
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
        migrate(&self.inner.pool, &self.inner.schema).await
    }

    /// Appends within the caller's transaction (or connection): the events
    /// commit or roll back with the caller's own writes.
    ///
    /// The append runs in a savepoint, so a refused append (wrong expected
    /// version, duplicate id) leaves the caller's transaction usable. The
    /// returned positions are final: they do not change at commit. Readers
    /// of the global stream see the events once the transaction commits.
    ///
    /// ```no_run
    /// # async fn demo(store: es_postgres::PgEventStore) -> Result<(), Box<dyn std::error::Error>> {
    /// use es_core::store::{ExpectedVersion, NewEvent};
    /// use es_core::StreamId;
    ///
    /// let mut tx = store.pool().begin().await?;
    /// sqlx::query("UPDATE outbox SET sent = true WHERE id = 7").execute(&mut *tx).await?;
    /// let event = NewEvent::new("account", "AccountOpened", 1, serde_json::json!({"owner": "ada"}));
    /// store.append_in_tx(&mut tx, &StreamId::new("account-7"), ExpectedVersion::NoStream, vec![event]).await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`EventStore::append`]; [`AppendError::Backend`] with a
    /// [`BatchTooLarge`] source if the transaction would hold more than
    /// [`MAX_EVENTS_PER_TRANSACTION`] events.
    pub async fn append_in_tx(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.append_on(conn, true, stream, expected, &events).await
    }

    /// The oldest running transaction (in the whole cluster) that holds a
    /// transaction id, if any. While it runs, readers of the global stream
    /// see nothing it or any later transaction wrote: subscriptions use
    /// this to say which transaction holds them back.
    ///
    /// Prepared (two-phase) transactions also hold readers back but have no
    /// backend; see `pg_prepared_xacts` for those.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the query fails.
    pub async fn oldest_in_flight(&self) -> Result<Option<InFlightTransaction>, StoreError> {
        let row = sqlx::query(self.inner.sql.oldest_in_flight.clone())
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let Some(row) = row else { return Ok(None) };
        let location = || "pg_stat_activity".to_owned();
        let age_micros: i64 = column(&row, "age_micros", &location)?;
        Ok(Some(InFlightTransaction {
            pid: column(&row, "pid", &location)?,
            xid: column(&row, "xid", &location)?,
            database: column(&row, "datname", &location)?,
            state: column(&row, "state", &location)?,
            query: column(&row, "query", &location)?,
            age: Duration::from_micros(age_micros.max(0).unsigned_abs()),
        }))
    }

    /// How long committed events have been hidden from readers, if any are.
    async fn hidden_for(&self) -> Result<Option<Duration>, StoreError> {
        let micros: Option<i64> = sqlx::query_scalar(self.inner.sql.hidden_since.clone())
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| read_error(e, || "the hidden part of the global stream".to_owned()))?;
        Ok(micros.map(|m| Duration::from_micros(m.max(0).unsigned_abs())))
    }

    /// The oldest prepared transaction, described, with its age.
    async fn oldest_prepared(&self) -> Result<Option<(String, Duration)>, StoreError> {
        let row = sqlx::query(self.inner.sql.oldest_prepared.clone())
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let Some(row) = row else { return Ok(None) };
        let location = || "pg_prepared_xacts".to_owned();
        let xid: String = column(&row, "xid", &location)?;
        let gid: String = column(&row, "gid", &location)?;
        let database: Option<String> = column(&row, "database", &location)?;
        let age_micros: i64 = column(&row, "age_micros", &location)?;
        let age = Duration::from_micros(age_micros.max(0).unsigned_abs());
        let database = database.map(|d| format!(", database {d}")).unwrap_or_default();
        Ok(Some((format!("prepared transaction {xid} (gid {gid}, prepared {age:.1?} ago{database})"), age)))
    }

    async fn append_on(
        &self,
        conn: &mut PgConnection,
        in_tx: bool,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, AppendError> {
        let backend = |e: sqlx::Error| AppendError::Backend { stream: stream.clone(), source: Box::new(e) };
        es_core::store::check_storable(stream, events)?;
        check_batch(stream, events)?;
        if events.is_empty() {
            let current = self.version_on(conn, stream).await.map_err(backend)?;
            return if expected.accepts(current) || expected == ExpectedVersion::Any {
                Ok(AppendOutcome { stream_version: current, committed: Vec::new() })
            } else {
                Err(AppendError::WrongExpectedVersion { stream: stream.clone(), expected, actual: current })
            };
        }
        let batch = Batch::new(events);
        for _ in 0..MAX_ATTEMPTS {
            let attempt = if in_tx {
                let mut savepoint = conn.begin().await.map_err(backend)?;
                let attempt = self.attempt(&mut savepoint, stream, expected, &batch, true).await;
                match attempt {
                    Ok(Attempt::Inserted { .. }) => savepoint.commit().await.map_err(backend)?,
                    _ => savepoint.rollback().await.map_err(backend)?,
                }
                attempt
            } else {
                self.attempt(conn, stream, expected, &batch, false).await
            }
            .map_err(backend)?;
            match attempt {
                Attempt::Inserted { version, first_position } => {
                    let committed = events
                        .iter()
                        .zip(0u64..)
                        .map(|(e, i)| Committed {
                            event_id: e.event_id,
                            stream_version: StreamVersion(version + 1 + i),
                            global_position: GlobalPosition(first_position + i),
                        })
                        .collect::<Vec<_>>();
                    let stream_version = committed.last().map(|c| c.stream_version);
                    if !in_tx {
                        self.inner.notifier.signal(&self.inner.pool, &self.inner.channel);
                    }
                    return Ok(AppendOutcome { stream_version, committed });
                }
                Attempt::Overflow { used } => return Err(too_large(stream, used + events.len() as u64)),
                Attempt::Refused { version } => {
                    if let Some(outcome) = self.earlier_append(conn, stream, expected, events).await? {
                        return Ok(outcome);
                    }
                    return Err(AppendError::WrongExpectedVersion {
                        stream: stream.clone(),
                        expected,
                        actual: version,
                    });
                }
                Attempt::Conflict(conflict) => {
                    if let Some(outcome) = self.earlier_append(conn, stream, expected, events).await? {
                        return Ok(outcome);
                    }
                    if matches!(conflict, Conflict::EventId) {
                        // The conflicting id was rolled back in between:
                        // nothing is stored under it any more, so try again.
                        continue;
                    }
                    let retry = matches!(expected, ExpectedVersion::Any | ExpectedVersion::StreamExists);
                    if !retry {
                        let actual = self.version_on(conn, stream).await.map_err(backend)?;
                        return Err(AppendError::WrongExpectedVersion {
                            stream: stream.clone(),
                            expected,
                            actual,
                        });
                    }
                }
            }
        }
        let actual = self.version_on(conn, stream).await.map_err(backend)?;
        Err(AppendError::WrongExpectedVersion { stream: stream.clone(), expected, actual })
    }

    /// Runs the append statement once.
    async fn attempt(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        batch: &Batch<'_>,
        notify_in_statement: bool,
    ) -> Result<Attempt, sqlx::Error> {
        let (kind, exact) = expectation(expected);
        let result = if notify_in_statement || batch.ids.len() != 1 {
            sqlx::query(self.inner.sql.append.clone())
                .bind(stream.as_str())
                .bind(kind)
                .bind(exact)
                .bind(&batch.ids)
                .bind(&batch.aggregate_types)
                .bind(&batch.event_types)
                .bind(&batch.schema_versions)
                .bind(&batch.payloads)
                .bind(&batch.metadata)
                .bind(notify_in_statement)
                .fetch_one(&mut *conn)
                .await
        } else {
            // One event in its own transaction: the cheaper statement.
            sqlx::query(self.inner.sql.append_single.clone())
                .bind(stream.as_str())
                .bind(kind)
                .bind(exact)
                .bind(batch.ids[0])
                .bind(batch.aggregate_types[0])
                .bind(batch.event_types[0])
                .bind(batch.schema_versions[0])
                .bind(batch.payloads[0])
                .bind(batch.metadata[0])
                .fetch_one(&mut *conn)
                .await
        };
        let row = match result {
            Ok(row) => row,
            Err(error) => return conflict_of(&error).map(Attempt::Conflict).ok_or(error),
        };
        let version: i64 = row.try_get("version")?;
        let first_position: i64 = row.try_get("first_position")?;
        let holds: bool = row.try_get("expectation_holds")?;
        let fits: bool = row.try_get("fits")?;
        let inserted: i64 = row.try_get("inserted")?;
        let position = u64::try_from(first_position).unwrap_or(0);
        if !holds {
            return Ok(Attempt::Refused { version: version_of(version) });
        }
        if !fits {
            return Ok(Attempt::Overflow { used: position % MAX_EVENTS_PER_TRANSACTION });
        }
        if usize::try_from(inserted).ok() != Some(batch.ids.len()) {
            return Err(sqlx::Error::Protocol(format!(
                "append statement inserted {inserted} rows for a batch of {}",
                batch.ids.len()
            )));
        }
        Ok(Attempt::Inserted { version: u64::try_from(version).unwrap_or(0), first_position: position })
    }

    /// After a refused append: if the batch's ids are stored, either this is
    /// an exact retry of a committed append (its original outcome), or a
    /// [`AppendError::DuplicateEventId`]. `None` if none of the ids is
    /// stored.
    async fn earlier_append(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendOutcome>, AppendError> {
        let backend = |e: StoreError| AppendError::Backend { stream: stream.clone(), source: Box::new(e) };
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id.as_uuid()).collect();
        let rows = sqlx::query(self.inner.sql.stored_ids.clone())
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| backend(StoreError::Backend(Box::new(e))))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let stored = rows.iter().map(stored_placement).collect::<Result<Vec<_>, _>>().map_err(backend)?;
        let placement = |id: EventId| stored.iter().find(|s| s.event_id == id);
        let in_order: Option<Vec<&StoredPlacement>> = events.iter().map(|e| placement(e.event_id)).collect();
        let first_duplicate = events.iter().find(|e| placement(e.event_id).is_some()).map(|e| e.event_id);
        let exact = in_order.filter(|found| {
            let first = found[0].version;
            let before = Some(first - 1).filter(|v| *v > 0).map(StreamVersion);
            found.iter().zip(0u64..).all(|(s, i)| s.stream == stream.as_str() && s.version == first + i)
                && (expected == ExpectedVersion::Any || expected.accepts(before))
        });
        match (exact, first_duplicate) {
            (Some(found), _) => {
                let current = self
                    .version_on(conn, stream)
                    .await
                    .map_err(|e| backend(StoreError::Backend(Box::new(e))))?;
                let committed = found
                    .iter()
                    .map(|s| Committed {
                        event_id: s.event_id,
                        stream_version: StreamVersion(s.version),
                        global_position: GlobalPosition(s.position),
                    })
                    .collect();
                Ok(Some(AppendOutcome { stream_version: current, committed }))
            }
            (None, Some(event_id)) => Err(AppendError::DuplicateEventId { event_id, stream: stream.clone() }),
            (None, None) => Ok(None),
        }
    }

    async fn version_on(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
    ) -> Result<Option<StreamVersion>, sqlx::Error> {
        let version: Option<i64> = sqlx::query_scalar(self.inner.sql.stream_version.clone())
            .bind(stream.as_str())
            .fetch_one(&mut *conn)
            .await?;
        Ok(version.and_then(version_of))
    }

    /// Sets how long [`read_all`](EventStore::read_all) and
    /// [`head_position`](EventStore::head_position) wait, at most, for
    /// transactions that started before committed events they would hide
    /// (default 100 ms). Such transactions are usually appends about to
    /// commit; waiting for them gives readers their own writes. Zero turns
    /// the wait off. A long-running transaction costs each short read this
    /// long.
    pub fn set_visibility_wait(&self, wait: Duration) {
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.inner.visibility_wait_micros.store(micros, Ordering::Relaxed);
    }

    /// The visible head and the horizon it was read under.
    async fn head(&self) -> Result<(GlobalPosition, Horizon), StoreError> {
        let row = sqlx::query(self.inner.sql.head_position.clone())
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| read_error(e, || "the global stream's head".to_owned()))?;
        let head: i64 = column(&row, "head", &|| "the global stream's head".to_owned())?;
        Ok((GlobalPosition(u64::try_from(head).unwrap_or(0)), Horizon::of(&row)?))
    }

    /// The rows of one of the stream statements (`$1` stream, `$2` from
    /// version, `$3` limit). A stream id with a NUL cannot be sent, and no
    /// such stream is stored: no rows.
    async fn stream_rows(
        &self,
        sql: &SqlStr,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<PgRow>, StoreError> {
        if holds_nul(stream) {
            return Ok(Vec::new());
        }
        sqlx::query(sql.clone())
            .bind(stream.as_str())
            .bind(clamp(from.get()))
            .bind(clamp(limit as u64))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| read_error(e, || format!("stream `{stream}` from version {from}")))
    }

    /// If `seen` hides committed events (an older transaction is still in
    /// flight), waits until every transaction that started before the newest
    /// of them has ended, or until the visibility wait runs out. Returns
    /// whether a re-read would show more. Transactions that start later get
    /// newer ids, so they never prolong this wait.
    async fn settle(&self, seen: Horizon) -> Result<bool, StoreError> {
        let Some(target) = seen.newest.filter(|newest| *newest >= seen.below) else { return Ok(false) };
        let micros = self.inner.visibility_wait_micros.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_micros(micros);
        let mut pause = Duration::from_micros(500);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(pause.min(deadline - tokio::time::Instant::now())).await;
            pause = (pause * 2).min(Duration::from_millis(10));
            let (_, now) = self.head().await?;
            if now.below > target {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What a read could see: positions below `below` are settled; `newest` is
/// the newest committed position (it may lie above `below`).
#[derive(Debug, Clone, Copy)]
struct Horizon {
    below: i64,
    newest: Option<i64>,
}

impl Horizon {
    fn of(row: &PgRow) -> Result<Self, StoreError> {
        let location = || "the global stream's horizon".to_owned();
        Ok(Self { below: column(row, "below", &location)?, newest: column(row, "newest", &location)? })
    }
}

/// Where an already stored event id sits.
struct StoredPlacement {
    event_id: EventId,
    stream: String,
    version: u64,
    position: u64,
}

fn stored_placement(row: &PgRow) -> Result<StoredPlacement, StoreError> {
    let location = || "a stored event looked up by id".to_owned();
    Ok(StoredPlacement {
        event_id: EventId(column(row, "event_id", &location)?),
        stream: column(row, "stream_id", &location)?,
        version: positive(column(row, "stream_version", &location)?, "stream version", &location)?,
        position: positive(column(row, "global_position", &location)?, "global position", &location)?,
    })
}

/// The first string after every string that starts with `prefix`, in byte
/// order (which for UTF-8 is code point order): the prefix with its last
/// character that can grow grown by one. `None` when there is no such string
/// (an empty prefix, or one of only `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| AppendError::Backend { stream: stream.clone(), source: Box::new(e) })?;
        self.append_on(&mut conn, false, stream, expected, &events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = match direction {
            Direction::Forward => &self.inner.sql.read_forward,
            Direction::Backward => &self.inner.sql.read_backward,
        };
        let rows = self.stream_rows(sql, stream, from, limit).await?;
        rows.iter().map(|row| row::recorded_event(row, 0, Some(stream))).collect()
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
        let rows = self.stream_rows(&self.inner.sql.read_replay, stream, from, limit).await?;
        rows.iter().map(|row| row::replay_event(row, stream)).collect()
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let read = || async {
            let rows = sqlx::query(self.inner.sql.read_all.clone())
                .bind(clamp(after.get()))
                .bind(clamp(limit as u64))
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| read_error(e, || format!("the global stream after position {after}")))?;
            let horizon = match rows.first() {
                Some(row) => Horizon::of(row)?,
                None => Horizon { below: 0, newest: None },
            };
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                // Columns 0 and 1 are the horizon; the event's start at 2.
                let position: Option<i64> = column(row, 2, &|| "an event row".to_owned())?;
                if position.is_some() {
                    events.push(row::recorded_event(row, 2, None)?);
                }
            }
            Ok::<_, StoreError>((events, horizon))
        };
        let (events, horizon) = read().await?;
        if events.len() >= limit {
            return Ok(events);
        }
        match self.settle(horizon).await? {
            true => Ok(read().await?.0),
            false => Ok(events),
        }
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        if holds_nul(stream) {
            return Ok(None);
        }
        let version: Option<i64> = sqlx::query_scalar(self.inner.sql.stream_version.clone())
            .bind(stream.as_str())
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| read_error(e, || format!("stream `{stream}`")))?;
        match version {
            None => Ok(None),
            Some(v) => {
                Ok(Some(StreamVersion(positive(v, "stream version", &|| format!("stream `{stream}`"))?)))
            }
        }
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        if prefix.contains('\0') || after.is_some_and(holds_nul) {
            return Ok(Vec::new());
        }
        let location = || format!("streams starting with {prefix:?}");
        let rows = sqlx::query(self.inner.sql.streams.clone())
            .bind(prefix)
            .bind(prefix_end(prefix))
            .bind(after.map(StreamId::as_str))
            .bind(clamp(limit as u64))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| read_error(e, location))?;
        rows.iter()
            .map(|row| {
                let name: String = column(row, "stream_id", &location)?;
                let version = positive(column(row, "version", &location)?, "stream version", &location)?;
                Ok(StreamSummary::new(StreamId::new(name), StreamVersion(version)))
            })
            .collect()
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        let (head, horizon) = self.head().await?;
        match self.settle(horizon).await? {
            true => Ok(self.head().await?.0),
            false => Ok(head),
        }
    }

    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        let deadline = tokio::time::Instant::now() + max_wait;
        // Every step is bounded by the deadline: connecting the listener or
        // reading the head can wait on a busy pool or an unreachable server,
        // and subscriptions renew their lease between waits.
        let wait = async {
            let Some(mut counter) = self.inner.wakeups.subscribe(&self.inner.pool, &self.inner.channel).await
            else {
                tokio::time::sleep_until(deadline).await;
                return;
            };
            counter.borrow_and_update();
            // Something may have committed before we subscribed.
            if self.head_position().await.is_ok_and(|head| head > after) {
                return;
            }
            if counter.changed().await.is_err() {
                // The listener stopped: poll.
                tokio::time::sleep_until(deadline).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline, wait).await;
    }

    /// Committed events are hidden while an older transaction runs: names
    /// that transaction ([`PgEventStore::oldest_in_flight`], shown through
    /// [`InFlightTransaction`]'s `Display`, or else the oldest prepared
    /// transaction) with how long events have been hidden. `None` when
    /// nothing committed is hidden, or the blocker ended meanwhile.
    async fn read_blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        let Some(hiding_for) = self.hidden_for().await? else { return Ok(None) };
        if let Some(transaction) = self.oldest_in_flight().await? {
            return Ok(Some(ReadBlocker::new(transaction.to_string(), transaction.age, hiding_for)));
        }
        Ok(self
            .oldest_prepared()
            .await?
            .map(|(description, age)| ReadBlocker::new(description, age, hiding_for)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_flight_transaction_names_itself_on_one_line() {
        let mut transaction = InFlightTransaction {
            pid: 42,
            xid: "1234".into(),
            database: Some("app".into()),
            state: Some("idle in transaction".into()),
            query: Some("INSERT INTO t\n   VALUES (1)".into()),
            age: Duration::from_millis(12_500),
        };
        assert_eq!(
            transaction.to_string(),
            "transaction 1234 (pid 42, idle in transaction, running for 12.5s, database app): INSERT INTO t VALUES (1)"
        );
        transaction.query = Some("x".repeat(QUERY_SHOWN + 1));
        transaction.database = None;
        transaction.state = None;
        let shown = transaction.to_string();
        assert!(shown.starts_with("transaction 1234 (pid 42, running for 12.5s): xxx"), "{shown}");
        assert!(shown.ends_with(&format!("{}...", "x".repeat(QUERY_SHOWN).get(..10).unwrap())), "{shown}");
    }

    #[test]
    fn a_batch_over_the_position_range_is_a_typed_error() {
        let stream = StreamId::new("big");
        assert!(check_len(&stream, MAX_EVENTS_PER_TRANSACTION).is_ok());
        match check_len(&stream, MAX_EVENTS_PER_TRANSACTION + 1) {
            Err(AppendError::Backend { stream: s, source }) => {
                assert_eq!(s, stream);
                let too_large = source.downcast_ref::<BatchTooLarge>().expect("a BatchTooLarge source");
                assert_eq!(too_large.requested, MAX_EVENTS_PER_TRANSACTION + 1);
                assert_eq!(too_large.max, 1 << 20);
            }
            other => panic!("expected Backend(BatchTooLarge), got {other:?}"),
        }
    }

    #[test]
    fn a_prefix_range_ends_after_every_name_with_the_prefix() {
        assert_eq!(prefix_end("account-"), Some("account.".to_owned()));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{d7ff}"), Some("a\u{e000}".to_owned()), "surrogates are skipped");
        assert_eq!(prefix_end("a\u{10ffff}"), Some("b".to_owned()));
        assert_eq!(prefix_end("\u{10ffff}"), None);
    }

    #[test]
    fn a_repeated_id_in_one_batch_is_refused() {
        let event = NewEvent::new("t", "T", 1, serde_json::json!({}));
        let err = check_batch(&StreamId::new("s"), &[event.clone(), event]).unwrap_err();
        assert!(matches!(err, AppendError::DuplicateInBatch { .. }));
    }

    #[test]
    fn expectations_map_to_the_statement_codes() {
        assert_eq!(expectation(ExpectedVersion::Any), (0, 0));
        assert_eq!(expectation(ExpectedVersion::NoStream), (1, 0));
        assert_eq!(expectation(ExpectedVersion::StreamExists), (2, 0));
        assert_eq!(expectation(ExpectedVersion::Exact(StreamVersion(7))), (3, 7));
        assert_eq!(expectation(ExpectedVersion::Exact(StreamVersion(u64::MAX))), (3, i64::MAX));
    }
}
