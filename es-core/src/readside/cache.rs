//! The document cache of one projection runner.
//!
//! While a runner holds its lease it is the only writer of its projection's
//! documents, so what it read or committed is still what the store holds:
//! it keeps those documents and answers reads from them instead of asking
//! the store for every event. After a reset (a rebuild) the store holds no
//! documents at all, so until the cache has to evict one, a document it
//! does not hold does not exist: a rebuild reads nothing back.
//!
//! The cache lives as long as one run under one lease (a lease taken again
//! starts empty, as another node may have written meanwhile), and is
//! emptied whenever a commit fails, since a failed commit may or may not
//! have been applied.
//!
//! While a batch's commit is in flight (the runner projects the next batch
//! meanwhile), its changes are *staged*: reads see them before anything
//! else, and no eviction can drop them, since the store does not hold them
//! yet. They join the cached documents once the commit went through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use super::projection_tx::net_changes;
use crate::store::DocumentChange;

/// Documents as the store holds them (`None`: known not to exist), with
/// the bytes each entry holds, roughly.
#[derive(Debug)]
pub(crate) struct DocumentCache {
    documents: HashMap<String, (Option<Value>, usize)>,
    /// The budget in bytes, and what the entries use of it.
    capacity: usize,
    used: usize,
    /// Every document of the projection is in `documents`: one that is not
    /// there does not exist.
    complete: bool,
    /// The net changes of the commit in flight, if any: newer than
    /// `documents`, and outside the budget (a batch bounds them).
    staged: HashMap<String, Option<Value>>,
}

/// A runner's cache, shared with the [`ProjectionTx`](super::ProjectionTx)
/// of each batch. Locked only for map operations, never across an await.
#[derive(Debug, Clone)]
pub(crate) struct SharedCache(Arc<Mutex<DocumentCache>>);

impl SharedCache {
    /// A cache of documents using about `capacity` bytes at most (0: no
    /// caching).
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Arc::new(Mutex::new(DocumentCache {
            documents: HashMap::new(),
            capacity,
            used: 0,
            complete: false,
            staged: HashMap::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, DocumentCache> {
        // A panic while locked cannot leave the map half-updated in a way
        // that matters: at worst an entry is missing, which means a read.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the store holds for `id`, if known, counting the commit in
    /// flight as done: `Some(None)` means it holds no such document.
    #[cfg(test)]
    pub(crate) fn get(&self, id: &str) -> Option<Option<Value>> {
        self.with(id, |document| document.cloned())
    }

    /// `decode` of what the store holds for `id` (`None`: no such
    /// document), if known, counting the commit in flight as done; as
    /// [`get`](Self::get) without copying the document.
    pub(crate) fn with<R>(&self, id: &str, decode: impl FnOnce(Option<&Value>) -> R) -> Option<R> {
        let cache = self.lock();
        if let Some(staged) = cache.staged.get(id) {
            return Some(decode(staged.as_ref()));
        }
        match cache.documents.get(id) {
            Some((document, _)) => Some(decode(document.as_ref())),
            None if cache.complete => Some(decode(None)),
            None => None,
        }
    }

    /// Whether the cache knows what the store holds for `id`.
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.with(id, |_| ()).is_some()
    }

    /// Records what the store holds for `id` (read from it or committed).
    pub(crate) fn remember(&self, id: String, document: Option<Value>) {
        self.lock().remember(id, document);
    }

    /// Records a commit that went through.
    pub(crate) fn committed(&self, changes: Vec<DocumentChange>) {
        let mut cache = self.lock();
        for change in changes {
            match change {
                DocumentChange::Put { id, document } => cache.remember(id, Some(document)),
                DocumentChange::Delete { id } => cache.remember(id, None),
            }
        }
    }

    /// Stages the net changes (one per document) of a commit just sent.
    pub(crate) fn stage(&self, changes: Vec<DocumentChange>) {
        let mut cache = self.lock();
        cache.staged.clear();
        for change in changes {
            match change {
                DocumentChange::Put { id, document } => cache.staged.insert(id, Some(document)),
                DocumentChange::Delete { id } => cache.staged.insert(id, None),
            };
        }
    }

    /// The staged commit went through: its changes are what the store holds.
    pub(crate) fn staged_committed(&self) {
        let mut cache = self.lock();
        let staged = std::mem::take(&mut cache.staged);
        for (id, document) in staged {
            cache.remember(id, document);
        }
    }

    /// Takes the staged changes back (their commit failed and is to be
    /// made again), in id order.
    pub(crate) fn unstage(&self) -> Vec<DocumentChange> {
        let staged = std::mem::take(&mut self.lock().staged);
        net_changes(staged)
    }

    /// Forgets everything, staged changes too: the store's state is no
    /// longer known.
    pub(crate) fn clear(&self) {
        let mut cache = self.lock();
        cache.staged.clear();
        cache.documents.clear();
        cache.used = 0;
        cache.complete = false;
    }

    /// The store was just emptied: every document is known not to exist.
    pub(crate) fn emptied(&self) {
        let mut cache = self.lock();
        cache.documents.clear();
        cache.used = 0;
        cache.complete = cache.capacity > 0;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().documents.len()
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        self.lock().used
    }
}

/// What a map entry costs besides its id and document, roughly.
const ENTRY: usize = 64;

/// Roughly the bytes a JSON value holds: enough to bound the cache.
fn weight(value: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    NODE + match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(weight).sum(),
        Value::Object(map) => map.iter().map(|(key, value)| NODE + key.len() + weight(value)).sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

impl DocumentCache {
    fn remember(&mut self, id: String, document: Option<Value>) {
        if self.capacity == 0 {
            return;
        }
        if let Some((_, old)) = self.documents.remove(&id) {
            self.used -= old;
        }
        if document.is_none() && self.complete {
            // Absence is implied; no need to spend an entry on it.
            return;
        }
        let size = ENTRY + id.len() + document.as_ref().map_or(0, weight);
        if size > self.capacity {
            // Too large to keep: only the store knows it now.
            self.complete = false;
            return;
        }
        while self.used + size > self.capacity {
            // Evict an arbitrary entry. Once one is gone, a missing id may
            // exist in the store.
            let Some(evicted) = self.documents.keys().next().cloned() else { break };
            if let Some((_, freed)) = self.documents.remove(&evicted) {
                self.used -= freed;
            }
            self.complete = false;
        }
        self.used += size;
        self.documents.insert(id, (document, size));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn knows_only_what_it_was_told_until_the_store_is_emptied() {
        let cache = SharedCache::new(10_000);
        assert_eq!(cache.get("a"), None, "unknown before anything is remembered");
        cache.remember("a".into(), Some(json!(1)));
        cache.remember("b".into(), None);
        assert_eq!(cache.get("a"), Some(Some(json!(1))));
        assert_eq!(cache.get("b"), Some(None), "a known absence");
        assert_eq!(cache.get("c"), None);
        cache.emptied();
        assert_eq!(cache.get("a"), Some(None), "after a reset nothing exists");
        assert_eq!(cache.get("c"), Some(None));
    }

    #[test]
    fn commits_are_written_through_and_a_clear_forgets_everything() {
        let cache = SharedCache::new(10_000);
        cache.emptied();
        cache.committed(vec![
            DocumentChange::Put { id: "a".into(), document: json!({"n": 1}) },
            DocumentChange::Put { id: "b".into(), document: json!({"n": 2}) },
            DocumentChange::Delete { id: "a".into() },
        ]);
        assert_eq!(cache.get("a"), Some(None));
        assert_eq!(cache.get("b"), Some(Some(json!({"n": 2}))));
        assert_eq!(cache.len(), 1, "a deletion in a complete cache takes no entry");
        cache.clear();
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.get("z"), None, "not complete after a clear");
    }

    #[test]
    fn an_eviction_ends_completeness_and_the_budget_holds() {
        let one = ENTRY + 1 + weight(&json!(1));
        let cache = SharedCache::new(2 * one);
        cache.emptied();
        cache.remember("a".into(), Some(json!(1)));
        cache.remember("b".into(), Some(json!(2)));
        assert_eq!(cache.get("z"), Some(None));
        assert_eq!(cache.used(), 2 * one);
        cache.remember("c".into(), Some(json!(3)));
        assert_eq!(cache.len(), 2);
        assert!(cache.used() <= 2 * one);
        assert_eq!(cache.get("z"), None, "an evicted document may be any missing id");
        assert_eq!(cache.get("c"), Some(Some(json!(3))));
        cache.remember("c".into(), Some(json!(4)));
        assert_eq!((cache.len(), cache.used()), (2, 2 * one), "a replaced entry is counted once");
    }

    #[test]
    fn a_document_larger_than_the_budget_is_not_kept_and_ends_completeness() {
        let cache = SharedCache::new(ENTRY + 100);
        cache.emptied();
        cache.remember("a".into(), Some(json!({ "history": "x".repeat(500) })));
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.get("a"), None, "the store must be asked");
        assert_eq!(cache.get("z"), None, "a document exists that the cache does not hold");
    }

    #[test]
    fn staged_changes_are_read_first_and_no_eviction_drops_them() {
        let one = ENTRY + 1 + weight(&json!(1));
        let cache = SharedCache::new(2 * one);
        cache.emptied();
        cache.remember("a".into(), Some(json!(1)));
        cache.stage(vec![
            DocumentChange::Put { id: "b".into(), document: json!(2) },
            DocumentChange::Delete { id: "a".into() },
        ]);
        assert_eq!(cache.get("a"), Some(None), "the staged delete wins over the cached document");
        for id in ["c", "d", "e"] {
            cache.remember(id.into(), Some(json!(0)));
        }
        assert_eq!(cache.get("b"), Some(Some(json!(2))), "evictions leave staged changes alone");
        let staged = cache.unstage();
        assert_eq!(
            staged,
            vec![
                DocumentChange::Delete { id: "a".into() },
                DocumentChange::Put { id: "b".into(), document: json!(2) }
            ],
            "taken back in id order"
        );
        assert_eq!(cache.get("b"), None, "unstaged, and never known to the store");
    }

    #[test]
    fn a_staged_commit_that_went_through_joins_the_cache_and_a_clear_drops_one_that_did_not() {
        let cache = SharedCache::new(10_000);
        cache.stage(vec![DocumentChange::Put { id: "a".into(), document: json!(1) }]);
        cache.staged_committed();
        assert_eq!(cache.get("a"), Some(Some(json!(1))));
        assert_eq!(cache.len(), 1);
        cache.stage(vec![DocumentChange::Put { id: "b".into(), document: json!(2) }]);
        cache.clear();
        assert_eq!(cache.get("b"), None);
        assert!(cache.unstage().is_empty());
    }

    #[test]
    fn a_capacity_of_zero_caches_nothing() {
        let cache = SharedCache::new(0);
        cache.emptied();
        cache.remember("a".into(), Some(json!(1)));
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("b"), None);
    }
}
