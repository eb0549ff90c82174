//! Lending transactions to table projections: the projection's SQL, its
//! checkpoint and the lease fence in one SQLite write transaction.

use std::any::TypeId;

use async_trait::async_trait;
use es_core::error::ProjectionError;
use es_core::store::{Checkpoint, Fence, ProjectionTransactions, StoreTransaction, UnitOfWork};
use sqlx::Sqlite;

use super::SqliteProjectionStore;

/// The transaction a [`TableProjection`](es_core::TableProjection) on
/// SQLite writes its tables in (a `BEGIN IMMEDIATE` transaction on the
/// file's single writer connection: keep batches short, every other write
/// waits for it; a projection that is behind runs
/// [`ReadSideConfig::catch_up_batch_size`](es_core::readside::ReadSideConfig::catch_up_batch_size)
/// events, 4,096 by default, in one, so lower that where other writers
/// must not wait so long). Run SQL with `.execute(&mut **tx.transaction())`.
pub type SqliteTransaction = sqlx::Transaction<'static, Sqlite>;

#[async_trait]
impl ProjectionTransactions for SqliteProjectionStore {
    fn transaction_type(&self) -> TypeId {
        TypeId::of::<SqliteTransaction>()
    }

    fn transaction_type_name(&self) -> &'static str {
        "es_sqlite::SqliteTransaction"
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
        let mut tx = transaction.downcast::<SqliteTransaction>().map_err(|_| {
            ProjectionError::Backend(
                "a transaction that is not an SQLite one was handed back to commit".into(),
            )
        })?;
        check_after(&mut tx, projection, &work).await?;
        self.write(&mut tx, projection, work.changes).await?;
        self.commit_at(*tx, projection, work.checkpoint).await
    }
}

/// [`UnitOfWork::after`]: the stored checkpoint must be where `work` says.
/// The transaction holds the file's one writer, so no other commit is under
/// way.
async fn check_after(
    tx: &mut SqliteTransaction,
    projection: &str,
    work: &UnitOfWork,
) -> Result<(), ProjectionError> {
    if work.after.is_none() {
        return Ok(());
    }
    let stored: Option<i64> = sqlx::query_scalar("SELECT position FROM es_checkpoints WHERE projection = ?1")
        .bind(projection)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|error| ProjectionError::Backend(Box::new(error)))?;
    let stored = stored.map(|at| Checkpoint::from_stored(projection, at, None)).transpose()?;
    work.check_after(projection, stored.map(|checkpoint| checkpoint.position))
}
