//! What readers of the global stream may see: the horizon below which
//! positions are settled, the visible head, and the brief wait for
//! transactions that hide events committed after them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use es_core::error::StoreError;
use es_core::GlobalPosition;
use sqlx::postgres::PgRow;

use super::row::{column, read_error};
use super::PgEventStore;

/// See [`PgEventStore::set_visibility_wait`].
pub(super) const DEFAULT_WAIT_MICROS: u64 = 100_000;

/// What a read could see: positions below `below` are settled; `newest` is
/// the newest committed position (it may lie above `below`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Horizon {
    below: i64,
    newest: Option<i64>,
}

impl Horizon {
    /// The horizon of an empty store.
    pub(super) const NOTHING: Self = Self { below: 0, newest: None };

    /// Reads the `below` and `newest` columns of a row.
    pub(super) fn of(row: &PgRow) -> Result<Self, StoreError> {
        let location = || "the global stream's horizon".to_owned();
        Ok(Self { below: column(row, "below", &location)?, newest: column(row, "newest", &location)? })
    }
}

impl PgEventStore {
    /// Sets how long [`read_all`](es_core::store::EventStore::read_all) and
    /// [`head_position`](es_core::store::EventStore::head_position) wait, at
    /// most, for transactions that started before committed events they
    /// would hide (default 100 ms). Such transactions are usually appends
    /// about to commit; waiting for them gives readers their own writes.
    /// Zero turns the wait off. A long-running transaction costs each short
    /// read this long.
    pub fn set_visibility_wait(&self, wait: Duration) {
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.inner.visibility_wait_micros.store(micros, Ordering::Relaxed);
    }

    /// [`EventStore::head_position`](es_core::store::EventStore::head_position):
    /// the visible head, after a brief wait when committed events are hidden.
    pub(super) async fn visible_head(&self) -> Result<GlobalPosition, StoreError> {
        let (head, horizon) = self.head().await?;
        match self.settle(horizon).await? {
            true => Ok(self.head().await?.0),
            false => Ok(head),
        }
    }

    /// The visible head and the horizon it was read under.
    async fn head(&self) -> Result<(GlobalPosition, Horizon), StoreError> {
        let statement = sqlx::query(self.inner.sql.head_position.clone());
        let row = self
            .inner
            .calls
            .run(async |conn| statement.fetch_one(conn).await)
            .await
            .map_err(|e| read_error(e, || "the global stream's head".to_owned()))?;
        let head: i64 = column(&row, "head", &|| "the global stream's head".to_owned())?;
        Ok((GlobalPosition(u64::try_from(head).unwrap_or(0)), Horizon::of(&row)?))
    }

    /// If `seen` hides committed events (an older transaction is still in
    /// flight), waits until every transaction that started before the newest
    /// of them has ended, or until the visibility wait runs out. Returns
    /// whether a re-read would show more. Transactions that start later get
    /// newer ids, so they never prolong this wait.
    pub(super) async fn settle(&self, seen: Horizon) -> Result<bool, StoreError> {
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
