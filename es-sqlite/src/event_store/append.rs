//! One append: a write transaction that reads the stream's version, checks
//! the expectation and inserts the batch, all under the file's write lock.
//!
//! `BEGIN IMMEDIATE` takes the write lock before the first read, so nothing
//! can change the stream between the check and the inserts, and positions
//! are handed out in commit order. A refused expectation or a reused event
//! id is classified by es-core's exact-retry rule
//! ([`classify_stored`]) against what is stored.

use std::collections::HashSet;

use es_core::error::{AppendError, StoreError};
use es_core::store::{
    check_storable, classify_stored, AppendOutcome, Committed, ExpectedVersion, NewEvent, RecordedEvent,
    Timestamp,
};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use sqlx::{Connection, Row, SqliteConnection};

use super::{row, SqliteEventStore, SELECT_BY_ID, STREAM_VERSION};
use crate::database::SqliteDatabase;
use crate::error::{is_unique_violation, SqliteError};

const INSERT: &str = include_str!("insert.sql");
const APPEND_SINGLE: &str = include_str!("append_single.sql");

/// How often an append starts over when a unique index refused it but the
/// conflicting id was gone by the time it looked (deleted with the deletion
/// switch in between): practically never more than once.
const MAX_ATTEMPTS: u32 = 3;

/// What one write transaction did.
enum Attempt {
    /// Committed (or, for an exact retry, found committed).
    Done(AppendOutcome),
    /// A unique index refused an insert; the transaction was rolled back.
    Conflict(sqlx::Error),
}

impl SqliteEventStore {
    pub(super) async fn append_batch(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, AppendError> {
        check_storable(stream, events)?;
        check_batch(stream, events)?;
        let db = self.database();
        let backend = |e: SqliteError| AppendError::Backend { stream: stream.clone(), source: Box::new(e) };
        let write = |e: sqlx::Error| backend(db.write_error(e));
        let metadata = events
            .iter()
            .map(|e| {
                serde_json::to_string(&e.metadata).map_err(|error| AppendError::Unstorable {
                    stream: stream.clone(),
                    reason: format!("the metadata of event {} does not serialize: {error}", e.event_id),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = db.writer().await.map_err(backend)?;
        let mut last_conflict = None;
        for _ in 0..MAX_ATTEMPTS {
            match self.attempt(&mut conn, stream, expected, events, &metadata).await? {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Conflict(error) => {
                    // The batch is rolled back; what holds its ids now is
                    // committed and stays (events are append only).
                    if let Some(outcome) = earlier_append(db, &mut conn, stream, expected, events).await? {
                        return Ok(outcome);
                    }
                    last_conflict = Some(error);
                }
            }
        }
        Err(match last_conflict {
            Some(error) => write(error),
            None => backend(db.write_error(sqlx::Error::Protocol("append made no attempt".into()))),
        })
    }

    async fn attempt(
        &self,
        conn: &mut SqliteConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
        metadata: &[String],
    ) -> Result<Attempt, AppendError> {
        let db = self.database();
        let write = |e: sqlx::Error| AppendError::Backend {
            stream: stream.clone(),
            source: Box::new(db.write_error(e)),
        };
        if let ([event], [metadata]) = (events, metadata) {
            // The common case in one statement. Anything but success is
            // decided again below, under a write transaction.
            match append_single(conn, stream, expected, event, metadata).await {
                Ok(Some(committed)) => {
                    db.signal_appended();
                    let stream_version = Some(committed.stream_version);
                    return Ok(Attempt::Done(AppendOutcome { stream_version, committed: vec![committed] }));
                }
                Ok(None) => {}
                Err(error) if is_unique_violation(&error) => {}
                Err(error) => return Err(write(error)),
            }
        }
        // Dropping `tx` on an early return rolls it back.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(write)?;
        let current = version_on(&mut tx, stream).await.map_err(write)?;
        if !expected.accepts(current) {
            if let Some(outcome) = earlier_append(db, &mut tx, stream, expected, events).await? {
                return Ok(Attempt::Done(outcome));
            }
            return Err(AppendError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: current,
            });
        }
        let start = current.map_or(0, StreamVersion::get);
        if events.is_empty() {
            return Ok(Attempt::Done(AppendOutcome { stream_version: current, committed: Vec::new() }));
        }
        let recorded_at = Timestamp::now().as_micros();
        let mut committed = Vec::with_capacity(events.len());
        for ((event, metadata), version) in events.iter().zip(metadata).zip(start + 1..) {
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
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(done) => committed.push(Committed {
                    event_id: event.event_id,
                    stream_version: StreamVersion(version),
                    global_position: GlobalPosition(u64::try_from(done.last_insert_rowid()).unwrap_or(0)),
                }),
                Err(error) if is_unique_violation(&error) => {
                    tx.rollback().await.map_err(write)?;
                    return Ok(Attempt::Conflict(error));
                }
                Err(error) => return Err(write(error)),
            }
        }
        tx.commit().await.map_err(write)?;
        self.database().signal_appended();
        let stream_version = committed.last().map(|c| c.stream_version);
        Ok(Attempt::Done(AppendOutcome { stream_version, committed }))
    }
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

/// Refuses a batch that repeats an id.
fn check_batch(stream: &StreamId, events: &[NewEvent]) -> Result<(), AppendError> {
    let mut seen = HashSet::with_capacity(events.len());
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(AppendError::DuplicateInBatch { event_id: event.event_id, stream: stream.clone() });
        }
    }
    Ok(())
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

/// Looks up the batch's ids on `conn` and classifies the batch
/// ([`classify_stored`]): `Ok(Some(..))` for an exact retry of a committed
/// append (its original outcome), `Err(DuplicateEventId)` for any other
/// reuse, `Ok(None)` when no id is stored.
async fn earlier_append(
    db: &SqliteDatabase,
    conn: &mut SqliteConnection,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<Option<AppendOutcome>, AppendError> {
    let backend = |e: StoreError| AppendError::Backend { stream: stream.clone(), source: Box::new(e) };
    let write =
        |e: sqlx::Error| AppendError::Backend { stream: stream.clone(), source: Box::new(db.write_error(e)) };
    let mut stored: Vec<RecordedEvent> = Vec::new();
    for event in events {
        let row = sqlx::query(SELECT_BY_ID)
            .bind(event.event_id.as_uuid().as_bytes().as_slice())
            .fetch_optional(&mut *conn)
            .await
            .map_err(write)?;
        if let Some(row) = row {
            stored.push(row::recorded_event(&row, None).map_err(backend)?);
        }
    }
    let Some(committed) = classify_stored(stream, expected, events, &stored)? else { return Ok(None) };
    let current = version_on(conn, stream).await.map_err(write)?;
    Ok(Some(AppendOutcome { stream_version: current, committed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_in_one_batch_is_refused() {
        let event = NewEvent::new("t", "T", 1, serde_json::json!({}));
        let err = check_batch(&StreamId::new("s"), &[event.clone(), event]).unwrap_err();
        assert!(matches!(err, AppendError::DuplicateInBatch { .. }));
    }
}
