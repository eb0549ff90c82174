//! The SQLite projection store: JSON documents and checkpoints, and a unit
//! of work that can carry the application's own SQL.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use es_core::error::{BoxError, ProjectionError};
use es_core::store::{Checkpoint, DocumentChange, DocumentQuery, Fence, ProjectionStore, UnitOfWork};
use es_core::GlobalPosition;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Row, SqlStr, SqliteConnection};

use crate::clock;
use crate::database::SqliteDatabase;
use crate::error::SqliteError;
use crate::migrate::MigrateError;

/// A boxed future borrowing the transaction it runs in, as
/// [`SqliteProjectionStore::commit_with`] takes.
pub type TxFuture<'t> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 't>>;

const GET: &str = include_str!("projection_store/get.sql");
const GET_MANY: &str = include_str!("projection_store/get_many.sql");
const DELETE: &str = include_str!("projection_store/delete.sql");
const QUERY: &str = include_str!("projection_store/query.sql");
const CHECKPOINT: &str = include_str!("projection_store/checkpoint.sql");
const COUNT: &str = "SELECT count(*) FROM es_documents WHERE projection = ?1";
const RESET_DOCUMENTS: &str = include_str!("projection_store/reset_documents.sql");
const RESET_CHECKPOINT: &str = include_str!("projection_store/reset_checkpoint.sql");

/// A [`ProjectionStore`] in an SQLite file: documents as JSON text keyed
/// by (projection, id), one checkpoint per projection.
///
/// Cheap to clone. Call [`migrate`](SqliteProjectionStore::migrate) once
/// before use (it shares the migrations of [`SqliteEventStore`](crate::SqliteEventStore)).
///
/// **Queries.** A [`DocumentQuery`] without a filter is one indexed query.
/// With a `contains` filter, SQLite has no index for JSON containment:
/// the store reads the projection's documents in pages of 500 by id and
/// filters them with [`json_contains`](es_core::store::json_contains) (Postgres' `@>` rules), stopping
/// once it has `offset + limit` matches. Fine for thousands of documents;
/// for more, keep a SQL projection with your own indexed table.
///
/// **Fencing.** A unit of work with a [`fence`](UnitOfWork::fence) is
/// checked against the `es_leases` table of the same file, first in the
/// commit's write transaction: unless the lease is held, unexpired, with
/// the fence's token, the commit is refused with
/// [`ProjectionError::Fenced`] and nothing is stored. The transaction
/// holds the file's write lock from its start, so no other process can
/// take the lease over between the check and the commit.
///
/// This only fences when a [`SqliteLeaseStore`](crate::SqliteLeaseStore)
/// on the same file hands out the leases. A fence naming a lease that has
/// no row here (leases kept elsewhere, such as a read side's default
/// in-memory lease store) cannot be checked and is ignored. Lease rows are
/// never deleted, so once a name was leased here its commits stay fenced.
#[derive(Clone)]
pub struct SqliteProjectionStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: SqliteDatabase,
    put: SqlStr,
    put_checkpoint: SqlStr,
    fence: SqlStr,
}

impl fmt::Debug for SqliteProjectionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteProjectionStore").field("path", &self.inner.db.path()).finish_non_exhaustive()
    }
}

mod containment;
mod transactions;

pub use transactions::SqliteTransaction;

fn backend(error: SqliteError) -> ProjectionError {
    ProjectionError::Backend(Box::new(error))
}

/// A stored document that is no JSON.
fn document(text: &str, projection: &str, id: &str) -> Result<Value, ProjectionError> {
    serde_json::from_str(text).map_err(|source| ProjectionError::Serde {
        projection: projection.to_owned(),
        id: id.to_owned(),
        source,
    })
}

impl SqliteProjectionStore {
    /// A store on `db`'s file.
    pub fn new(db: SqliteDatabase) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                put: clock::render(include_str!("projection_store/put.sql")),
                put_checkpoint: clock::render(include_str!("projection_store/put_checkpoint.sql")),
                fence: clock::render(include_str!("projection_store/fence.sql")),
            }),
        }
    }

    /// The database the store lives in.
    pub fn database(&self) -> &SqliteDatabase {
        &self.inner.db
    }

    /// Creates or upgrades the tables (see [`SqliteDatabase::migrate`]).
    ///
    /// # Errors
    /// [`MigrateError`] naming the file and the step that failed.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        self.inner.db.migrate().await
    }

    fn read_error(&self, error: sqlx::Error) -> ProjectionError {
        backend(self.inner.db.read_error(error))
    }

    fn write_error(&self, error: sqlx::Error) -> ProjectionError {
        backend(self.inner.db.write_error(error))
    }

    /// Commits `work` together with the caller's own SQL, in one write
    /// transaction: a projection that writes into the application's tables
    /// (in the same file) commits those writes with its documents and
    /// checkpoint, or none of them.
    ///
    /// `user_work` runs after the document changes and before the
    /// checkpoint is stored; if it fails, everything is rolled back. It
    /// runs while the transaction holds the file's write lock: keep it to
    /// SQL, and short.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use es_core::GlobalPosition;
    /// use es_core::store::{Checkpoint, ProjectionStore, UnitOfWork};
    /// use es_sqlite::{SqliteDatabase, SqliteProjectionStore};
    ///
    /// let db = SqliteDatabase::temporary().await?;
    /// db.migrate().await?;
    /// let mut tx = db.begin_write().await?;
    /// sqlx::query("CREATE TABLE report (total INTEGER NOT NULL)").execute(&mut *tx).await?;
    /// sqlx::query("INSERT INTO report (total) VALUES (0)").execute(&mut *tx).await?;
    /// tx.commit().await?;
    ///
    /// let store = SqliteProjectionStore::new(db.clone());
    /// let mut work = UnitOfWork::new();
    /// work.put("acc-1", serde_json::json!({"balance": 70})).checkpoint(Checkpoint::at(GlobalPosition(42)));
    /// store
    ///     .commit_with("balances", work, |tx| {
    ///         Box::pin(async move {
    ///             sqlx::query("UPDATE report SET total = total + 70").execute(&mut *tx).await?;
    ///             Ok(())
    ///         })
    ///     })
    ///     .await?;
    ///
    /// let total: i64 = sqlx::query_scalar("SELECT total FROM report").fetch_one(db.readers()).await?;
    /// assert_eq!(total, 70);
    /// assert_eq!(store.checkpoint("balances").await?, Some(Checkpoint::at(GlobalPosition(42))));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A fenced `work` is checked before anything runs, as
    /// [`commit`](ProjectionStore::commit) does.
    ///
    /// # Errors
    /// [`ProjectionError::Fenced`] if `work`'s fence no longer holds;
    /// [`ProjectionError::Backend`] if storage fails (its source a
    /// [`SqliteError`] naming the file; [`SqliteError::Locked`] if the write
    /// lock was not had within the busy timeout) or `user_work` returns an
    /// error (carried as the source). Either way nothing was stored.
    pub async fn commit_with<F>(
        &self,
        projection: &str,
        work: UnitOfWork,
        user_work: F,
    ) -> Result<(), ProjectionError>
    where
        F: for<'t> FnOnce(&'t mut SqliteConnection) -> TxFuture<'t> + Send,
    {
        let mut tx = self.begin_fenced(projection, work.fence.as_ref()).await?;
        self.write(&mut tx, projection, work.changes).await?;
        user_work(&mut tx).await.map_err(ProjectionError::Backend)?;
        self.commit_at(tx, projection, work.checkpoint).await
    }

    /// Begins a write transaction for `projection` on the writer
    /// connection, first checking `fence`'s lease in it if there is one
    /// (`commit_with` and table projections' `begin`).
    async fn begin_fenced(
        &self,
        projection: &str,
        fence: Option<&Fence>,
    ) -> Result<SqliteTransaction, ProjectionError> {
        let mut tx = self.inner.db.begin_write().await.map_err(backend)?;
        if let Some(fence) = fence {
            // Dropping `tx` on the error path rolls it back.
            self.check_fence(&mut tx, projection, fence).await?;
        }
        Ok(tx)
    }

    /// Stores `checkpoint` (if any) in `tx` and commits it.
    async fn commit_at(
        &self,
        mut tx: SqliteTransaction,
        projection: &str,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), ProjectionError> {
        if let Some(checkpoint) = checkpoint {
            self.write_checkpoint(&mut tx, projection, checkpoint).await?;
        }
        tx.commit().await.map_err(|e| self.write_error(e))
    }

    async fn write_checkpoint(
        &self,
        conn: &mut SqliteConnection,
        projection: &str,
        checkpoint: Checkpoint,
    ) -> Result<(), ProjectionError> {
        let fit = |position: GlobalPosition| {
            i64::try_from(position.get()).map_err(|_| {
                ProjectionError::Backend(
                    format!("checkpoint {position} of `{projection}` does not fit an SQLite integer").into(),
                )
            })
        };
        sqlx::query(self.inner.put_checkpoint.clone())
            .bind(projection)
            .bind(fit(checkpoint.position)?)
            .bind(checkpoint.replay_until.map(fit).transpose()?)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// `Err(Fenced)` unless `fence`'s lease is held with the fence's token.
    /// A lease with no row here is kept elsewhere: the fence is ignored.
    async fn check_fence(
        &self,
        conn: &mut SqliteConnection,
        projection: &str,
        fence: &Fence,
    ) -> Result<(), ProjectionError> {
        let token = i64::try_from(fence.token).ok();
        let held: Option<bool> = sqlx::query_scalar(self.inner.fence.clone())
            .bind(&fence.lease)
            .bind(token)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.write_error(e))?;
        match held {
            Some(true) | None => Ok(()),
            Some(false) => Err(ProjectionError::Fenced {
                projection: projection.to_owned(),
                lease: fence.lease.clone(),
                token: fence.token,
            }),
        }
    }

    /// Applies the net effect of `changes` (the last change per id wins).
    async fn write(
        &self,
        conn: &mut SqliteConnection,
        projection: &str,
        changes: Vec<DocumentChange>,
    ) -> Result<(), ProjectionError> {
        let mut last: HashMap<String, Option<Value>> = HashMap::with_capacity(changes.len());
        for change in changes {
            match change {
                DocumentChange::Put { id, document } => last.insert(id, Some(document)),
                DocumentChange::Delete { id } => last.insert(id, None),
            };
        }
        for (id, document) in last {
            let statement = match document {
                Some(document) => {
                    sqlx::query(self.inner.put.clone()).bind(projection).bind(id).bind(document.to_string())
                }
                None => sqlx::query(DELETE).bind(projection).bind(id),
            };
            statement.execute(&mut *conn).await.map_err(|e| self.write_error(e))?;
        }
        Ok(())
    }

    fn id_and_document(&self, row: &SqliteRow, projection: &str) -> Result<(String, Value), ProjectionError> {
        let id: String = row.try_get(0).map_err(|e| self.read_error(e))?;
        let text: &str = row.try_get(1).map_err(|e| self.read_error(e))?;
        let doc = document(text, projection, &id)?;
        Ok((id, doc))
    }
}

#[async_trait]
impl ProjectionStore for SqliteProjectionStore {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        let text: Option<String> = sqlx::query_scalar(GET)
            .bind(projection)
            .bind(id)
            .fetch_optional(self.inner.db.readers())
            .await
            .map_err(|e| self.read_error(e))?;
        text.map(|text| document(&text, projection, id)).transpose()
    }

    /// One statement over the ids as a JSON array (`json_each`), so the
    /// answer is one moment's state and the list has no bound-parameter
    /// limit.
    async fn get_many(
        &self,
        projection: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(ids).map_err(|e| ProjectionError::Backend(e.into()))?;
        let rows = sqlx::query(GET_MANY)
            .bind(projection)
            .bind(list)
            .fetch_all(self.inner.db.readers())
            .await
            .map_err(|e| self.read_error(e))?;
        rows.iter().map(|row| self.id_and_document(row, projection)).collect()
    }

    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        let mut conn = self.inner.db.writer().await.map_err(backend)?;
        sqlx::query(self.inner.put.clone())
            .bind(projection)
            .bind(id)
            .bind(document.to_string())
            .execute(&mut *conn)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        let mut conn = self.inner.db.writer().await.map_err(backend)?;
        sqlx::query(DELETE)
            .bind(projection)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        if let Some(filter) = &query.contains {
            return self.query_containing(projection, filter, query).await;
        }
        let clamp = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let rows = sqlx::query(QUERY)
            .bind(projection)
            .bind(query.limit.map_or(-1, clamp))
            .bind(clamp(query.offset))
            .fetch_all(self.inner.db.readers())
            .await
            .map_err(|e| self.read_error(e))?;
        rows.iter().map(|row| self.id_and_document(row, projection)).collect()
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(CHECKPOINT)
            .bind(name)
            .fetch_optional(self.inner.db.readers())
            .await
            .map_err(|e| self.read_error(e))?;
        row.map(|(at, until)| Checkpoint::from_stored(name, at, until)).transpose()
    }

    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        self.commit_with(projection, work, |_| Box::pin(async { Ok(()) })).await
    }

    async fn count(&self, projection: &str, contains: Option<&Value>) -> Result<u64, ProjectionError> {
        let Some(filter) = contains else {
            let count: i64 = sqlx::query_scalar(COUNT)
                .bind(projection)
                .fetch_one(self.inner.db.readers())
                .await
                .map_err(|e| self.read_error(e))?;
            return Ok(u64::try_from(count).unwrap_or(0));
        };
        let matching = self.query_containing(projection, filter, &DocumentQuery::default()).await?;
        Ok(matching.len() as u64)
    }

    fn transactions(&self) -> Option<&dyn es_core::store::ProjectionTransactions> {
        Some(self)
    }

    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        let mut conn = self.inner.db.writer().await.map_err(backend)?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(|e| self.write_error(e))?;
        for sql in [RESET_DOCUMENTS, RESET_CHECKPOINT] {
            sqlx::query(sql).bind(projection).execute(&mut *tx).await.map_err(|e| self.write_error(e))?;
        }
        tx.commit().await.map_err(|e| self.write_error(e))
    }
}
