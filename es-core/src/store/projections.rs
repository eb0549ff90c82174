//! The projection store port: documents, checkpoints and units of work.

use async_trait::async_trait;
use serde_json::Value;

use super::transactions::ProjectionTransactions;
use crate::error::ProjectionError;
use crate::version::GlobalPosition;

/// One change to a projection document inside a [`UnitOfWork`].
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentChange {
    /// Create or replace the document `id`.
    Put {
        /// The document id.
        id: String,
        /// The document.
        document: Value,
    },
    /// Delete the document `id` (no error if it does not exist).
    Delete {
        /// The document id.
        id: String,
    },
}

/// The lease a commit is made under: the commit may only land while that
/// lease is still held with this token (see [`ProjectionStore::commit`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The lease's name (the subscription's name).
    pub lease: String,
    /// The token the lease was acquired with.
    pub token: u64,
}

impl Fence {
    /// A fence on `lease` held with `token`.
    pub fn new(lease: impl Into<String>, token: u64) -> Self {
        Self { lease: lease.into(), token }
    }
}

/// How far a subscription (a projection or an event handler) has got, as
/// stored with its last commit.
///
/// Its own record, not a document: a store keeps one per subscription name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Every event up to this position is handled and its effects are
    /// committed.
    pub position: GlobalPosition,
    /// Events up to this position are replayed history, not news (set when
    /// a subscription is rebuilt or replayed, so that a crash in the middle
    /// of a replay still knows where history ends). `None`: nothing is
    /// being replayed.
    pub replay_until: Option<GlobalPosition>,
}

impl Checkpoint {
    /// Every event up to `position` is handled; no replay is marked.
    pub fn at(position: GlobalPosition) -> Self {
        Self { position, replay_until: None }
    }

    /// Marks events up to `until` as replayed history.
    #[must_use]
    pub fn replaying_until(mut self, until: Option<GlobalPosition>) -> Self {
        self.replay_until = until;
        self
    }

    /// The checkpoint of `name` from the signed integers an SQL table keeps
    /// (for adapter authors).
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] naming the checkpoint when a stored
    /// position is negative (only a hand edit gets there).
    pub fn from_stored(
        name: &str,
        position: i64,
        replay_until: Option<i64>,
    ) -> Result<Self, ProjectionError> {
        let position_of = |stored: i64| {
            u64::try_from(stored).map(GlobalPosition).map_err(|_| {
                ProjectionError::Backend(format!("checkpoint of `{name}` is negative ({stored})").into())
            })
        };
        Ok(Self::at(position_of(position)?).replaying_until(replay_until.map(position_of).transpose()?))
    }
}

/// A batch of document changes and a checkpoint that commit together: after
/// a crash either all of it is stored or none of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnitOfWork {
    /// The changes, applied in order.
    pub changes: Vec<DocumentChange>,
    /// The checkpoint to store with them (replacing the stored one), if any.
    pub checkpoint: Option<Checkpoint>,
    /// The lease the commit is made under, if any (see
    /// [`ProjectionStore::commit`]).
    pub fence: Option<Fence>,
    /// The stored checkpoint this work follows on from, if the commit must
    /// check it (none stored counts as [`GlobalPosition::START`]). A
    /// table projection's transaction
    /// ([`ProjectionTransactions::commit`](super::ProjectionTransactions::commit))
    /// refuses to commit with [`ProjectionError::CheckpointMoved`](crate::error::ProjectionError::CheckpointMoved),
    /// rolling everything back, when the stored checkpoint is elsewhere: the
    /// runner's earlier commit of the same events landed after all (its
    /// reply was lost), and applying them again would count them twice.
    /// Other commits ignore it.
    pub after: Option<GlobalPosition>,
}

impl UnitOfWork {
    /// An empty unit of work.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or replaces a document.
    pub fn put(&mut self, id: impl Into<String>, document: Value) -> &mut Self {
        self.changes.push(DocumentChange::Put { id: id.into(), document });
        self
    }

    /// Deletes a document.
    pub fn delete(&mut self, id: impl Into<String>) -> &mut Self {
        self.changes.push(DocumentChange::Delete { id: id.into() });
        self
    }

    /// Sets the checkpoint committed with the changes.
    pub fn checkpoint(&mut self, checkpoint: Checkpoint) -> &mut Self {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// Fences the commit with a lease: a store that can check it refuses
    /// the commit unless `fence.lease` is still held with `fence.token`.
    pub fn fence(&mut self, fence: Fence) -> &mut Self {
        self.fence = Some(fence);
        self
    }

    /// Commits only if the stored checkpoint is at `position` (see
    /// [`after`](UnitOfWork::after)).
    pub fn after(&mut self, position: GlobalPosition) -> &mut Self {
        self.after = Some(position);
        self
    }

    /// For stores that check [`after`](UnitOfWork::after): whether this
    /// work may commit over `stored`, the position the store holds for
    /// `projection`.
    ///
    /// # Errors
    /// [`ProjectionError::CheckpointMoved`] if `after` is set and the stored
    /// checkpoint (none: the start) is elsewhere.
    pub fn check_after(
        &self,
        projection: &str,
        stored: Option<GlobalPosition>,
    ) -> Result<(), ProjectionError> {
        match self.after {
            Some(expected) if stored.unwrap_or(GlobalPosition::START) != expected => {
                Err(ProjectionError::CheckpointMoved {
                    projection: projection.to_owned(),
                    expected: Some(expected),
                    actual: stored,
                })
            }
            _ => Ok(()),
        }
    }
}

/// A filter over a projection's documents.
///
/// `contains` uses JSON containment (Postgres' `@>`): a document matches if
/// every field of `contains` is present in it with an equal value (objects
/// recursively; an array matches if each element of the filter's array is
/// contained in some element of the document's array).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocumentQuery {
    /// Containment filter; `None` matches every document.
    pub contains: Option<Value>,
    /// Skip this many documents (ordered by id).
    pub offset: usize,
    /// Return at most this many documents (`None`: all).
    pub limit: Option<usize>,
}

impl DocumentQuery {
    /// Every document.
    pub fn all() -> Self {
        Self::default()
    }

    /// Documents containing `filter`.
    pub fn containing(filter: Value) -> Self {
        Self { contains: Some(filter), ..Self::default() }
    }

    /// Sets the limit.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Sets the offset.
    #[must_use]
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
}

/// The projection store port: JSON documents keyed by (projection, id), and
/// a [`Checkpoint`] per subscription name (projections and event handlers
/// alike; a handler has no documents, only its checkpoint).
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// The document `id` of `projection`.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError>;

    /// The stored documents of `projection` among `ids`, in one round trip
    /// where the backend allows: each found document once, with its id, in
    /// no promised order; an id with no document is simply missing from
    /// the answer, and an id listed twice is answered once.
    ///
    /// Read-side runners call it once per batch for the documents that
    /// prefetching projections name ([`Prefetch`](crate::Prefetch)). The
    /// default asks [`get`](ProjectionStore::get) for each distinct id, so
    /// an adapter that does not override it still works, one round trip
    /// per id.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn get_many(
        &self,
        projection: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        let mut found = Vec::new();
        let mut asked = std::collections::HashSet::with_capacity(ids.len());
        for id in ids {
            if !asked.insert(id.as_str()) {
                continue;
            }
            if let Some(document) = self.get(projection, id).await? {
                found.push((id.clone(), document));
            }
        }
        Ok(found)
    }

    /// Creates or replaces one document (its own unit of work, no checkpoint).
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError>;

    /// Deletes one document; deleting a missing document is not an error.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError>;

    /// The documents of `projection` matching `query`, ordered by id.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError>;

    /// The stored checkpoint of the subscription `name` (a projection or an
    /// event handler), or `None` if it never committed one.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError>;

    /// Commits the unit of work: every change and the checkpoint, or nothing.
    ///
    /// **Fencing.** A unit of work with [`fence: None`](UnitOfWork::fence)
    /// commits unconditionally. With a fence, an adapter that keeps leases
    /// in the same database MUST refuse the commit, storing nothing, unless
    /// the lease `fence.lease` is currently held (unexpired) with token
    /// `fence.token`, and it must check this atomically with the commit: no
    /// other owner may take the lease over between the check and the
    /// commit. An adapter that cannot check (its leases live elsewhere)
    /// documents that it ignores the fence.
    ///
    /// # Errors
    /// [`ProjectionError::Fenced`] if the fence's lease is no longer held
    /// with its token (nothing was stored);
    /// [`ProjectionError::Backend`] if storage fails (nothing was stored).
    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError>;

    /// Deletes every document and the checkpoint of `projection` (for a rebuild).
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn reset(&self, projection: &str) -> Result<(), ProjectionError>;

    /// How many documents of `projection` contain `contains` (all of them
    /// for `None`). The default queries them all; SQL adapters count in
    /// the database.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn count(&self, projection: &str, contains: Option<&Value>) -> Result<u64, ProjectionError> {
        let query = DocumentQuery { contains: contains.cloned(), ..DocumentQuery::default() };
        Ok(self.query(projection, &query).await?.len() as u64)
    }

    /// The store's transactions, lent to projections that write the
    /// application's own tables (`None`, the default: it lends none, and a
    /// read side refuses to run such a projection on it).
    fn transactions(&self) -> Option<&dyn ProjectionTransactions> {
        None
    }
}
