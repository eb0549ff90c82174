//! Appends: each one reads its stream's version, checks the expectation and
//! inserts its events under the file's write lock.
//!
//! A lone single-event append is one statement (`append_single.sql`), its
//! own transaction. Otherwise the appends of a group (see `group.rs`) run
//! in one write transaction (`BEGIN IMMEDIATE`, which takes the lock before
//! the first read), one after another, a multi-event append inside a
//! savepoint of its own; the group commits once. Either way nothing can
//! change a stream between its check and its inserts, and positions are
//! handed out in commit order. A refused expectation or a reused event id
//! is decided in the same transaction by es-core's exact-retry rule
//! ([`classify_stored`]).

use es_core::error::{AppendError, StoreError};
use es_core::store::{
    check_storable, classify_stored, AppendOutcome, Committed, ExpectedVersion, NewEvent, RecordedEvent,
    Timestamp,
};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use sqlx::{Connection, Row, SqliteConnection};

use super::outcome::{Failure, Stage};
use super::{row, SqliteEventStore, SELECT_BY_ID, STREAM_VERSION};
use crate::database::SqliteDatabase;
use crate::error::{is_unique_violation, SqliteError};

const INSERT: &str = include_str!("insert.sql");
const APPEND_SINGLE: &str = include_str!("append_single.sql");

/// One append, checked and encoded, waiting for the writer.
pub(super) struct Request {
    pub(super) stream: StreamId,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<NewEvent>,
    /// Each event's metadata as JSON text.
    pub(super) metadata: Vec<String>,
}

/// What one append of a group came to: its own outcome (success or a
/// refusal), or `Err` for a database failure that ends the whole group.
type Applied = Result<Result<AppendOutcome, AppendError>, sqlx::Error>;

impl SqliteEventStore {
    pub(super) async fn append_events(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        check_storable(stream, &events)?;
        if events.is_empty() {
            return self.empty_append(stream, expected).await;
        }
        let metadata = events
            .iter()
            .map(|e| {
                // Metadata is JSON values under string keys: it always
                // serializes. Were it not to, nothing has been written yet.
                serde_json::to_string(&e.metadata)
                    .map_err(|error| AppendError::Backend { stream: stream.clone(), source: Box::new(error) })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.submit(Request { stream: stream.clone(), expected, events, metadata }).await
    }

    /// An append of no events writes nothing: it only checks the
    /// expectation against the stream as a reader sees it.
    async fn empty_append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
    ) -> Result<AppendOutcome, AppendError> {
        let db = self.database();
        let mut conn = db.readers().acquire().await.map_err(|e| backend(stream, db.read_error(e)))?;
        let current = version_on(&mut conn, stream).await.map_err(|e| backend(stream, db.read_error(e)))?;
        if expected.accepts(current) {
            Ok(AppendOutcome { stream_version: current, committed: Vec::new() })
        } else {
            Err(AppendError::WrongExpectedVersion { stream: stream.clone(), expected, actual: current })
        }
    }
}

fn backend(stream: &StreamId, error: SqliteError) -> AppendError {
    AppendError::Backend { stream: stream.clone(), source: Box::new(error) }
}

/// Runs the appends of one group on the writer connection, in order, and
/// returns their outcomes in the same order. Nothing of a refused append
/// is written; if the group's transaction fails, nothing of any is.
pub(super) async fn run_group(
    db: &SqliteDatabase,
    conn: &mut SqliteConnection,
    requests: &[Request],
) -> Vec<Result<AppendOutcome, AppendError>> {
    if let [request] = requests {
        if let ([event], [metadata]) = (request.events.as_slice(), request.metadata.as_slice()) {
            // The common case in one statement. Anything but success is
            // decided again below, in a transaction.
            match append_single(conn, &request.stream, request.expected, event, metadata).await {
                Ok(Some(committed)) => {
                    db.signal_appended();
                    let stream_version = Some(committed.stream_version);
                    return vec![Ok(AppendOutcome { stream_version, committed: vec![committed] })];
                }
                Ok(None) => {}
                Err(error) if is_unique_violation(&error) => {}
                // The statement commits itself: a failure may be the commit's.
                Err(error) => return vec![Err(Failure::new(db, Stage::Commit, error).of(&request.stream))],
            }
        }
    }
    match in_transaction(conn, requests).await {
        Ok(outcomes) => {
            if outcomes.iter().any(Result::is_ok) {
                db.signal_appended();
            }
            outcomes
        }
        Err((stage, error)) => {
            let failure = Failure::new(db, stage, error);
            requests.iter().map(|r| Err(failure.of(&r.stream))).collect()
        }
    }
}

/// The group's appends in one write transaction, committed once. A failure
/// says whether it came from the commit (the appends' outcome may then be
/// unknown) or before it.
async fn in_transaction(
    conn: &mut SqliteConnection,
    requests: &[Request],
) -> Result<Vec<Result<AppendOutcome, AppendError>>, (Stage, sqlx::Error)> {
    let before = |error| (Stage::BeforeCommit, error);
    // Dropping `tx` on an early return rolls it back.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(before)?;
    let mut outcomes = Vec::with_capacity(requests.len());
    for request in requests {
        outcomes.push(apply(&mut tx, request).await.map_err(before)?);
    }
    tx.commit().await.map_err(|error| (Stage::Commit, error))?;
    Ok(outcomes)
}

/// One append inside the group's transaction.
async fn apply(conn: &mut SqliteConnection, request: &Request) -> Applied {
    let Request { stream, expected, events, metadata } = request;
    if let ([event], [metadata]) = (events.as_slice(), metadata.as_slice()) {
        return match append_single(conn, stream, *expected, event, metadata).await {
            Ok(Some(committed)) => Ok(Ok(AppendOutcome {
                stream_version: Some(committed.stream_version),
                committed: vec![committed],
            })),
            Ok(None) => decide(conn, request, None).await,
            Err(error) if is_unique_violation(&error) => decide(conn, request, Some(error)).await,
            Err(error) => Err(error),
        };
    }
    let mut savepoint = conn.begin().await?;
    let current = version_on(&mut savepoint, stream).await?;
    if !expected.accepts(current) {
        savepoint.rollback().await?;
        return decide(conn, request, None).await;
    }
    let recorded_at = Timestamp::now().as_micros();
    let mut committed = Vec::with_capacity(events.len());
    for ((event, metadata), version) in
        events.iter().zip(metadata).zip(current.map_or(0, StreamVersion::get) + 1..)
    {
        let inserted = sqlx::query(INSERT)
            .bind(event.event_id.as_uuid().as_bytes().as_slice())
            .bind(stream.as_str())
            .bind(clamp(version))
            .bind(event.aggregate_type.as_str())
            .bind(event.event_type.as_str())
            .bind(i64::from(event.schema_version))
            .bind(event.payload.as_str())
            .bind(metadata.as_str())
            .bind(recorded_at)
            .execute(&mut *savepoint)
            .await;
        match inserted {
            Ok(done) => committed.push(Committed {
                event_id: event.event_id,
                stream_version: StreamVersion(version),
                global_position: GlobalPosition(u64::try_from(done.last_insert_rowid()).unwrap_or(0)),
            }),
            Err(error) if is_unique_violation(&error) => {
                savepoint.rollback().await?;
                return decide(conn, request, Some(error)).await;
            }
            Err(error) => return Err(error),
        }
    }
    savepoint.commit().await?;
    let stream_version = committed.last().map(|c| c.stream_version);
    Ok(Ok(AppendOutcome { stream_version, committed }))
}

/// Decides an append that inserted nothing, in the same transaction: its
/// expectation did not hold, or (`conflict`) a unique index refused one of
/// its events. Looks up the batch's ids ([`classify_stored`]): an exact
/// retry of a stored append returns its original placement, any other
/// reuse of an id is [`AppendError::DuplicateEventId`], and otherwise the
/// expectation was wrong.
async fn decide(conn: &mut SqliteConnection, request: &Request, conflict: Option<sqlx::Error>) -> Applied {
    let Request { stream, expected, events, .. } = request;
    let mut stored: Vec<RecordedEvent> = Vec::new();
    for event in events {
        let row = sqlx::query(SELECT_BY_ID)
            .bind(event.event_id.as_uuid().as_bytes().as_slice())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = row {
            match row::recorded_event(&row, None) {
                Ok(event) => stored.push(event),
                Err(error) => return Ok(Err(store_backend(stream, error))),
            }
        }
    }
    let current = version_on(conn, stream).await?;
    Ok(match classify_stored(stream, *expected, events, &stored) {
        Ok(Some(committed)) => Ok(AppendOutcome { stream_version: current, committed }),
        Err(duplicate) => Err(duplicate),
        Ok(None) => match conflict {
            // Under the write lock a stream's next version cannot be taken
            // by anyone else, so a unique index refusing an append none of
            // whose ids is stored means the file breaks es's rules.
            Some(error) => return Err(error),
            None => Err(AppendError::WrongExpectedVersion {
                stream: stream.clone(),
                expected: *expected,
                actual: current,
            }),
        },
    })
}

fn store_backend(stream: &StreamId, error: StoreError) -> AppendError {
    AppendError::Backend { stream: stream.clone(), source: Box::new(error) }
}

/// Runs `append_single.sql`: `Some` with the event's placement if it was
/// inserted, `None` if the expectation did not hold.
async fn append_single(
    conn: &mut SqliteConnection,
    stream: &StreamId,
    expected: ExpectedVersion,
    event: &NewEvent,
    metadata: &str,
) -> Result<Option<Committed>, sqlx::Error> {
    let (kind, exact) = match expected {
        ExpectedVersion::Any => (0, 0),
        ExpectedVersion::NoStream => (1, 0),
        ExpectedVersion::StreamExists => (2, 0),
        ExpectedVersion::Exact(v) => (3, clamp(v.get())),
    };
    let row = sqlx::query(APPEND_SINGLE)
        .bind(event.event_id.as_uuid().as_bytes().as_slice())
        .bind(stream.as_str())
        .bind(event.aggregate_type.as_str())
        .bind(event.event_type.as_str())
        .bind(i64::from(event.schema_version))
        .bind(event.payload.as_str())
        .bind(metadata)
        .bind(Timestamp::now().as_micros())
        .bind(kind)
        .bind(exact)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let position: i64 = row.try_get(0)?;
    let version: i64 = row.try_get(1)?;
    Ok(Some(Committed {
        event_id: event.event_id,
        stream_version: StreamVersion(u64::try_from(version).unwrap_or(0)),
        global_position: GlobalPosition(u64::try_from(position).unwrap_or(0)),
    }))
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The stream's version, read on `conn`.
pub(super) async fn version_on(
    conn: &mut SqliteConnection,
    stream: &StreamId,
) -> Result<Option<StreamVersion>, sqlx::Error> {
    let version: Option<i64> =
        sqlx::query_scalar(STREAM_VERSION).bind(stream.as_str()).fetch_one(&mut *conn).await?;
    Ok(version.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0).map(StreamVersion))
}
