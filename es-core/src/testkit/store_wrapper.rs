//! [`TestStore`]: one store wrapper for tests and benchmarks that counts the
//! calls made to the store inside it and makes chosen calls fail.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::envelope::{AppendOutcome, NewEvent, RecordedEvent, ReplayEvent, Snapshot};
use crate::error::{AppendError, BoxError, LeaseError, ProjectionError, StoreError};
use crate::store::{
    Checkpoint, Direction, DocumentQuery, EventStore, ExpectedVersion, Lease, LeaseStore, ProjectionStore,
    ReadBlocker, SnapshotStore, StreamSummary, UnitOfWork,
};
use crate::version::{EventId, GlobalPosition, StreamId, StreamVersion};

/// One kind of call on a store port, for counting and for faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreCall {
    /// [`EventStore::append`].
    Append,
    /// [`EventStore::read_stream`] and [`EventStore::read_replay`].
    ReadStream,
    /// [`EventStore::read_all`].
    ReadAll,
    /// [`EventStore::stream_version`].
    StreamVersion,
    /// [`EventStore::events_by_id`].
    EventsById,
    /// [`EventStore::streams`].
    Streams,
    /// [`EventStore::head_position`].
    HeadPosition,
    /// [`EventStore::read_blocker`].
    ReadBlocker,
    /// [`SnapshotStore::load_snapshot`].
    LoadSnapshot,
    /// [`SnapshotStore::save_snapshot`].
    SaveSnapshot,
    /// [`ProjectionStore::get`].
    Get,
    /// [`ProjectionStore::put`].
    Put,
    /// [`ProjectionStore::delete`].
    Delete,
    /// [`ProjectionStore::query`] and [`ProjectionStore::count`].
    Query,
    /// [`ProjectionStore::checkpoint`].
    Checkpoint,
    /// [`ProjectionStore::commit`].
    Commit,
    /// [`ProjectionStore::reset`].
    Reset,
    /// [`LeaseStore::try_acquire`].
    Acquire,
    /// [`LeaseStore::renew`].
    Renew,
    /// [`LeaseStore::release`].
    Release,
}

impl StoreCall {
    const ALL: [StoreCall; 20] = [
        Self::Append,
        Self::ReadStream,
        Self::ReadAll,
        Self::StreamVersion,
        Self::EventsById,
        Self::Streams,
        Self::HeadPosition,
        Self::ReadBlocker,
        Self::LoadSnapshot,
        Self::SaveSnapshot,
        Self::Get,
        Self::Put,
        Self::Delete,
        Self::Query,
        Self::Checkpoint,
        Self::Commit,
        Self::Reset,
        Self::Acquire,
        Self::Renew,
        Self::Release,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|call| *call == self).unwrap_or(0)
    }
}

/// What the clones of one [`TestStore`] share.
#[derive(Debug, Default)]
struct Probe {
    down: AtomicBool,
    /// Per call kind: how many of the next calls fail.
    failing: [AtomicU64; StoreCall::ALL.len()],
    calls: [AtomicU64; StoreCall::ALL.len()],
    events_read: AtomicU64,
}

/// The error an injected fault returns: a backend failure, as a lost
/// connection or a pool timeout would be.
#[derive(Debug, thiserror::Error)]
#[error("injected fault: {call:?} failed")]
pub struct InjectedFault {
    /// The call that was made to fail.
    pub call: StoreCall,
}

/// A wrapper around a store for tests: counts calls per [`StoreCall`] and
/// fails the ones it is told to with a backend error ([`InjectedFault`]
/// as its source).
///
/// It implements every port its inner store implements ([`EventStore`],
/// [`SnapshotStore`], [`ProjectionStore`], [`LeaseStore`]), forwarding each
/// call. Clones share the counters and the faults, so a test keeps one
/// clone to steer while the application runs on another.
///
/// ```
/// use es_core::store::{EventStore, ProjectionStore};
/// use es_core::testkit::{StoreCall, TestStore};
/// use es_memory::InMemoryProjectionStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = TestStore::new(InMemoryProjectionStore::new());
/// store.fail_next(StoreCall::Commit, 1);
/// assert!(store.commit("p", Default::default()).await.is_err()); // the injected fault
/// assert!(store.commit("p", Default::default()).await.is_ok());
///
/// store.outage(true); // every call fails, as while the database is down
/// assert!(store.get("p", "a").await.is_err());
/// store.outage(false);
/// assert_eq!(store.calls(StoreCall::Commit), 2);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TestStore<S> {
    inner: S,
    probe: Arc<Probe>,
}

impl<S> TestStore<S> {
    /// Wraps `inner`, with no faults.
    pub fn new(inner: S) -> Self {
        Self { inner, probe: Arc::default() }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Makes the next `times` calls of kind `call` fail (added to any
    /// already pending; `u64::MAX`: until [`heal`](TestStore::heal)).
    pub fn fail_next(&self, call: StoreCall, times: u64) {
        let failing = &self.probe.failing[call.index()];
        let _ = failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_add(times)));
    }

    /// Switches an outage on or off: while on, every call fails (as while
    /// the database is down or its pool has no free connection).
    pub fn outage(&self, down: bool) {
        self.probe.down.store(down, Ordering::SeqCst);
    }

    /// Ends the outage and drops every pending fault.
    pub fn heal(&self) {
        self.outage(false);
        for failing in &self.probe.failing {
            failing.store(0, Ordering::SeqCst);
        }
    }

    /// How many calls of kind `call` were made (failed ones included).
    pub fn calls(&self, call: StoreCall) -> u64 {
        self.probe.calls[call.index()].load(Ordering::SeqCst)
    }

    /// How many events the successful reads returned (`read_stream`,
    /// `read_replay`, `read_all`, `events_by_id`).
    pub fn events_read(&self) -> u64 {
        self.probe.events_read.load(Ordering::SeqCst)
    }

    /// Counts a call of kind `call`; `Err` if it is to fail.
    fn enter(&self, call: StoreCall) -> Result<(), BoxError> {
        self.probe.calls[call.index()].fetch_add(1, Ordering::SeqCst);
        let failing = &self.probe.failing[call.index()];
        let injected = self.probe.down.load(Ordering::SeqCst)
            || failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if injected {
            return Err(Box::new(InjectedFault { call }));
        }
        Ok(())
    }

    fn read<T>(&self, events: Result<Vec<T>, StoreError>) -> Result<Vec<T>, StoreError> {
        if let Ok(events) = &events {
            self.probe.events_read.fetch_add(events.len() as u64, Ordering::SeqCst);
        }
        events
    }
}

#[async_trait]
impl<S: EventStore> EventStore for TestStore<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.enter(StoreCall::Append)
            .map_err(|source| AppendError::Backend { stream: stream.clone(), source })?;
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.enter(StoreCall::ReadStream).map_err(StoreError::Backend)?;
        self.read(self.inner.read_stream(stream, from, direction, limit).await)
    }

    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        self.enter(StoreCall::ReadStream).map_err(StoreError::Backend)?;
        self.read(self.inner.read_replay(stream, from, limit).await)
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.enter(StoreCall::ReadAll).map_err(StoreError::Backend)?;
        self.read(self.inner.read_all(after, limit).await)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.enter(StoreCall::StreamVersion).map_err(StoreError::Backend)?;
        self.inner.stream_version(stream).await
    }

    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.enter(StoreCall::EventsById).map_err(StoreError::Backend)?;
        self.read(self.inner.events_by_id(ids).await)
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        self.enter(StoreCall::Streams).map_err(StoreError::Backend)?;
        self.inner.streams(prefix, after, limit).await
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.enter(StoreCall::HeadPosition).map_err(StoreError::Backend)?;
        self.inner.head_position().await
    }

    fn describe_position(&self, position: GlobalPosition) -> String {
        self.inner.describe_position(position)
    }

    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.inner.wait_for_events(after, max_wait).await;
    }

    async fn read_blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        self.enter(StoreCall::ReadBlocker).map_err(StoreError::Backend)?;
        self.inner.read_blocker().await
    }
}

#[async_trait]
impl<S: SnapshotStore> SnapshotStore for TestStore<S> {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.enter(StoreCall::LoadSnapshot).map_err(StoreError::Backend)?;
        self.inner.load_snapshot(stream).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.enter(StoreCall::SaveSnapshot).map_err(StoreError::Backend)?;
        self.inner.save_snapshot(snapshot).await
    }
}

#[async_trait]
impl<S: ProjectionStore> ProjectionStore for TestStore<S> {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        self.enter(StoreCall::Get).map_err(ProjectionError::Backend)?;
        self.inner.get(projection, id).await
    }

    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        self.enter(StoreCall::Put).map_err(ProjectionError::Backend)?;
        self.inner.put(projection, id, document).await
    }

    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        self.enter(StoreCall::Delete).map_err(ProjectionError::Backend)?;
        self.inner.delete(projection, id).await
    }

    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        self.enter(StoreCall::Query).map_err(ProjectionError::Backend)?;
        self.inner.query(projection, query).await
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        self.enter(StoreCall::Checkpoint).map_err(ProjectionError::Backend)?;
        self.inner.checkpoint(name).await
    }

    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        self.enter(StoreCall::Commit).map_err(ProjectionError::Backend)?;
        self.inner.commit(projection, work).await
    }

    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        self.enter(StoreCall::Reset).map_err(ProjectionError::Backend)?;
        self.inner.reset(projection).await
    }

    async fn count(&self, projection: &str, contains: Option<&Value>) -> Result<u64, ProjectionError> {
        self.enter(StoreCall::Query).map_err(ProjectionError::Backend)?;
        self.inner.count(projection, contains).await
    }

    /// The inner store's transactions, neither counted nor failed.
    fn transactions(&self) -> Option<&dyn crate::store::ProjectionTransactions> {
        self.inner.transactions()
    }
}

#[async_trait]
impl<S: LeaseStore> LeaseStore for TestStore<S> {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        self.enter(StoreCall::Acquire).map_err(LeaseError::Backend)?;
        self.inner.try_acquire(name, owner, ttl).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        self.enter(StoreCall::Renew).map_err(LeaseError::Backend)?;
        self.inner.renew(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.enter(StoreCall::Release).map_err(LeaseError::Backend)?;
        self.inner.release(lease).await
    }
}
