//! Fenced transactions: lent to table projections, and run around the
//! caller's own SQL by [`PgProjectionStore::commit_with`]. The SQL, the
//! documents, the checkpoint and the lease fence commit in one Postgres
//! transaction or not at all.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use es_core::error::{BoxError, ProjectionError};
use es_core::store::{
    Checkpoint, DocumentChange, Fence, ProjectionTransactions, StoreTransaction, UnitOfWork,
};
use es_core::HandlerError;
use sqlx::{PgConnection, Postgres};

use super::commit_unit::{bigint, NetChanges};
use super::{backend, PgProjectionStore};

/// A boxed future borrowing the transaction it runs in, as
/// [`PgProjectionStore::commit_with`] takes.
pub type TxFuture<'t> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 't>>;

/// The transaction a [`TableProjection`](es_core::TableProjection) on
/// Postgres writes its tables in: run SQL with
/// `.execute(&mut **tx.transaction())`.
pub type PgTransaction = sqlx::Transaction<'static, Postgres>;

#[async_trait]
impl ProjectionTransactions for PgProjectionStore {
    fn transaction_type(&self) -> TypeId {
        TypeId::of::<PgTransaction>()
    }

    fn transaction_type_name(&self) -> &'static str {
        "es_postgres::PgTransaction"
    }

    async fn begin(
        &self,
        projection: &str,
        fence: Option<&Fence>,
    ) -> Result<StoreTransaction, ProjectionError> {
        Ok(Box::new(self.begin_fenced(projection, fence).await?))
    }

    async fn commit(
        &self,
        transaction: StoreTransaction,
        projection: &str,
        work: UnitOfWork,
    ) -> Result<(), ProjectionError> {
        let mut tx = transaction
            .downcast::<PgTransaction>()
            .map_err(|_| backend("a transaction that is not a Postgres one was handed back to commit"))?;
        let checkpoint = work.checkpoint;
        let checked = async {
            self.check_after(&mut tx, projection, &work).await?;
            self.write(&mut tx, projection, work.changes).await
        };
        self.inner.calls.within(checked).await.map_err(backend)??;
        self.commit_at(*tx, projection, checkpoint).await
    }
}

impl PgProjectionStore {
    /// [`UnitOfWork::after`]: the stored checkpoint must be where `work`
    /// says. The row is locked, so a commit of the same projection still
    /// under way (one whose reply was lost) is waited for and its
    /// checkpoint read; the lock is held until this transaction ends.
    async fn check_after(
        &self,
        tx: &mut PgTransaction,
        projection: &str,
        work: &UnitOfWork,
    ) -> Result<(), ProjectionError> {
        if work.after.is_none() {
            return Ok(());
        }
        let stored: Option<i64> = sqlx::query_scalar(self.inner.sql.checkpoint_for_update.clone())
            .bind(projection)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
        let stored = stored.map(|at| Checkpoint::from_stored(projection, at, None)).transpose()?;
        work.check_after(projection, stored.map(|checkpoint| checkpoint.position))
    }
}

/// A failed statement of a table projection as the read side should see
/// it: a lost connection, a pool timeout, a deadlock or a serialization
/// failure is the store's trouble (waited out, not held against the event);
/// anything else (a constraint, a syntax error) is the projection's, retried
/// under its policy and then reported at the event.
///
/// ```no_run
/// # async fn demo(tx: &mut es_postgres::PgTransaction) -> Result<(), es_core::HandlerError> {
/// sqlx::query("UPDATE report SET total = total + 1").execute(&mut **tx).await.map_err(es_postgres::sql_failure)?;
/// # Ok(())
/// # }
/// ```
pub fn sql_failure(error: sqlx::Error) -> HandlerError {
    let transient = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // connection exceptions, serialization failure, deadlock,
            // operator intervention (shutdown, cancel)
            code.starts_with("08") || code == "40001" || code == "40P01" || code.starts_with("57")
        }),
        _ => false,
    };
    if transient {
        HandlerError::Projection(ProjectionError::Backend(Box::new(error)))
    } else {
        HandlerError::other(error)
    }
}

impl PgProjectionStore {
    /// Commits `work` together with the caller's own SQL, in one
    /// transaction: a projection that writes into the application's tables
    /// commits those writes with its documents and checkpoint, or none of
    /// them.
    ///
    /// `user_work` runs after the document changes and before the
    /// checkpoint is stored; if it fails, everything is rolled back.
    ///
    /// ```no_run
    /// # async fn demo(store: es_postgres::PgProjectionStore) -> Result<(), es_core::error::ProjectionError> {
    /// use es_core::GlobalPosition;
    /// use es_core::store::{Checkpoint, UnitOfWork};
    ///
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
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A fenced `work` is checked before anything runs, as
    /// [`commit`](es_core::store::ProjectionStore::commit) does.
    ///
    /// # Errors
    /// [`ProjectionError::Fenced`] if `work`'s fence no longer holds;
    /// [`ProjectionError::Backend`] if storage fails or `user_work` returns
    /// an error (carried as the source). Either way nothing was stored.
    pub async fn commit_with<F>(
        &self,
        projection: &str,
        work: UnitOfWork,
        user_work: F,
    ) -> Result<(), ProjectionError>
    where
        F: for<'t> FnOnce(&'t mut PgConnection) -> TxFuture<'t> + Send,
    {
        let mut tx = self.begin_fenced(projection, work.fence.as_ref()).await?;
        self.inner.calls.within(self.write(&mut tx, projection, work.changes)).await.map_err(backend)??;
        // The caller's own SQL: theirs to bound.
        user_work(&mut tx).await.map_err(ProjectionError::Backend)?;
        self.commit_at(tx, projection, work.checkpoint).await
    }

    /// Begins a transaction for `projection`, first holding `fence`'s lease
    /// in it if there is one (`commit_with` and table projections' `begin`).
    async fn begin_fenced(
        &self,
        projection: &str,
        fence: Option<&Fence>,
    ) -> Result<PgTransaction, ProjectionError> {
        let mut tx = self.inner.calls.begin().await.map_err(backend)?;
        if let Some(fence) = fence {
            // Dropping `tx` (on the error path, or when the check overruns)
            // rolls it back.
            self.inner
                .calls
                .within(self.check_fence(&mut tx, projection, fence))
                .await
                .map_err(backend)??;
        }
        Ok(tx)
    }

    /// Stores `checkpoint` (if any) in `tx` and commits it.
    async fn commit_at(
        &self,
        mut tx: PgTransaction,
        projection: &str,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), ProjectionError> {
        let commit = async {
            if let Some(checkpoint) = checkpoint {
                self.write_checkpoint(&mut tx, projection, checkpoint).await?;
            }
            tx.commit().await.map_err(backend)
        };
        self.inner.calls.within(commit).await.map_err(backend)?
    }

    /// Holds `fence`'s lease for the rest of the transaction, or
    /// `Err(Fenced)` if it is not held with the fence's token. A lease with
    /// no row here is kept elsewhere: the fence is ignored.
    async fn check_fence(
        &self,
        conn: &mut PgConnection,
        projection: &str,
        fence: &Fence,
    ) -> Result<(), ProjectionError> {
        let fenced = || ProjectionError::Fenced {
            projection: projection.to_owned(),
            lease: fence.lease.clone(),
            token: fence.token,
        };
        // A token past bigint was never handed out by the lease table: null.
        let token = i64::try_from(fence.token).ok();
        let held: Option<bool> = sqlx::query_scalar(self.inner.sql.fence.clone())
            .bind(&fence.lease)
            .bind(token)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
        match held {
            Some(true) | None => Ok(()),
            Some(false) => Err(fenced()),
        }
    }

    /// Applies the net effect of `changes` (the last change per id wins).
    async fn write(
        &self,
        conn: &mut PgConnection,
        projection: &str,
        changes: Vec<DocumentChange>,
    ) -> Result<(), ProjectionError> {
        if changes.is_empty() {
            return Ok(());
        }
        let NetChanges { put_ids, put_docs, deleted } = NetChanges::of(changes);
        sqlx::query(self.inner.sql.commit_documents.clone())
            .bind(projection)
            .bind(&put_ids)
            .bind(&put_docs)
            .bind(&deleted)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn write_checkpoint(
        &self,
        conn: &mut PgConnection,
        projection: &str,
        checkpoint: Checkpoint,
    ) -> Result<(), ProjectionError> {
        sqlx::query(self.inner.sql.put_checkpoint.clone())
            .bind(projection)
            .bind(bigint(projection, checkpoint.position)?)
            .bind(checkpoint.replay_until.map(|until| bigint(projection, until)).transpose()?)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
