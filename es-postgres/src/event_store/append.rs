//! Appending: one statement per batch (`append.sql`, or `append_single.sql`
//! for one event in its own transaction), retried when a concurrent writer takes
//! the stream's next version first and the expectation allows it; a batch
//! whose ids are stored already is an exact retry or a duplicate.

use es_core::error::{AppendError, StoreError};
use es_core::store::{
    check_storable, classify_stored, AppendOutcome, Committed, ExpectedVersion, NewEvent, Payload,
    RecordedEvent, MAX_BATCH_EVENTS,
};
use es_core::{GlobalPosition, Metadata, StreamId, StreamVersion};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

use super::outcome;
use super::row::{self, read_error};
use super::PgEventStore;
use crate::error::BatchTooLarge;

/// The most events one transaction can append (over all its appends): the
/// size of one transaction's range of global positions, 2^20.
pub const MAX_EVENTS_PER_TRANSACTION: u64 = 1 << 20;

/// How often an append with [`ExpectedVersion::Any`] or
/// [`ExpectedVersion::StreamExists`] is retried when a concurrent writer
/// takes the stream's next version first.
const MAX_ATTEMPTS: u32 = 16;

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

/// The batch as the parallel arrays the append statements unnest.
#[derive(Default)]
pub(super) struct Batch<'a> {
    pub(super) ids: Vec<Uuid>,
    pub(super) aggregate_types: Vec<&'a str>,
    pub(super) event_types: Vec<&'a str>,
    pub(super) schema_versions: Vec<i64>,
    pub(super) payloads: Vec<Json<&'a Payload>>,
    pub(super) metadata: Vec<Json<&'a Metadata>>,
}

impl<'a> Batch<'a> {
    fn new(events: &'a [NewEvent]) -> Self {
        let mut batch = Self::default();
        for event in events {
            batch.push(event);
        }
        batch
    }

    /// Adds `event` at the end.
    pub(super) fn push(&mut self, event: &'a NewEvent) {
        self.ids.push(event.event_id.as_uuid());
        self.aggregate_types.push(event.aggregate_type.as_str());
        self.event_types.push(event.event_type.as_str());
        self.schema_versions.push(i64::from(event.schema_version));
        self.payloads.push(Json(&event.payload));
        self.metadata.push(Json(&event.metadata));
    }
}

// One batch fits one transaction's range of positions; only several
// appends in one caller's transaction can overflow it.
const _: () = assert!(MAX_BATCH_EVENTS as u64 <= MAX_EVENTS_PER_TRANSACTION);

fn too_large(stream: &StreamId, requested: u64) -> AppendError {
    AppendError::Backend {
        stream: stream.clone(),
        source: Box::new(BatchTooLarge { requested, max: MAX_EVENTS_PER_TRANSACTION }),
    }
}

/// The outcome of `events` stored after stream version `version` from
/// global position `first_position` on.
pub(super) fn placed(events: &[NewEvent], version: u64, first_position: u64) -> AppendOutcome {
    let committed: Vec<Committed> = events
        .iter()
        .zip(0u64..)
        .map(|(e, i)| Committed {
            event_id: e.event_id,
            stream_version: StreamVersion(version + 1 + i),
            global_position: GlobalPosition(first_position + i),
        })
        .collect();
    AppendOutcome { stream_version: committed.last().map(|c| c.stream_version), committed }
}

/// The statements' code for `expected`: (kind, exact version).
pub(super) fn expectation(expected: ExpectedVersion) -> (i32, i64) {
    match expected {
        ExpectedVersion::Any => (0, 0),
        ExpectedVersion::NoStream => (1, 0),
        ExpectedVersion::StreamExists => (2, 0),
        ExpectedVersion::Exact(v) => (3, i64::try_from(v.get()).unwrap_or(i64::MAX)),
    }
}

pub(super) fn version_of(raw: i64) -> Option<StreamVersion> {
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
    /// As [`EventStore::append`](es_core::store::EventStore::append);
    /// [`AppendError::Backend`] with a [`BatchTooLarge`] source if the
    /// transaction would hold more than [`MAX_EVENTS_PER_TRANSACTION`]
    /// events.
    pub async fn append_in_tx(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.append_on(conn, true, stream, expected, &events).await
    }

    pub(super) async fn append_on(
        &self,
        conn: &mut PgConnection,
        in_tx: bool,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, AppendError> {
        let backend = |e: sqlx::Error| AppendError::Backend { stream: stream.clone(), source: Box::new(e) };
        check_storable(stream, events)?;
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
            .map_err(|error| outcome::statement_failed(stream, in_tx, error))?;
            match attempt {
                Attempt::Inserted { version, first_position } => {
                    if !in_tx {
                        self.inner.notifier.signal(self.inner.calls.pool(), &self.inner.channel);
                    }
                    return Ok(placed(events, version, first_position));
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

    /// After a refused append: if some of the batch's ids are stored, reads
    /// those events whole and lets es-core's one rule decide
    /// ([`classify_stored`]): an exact retry of a committed append gets its
    /// original outcome, any other reuse is
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
        let rows = sqlx::query(self.inner.sql.stored_events.clone())
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| backend(read_error(e, || "the stored events of a batch's ids".to_owned())))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let stored: Vec<RecordedEvent> = rows
            .iter()
            .map(|row| row::recorded_event(row, 0, None))
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let Some(committed) = classify_stored(stream, expected, events, &stored)? else { return Ok(None) };
        let current =
            self.version_on(conn, stream).await.map_err(|e| backend(StoreError::Backend(Box::new(e))))?;
        Ok(Some(AppendOutcome { stream_version: current, committed }))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflowing_transaction_is_a_typed_error() {
        let stream = StreamId::new("big");
        match too_large(&stream, MAX_EVENTS_PER_TRANSACTION + 1) {
            AppendError::Backend { stream: s, source } => {
                assert_eq!(s, stream);
                let too_large = source.downcast_ref::<BatchTooLarge>().expect("a BatchTooLarge source");
                assert_eq!(too_large.requested, MAX_EVENTS_PER_TRANSACTION + 1);
                assert_eq!(too_large.max, 1 << 20);
            }
            other => panic!("expected Backend(BatchTooLarge), got {other:?}"),
        }
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
