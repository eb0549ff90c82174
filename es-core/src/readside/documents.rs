//! [`Documents`]: a typed handle on one projection's documents, for the
//! application code and tests that read a read model.
//!
//! ```
//! # async fn demo(es: es_core::Es) -> Result<(), Box<dyn std::error::Error>> {
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # struct AccountSummary { balance: u64, closed: bool }
//! let summaries = es.documents::<AccountSummary>("account-summary").expect("the application has a projection store");
//! let one: Option<AccountSummary> = summaries.get("acc-1").await?;
//! let open = summaries.containing(&serde_json::json!({ "closed": false })).await?;
//! let how_many = summaries.count().await?;
//! # Ok(())
//! # }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::ProjectionError;
use crate::store::{DocumentQuery, ProjectionStore};

/// The documents of one projection, as values of `T`: get, put, delete,
/// list in id order, query by JSON containment, count.
///
/// Cheap to clone. Reads go to the projection store each time (they see
/// what the projection committed, not a batch in progress); writes are
/// their own unit of work, for documents an application keeps beside its
/// projections (an outbox). Inside a projection, write through its
/// [`ProjectionTx`](crate::ProjectionTx) instead, so the changes commit
/// with the checkpoint.
pub struct Documents<T> {
    store: Arc<dyn ProjectionStore>,
    name: Arc<str>,
    document: PhantomData<fn() -> T>,
}

impl<T> Clone for Documents<T> {
    fn clone(&self) -> Self {
        Self { store: Arc::clone(&self.store), name: Arc::clone(&self.name), document: PhantomData }
    }
}

impl<T> std::fmt::Debug for Documents<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("projection", &self.name)
            .field("document", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Documents<T> {
    /// The documents of projection `name` in `store`.
    pub fn new(store: Arc<dyn ProjectionStore>, name: impl Into<Arc<str>>) -> Self {
        Self { store, name: name.into(), document: PhantomData }
    }

    /// The projection's name (its document namespace).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The document `id`.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the store fails;
    /// [`ProjectionError::Serde`] if the stored document is not a `T`.
    pub async fn get(&self, id: &str) -> Result<Option<T>, ProjectionError> {
        match self.store.get(&self.name, id).await? {
            Some(json) => self.decode(id, json).map(Some),
            None => Ok(None),
        }
    }

    /// Creates or replaces the document `id` (its own unit of work).
    ///
    /// # Errors
    /// [`ProjectionError::Serde`] if `document` does not serialize (nothing
    /// was written); [`ProjectionError::Backend`] if the store fails.
    pub async fn put(&self, id: &str, document: &T) -> Result<(), ProjectionError> {
        let json = serde_json::to_value(document).map_err(|source| self.serde_error(id, source))?;
        self.store.put(&self.name, id, json).await
    }

    /// Deletes the document `id` (no error if there is none).
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the store fails.
    pub async fn delete(&self, id: &str) -> Result<(), ProjectionError> {
        self.store.delete(&self.name, id).await
    }

    /// Every document with its id, in id order.
    ///
    /// # Errors
    /// As [`query`](Documents::query).
    pub async fn list(&self) -> Result<Vec<(String, T)>, ProjectionError> {
        self.query(&DocumentQuery::all()).await
    }

    /// The documents that contain `filter` (JSON containment: every field of
    /// the filter is in the document with an equal value), in id order.
    ///
    /// # Errors
    /// [`ProjectionError::Serde`] if `filter` does not serialize; as
    /// [`query`](Documents::query) otherwise.
    pub async fn containing<F: Serialize + ?Sized>(
        &self,
        filter: &F,
    ) -> Result<Vec<(String, T)>, ProjectionError> {
        let filter = serde_json::to_value(filter).map_err(|source| self.serde_error("(filter)", source))?;
        self.query(&DocumentQuery::containing(filter)).await
    }

    /// The documents `query` selects (containment, offset, limit), in id
    /// order.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the store fails;
    /// [`ProjectionError::Serde`] naming the first document that is not a `T`.
    pub async fn query(&self, query: &DocumentQuery) -> Result<Vec<(String, T)>, ProjectionError> {
        let found = self.store.query(&self.name, query).await?;
        found.into_iter().map(|(id, json)| self.decode(&id, json).map(|document| (id, document))).collect()
    }

    /// How many documents there are.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the store fails.
    pub async fn count(&self) -> Result<u64, ProjectionError> {
        self.store.count(&self.name, None).await
    }

    fn decode(&self, id: &str, json: Value) -> Result<T, ProjectionError> {
        serde_json::from_value(json).map_err(|source| self.serde_error(id, source))
    }

    fn serde_error(&self, id: &str, source: serde_json::Error) -> ProjectionError {
        ProjectionError::Serde { projection: self.name.to_string(), id: id.to_owned(), source }
    }
}

impl crate::Es {
    /// The documents of projection `name` as values of `T`, in this
    /// application's projection store (`None`: it has none).
    pub fn documents<T: Serialize + DeserializeOwned>(&self, name: &str) -> Option<Documents<T>> {
        self.projection_store().map(|store| Documents::new(Arc::clone(store), name))
    }
}

impl crate::ReadSide {
    /// The documents of projection `name` as values of `T`, in the
    /// projection store this read side commits to.
    pub fn documents<T: Serialize + DeserializeOwned>(&self, name: &str) -> Documents<T> {
        Documents::new(Arc::clone(&self.shared.projections), name)
    }
}
