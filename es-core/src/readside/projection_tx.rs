//! [`ProjectionTx`]: a projection's documents while it projects a batch,
//! with the batch's pending changes, what was prefetched for it, and the
//! runner's document cache in front of the store.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::cache::SharedCache;
use super::handler::HandlerError;
use super::state::SubscriberState;
use crate::error::ProjectionError;
use crate::store::{DocumentChange, ProjectionStore, UnitOfWork};

#[cfg(doc)]
use super::prefetch::Prefetch;
#[cfg(doc)]
use super::projection::ProjectionBuilder;

/// The documents of one projection as seen while projecting a batch: reads
/// see the batch's own pending puts and deletes, which commit with the
/// checkpoint when the batch is done.
///
/// Reads of documents the runner read or wrote earlier are answered from
/// its document cache ([`ReadSideConfig::document_cache_bytes`](crate::readside::ReadSideConfig::document_cache_bytes));
/// the cache assumes the runner is the only writer of its projection's
/// documents, which its lease makes true for every writer that goes through
/// a read side.
pub struct ProjectionTx {
    store: Arc<dyn ProjectionStore>,
    cache: Option<SharedCache>,
    name: Arc<str>,
    /// The newest pending state of each touched document (`None`: deleted).
    pending: HashMap<String, Option<Value>>,
    /// What the event being projected changed, newest last: each touched
    /// id with what `pending` held for it before (`None`: nothing), so a
    /// failed event's changes can be undone without copying documents.
    undo: Vec<(String, Option<Option<Value>>)>,
    /// What the store held, at the start of the batch, for the documents
    /// its prefetching events named (`None`: no such document). Bounded by
    /// the batch: the runner's cache may be too small to keep them until
    /// they are read.
    prefetched: HashMap<String, Option<Value>>,
    replay: bool,
    state: SubscriberState,
}

impl std::fmt::Debug for ProjectionTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionTx")
            .field("projection", &self.name)
            .field("pending_changes", &self.pending.len())
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl ProjectionTx {
    pub(crate) fn new(store: Arc<dyn ProjectionStore>, name: Arc<str>) -> Self {
        Self {
            store,
            cache: None,
            name,
            pending: HashMap::new(),
            undo: Vec::new(),
            prefetched: HashMap::new(),
            replay: false,
            state: SubscriberState::default(),
        }
    }

    /// Lets the projection read the state it declared.
    pub(crate) fn with_state(mut self, state: SubscriberState) -> Self {
        self.state = state;
        self
    }

    /// The value of type `T` the application gave the read side
    /// ([`ReadSideBuilder::state`](crate::readside::ReadSideBuilder::state)),
    /// which the projection declared it uses.
    ///
    /// # Errors
    /// [`HandlerError::UndeclaredState`] if the projection did not declare
    /// `T` with [`uses`](ProjectionBuilder::uses).
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, HandlerError> {
        self.state.get()
    }

    /// Reads through `cache` first, and tells it what the store returned.
    pub(crate) fn with_cache(mut self, cache: SharedCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The projection's name (its document namespace in the store).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the event being projected is replayed history (during a
    /// [`ReadSide::rebuild`](crate::ReadSide::rebuild)).
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// The document `id` as JSON, including this batch's pending changes.
    ///
    /// Answered, in this order, from the batch's pending changes, from
    /// what was prefetched for the batch ([`Prefetch`]), from the runner's
    /// document cache, and only then by the store.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the store fails.
    pub async fn get_json(&self, id: &str) -> Result<Option<Value>, ProjectionError> {
        self.get::<Value>(id).await
    }

    /// The document `id` deserialized as `T`, including this batch's
    /// pending changes.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the store fails;
    /// [`ProjectionError::Serde`] if the document is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, ProjectionError> {
        // Decoded where the document is held, without copying it first.
        let decode = |document: Option<&Value>| match document {
            None => Ok(None),
            Some(json) => T::deserialize(json).map(Some).map_err(|source| ProjectionError::Serde {
                projection: self.name.to_string(),
                id: id.to_owned(),
                source,
            }),
        };
        if let Some(pending) = self.pending.get(id) {
            return decode(pending.as_ref());
        }
        if let Some(prefetched) = self.prefetched.get(id) {
            return decode(prefetched.as_ref());
        }
        if let Some(decoded) = self.cache.as_ref().and_then(|cache| cache.with(id, decode)) {
            return decoded;
        }
        let document = self.store.get(&self.name, id).await?;
        if let Some(cache) = &self.cache {
            cache.remember(id.to_owned(), document.clone());
        }
        decode(document.as_ref())
    }

    /// Creates or replaces the document `id` with a JSON value.
    pub fn put_json(&mut self, id: impl Into<String>, document: Value) {
        self.change(id.into(), Some(document));
    }

    /// Sets the pending state of `id`, remembering the one before.
    fn change(&mut self, id: String, document: Option<Value>) {
        let before = match self.pending.get_mut(&id) {
            Some(pending) => Some(std::mem::replace(pending, document)),
            None => self.pending.insert(id.clone(), document),
        };
        self.undo.push((id, before));
    }

    /// Creates or replaces the document `id` with `document` serialized.
    ///
    /// # Errors
    /// [`ProjectionError::Serde`] if `document` does not serialize.
    pub fn put<T: Serialize + ?Sized>(
        &mut self,
        id: impl Into<String>,
        document: &T,
    ) -> Result<(), ProjectionError> {
        let id = id.into();
        match serde_json::to_value(document) {
            Ok(json) => {
                self.put_json(id, json);
                Ok(())
            }
            Err(source) => Err(ProjectionError::Serde { projection: self.name.to_string(), id, source }),
        }
    }

    /// Deletes the document `id` (no error if it does not exist).
    pub fn delete(&mut self, id: impl Into<String>) {
        self.change(id.into(), None);
    }

    /// The ids among `named` worth reading before the batch: each once,
    /// and none that the batch already knows (prefetched or pending) or
    /// the runner's cache answers.
    pub(crate) fn to_prefetch(&self, named: Vec<String>) -> Vec<String> {
        let mut seen = std::collections::HashSet::with_capacity(named.len());
        named
            .into_iter()
            .filter(|id| {
                !self.pending.contains_key(id)
                    && !self.prefetched.contains_key(id)
                    && !self.cache.as_ref().is_some_and(|cache| cache.knows(id))
            })
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    /// Keeps what [`ProjectionStore::get_many`] answered for `asked`
    /// (`found`; an asked id not found is known absent), and tells the
    /// cache, as [`get_json`](ProjectionTx::get_json) does for a read.
    pub(crate) fn prefetched(&mut self, asked: Vec<String>, found: Vec<(String, Value)>) {
        let mut found: HashMap<String, Value> = found.into_iter().collect();
        for id in asked {
            let document = found.remove(&id);
            if let Some(cache) = &self.cache {
                cache.remember(id.clone(), document.clone());
            }
            self.prefetched.insert(id, document);
        }
    }

    pub(crate) fn set_replay(&mut self, replay: bool) {
        self.replay = replay;
    }

    pub(crate) fn has_changes(&self) -> bool {
        !self.pending.is_empty()
    }

    /// An event starts: [`rollback`](Self::rollback) undoes what it changes.
    pub(crate) fn begin_event(&mut self) {
        self.undo.clear();
    }

    /// Discards every change made since [`begin_event`](Self::begin_event).
    pub(crate) fn rollback(&mut self) {
        while let Some((id, before)) = self.undo.pop() {
            match before {
                Some(document) => self.pending.insert(id, document),
                None => self.pending.remove(&id),
            };
        }
    }

    /// The unit of work holding the net pending changes, the newest state
    /// of each touched document in id order (the runner adds the
    /// checkpoint and the fence): a batch that wrote one document a
    /// thousand times commits it once.
    pub(crate) fn into_work(self) -> UnitOfWork {
        UnitOfWork { changes: net_changes(self.pending), ..UnitOfWork::new() }
    }
}

/// The changes that leave each document of `newest` in its state there
/// (`None`: deleted), one per document, in id order.
pub(crate) fn net_changes(newest: impl IntoIterator<Item = (String, Option<Value>)>) -> Vec<DocumentChange> {
    let mut net: Vec<(String, Option<Value>)> = newest.into_iter().collect();
    net.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    net.into_iter()
        .map(|(id, document)| match document {
            Some(document) => DocumentChange::Put { id, document },
            None => DocumentChange::Delete { id },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Default)]
    struct NoStore;

    #[async_trait::async_trait]
    impl ProjectionStore for NoStore {
        async fn get(&self, _: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
            Ok((id == "stored").then(|| json!(1)))
        }
        async fn put(&self, _: &str, _: &str, _: Value) -> Result<(), ProjectionError> {
            Ok(())
        }
        async fn delete(&self, _: &str, _: &str) -> Result<(), ProjectionError> {
            Ok(())
        }
        async fn query(
            &self,
            _: &str,
            _: &crate::store::DocumentQuery,
        ) -> Result<Vec<(String, Value)>, ProjectionError> {
            Ok(Vec::new())
        }
        async fn checkpoint(&self, _: &str) -> Result<Option<crate::store::Checkpoint>, ProjectionError> {
            Ok(None)
        }
        async fn commit(&self, _: &str, _: UnitOfWork) -> Result<(), ProjectionError> {
            Ok(())
        }
        async fn reset(&self, _: &str) -> Result<(), ProjectionError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn reads_see_pending_changes_and_rollback_restores_them() {
        let mut tx = ProjectionTx::new(Arc::new(NoStore), "p".into());
        assert_eq!(tx.get::<u64>("stored").await.unwrap(), Some(1));
        tx.put("a", &5u64).unwrap();
        tx.begin_event();
        tx.delete("stored");
        tx.put("a", &6u64).unwrap();
        tx.put("new", &1u64).unwrap();
        tx.put("a", &7u64).unwrap();
        assert_eq!(tx.get::<u64>("stored").await.unwrap(), None);
        assert_eq!(tx.get::<u64>("a").await.unwrap(), Some(7));
        tx.rollback();
        assert_eq!(tx.get::<u64>("new").await.unwrap(), None, "a document the event created is gone");
        assert_eq!(tx.get::<u64>("stored").await.unwrap(), Some(1));
        assert_eq!(tx.get::<u64>("a").await.unwrap(), Some(5));
        tx.put("b", &1u64).unwrap();
        tx.put("b", &2u64).unwrap();
        tx.delete("c");
        let work = tx.into_work();
        assert_eq!(
            work.changes,
            vec![
                DocumentChange::Put { id: "a".into(), document: json!(5) },
                DocumentChange::Put { id: "b".into(), document: json!(2) },
                DocumentChange::Delete { id: "c".into() },
            ]
        );
    }

    #[tokio::test]
    async fn prefetched_documents_answer_after_pending_ones_and_before_the_store() {
        let cache = SharedCache::new(10_000);
        cache.remember("cached".into(), Some(json!(7)));
        let mut tx = ProjectionTx::new(Arc::new(NoStore), "p".into()).with_cache(cache.clone());
        tx.put("pending", &3u64).unwrap();
        let named = ["a", "stored", "cached", "a", "pending", "b"].map(String::from).to_vec();
        assert_eq!(
            tx.to_prefetch(named),
            ["a", "stored", "b"].map(String::from).to_vec(),
            "each id once, none that is pending or cached"
        );
        // The store held `a` only; `stored` is gone since (NoStore's get
        // would still say 1), so the prefetched absence must answer.
        tx.prefetched(["a", "stored", "b"].map(String::from).to_vec(), vec![("a".into(), json!(1))]);
        assert_eq!(tx.get::<u64>("a").await.unwrap(), Some(1));
        assert_eq!(tx.get::<u64>("stored").await.unwrap(), None, "a known absence is not read again");
        assert_eq!(cache.get("a"), Some(Some(json!(1))), "the cache is told, as for a read");
        assert_eq!(cache.get("stored"), Some(None));
        assert!(tx.to_prefetch(vec!["a".into()]).is_empty(), "prefetched once per batch");
        tx.begin_event();
        tx.put("a", &5u64).unwrap();
        tx.delete("b");
        assert_eq!(tx.get::<u64>("a").await.unwrap(), Some(5), "pending wins over prefetched");
        tx.put_json("stored", json!(2));
        assert_eq!(tx.get::<u64>("stored").await.unwrap(), Some(2));
        tx.rollback();
        assert_eq!(tx.get::<u64>("a").await.unwrap(), Some(1), "after a rollback the prefetched one again");
        assert_eq!(tx.get::<u64>("stored").await.unwrap(), None);
        assert_eq!(tx.get::<u64>("pending").await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn a_document_of_another_shape_is_a_typed_error() {
        let mut tx = ProjectionTx::new(Arc::new(NoStore), "p".into());
        tx.put_json("a", json!({"not": "a number"}));
        assert!(matches!(tx.get::<u64>("a").await, Err(ProjectionError::Serde { id, .. }) if id == "a"));
    }
}
