//! A table projection's transactions, forwarded by [`TestStore`] through
//! its counters and faults.

use std::any::TypeId;

use async_trait::async_trait;

use super::{Fault, StoreCall, TestStore};
use crate::error::ProjectionError;
use crate::store::{Fence, ProjectionStore, ProjectionTransactions, StoreTransaction, UnitOfWork};

/// [`TestStore::transactions`](ProjectionStore::transactions) lends this
/// only when the inner store lends transactions.
fn lent<S: ProjectionStore>(store: &TestStore<S>) -> Result<&dyn ProjectionTransactions, ProjectionError> {
    store
        .inner
        .transactions()
        .ok_or_else(|| ProjectionError::Backend("the inner store lends no transactions".into()))
}

#[async_trait]
impl<S: ProjectionStore> ProjectionTransactions for TestStore<S> {
    fn transaction_type(&self) -> TypeId {
        self.inner.transactions().map_or(TypeId::of::<()>(), |inner| inner.transaction_type())
    }

    fn transaction_type_name(&self) -> &'static str {
        self.inner.transactions().map_or("()", |inner| inner.transaction_type_name())
    }

    async fn begin(
        &self,
        projection: &str,
        fence: Option<&Fence>,
    ) -> Result<StoreTransaction, ProjectionError> {
        let inner = lent(self)?;
        self.pass(StoreCall::Begin, inner.begin(projection, fence), ProjectionError::Backend).await
    }

    /// A [`Fault::Dropped`](super::Fault::Dropped) answers `Ok(())` and
    /// drops the transaction, which rolls it back; a
    /// [`Fault::Conflict`](super::Fault::Conflict) drops it too and answers
    /// as a document commit does, with `CheckpointMoved`.
    async fn commit(
        &self,
        transaction: StoreTransaction,
        projection: &str,
        work: UnitOfWork,
    ) -> Result<(), ProjectionError> {
        let inner = lent(self)?;
        let fault = self.enter(StoreCall::CommitTransaction).await;
        match fault {
            Some(Fault::Dropped) => Ok(()),
            Some(Fault::Conflict) => {
                drop(transaction);
                Err(self.moved_under(projection).await)
            }
            fault => {
                self.run(
                    StoreCall::CommitTransaction,
                    fault,
                    inner.commit(transaction, projection, work),
                    ProjectionError::Backend,
                )
                .await
            }
        }
    }
}
