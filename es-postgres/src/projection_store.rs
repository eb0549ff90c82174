//! The Postgres projection store: JSON documents and checkpoints, and a
//! unit of work that can carry the application's own SQL.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use es_core::error::{BoxError, ProjectionError};
use es_core::store::{Checkpoint, DocumentQuery, ProjectionStore, UnitOfWork};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, Row, SqlStr};

mod commit_unit;
mod containment;
mod transactions;

pub use transactions::{sql_failure, PgTransaction, TxFuture};

use crate::bounded::Calls;
use crate::migrate::{migrate, MigrateError};
use crate::schema::PgSchema;

/// A [`ProjectionStore`] on Postgres: documents as JSONB keyed by
/// (projection, id), one checkpoint per projection.
///
/// Cheap to clone. Call [`migrate`](PgProjectionStore::migrate) once before
/// use (it shares the migrations of [`PgEventStore`](crate::PgEventStore)).
///
/// **Fencing.** A unit of work with a [`fence`](UnitOfWork::fence) is
/// checked against the `leases` table of this store's schema, first in the
/// commit's transaction: unless the lease is held, unexpired, with the
/// fence's token, the commit is refused with [`ProjectionError::Fenced`]
/// and nothing is stored. The lease row stays locked (`FOR KEY SHARE`)
/// until the commit ends, so no other node can take the lease over in
/// between; the holder can still renew it (a renewal changes no key).
///
/// This only fences when the [`PgLeaseStore`](crate::PgLeaseStore) handing
/// out the leases uses the same schema as this store. A fence naming a
/// lease that has no row in this schema's table (leases kept elsewhere,
/// such as a read side's default in-memory lease store, or a
/// `PgLeaseStore` in another schema) cannot be checked and is ignored.
/// Lease rows are never deleted, so once a name was leased here its
/// commits stay fenced: do not move a subscription from a `PgLeaseStore`
/// in this schema to a lease store elsewhere.
#[derive(Clone)]
pub struct PgProjectionStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The pool, and the call timeout
    /// ([`set_call_timeout`](PgProjectionStore::set_call_timeout)).
    calls: Calls,
    schema: PgSchema,
    sql: Statements,
}

struct Statements {
    get: SqlStr,
    get_many: SqlStr,
    put: SqlStr,
    delete: SqlStr,
    query: SqlStr,
    query_containing: SqlStr,
    count: SqlStr,
    checkpoint: SqlStr,
    checkpoint_for_update: SqlStr,
    fence: SqlStr,
    commit_documents: SqlStr,
    commit_unit: SqlStr,
    put_checkpoint: SqlStr,
    reset_documents: SqlStr,
    reset_checkpoint: SqlStr,
}

impl Statements {
    fn new(schema: &PgSchema) -> Self {
        Self {
            get: schema.render("SELECT doc FROM {schema}.documents WHERE projection = $1 AND id = $2"),
            get_many: schema.render(include_str!("projection_store/get_many.sql")),
            put: schema.render(include_str!("projection_store/put.sql")),
            delete: schema.render("DELETE FROM {schema}.documents WHERE projection = $1 AND id = $2"),
            query: schema.render(include_str!("projection_store/query.sql")),
            query_containing: schema.render(include_str!("projection_store/query_containing.sql")),
            count: schema.render(
                "SELECT count(*) FROM {schema}.documents WHERE projection = $1 AND ($2::jsonb IS NULL OR doc @> $2::jsonb)",
            ),
            checkpoint: schema
                .render("SELECT position, replay_until FROM {schema}.checkpoints WHERE projection = $1"),
            checkpoint_for_update: schema
                .render("SELECT position FROM {schema}.checkpoints WHERE projection = $1 FOR UPDATE"),
            fence: schema.render(include_str!("projection_store/fence.sql")),
            commit_documents: schema.render(include_str!("projection_store/commit_documents.sql")),
            commit_unit: schema.render(include_str!("projection_store/commit_unit.sql")),
            put_checkpoint: schema.render(include_str!("projection_store/put_checkpoint.sql")),
            reset_documents: schema.render("DELETE FROM {schema}.documents WHERE projection = $1"),
            reset_checkpoint: schema.render("DELETE FROM {schema}.checkpoints WHERE projection = $1"),
        }
    }
}

impl fmt::Debug for PgProjectionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgProjectionStore").field("schema", &self.inner.schema).finish_non_exhaustive()
    }
}

fn backend(error: impl Into<BoxError>) -> ProjectionError {
    ProjectionError::Backend(error.into())
}

fn clamp(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A row's `id` and its document, as the list-returning reads answer them.
fn identified_document(
    row: &sqlx::postgres::PgRow,
    projection: &str,
) -> Result<(String, Value), ProjectionError> {
    let id: String = row.try_get("id").map_err(backend)?;
    let doc = document(row, projection, &id)?;
    Ok((id, doc))
}

/// A document column that does not decode (such as a number out of range).
fn document(row: &sqlx::postgres::PgRow, projection: &str, id: &str) -> Result<Value, ProjectionError> {
    row.try_get::<Value, _>("doc")
        .map_err(|e| backend(format!("document `{id}` of projection `{projection}` does not decode: {e}")))
}

impl PgProjectionStore {
    /// A store in the default schema (`es`) on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self::with_schema(pool, PgSchema::default())
    }

    /// A store in `schema` on `pool`.
    pub fn with_schema(pool: PgPool, schema: PgSchema) -> Self {
        let sql = Statements::new(&schema);
        Self { inner: Arc::new(Inner { calls: Calls::new(pool), schema, sql }) }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        self.inner.calls.pool()
    }

    /// Sets how long one call of this store (and of every clone of it) may
    /// take, waiting for a pooled connection included (default
    /// [`DEFAULT_CALL_TIMEOUT`](crate::DEFAULT_CALL_TIMEOUT), 30 s). A call
    /// that overruns fails and its connection is closed: see the crate
    /// docs, "When the server stops answering". A table projection's SQL is its own and not bounded. Takes effect for
    /// calls that start after it.
    pub fn set_call_timeout(&self, timeout: std::time::Duration) {
        self.inner.calls.set(timeout);
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &PgSchema {
        &self.inner.schema
    }

    /// Creates or upgrades the tables (see [`migrate`](crate::migrate())).
    ///
    /// # Errors
    /// [`MigrateError`] naming the step that failed.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        migrate(self.inner.calls.pool(), &self.inner.schema).await
    }
}

#[async_trait]
impl ProjectionStore for PgProjectionStore {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        let statement = sqlx::query(self.inner.sql.get.clone()).bind(projection).bind(id);
        let row =
            self.inner.calls.run(async |conn| statement.fetch_optional(conn).await).await.map_err(backend)?;
        row.map(|row| document(&row, projection, id)).transpose()
    }

    /// One statement, `id = ANY($2)`: one round trip for the whole list.
    async fn get_many(
        &self,
        projection: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let statement = sqlx::query(self.inner.sql.get_many.clone()).bind(projection).bind(ids);
        let rows =
            self.inner.calls.run(async |conn| statement.fetch_all(conn).await).await.map_err(backend)?;
        rows.iter().map(|row| identified_document(row, projection)).collect()
    }

    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        let statement =
            sqlx::query(self.inner.sql.put.clone()).bind(projection).bind(id).bind(Json(&document));
        self.inner.calls.run(async |conn| statement.execute(conn).await).await.map_err(backend)?;
        Ok(())
    }

    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        let statement = sqlx::query(self.inner.sql.delete.clone()).bind(projection).bind(id);
        self.inner.calls.run(async |conn| statement.execute(conn).await).await.map_err(backend)?;
        Ok(())
    }

    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        let sql = match query.contains {
            Some(_) => &self.inner.sql.query_containing,
            None => &self.inner.sql.query,
        };
        let mut statement =
            sqlx::query(sql.clone()).bind(projection).bind(clamp(query.offset)).bind(query.limit.map(clamp));
        if let Some(filter) = &query.contains {
            // Planned for this projection's name, so that its partial
            // containment index (if any) is used.
            statement = statement.bind(Json(filter)).persistent(false);
        }
        let rows =
            self.inner.calls.run(async |conn| statement.fetch_all(conn).await).await.map_err(backend)?;
        rows.iter().map(|row| identified_document(row, projection)).collect()
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        let statement = sqlx::query_as(self.inner.sql.checkpoint.clone()).bind(name);
        let row: Option<(i64, Option<i64>)> =
            self.inner.calls.run(async |conn| statement.fetch_optional(conn).await).await.map_err(backend)?;
        row.map(|(at, until)| Checkpoint::from_stored(name, at, until)).transpose()
    }

    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        self.commit_unit(projection, work).await
    }

    async fn count(&self, projection: &str, contains: Option<&Value>) -> Result<u64, ProjectionError> {
        let statement = sqlx::query_scalar(self.inner.sql.count.clone())
            .bind(projection)
            .bind(contains.map(Json))
            .persistent(contains.is_none());
        let count: i64 =
            self.inner.calls.run(async |conn| statement.fetch_one(conn).await).await.map_err(backend)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    fn transactions(&self) -> Option<&dyn es_core::store::ProjectionTransactions> {
        Some(self)
    }

    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        // Not bounded: deleting a large projection's documents takes as
        // long as it takes. Begun as every transaction here is (see
        // `Calls::begin`), in case the caller gives up on it.
        let mut tx = self.inner.calls.begin().await.map_err(backend)?;
        for sql in [&self.inner.sql.reset_documents, &self.inner.sql.reset_checkpoint] {
            sqlx::query(sql.clone()).bind(projection).execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}
