//! The `counters` read model: one row per counter with its value, the
//! stream version it reflects and the global position of that event.
//!
//! On SQLite and Postgres it is a table of the application's own, written
//! by an event handler ([`CountersTable`]) with plain SQL. On the in-memory
//! and Redis stores it is a document per counter, kept by a projection
//! ([`CounterDocuments`]).
//!
//! Both are idempotent by stream version: an increment is applied only to
//! the row at the version just before it, so an event delivered again
//! (delivery is at least once: after a crash, before the checkpoint moved)
//! changes nothing. A row behind by more than one version means an event
//! was skipped, and the handler fails loudly instead of counting wrong.

use es_core::error::ProjectionError;
use es_core::readside::Subscriber;
use es_core::store::ProjectionStore;
use es_core::{projection, HandleEvent, HandlerCtx, HandlerError, Project, ProjectionTx, Recorded};
use es_postgres::PgSchema;
use es_sqlite::SqliteDatabase;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{Created, Incremented};

/// The name of the document projection (in-memory and Redis stores).
pub const COUNTERS: &str = "counters";

/// The name of the table's handler (SQLite and Postgres).
pub const COUNTERS_TABLE: &str = "counters-table";

/// One counter as the read model has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRow {
    /// Its value.
    pub value: u64,
    /// The stream version of the last event counted.
    pub version: u64,
    /// The global position of that event.
    pub position: u64,
}

/// The counter's id: its stream is `counter-<id>`.
fn counter_id<E>(e: &Recorded<E>) -> Result<&str, HandlerError> {
    e.stream_id
        .as_str()
        .strip_prefix("counter-")
        .ok_or_else(|| HandlerError::msg(format!("stream `{}` is not a counter's", e.stream_id)))
}

/// An increment that cannot be counted: the row is not at the version just
/// before it (an event was skipped, or the row was changed by hand).
fn behind(id: &str, stored: Option<u64>, version: u64) -> HandlerError {
    HandlerError::msg(format!(
        "counter `{id}` is at version {} in the read model, so event version {version} cannot be counted",
        stored.map_or_else(|| "none".to_owned(), |v| v.to_string())
    ))
}

/// Keeps one document per counter (on stores without SQL).
#[projection(name = "counters", events(Created, Incremented))]
#[derive(Debug, Default)]
pub struct CounterDocuments;

impl Project<Created> for CounterDocuments {
    async fn project(&self, e: &Recorded<Created>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = counter_id(e)?;
        if tx.get::<CounterRow>(id).await?.is_none() {
            let row = CounterRow { value: 0, version: e.stream_version.get(), position: e.position.get() };
            tx.put(id, &row)?;
        }
        Ok(())
    }
}

impl Project<Incremented> for CounterDocuments {
    async fn project(&self, e: &Recorded<Incremented>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = counter_id(e)?;
        let version = e.stream_version.get();
        let stored = tx.get::<CounterRow>(id).await?;
        match stored {
            Some(row) if row.version >= version => Ok(()), // counted already
            Some(row) if row.version + 1 == version => {
                let row = CounterRow { value: row.value + e.by, version, position: e.position.get() };
                Ok(tx.put(id, &row)?)
            }
            other => Err(behind(id, other.map(|row| row.version), version)),
        }
    }
}

/// The counter document of `id` in `store`.
///
/// # Errors
/// If the store fails or the document is not a counter row.
pub async fn document(store: &dyn ProjectionStore, id: &str) -> anyhow::Result<Option<CounterRow>> {
    let Some(document) = store.get(COUNTERS, id).await? else { return Ok(None) };
    serde_json::from_value(document).map(Some).map_err(|source| {
        ProjectionError::Serde { projection: COUNTERS.into(), id: id.into(), source }.into()
    })
}

/// The `counters` table, in an SQLite file or a Postgres schema.
#[derive(Debug, Clone)]
pub enum SqlTable {
    /// In the SQLite file of the event store.
    Sqlite(SqliteDatabase),
    /// In a Postgres schema (the pool's `search_path` names it).
    Postgres(PgPool, PgSchema),
}

const SQLITE_CREATE: &str = include_str!("counters/sqlite_create.sql");
const SQLITE_CREATED: &str = include_str!("counters/sqlite_created.sql");
const SQLITE_INCREMENTED: &str = include_str!("counters/sqlite_incremented.sql");
const SQLITE_ROW: &str = include_str!("counters/sqlite_row.sql");
const PG_CREATE: &str = include_str!("counters/pg_create.sql");
const PG_CREATED: &str = include_str!("counters/pg_created.sql");
const PG_INCREMENTED: &str = include_str!("counters/pg_incremented.sql");
const PG_ROW: &str = include_str!("counters/pg_row.sql");

/// Turns a stored counter into `u64`: the table's columns are never negative.
fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Turns a counter into a SQL integer.
fn signed(n: u64) -> Result<i64, HandlerError> {
    i64::try_from(n).map_err(|_| HandlerError::msg(format!("{n} does not fit a SQL integer")))
}

impl SqlTable {
    /// Creates the table if it is missing.
    ///
    /// # Errors
    /// If the database refuses.
    pub async fn create(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(db) => {
                let mut tx = db.begin_write().await?;
                sqlx::query(SQLITE_CREATE).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Self::Postgres(pool, _) => {
                sqlx::query(PG_CREATE).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// The row of counter `id`.
    ///
    /// # Errors
    /// If the read fails.
    pub async fn row(&self, id: &str) -> anyhow::Result<Option<CounterRow>> {
        let row: Option<(i64, i64, i64)> = match self {
            Self::Sqlite(db) => sqlx::query_as(SQLITE_ROW).bind(id).fetch_optional(db.readers()).await?,
            Self::Postgres(pool, _) => sqlx::query_as(PG_ROW).bind(id).fetch_optional(pool).await?,
        };
        Ok(row.map(|(value, version, position)| CounterRow {
            value: unsigned(value),
            version: unsigned(version),
            position: unsigned(position),
        }))
    }

    async fn created(&self, id: &str, version: i64, position: i64) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(db) => {
                let mut conn = db.writer().await.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                sqlx::query(SQLITE_CREATED).bind(id).bind(version).bind(position).execute(&mut *conn).await?;
            }
            Self::Postgres(pool, _) => {
                sqlx::query(PG_CREATED).bind(id).bind(version).bind(position).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Counts an increment to version `version`; how many rows changed (0:
    /// the row is not at `version - 1`).
    async fn incremented(&self, id: &str, by: i64, version: i64, position: i64) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(db) => {
                let mut conn = db.writer().await.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                let query = sqlx::query(SQLITE_INCREMENTED).bind(id).bind(by).bind(version).bind(position);
                query.execute(&mut *conn).await?.rows_affected()
            }
            Self::Postgres(pool, _) => {
                let query = sqlx::query(PG_INCREMENTED).bind(id).bind(by).bind(version).bind(position);
                query.execute(pool).await?.rows_affected()
            }
        })
    }
}

/// Keeps the `counters` table with the application's own SQL (on SQLite
/// and Postgres), one statement per event, idempotent by version.
#[derive(Debug, Clone)]
pub struct CountersTable {
    table: SqlTable,
}

impl CountersTable {
    /// The read-side subscriber keeping `table`, consuming [`Created`] and
    /// [`Incremented`].
    pub fn subscriber(table: SqlTable) -> Subscriber {
        Subscriber::handler(Self { table }).on::<Created>().on::<Incremented>().build()
    }
}

impl HandleEvent<Created> for CountersTable {
    async fn handle(&self, e: &Recorded<Created>, _: &HandlerCtx) -> Result<(), HandlerError> {
        let id = counter_id(e)?;
        let (version, position) = (signed(e.stream_version.get())?, signed(e.position.get())?);
        self.table.created(id, version, position).await.map_err(HandlerError::other)
    }
}

impl HandleEvent<Incremented> for CountersTable {
    async fn handle(&self, e: &Recorded<Incremented>, _: &HandlerCtx) -> Result<(), HandlerError> {
        let id = counter_id(e)?;
        let version = e.stream_version.get();
        let (by, at, position) = (signed(e.by)?, signed(version)?, signed(e.position.get())?);
        if self.table.incremented(id, by, at, position).await.map_err(HandlerError::other)? == 1 {
            return Ok(());
        }
        // Nothing changed: counted already, or the row is behind.
        let stored = self.table.row(id).await.map_err(|e| HandlerError::msg(e.to_string()))?;
        match stored {
            Some(row) if row.version >= version => Ok(()),
            other => Err(behind(id, other.map(|row| row.version), version)),
        }
    }
}
