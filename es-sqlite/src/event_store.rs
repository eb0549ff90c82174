//! The SQLite event store.
//!
//! Appends run in one write transaction each (`event_store/append.rs`), so
//! the global position is a gap-free integer sequence in commit order;
//! readers page through it with plain range scans of the rowid.

mod append;
mod group;
mod outcome;
mod row;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, StoreError};
use es_core::store::{
    AppendOutcome, Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent, ReplayEvent,
    StreamSummary,
};
use es_core::{EventId, GlobalPosition, StreamId, StreamVersion};
use sqlx::sqlite::SqliteRow;

use crate::database::SqliteDatabase;
use crate::migrate::MigrateError;

pub(crate) use row::{column, positive, schema_version};

const STREAM_VERSION: &str = include_str!("event_store/stream_version.sql");
const HEAD_POSITION: &str = include_str!("event_store/head_position.sql");
const READ_REPLAY: &str = include_str!("event_store/read_replay.sql");
const READ_FORWARD: &str = concat!(
    include_str!("event_store/select_events.sql"),
    "WHERE stream_id = ?1 AND stream_version >= ?2 ORDER BY stream_version LIMIT ?3"
);
const READ_BACKWARD: &str = concat!(
    include_str!("event_store/select_events.sql"),
    "WHERE stream_id = ?1 AND stream_version <= ?2 ORDER BY stream_version DESC LIMIT ?3"
);
const READ_ALL: &str = concat!(
    include_str!("event_store/select_events.sql"),
    "WHERE global_position > ?1 ORDER BY global_position LIMIT ?2"
);
const STREAMS: &str = include_str!("event_store/streams.sql");
const SELECT_BY_ID: &str = concat!(include_str!("event_store/select_events.sql"), "WHERE event_id = ?1");

/// An [`EventStore`] and [`SnapshotStore`](es_core::store::SnapshotStore) in an
/// SQLite file.
///
/// Cheap to clone (clones share the [`SqliteDatabase`]). Call
/// [`migrate`](SqliteEventStore::migrate) once before use.
///
/// **Group commit.** Appends that wait for the writer at the same time
/// (several tasks of the process appending at once) commit together in one
/// transaction, each as if alone: each checks its own expectation and is
/// refused or stored on its own. With `synchronous = FULL` they share one
/// flush to disk.
///
/// **Exact retries.** An append whose event ids are all stored, in order,
/// at consecutive versions of the same stream, with the same content
/// (aggregate type, event type, schema version, payload as a JSON value,
/// metadata), under an expectation that admitted that placement, is an
/// exact retry: it returns the original versions and positions and stores
/// nothing. Any other reuse of a stored id is
/// [`AppendError::DuplicateEventId`]. `ExpectedVersion::Exact(StreamVersion(0))`
/// means "no stream".
#[derive(Clone)]
pub struct SqliteEventStore {
    db: SqliteDatabase,
    /// Appends waiting for the writer (shared by clones).
    queue: Arc<group::Queue>,
}

impl fmt::Debug for SqliteEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteEventStore").field("path", &self.db.path()).finish()
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The least string above every string that starts with `prefix` (`None`
/// if there is none). TEXT compares bytewise, and UTF-8's byte order is
/// code point order: bump the last character that has a successor.
fn past_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl SqliteEventStore {
    /// A store on `db`'s file.
    pub fn new(db: SqliteDatabase) -> Self {
        Self { db, queue: Arc::default() }
    }

    fn queue(&self) -> &group::Queue {
        &self.queue
    }

    /// The database the store lives in.
    pub fn database(&self) -> &SqliteDatabase {
        &self.db
    }

    /// Creates or upgrades the tables (see [`SqliteDatabase::migrate`]).
    ///
    /// # Errors
    /// [`MigrateError`] naming the file and the step that failed.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        self.db.migrate().await
    }

    /// A read failure, naming the file.
    fn read_error(&self, error: sqlx::Error) -> StoreError {
        StoreError::Backend(Box::new(self.db.read_error(error)))
    }

    /// The rows of one of the stream statements (`?1` stream, `?2` version,
    /// `?3` limit).
    async fn stream_rows(
        &self,
        sql: &'static str,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<SqliteRow>, StoreError> {
        sqlx::query(sql)
            .bind(stream.as_str())
            .bind(clamp(from.get()))
            .bind(clamp(limit as u64))
            .fetch_all(self.db.readers())
            .await
            .map_err(|e| self.read_error(e))
    }
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.append_events(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = match direction {
            Direction::Forward => READ_FORWARD,
            Direction::Backward => READ_BACKWARD,
        };
        let rows = self.stream_rows(sql, stream, from, limit).await?;
        rows.iter().map(|row| row::recorded_event(row, Some(stream))).collect()
    }

    /// Reads five of the ten columns: what replay needs, and the position
    /// to name a corrupt row.
    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        let rows = self.stream_rows(READ_REPLAY, stream, from, limit).await?;
        rows.iter().map(|row| row::replay_event(row, stream)).collect()
    }

    /// A row that cannot become an envelope ends the page: the events
    /// before it are returned, and a read that starts at it fails with
    /// [`StoreError::Corrupt`] carrying its position.
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(READ_ALL)
            .bind(clamp(after.get()))
            .bind(clamp(limit as u64))
            .fetch_all(self.db.readers())
            .await
            .map_err(|e| self.read_error(e))?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            match row::recorded_event(row, None) {
                Ok(event) => events.push(event),
                Err(StoreError::Corrupt { .. }) if !events.is_empty() => break,
                Err(error) => return Err(error),
            }
        }
        Ok(events)
    }

    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::new();
        for id in ids {
            let row = sqlx::query(SELECT_BY_ID)
                .bind(id.as_uuid().as_bytes().as_slice())
                .fetch_optional(self.db.readers())
                .await
                .map_err(|e| self.read_error(e))?;
            if let Some(row) = row {
                events.push(row::recorded_event(&row, None)?);
            }
        }
        Ok(events)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        let version: Option<i64> = sqlx::query_scalar(STREAM_VERSION)
            .bind(stream.as_str())
            .fetch_one(self.db.readers())
            .await
            .map_err(|e| self.read_error(e))?;
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
        let rows = sqlx::query(STREAMS)
            .bind(prefix)
            .bind(past_prefix(prefix))
            .bind(after.map(StreamId::as_str))
            .bind(clamp(limit as u64))
            .fetch_all(self.db.readers())
            .await
            .map_err(|e| self.read_error(e))?;
        let location = || format!("streams starting with {prefix:?}");
        rows.iter()
            .map(|row| {
                let name: String = column(row, 0, &location)?;
                let version = positive(column(row, 1, &location)?, "stream version", &location)?;
                Ok(StreamSummary::new(StreamId::new(name), StreamVersion(version)))
            })
            .collect()
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        let head: i64 = sqlx::query_scalar(HEAD_POSITION)
            .fetch_one(self.db.readers())
            .await
            .map_err(|e| self.read_error(e))?;
        Ok(GlobalPosition(u64::try_from(head).unwrap_or(0)))
    }

    /// Returns at once when an append through this process's
    /// [`SqliteDatabase`] commits; appends by other processes on the file
    /// are seen by polling the head every
    /// [`poll_interval`](crate::SqliteOptions::poll_interval). Never waits
    /// past `max_wait`, also when every reader connection is busy.
    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        let deadline = tokio::time::Instant::now() + max_wait;
        let poll = self.db.options().get_poll_interval();
        let wait = async {
            let mut appended = self.db.appended();
            loop {
                appended.borrow_and_update();
                // Something may have committed before we looked.
                if self.head_position().await.is_ok_and(|head| head > after) {
                    return;
                }
                let next_poll = (tokio::time::Instant::now() + poll).min(deadline);
                // A change here, or the next poll, or the deadline.
                let _ = tokio::time::timeout_at(next_poll, appended.changed()).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline, wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::past_prefix;

    #[test]
    fn past_prefix_bounds_every_name_with_the_prefix() {
        assert_eq!(past_prefix("account-").as_deref(), Some("account."));
        assert_eq!(past_prefix(""), None);
        assert_eq!(past_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(past_prefix("\u{10FFFF}"), None);
        // No surrogate code points: U+D7FF is followed by U+E000.
        assert_eq!(past_prefix("\u{D7FF}").as_deref(), Some("\u{E000}"));
        for name in ["account-", "account-1", "account-\u{10FFFF}x"] {
            assert!(name < "account.", "{name}");
        }
    }
}
