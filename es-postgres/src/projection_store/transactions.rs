//! Lending transactions to table projections: the projection's SQL, its
//! checkpoint and the lease fence in one Postgres transaction.

use std::any::TypeId;

use async_trait::async_trait;
use es_core::error::ProjectionError;
use es_core::store::{Checkpoint, Fence, ProjectionTransactions, StoreTransaction, UnitOfWork};
use es_core::HandlerError;
use sqlx::Postgres;

use super::{backend, PgProjectionStore};

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
