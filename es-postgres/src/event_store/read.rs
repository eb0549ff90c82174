//! Reading: one stream (forward, backward, for replay), the global stream,
//! a stream's version and the list of streams.
//!
//! Replay ([`EventStore::replay`](es_core::store::EventStore::replay)) is
//! one query whose rows are handed over as they arrive (sqlx's row stream
//! yields one row at a time off the socket), so a load of any length costs
//! one round trip and holds one row at a time.

use es_core::error::StoreError;
use es_core::store::{Direction, RecordedEvent, ReplayEvent, ReplayVisitor, StreamSummary};
use es_core::{EventId, GlobalPosition, StreamId, StreamVersion};
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use sqlx::SqlStr;
use uuid::Uuid;

use super::row::{self, column, positive, read_error};
use super::visibility::Horizon;
use super::{PgEventStore, PgQuery, PgQueryScalar};

/// Whether `stream` holds a NUL character: Postgres cannot take it as a
/// parameter, and no such stream can have been stored
/// ([`es_core::store::check_storable`]), so reads of it find nothing.
pub(crate) fn holds_nul(stream: &StreamId) -> bool {
    stream.as_str().contains('\0')
}

/// The most events a page read reserves room for before its rows arrive.
const PAGE_CAPACITY: usize = 4_096;

/// A count or version as a `bigint` parameter (saturating).
pub(super) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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

impl PgEventStore {
    /// [`EventStore::read_stream`](es_core::store::EventStore::read_stream).
    pub(super) async fn stream_events(
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

    /// [`EventStore::read_replay`](es_core::store::EventStore::read_replay).
    pub(super) async fn replay_events(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        let rows = self.stream_rows(&self.inner.sql.read_replay, stream, from, limit).await?;
        rows.iter().map(|row| row::replay_event(row, stream)).collect()
    }

    /// [`EventStore::replay`](es_core::store::EventStore::replay): the
    /// replay statement over the whole range, its rows streamed into
    /// `visit`.
    pub(super) async fn replay_streamed(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        up_to: Option<StreamVersion>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<(), StoreError> {
        // Versions start at 1: from 0 reads from the first event.
        let from = from.max(StreamVersion::FIRST);
        let count = match up_to {
            None => u64::MAX,
            Some(limit) if limit < from => return Ok(()),
            Some(limit) => (limit.get() - from.get()).saturating_add(1),
        };
        if holds_nul(stream) {
            return Ok(());
        }
        let location = || format!("stream `{stream}` from version {from}");
        let replay = async |conn: &mut PgConnection| -> Result<(), StoreError> {
            let mut rows = self.replay_query(stream, from, count).fetch(conn);
            while let Some(row) = rows.try_next().await.map_err(|e| read_error(e, location))? {
                if visit(row::replay_event(&row, stream)?).is_break() {
                    // Dropping the stream leaves the rest of the rows unread;
                    // the connection discards them before its next statement.
                    break;
                }
            }
            Ok(())
        };
        self.inner.calls.run_with(replay).await.map_err(|e| read_error(e.into(), location))?
    }

    /// The replay statement for `count` events of `stream` from `from`.
    /// Loads and the warm-up ([`warm_up`](super::warm_up)) both run it
    /// through here, so they bind alike and share sqlx's cached statement.
    pub(super) fn replay_query<'q>(
        &self,
        stream: &'q StreamId,
        from: StreamVersion,
        count: u64,
    ) -> PgQuery<'q> {
        sqlx::query(self.inner.sql.read_replay.clone())
            .bind(stream.as_str())
            .bind(clamp(from.get()))
            .bind(clamp(count))
    }

    /// The stream version statement for `stream` (as [`replay_query`](Self::replay_query)).
    pub(super) fn version_query<'q>(&self, stream: &'q StreamId) -> PgQueryScalar<'q, Option<i64>> {
        sqlx::query_scalar(self.inner.sql.stream_version.clone()).bind(stream.as_str())
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
        let query =
            sqlx::query(sql.clone()).bind(stream.as_str()).bind(clamp(from.get())).bind(clamp(limit as u64));
        self.inner
            .calls
            .run(async |conn| query.fetch_all(conn).await)
            .await
            .map_err(|e| read_error(e, || format!("stream `{stream}` from version {from}")))
    }

    /// [`EventStore::read_all`](es_core::store::EventStore::read_all): one
    /// read, and when it comes back short while committed events are hidden,
    /// a brief wait for them ([`PgEventStore::settle`]) and one more read.
    pub(super) async fn global_events(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (events, horizon) = self.global_page(after, limit).await?;
        if events.len() >= limit {
            return Ok(events);
        }
        match self.settle(horizon).await? {
            true => Ok(self.global_page(after, limit).await?.0),
            false => Ok(events),
        }
    }

    /// One page of the global stream and the horizon it was read under.
    /// Rows are decoded as they come off the socket, while the server is
    /// still sending the rest: decoding a page of 4,096 rows after it had
    /// all arrived took about a third of the read's time.
    async fn global_page(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<(Vec<RecordedEvent>, Horizon), StoreError> {
        let location = || format!("the global stream after position {after}");
        let query =
            sqlx::query(self.inner.sql.read_all.clone()).bind(clamp(after.get())).bind(clamp(limit as u64));
        let page = async |conn: &mut PgConnection| -> Result<(Vec<RecordedEvent>, Horizon), StoreError> {
            let mut rows = query.fetch(conn);
            let mut horizon = None;
            let mut events = Vec::new();
            while let Some(row) = rows.try_next().await.map_err(|e| read_error(e, location))? {
                if horizon.is_none() {
                    horizon = Some(Horizon::of(&row)?);
                }
                // Columns 0 and 1 are the horizon; the event's start at 2.
                let position: Option<i64> = column(&row, 2, &|| "an event row".to_owned())?;
                if position.is_none() {
                    continue;
                }
                match row::recorded_event(&row, 2, None) {
                    Ok(event) => {
                        if events.is_empty() {
                            events.reserve(limit.min(PAGE_CAPACITY));
                        }
                        events.push(event);
                    }
                    // A row that is no envelope ends the page: the events before
                    // it are returned, and the read that starts at it fails.
                    Err(error) if events.is_empty() => return Err(error),
                    Err(_) => break,
                }
            }
            Ok((events, horizon.unwrap_or(Horizon::NOTHING)))
        };
        self.inner.calls.run_with(page).await.map_err(|e| read_error(e.into(), location))?
    }

    /// [`EventStore::stream_version`](es_core::store::EventStore::stream_version).
    /// The stored events among `ids`, whole (see `stored_events.sql`).
    pub(super) async fn events_with_ids(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(EventId::as_uuid).collect();
        let query = sqlx::query(self.inner.sql.stored_events.clone()).bind(&ids);
        let rows = self
            .inner
            .calls
            .run(async |conn| query.fetch_all(conn).await)
            .await
            .map_err(|e| read_error(e, || "events looked up by id".to_owned()))?;
        rows.iter().map(|row| row::recorded_event(row, 0, None)).collect()
    }

    pub(super) async fn version_of_stream(
        &self,
        stream: &StreamId,
    ) -> Result<Option<StreamVersion>, StoreError> {
        if holds_nul(stream) {
            return Ok(None);
        }
        let query = self.version_query(stream);
        let version: Option<i64> = self
            .inner
            .calls
            .run(async |conn| query.fetch_one(conn).await)
            .await
            .map_err(|e| read_error(e, || format!("stream `{stream}`")))?;
        match version {
            None => Ok(None),
            Some(v) => {
                Ok(Some(StreamVersion(positive(v, "stream version", &|| format!("stream `{stream}`"))?)))
            }
        }
    }

    /// [`EventStore::streams`](es_core::store::EventStore::streams).
    pub(super) async fn stream_summaries(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        if prefix.contains('\0') || after.is_some_and(holds_nul) {
            return Ok(Vec::new());
        }
        let location = || format!("streams starting with {prefix:?}");
        let query = sqlx::query(self.inner.sql.streams.clone())
            .bind(prefix)
            .bind(prefix_end(prefix))
            .bind(after.map(StreamId::as_str))
            .bind(clamp(limit as u64));
        let rows = self
            .inner
            .calls
            .run(async |conn| query.fetch_all(conn).await)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_every_name_with_the_prefix() {
        assert_eq!(prefix_end("account-"), Some("account.".to_owned()));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{d7ff}"), Some("a\u{e000}".to_owned()), "surrogates are skipped");
        assert_eq!(prefix_end("a\u{10ffff}"), Some("b".to_owned()));
        assert_eq!(prefix_end("\u{10ffff}"), None);
    }
}
