//! Projections into the application's own tables: the projection runs its
//! own SQL in the transaction that stores its checkpoint.
//!
//! A [`TableProjection`] is written against its store's transaction type
//! (`es_postgres::PgTransaction` or `es_sqlite::SqliteTransaction`, both
//! `sqlx` transactions) and implements [`ProjectRows<E>`] once per consumed
//! event type. For each batch the read side begins a transaction (fenced
//! with the subscription's lease), calls the projection for every event it
//! consumes, then [`flush`](TableProjection::flush) (where a projection that
//! buffered its rows in [`TableTx::batch`] writes them once), stores the
//! checkpoint in the same transaction and commits: the tables and the
//! checkpoint move together, so no event is counted twice or lost across
//! crashes, and a node that lost its lease writes nothing.
//!
//! A rebuild calls [`reset`](TableProjection::reset) (say, a `TRUNCATE` of
//! the projection's tables) in the transaction that sets its checkpoint
//! back to the start.
//!
//! An event whose SQL fails rolls the batch back; the events before it are
//! committed on their own, and it is retried alone under the subscriber's
//! [`RetryPolicy`](crate::readside::RetryPolicy), as for any projection.
//! Unlike document projections, nothing is cached between batches: the
//! projection reads its own tables.
//!
//! The application's migrations create its tables; the projection store
//! must be the database they live in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::handler::HandlerError;
use super::recorded::Recorded;
use super::route::{shared_builder_methods, Ambiguity, RouteTable, Routes};
use super::runner::{store_call, CatchPanic};
use super::state::SubscriberState;
use super::subscriber::{Subscriber, SubscriberKind};
use crate::envelope::RecordedEvent;
use crate::error::ProjectionError;
use crate::event::Event;
use crate::store::{ProjectionTransactions, UnitOfWork};
use crate::version::GlobalPosition;

/// A projection that keeps its read model in the application's own tables.
///
/// On Postgres, `Transaction` is `es_postgres::PgTransaction` and the SQL
/// runs with `sqlx::query(..).execute(&mut **tx.transaction())`; the
/// example stands a vector of statements in for the transaction. The bank
/// example's `SqlAccountSummaries` is a complete one.
///
/// ```
/// use std::collections::BTreeMap;
/// use es_core::readside::Subscriber;
/// use es_core::{HandlerError, ProjectRows, Recorded, TableProjection, TableTx};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # struct MoneyDeposited { amount: u64 }
/// # impl es_core::Event for MoneyDeposited { const TYPE: &'static str = "MoneyDeposited"; }
///
/// struct Balances;
///
/// impl TableProjection for Balances {
///     type Transaction = Vec<String>; // es_postgres::PgTransaction
///     type Batch = BTreeMap<String, u64>; // account → deposited in this batch
///
///     async fn reset(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
///         tx.transaction().push("TRUNCATE balances".into());
///         Ok(())
///     }
///
///     async fn flush(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
///         let (rows, transaction) = tx.take_batch();
///         for (account, amount) in rows {
///             transaction.push(format!(
///                 "INSERT INTO balances VALUES ('{account}', {amount}) \
///                  ON CONFLICT (account) DO UPDATE SET balance = balances.balance + {amount}"
///             ));
///         }
///         Ok(())
///     }
/// }
///
/// impl ProjectRows<MoneyDeposited> for Balances {
///     async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
///         *tx.batch().entry(e.stream_id.to_string()).or_default() += e.amount;
///         Ok(())
///     }
/// }
///
/// let subscriber = Subscriber::table_projection(Balances).on::<MoneyDeposited>().build();
/// assert_eq!(subscriber.event_types(), ["MoneyDeposited"]);
/// ```
pub trait TableProjection: Send + Sync + Sized + 'static {
    /// The transaction of the store the tables live in.
    type Transaction: Send + 'static;

    /// What the projection gathers over one batch to write in
    /// [`flush`](TableProjection::flush); `()` for a projection that writes
    /// as it goes.
    type Batch: Default + Send + 'static;

    /// Empties the projection's tables for a rebuild, in the transaction
    /// that sets its checkpoint back to the start.
    ///
    /// # Errors
    /// Whatever went wrong; nothing is reset.
    fn reset(&self, tx: &mut TableTx<Self>) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Writes what the batch gathered, before the checkpoint is stored in
    /// the same transaction. The default writes nothing.
    ///
    /// # Errors
    /// Whatever went wrong; the batch rolls back and is tried again.
    fn flush(&self, tx: &mut TableTx<Self>) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = tx;
        async { Ok(()) }
    }
}

/// Projects one event type `E` into a [`TableProjection`]'s tables:
/// implement it once per consumed type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is asked to project `{E}` but does not implement `ProjectRows<{E}>`",
    label = "missing `impl ProjectRows<{E}> for {Self}`"
)]
pub trait ProjectRows<E: Event>: TableProjection {
    /// Projects one recorded event.
    ///
    /// # Errors
    /// Whatever went wrong; the event is retried, never skipped.
    fn project(
        &self,
        event: &Recorded<E>,
        tx: &mut TableTx<Self>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// The open transaction of one batch of a [`TableProjection`], with the rows
/// it gathered so far.
pub struct TableTx<P: TableProjection> {
    transaction: P::Transaction,
    batch: P::Batch,
    name: Arc<str>,
    replay: bool,
    state: SubscriberState,
}

impl<P: TableProjection> std::fmt::Debug for TableTx<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableTx")
            .field("projection", &self.name)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl<P: TableProjection> TableTx<P> {
    /// A transaction for the projection `name`: for tests of a projection
    /// run outside a read side (see [`ReadSideTest`](crate::testkit::ReadSideTest)
    /// for the usual way).
    pub fn new(name: impl Into<Arc<str>>, transaction: P::Transaction) -> Self {
        Self {
            transaction,
            batch: P::Batch::default(),
            name: name.into(),
            replay: false,
            state: SubscriberState::default(),
        }
    }

    /// The store's transaction: run the projection's SQL in it (with sqlx:
    /// `.execute(&mut **tx.transaction())`).
    pub fn transaction(&mut self) -> &mut P::Transaction {
        &mut self.transaction
    }

    /// What the projection gathered in this batch so far.
    pub fn batch(&mut self) -> &mut P::Batch {
        &mut self.batch
    }

    /// Takes what the batch gathered (leaving an empty one) together with
    /// the transaction to write it in: what [`TableProjection::flush`]
    /// usually starts with.
    pub fn take_batch(&mut self) -> (P::Batch, &mut P::Transaction) {
        (std::mem::take(&mut self.batch), &mut self.transaction)
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the event being projected is replayed history.
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// The value of type `T` the application gave the read side, which the
    /// projection declared it uses.
    ///
    /// # Errors
    /// [`HandlerError::UndeclaredState`] if the projection did not declare
    /// `T` with [`uses`](TableProjectionBuilder::uses).
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, HandlerError> {
        self.state.get()
    }

    /// The transaction, once the batch is done.
    pub fn into_transaction(self) -> P::Transaction {
        self.transaction
    }
}

/// Builds a table projection [`Subscriber`]: list the consumed event types
/// with [`on`](TableProjectionBuilder::on). Made by
/// [`Subscriber::table_projection`].
pub struct TableProjectionBuilder<P: TableProjection> {
    table: RouteTable<P, TableTx<P>>,
}

impl<P: TableProjection> TableProjectionBuilder<P> {
    pub(crate) fn new(projection: P) -> Self {
        Self { table: RouteTable::new(projection) }
    }

    /// Consumes events of type `E` (other types are skipped, and still
    /// move the checkpoint).
    #[must_use]
    pub fn on<E: Event>(mut self) -> Self
    where
        P: ProjectRows<E>,
    {
        self.table.add::<E>(None);
        self
    }

    shared_builder_methods!(P: ProjectRows, "projection", "TableTx::state");

    /// The runnable subscriber.
    pub fn build(self) -> Subscriber {
        let projection = self.table.subscriber();
        self.table.build(|routes| SubscriberKind::Table(Box::new(Erased { routes, projection })))
    }
}

impl<P: TableProjection> std::fmt::Debug for TableProjectionBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.table.debug(f, "TableProjectionBuilder").finish_non_exhaustive()
    }
}

/// Why a table projection's batch (or reset) did not commit.
pub(crate) enum TableFailure {
    /// Beginning or committing the transaction failed (an outage, a lost
    /// lease, a foreign transaction).
    Store(ProjectionError),
    /// The projection failed on the batch's event at this index.
    Event(usize, HandlerError),
    /// The projection's `flush` (or `reset`) failed.
    Flush(HandlerError),
}

/// One batch for a table projection: its events (only those it consumes
/// are projected) and the unit of work (checkpoint, fence) to commit.
pub(crate) struct TableBatch<'a> {
    pub(crate) name: &'a Arc<str>,
    pub(crate) events: &'a [RecordedEvent],
    pub(crate) replay_until: GlobalPosition,
    pub(crate) work: UnitOfWork,
    pub(crate) state: SubscriberState,
}

/// What the runner has a table projection do in one transaction.
pub(crate) type TableFuture<'a> = Pin<Box<dyn Future<Output = Result<(), TableFailure>> + Send + 'a>>;

/// A table projection with its types erased, as the runner drives it.
pub(crate) trait TableRunner: Send + Sync {
    fn routes_event(&self, event: &RecordedEvent) -> bool;
    fn event_types(&self) -> Vec<&'static str>;
    fn consumes(&self, event_type: &str) -> bool;
    fn ambiguities(&self) -> &[Ambiguity];
    /// The transaction type it is written against, for the build's check.
    fn transaction_type(&self) -> (std::any::TypeId, &'static str);
    /// Projects the batch's events, flushes and commits.
    fn run<'a>(&'a self, store: &'a dyn ProjectionTransactions, batch: TableBatch<'a>) -> TableFuture<'a>;
    /// Resets the projection's tables and commits.
    fn reset<'a>(&'a self, store: &'a dyn ProjectionTransactions, batch: TableBatch<'a>) -> TableFuture<'a>;
}

struct Erased<P: TableProjection> {
    routes: Routes<TableTx<P>>,
    projection: Arc<P>,
}

/// What [`Erased::transact`] does between beginning and committing.
#[derive(Clone, Copy)]
enum Step {
    /// Project the batch's events, then flush.
    Events,
    /// Reset the projection's tables.
    Reset,
}

impl<P: TableProjection> Erased<P> {
    /// Begins a transaction (fenced with the batch's lease), does `step` in
    /// it and commits it with the batch's unit of work.
    async fn transact(
        &self,
        store: &dyn ProjectionTransactions,
        batch: TableBatch<'_>,
        step: Step,
    ) -> Result<(), TableFailure> {
        let raw = store_call(store.begin(batch.name, batch.work.fence.as_ref()))
            .await
            .map_err(TableFailure::Store)?;
        let transaction = raw.downcast::<P::Transaction>().map_err(|_| {
            TableFailure::Store(ProjectionError::Backend(
                format!(
                    "the projection store lent a transaction that is not a `{}`",
                    std::any::type_name::<P::Transaction>()
                )
                .into(),
            ))
        })?;
        let mut tx = TableTx::<P>::new(Arc::clone(batch.name), *transaction);
        tx.state = batch.state.clone();
        match step {
            Step::Events => {
                for (index, event) in batch.events.iter().enumerate() {
                    if let Some(route) = self.routes.get(event) {
                        tx.replay = event.global_position <= batch.replay_until;
                        CatchPanic(route.call(event, &mut tx))
                            .await
                            .map_err(|error| TableFailure::Event(index, error))?;
                    }
                }
                CatchPanic(Box::pin(self.projection.flush(&mut tx))).await.map_err(TableFailure::Flush)?;
            }
            Step::Reset => {
                CatchPanic(Box::pin(self.projection.reset(&mut tx))).await.map_err(TableFailure::Flush)?;
            }
        }
        store_call(store.commit(Box::new(tx.into_transaction()), batch.name, batch.work))
            .await
            .map_err(TableFailure::Store)
    }
}

impl<P: TableProjection> TableRunner for Erased<P> {
    fn routes_event(&self, event: &RecordedEvent) -> bool {
        self.routes.get(event).is_some()
    }

    fn event_types(&self) -> Vec<&'static str> {
        self.routes.event_types()
    }

    fn consumes(&self, event_type: &str) -> bool {
        self.routes.consumes(event_type)
    }

    fn ambiguities(&self) -> &[Ambiguity] {
        self.routes.ambiguities()
    }

    fn transaction_type(&self) -> (std::any::TypeId, &'static str) {
        (std::any::TypeId::of::<P::Transaction>(), std::any::type_name::<P::Transaction>())
    }

    fn run<'a>(&'a self, store: &'a dyn ProjectionTransactions, batch: TableBatch<'a>) -> TableFuture<'a> {
        Box::pin(self.transact(store, batch, Step::Events))
    }

    fn reset<'a>(&'a self, store: &'a dyn ProjectionTransactions, batch: TableBatch<'a>) -> TableFuture<'a> {
        Box::pin(self.transact(store, batch, Step::Reset))
    }
}
