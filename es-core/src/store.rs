//! Ports: what the runtime needs from storage. Adapters (`es-memory`,
//! `es-postgres`) implement them, and every adapter passes the same
//! conformance suite, so they behave alike.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::envelope::{AppendOutcome, NewEvent, RecordedEvent, ReplayEvent, Snapshot};
use crate::error::{AppendError, ProjectionError, StoreError};
use crate::version::{ExpectedVersion, GlobalPosition, StreamId, StreamVersion};

/// Refuses an append that some store could not keep: a NUL character in
/// the stream id, an aggregate or event type, a payload or the metadata
/// (Postgres stores none in text or JSONB). Adapters call it before
/// anything else, so every store refuses the same appends.
///
/// # Errors
/// [`AppendError::Unstorable`] naming the first offending field.
pub fn check_storable(stream: &StreamId, events: &[NewEvent]) -> Result<(), AppendError> {
    let refuse = |reason: String| Err(AppendError::Unstorable { stream: stream.clone(), reason });
    if stream.as_str().contains('\0') {
        return refuse("the stream id contains a NUL character".to_owned());
    }
    for (n, event) in events.iter().enumerate() {
        let which = || format!("event {n} of the batch ({:?})", event.event_type);
        if event.aggregate_type.contains('\0') {
            return refuse(format!("the aggregate type of {} contains a NUL character", which()));
        }
        if event.event_type.contains('\0') {
            return refuse(format!("the event type of {} contains a NUL character", which()));
        }
        if event.payload.contains_nul() {
            return refuse(format!("a string in the payload of {} contains a NUL character", which()));
        }
        if event.metadata.fields.iter().any(|(key, value)| key.contains('\0') || value_contains_nul(value)) {
            return refuse(format!("a field of the metadata of {} contains a NUL character", which()));
        }
    }
    Ok(())
}

fn value_contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(value_contains_nul),
        Value::Object(map) => map.iter().any(|(key, value)| key.contains('\0') || value_contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Which way to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Oldest first, starting at the given version (inclusive).
    Forward,
    /// Newest first, starting at the given version (inclusive).
    Backward,
}

/// The event store port.
///
/// Appends are atomic: all events of a batch are stored, or none. Stream
/// versions are 1-based and gap-free; global positions strictly increase in
/// the order readers of [`read_all`](EventStore::read_all) see them, and a
/// reader never sees a position below one it has already been shown.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if the stream matches `expected`.
    ///
    /// An exact retry (same event ids, same stream, same expectation, after
    /// the first attempt committed) succeeds and returns the original
    /// versions and positions.
    ///
    /// # Errors
    /// [`AppendError::WrongExpectedVersion`] if the stream does not match
    /// `expected`; [`AppendError::DuplicateEventId`] if an event id is
    /// already stored otherwise; [`AppendError::Backend`] if storage fails.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError>;

    /// Reads up to `limit` events of `stream` starting at version `from`
    /// (inclusive), in `direction`. Reading backward from
    /// `StreamVersion(u64::MAX)` starts at the newest event.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a row is corrupt.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `limit` events of `stream` forward from version `from`
    /// (inclusive), with only what rebuilding an aggregate needs. Aggregates
    /// replay through this.
    ///
    /// The default reads [`read_stream`](EventStore::read_stream) and keeps
    /// those fields; an adapter overrides it to read less (on Postgres the
    /// columns replay skips are most of a row's cost).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a row is corrupt.
    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        let events = self.read_stream(stream, from, Direction::Forward, limit).await?;
        Ok(events.into_iter().map(ReplayEvent::from).collect())
    }

    /// Reads up to `limit` events of the global stream with a position
    /// strictly greater than `after`, in position order.
    ///
    /// Never returns an event while an event with a lower position may still
    /// commit: readers see a gap-free order.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a row is corrupt.
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The version of the stream's last event, or `None` if it has none.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError>;

    /// The position of the last event visible to [`read_all`](EventStore::read_all).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn head_position(&self) -> Result<GlobalPosition, StoreError>;

    /// Waits until events after `after` may be readable, or until `max_wait`
    /// passes, whichever is first. Subscriptions call this when caught up.
    /// The default polls (sleeps for `max_wait`); adapters with a wake-up
    /// channel (broadcast, LISTEN/NOTIFY) return as soon as something lands.
    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        let _ = after;
        tokio::time::sleep(max_wait).await;
    }

    /// What keeps committed events hidden from [`read_all`](EventStore::read_all)
    /// right now, if anything: a store that orders the global stream by
    /// transaction (Postgres) cannot show events committed after a
    /// transaction that is still running. Subscriptions that are caught up
    /// ask this now and then, and warn when it lasts. The default (stores
    /// that show every committed event at once) is `Ok(None)`.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn read_blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        Ok(None)
    }
}

/// A running transaction that keeps committed events hidden from readers of
/// the global stream, as [`EventStore::read_blocker`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadBlocker {
    /// Names the transaction for an operator, in the store's terms (for
    /// Postgres: pid, transaction id, state, age, database and the start
    /// of its query).
    pub description: String,
    /// How long the transaction has been running.
    pub age: Duration,
    /// How long committed events have been hidden by it (at least): the age
    /// of the oldest hidden event.
    pub hiding_for: Duration,
}

impl ReadBlocker {
    /// A blocker described by `description`, running for `age`, that has
    /// hidden committed events for `hiding_for`.
    pub fn new(description: impl Into<String>, age: Duration, hiding_for: Duration) -> Self {
        Self { description: description.into(), age, hiding_for }
    }
}

/// Where aggregate snapshots are kept.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// The newest snapshot of `stream`, if any.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Stores a snapshot, replacing an older one of the same stream. A
    /// snapshot older than the stored one is ignored.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError>;
}

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

/// A batch of document changes and a checkpoint that commit together: after
/// a crash either all of it is stored or none of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnitOfWork {
    /// The changes, applied in order.
    pub changes: Vec<DocumentChange>,
    /// The checkpoint to store with them, if any.
    pub checkpoint: Option<GlobalPosition>,
    /// The lease the commit is made under, if any (see
    /// [`ProjectionStore::commit`]).
    pub fence: Option<Fence>,
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
    pub fn checkpoint(&mut self, position: GlobalPosition) -> &mut Self {
        self.checkpoint = Some(position);
        self
    }

    /// Fences the commit with a lease: a store that can check it refuses
    /// the commit unless `fence.lease` is still held with `fence.token`.
    pub fn fence(&mut self, fence: Fence) -> &mut Self {
        self.fence = Some(fence);
        self
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

/// Whether `document` contains `filter` in the sense of Postgres' `@>`.
pub fn json_contains(document: &Value, filter: &Value) -> bool {
    match (document, filter) {
        // Postgres' one exception to matching structure, at the top level
        // only: an array contains a bare scalar that is one of its elements.
        (Value::Array(doc), scalar) if !scalar.is_object() && !scalar.is_array() => {
            doc.iter().any(|d| same_scalar(d, scalar))
        }
        _ => contains(document, filter),
    }
}

/// Structural containment below the top level.
fn contains(document: &Value, filter: &Value) -> bool {
    match (document, filter) {
        (Value::Object(doc), Value::Object(want)) => {
            want.iter().all(|(key, value)| doc.get(key).is_some_and(|have| contains(have, value)))
        }
        (Value::Array(doc), Value::Array(want)) => want.iter().all(|w| doc.iter().any(|d| contains(d, w))),
        (have, want) => same_scalar(have, want),
    }
}

/// Scalar equality as jsonb sees it: numbers compare by value, so `10`
/// equals `10.0`.
fn same_scalar(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Number(a), Value::Number(b)) => {
            a == b || ((a.is_f64() || b.is_f64()) && a.as_f64() == b.as_f64())
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        (have, want) => have == want,
    }
}

/// The projection store port: JSON documents keyed by (projection, id), and
/// a checkpoint per projection.
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// The document `id` of `projection`.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError>;

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

    /// The stored checkpoint of `projection`: the position of the last event
    /// it has fully handled.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if storage fails.
    async fn checkpoint(&self, projection: &str) -> Result<Option<GlobalPosition>, ProjectionError>;

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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::json_contains;

    #[test]
    fn containment_follows_postgres_semantics() {
        let doc = json!({"owner": "ada", "tags": ["a", "b"], "n": {"x": 1, "y": 2}});
        assert!(json_contains(&doc, &json!({})));
        assert!(json_contains(&doc, &json!({"owner": "ada"})));
        assert!(!json_contains(&doc, &json!({"owner": "bob"})));
        assert!(json_contains(&doc, &json!({"tags": ["b"]})));
        assert!(!json_contains(&doc, &json!({"tags": ["c"]})));
        assert!(json_contains(&doc, &json!({"n": {"x": 1}})));
        assert!(!json_contains(&doc, &json!({"missing": null})));
        assert!(json_contains(&json!(["a", 1]), &json!("a")), "a top-level array holds a bare scalar");
        assert!(!json_contains(&doc, &json!({"tags": "a"})), "below the top level it does not");
        assert!(!json_contains(&json!([["a"]]), &json!(["a"])), "nor does a nested array");
        assert!(json_contains(&json!({"n": 10.0}), &json!({"n": 10})), "numbers compare by value");
        assert!(json_contains(&json!([10]), &json!(10.0)));
        assert!(!json_contains(&json!({"n": 10.5}), &json!({"n": 10})));
    }
}
