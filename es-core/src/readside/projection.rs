//! Projections: read models folded from the global stream into the
//! [`ProjectionStore`].
//!
//! A projection implements [`Project<E>`] once per event type it consumes.
//! Each call reads documents through a [`ProjectionTx`] (which sees the
//! batch's own pending changes) and records puts and deletes; the runner
//! commits a batch's changes together with the checkpoint in one
//! [`ProjectionStore::commit`], so after a crash the projection resumes
//! without applying an event twice or losing one.
//!
//! ```
//! use es_core::{HandlerError, Project, ProjectionTx, Recorded};
//! use es_core::readside::Subscriber;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! # struct MoneyDeposited { account: String, amount: u64 }
//! # impl es_core::Event for MoneyDeposited { const TYPE: &'static str = "MoneyDeposited"; }
//!
//! struct Balances;
//!
//! impl Project<MoneyDeposited> for Balances {
//!     async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
//!         let balance: u64 = tx.get(&e.account).await?.unwrap_or(0);
//!         tx.put(e.account.clone(), &(balance + e.amount))?;
//!         Ok(())
//!     }
//! }
//!
//! let subscriber = Subscriber::projection(Balances).on::<MoneyDeposited>().build();
//! assert_eq!(subscriber.event_types(), ["MoneyDeposited"]);
//! ```

use std::future::Future;

use super::handler::HandlerError;
pub use super::prefetch::{DocumentIds, Prefetch};
pub use super::projection_tx::ProjectionTx;
use super::recorded::Recorded;
use super::route::{shared_builder_methods, RouteTable};
use super::subscriber::{Subscriber, SubscriberKind};
use crate::event::Event;

/// Projects one event type `E` into documents: implement it once per
/// consumed type.
///
/// Write the method as `async fn project(&self, event: &Recorded<E>, tx:
/// &mut ProjectionTx) -> Result<(), HandlerError>`; the future must be
/// `Send`. On an error the event's changes are discarded and it is retried;
/// after the last attempt the projection stops at that event.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is asked to project `{E}` but does not implement `Project<{E}>`",
    label = "missing `impl Project<{E}> for {Self}`",
    note = "add `impl es_core::Project<{E}> for {Self} {{ async fn project(&self, event: &es_core::Recorded<{E}>, tx: &mut es_core::ProjectionTx) -> Result<(), es_core::HandlerError> {{ .. }} }}`"
)]
pub trait Project<E: Event>: Send + Sync + 'static {
    /// Projects one recorded event.
    ///
    /// # Errors
    /// Whatever went wrong; the event is retried, never skipped.
    fn project(
        &self,
        event: &Recorded<E>,
        tx: &mut ProjectionTx,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Builds a projection [`Subscriber`]: list the consumed event types with
/// [`on`](ProjectionBuilder::on). Made by [`Subscriber::projection`].
pub struct ProjectionBuilder<P> {
    table: RouteTable<P, ProjectionTx>,
}

impl<P: Send + Sync + 'static> ProjectionBuilder<P> {
    pub(crate) fn new(projection: P) -> Self {
        Self { table: RouteTable::new(projection) }
    }

    /// Consumes events of type `E` (other types are skipped, and still
    /// move the checkpoint).
    #[must_use]
    pub fn on<E: Event>(mut self) -> Self
    where
        P: Project<E>,
    {
        self.table.add::<E>(None);
        self
    }

    /// Consumes events of type `E`, as [`on`](ProjectionBuilder::on), and
    /// reads the documents they name ([`Prefetch<E>`]) for a whole batch
    /// at once before projecting it.
    #[must_use]
    pub fn prefetch<E: Event>(mut self) -> Self
    where
        P: Prefetch<E>,
    {
        self.table.add_prefetching::<E>(None);
        self
    }

    /// As [`prefetch`](ProjectionBuilder::prefetch), for the events of type
    /// `E` recorded by aggregate `A` only (see
    /// [`on_from`](ProjectionBuilder::on_from)).
    #[must_use]
    pub fn prefetch_from<A: crate::aggregate::Aggregate, E: Event>(mut self) -> Self
    where
        P: Prefetch<E>,
    {
        self.table.add_prefetching::<E>(Some(A::NAME));
        self
    }

    shared_builder_methods!(P: Project, "projection", "ProjectionTx::state");

    /// The runnable subscriber.
    pub fn build(self) -> Subscriber {
        self.table.build(|routes| SubscriberKind::Projection { routes })
    }
}

impl<P> std::fmt::Debug for ProjectionBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.table.debug(f, "ProjectionBuilder").finish_non_exhaustive()
    }
}
