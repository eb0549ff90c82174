//! [`Prefetch`]: a projection names the documents an event reads, so the
//! read side loads a whole batch's documents in one
//! [`ProjectionStore::get_many`](crate::store::ProjectionStore::get_many).

use super::projection::Project;
use super::recorded::Recorded;
use crate::event::Event;

#[cfg(doc)]
use super::projection::{ProjectionBuilder, ProjectionTx};
#[cfg(doc)]
use crate::store::ProjectionStore;

/// Names the documents a projection reads for an event of type `E`, so the
/// read side can load a whole batch's documents in one
/// [`ProjectionStore::get_many`] instead of one
/// [`get`](ProjectionStore::get) per event.
///
/// Opt in per event type with [`ProjectionBuilder::prefetch`] (or
/// `prefetch(E)` in `#[projection]`). Before the runner projects a batch it
/// asks each prefetching event for its ids, leaves out those its document
/// cache already knows, and reads the rest at once; the
/// [`ProjectionTx`] of that batch then answers [`get`](ProjectionTx::get)
/// for them without a round trip. The ids are only a hint: an id named
/// wrongly costs a wasted read, and a document not named is read by `get`
/// as usual, so the results are the same either way. The batch's own
/// pending changes always win over what was prefetched.
///
/// ```
/// use es_core::{DocumentIds, HandlerError, Prefetch, Project, ProjectionTx, Recorded};
/// use es_core::readside::Subscriber;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # struct MoneyDeposited { account: String, amount: u64 }
/// # impl es_core::Event for MoneyDeposited { const TYPE: &'static str = "MoneyDeposited"; }
///
/// struct Balances;
///
/// impl Project<MoneyDeposited> for Balances {
///     async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
///         let balance: u64 = tx.get(&e.account).await?.unwrap_or(0);
///         tx.put(e.account.clone(), &(balance + e.amount))?;
///         Ok(())
///     }
/// }
///
/// impl Prefetch<MoneyDeposited> for Balances {
///     fn documents(&self, e: &Recorded<MoneyDeposited>, ids: &mut DocumentIds) {
///         ids.add(e.account.as_str());
///     }
/// }
///
/// let subscriber = Subscriber::projection(Balances).prefetch::<MoneyDeposited>().build();
/// assert_eq!(subscriber.event_types(), ["MoneyDeposited"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is asked to prefetch for `{E}` but does not implement `Prefetch<{E}>`",
    label = "missing `impl Prefetch<{E}> for {Self}`",
    note = "add `impl es_core::Prefetch<{E}> for {Self} {{ fn documents(&self, event: &es_core::Recorded<{E}>, ids: &mut es_core::DocumentIds) {{ ids.add(..); }} }}`, or list `{E}` in `events(..)` only"
)]
pub trait Prefetch<E: Event>: Project<E> {
    /// Adds to `ids` the documents that projecting `event` reads.
    fn documents(&self, event: &Recorded<E>, ids: &mut DocumentIds);
}

/// The document ids a [`Prefetch`] names for the events of one batch.
#[derive(Debug, Default)]
pub struct DocumentIds {
    ids: Vec<String>,
}

impl DocumentIds {
    /// Names the document `id` (naming one twice is harmless).
    pub fn add(&mut self, id: impl Into<String>) -> &mut Self {
        self.ids.push(id.into());
        self
    }

    /// The ids named so far, in the order they were named.
    pub fn as_slice(&self) -> &[String] {
        &self.ids
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.ids
    }
}
