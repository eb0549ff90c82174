//! The in-memory projection store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use es_core::error::ProjectionError;
use es_core::store::{json_contains, Checkpoint, DocumentChange, DocumentQuery, ProjectionStore, UnitOfWork};
use serde_json::Value;

/// A projection store that keeps documents in memory. A unit of work is
/// applied under one lock, so readers see all of it or none of it.
///
/// **Fencing.** This store cannot see any lease store (leases are kept
/// apart from it, in an [`InMemoryLeaseStore`](crate::InMemoryLeaseStore)
/// or elsewhere), so it ignores
/// [`UnitOfWork::fence`] and commits a fenced unit of work like any other.
/// Within one process the read side's lease checks before each commit
/// suffice.
#[derive(Clone, Default)]
pub struct InMemoryProjectionStore {
    inner: Arc<Mutex<HashMap<String, Projection>>>,
}

#[derive(Default)]
struct Projection {
    documents: BTreeMap<String, Value>,
    checkpoint: Option<Checkpoint>,
}

impl std::fmt::Debug for InMemoryProjectionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryProjectionStore").finish_non_exhaustive()
    }
}

impl InMemoryProjectionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, Projection>>, ProjectionError> {
        self.inner
            .lock()
            .map_err(|_| ProjectionError::Backend("in-memory projection store lock poisoned".into()))
    }
}

#[async_trait]
impl ProjectionStore for InMemoryProjectionStore {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        Ok(self.lock()?.get(projection).and_then(|p| p.documents.get(id)).cloned())
    }

    /// Under one lock: the answer is one moment's state. In id order.
    async fn get_many(
        &self,
        projection: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        let all = self.lock()?;
        let Some(p) = all.get(projection) else { return Ok(Vec::new()) };
        let mut wanted: Vec<&String> = ids.iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        Ok(wanted
            .into_iter()
            .filter_map(|id| p.documents.get(id).map(|document| (id.clone(), document.clone())))
            .collect())
    }

    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        self.lock()?.entry(projection.to_owned()).or_default().documents.insert(id.to_owned(), document);
        Ok(())
    }

    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        if let Some(p) = self.lock()?.get_mut(projection) {
            p.documents.remove(id);
        }
        Ok(())
    }

    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        let all = self.lock()?;
        let Some(p) = all.get(projection) else { return Ok(Vec::new()) };
        let matching = p
            .documents
            .iter()
            .filter(|(_, doc)| query.contains.as_ref().is_none_or(|filter| json_contains(doc, filter)))
            .skip(query.offset)
            .take(query.limit.unwrap_or(usize::MAX))
            .map(|(id, doc)| (id.clone(), doc.clone()))
            .collect();
        Ok(matching)
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        Ok(self.lock()?.get(name).and_then(|p| p.checkpoint))
    }

    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        let mut all = self.lock()?;
        let p = all.entry(projection.to_owned()).or_default();
        for change in work.changes {
            match change {
                DocumentChange::Put { id, document } => {
                    p.documents.insert(id, document);
                }
                DocumentChange::Delete { id } => {
                    p.documents.remove(&id);
                }
            }
        }
        if let Some(checkpoint) = work.checkpoint {
            p.checkpoint = Some(checkpoint);
        }
        Ok(())
    }

    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        self.lock()?.remove(projection);
        Ok(())
    }
}
