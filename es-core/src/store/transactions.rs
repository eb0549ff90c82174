//! The transactions a projection store can lend to projections that write
//! the application's own tables ([`TableProjection`](crate::TableProjection)).

use std::any::{Any, TypeId};

use async_trait::async_trait;

use super::projections::{Fence, UnitOfWork};
use crate::error::ProjectionError;

/// An open transaction of a projection store, boxed so the read side can
/// carry it without knowing the database (for Postgres a
/// `sqlx::Transaction<'static, Postgres>`).
pub type StoreTransaction = Box<dyn Any + Send>;

/// A projection store that lends its transactions: a projection runs its
/// own SQL in the transaction that then stores its checkpoint, so the
/// application's tables and the checkpoint commit together or not at all.
///
/// Adapter authors implement it beside [`ProjectionStore`](super::ProjectionStore)
/// and return it from [`ProjectionStore::transactions`](super::ProjectionStore::transactions).
#[async_trait]
pub trait ProjectionTransactions: Send + Sync {
    /// The type [`begin`](ProjectionTransactions::begin) boxes, which the
    /// projections of this store are written against.
    fn transaction_type(&self) -> TypeId;

    /// The name of that type, for errors.
    fn transaction_type_name(&self) -> &'static str;

    /// Begins a transaction for `projection`. With a fence, the lease is
    /// checked first and held until the transaction ends, as
    /// [`ProjectionStore::commit`](super::ProjectionStore::commit) does, so
    /// nothing the projection writes in it can land after the lease is lost.
    ///
    /// # Errors
    /// [`ProjectionError::Fenced`] if the fence's lease is no longer held
    /// with its token; [`ProjectionError::Backend`] if storage fails.
    /// Nothing was written either way.
    async fn begin(
        &self,
        projection: &str,
        fence: Option<&Fence>,
    ) -> Result<StoreTransaction, ProjectionError>;

    /// Applies `work` (documents and checkpoint; its fence was checked by
    /// `begin`) in `transaction` and commits it.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails or `transaction` is not
    /// one of this store's (nothing was stored).
    async fn commit(
        &self,
        transaction: StoreTransaction,
        projection: &str,
        work: UnitOfWork,
    ) -> Result<(), ProjectionError>;
}
