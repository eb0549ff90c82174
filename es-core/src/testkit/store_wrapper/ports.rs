//! The store ports, forwarded by [`TestStore`] through its counters and
//! faults.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{Fault, StoreCall, TestStore};
use crate::envelope::{AppendOutcome, NewEvent, RecordedEvent, ReplayEvent, Snapshot};
use crate::error::{AppendError, BoxError, LeaseError, ProjectionError, StoreError};
use crate::store::{
    Checkpoint, Direction, DocumentQuery, EventStore, ExpectedVersion, Lease, LeaseStore, ProjectionStore,
    ReadBlocker, ReplayVisitor, SnapshotStore, StreamSummary, UnitOfWork, WakeupMark,
};
use crate::version::{EventId, GlobalPosition, StreamId, StreamVersion};

#[async_trait]
impl<S: EventStore> EventStore for TestStore<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        let fault = self.enter(StoreCall::Append).await;
        if fault == Some(Fault::Conflict) {
            let actual = self
                .inner
                .stream_version(stream)
                .await
                .map_err(|error| AppendError::Backend { stream: stream.clone(), source: Box::new(error) })?;
            return Err(AppendError::WrongExpectedVersion { stream: stream.clone(), expected, actual });
        }
        let backend = |source| AppendError::Backend { stream: stream.clone(), source };
        self.run(StoreCall::Append, fault, self.inner.append(stream, expected, events), backend).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.read_stream(stream, from, direction, limit);
        self.read(self.pass(StoreCall::ReadStream, inner, StoreError::Backend).await)
    }

    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        let inner = self.inner.read_replay(stream, from, limit);
        self.read(self.pass(StoreCall::ReadStream, inner, StoreError::Backend).await)
    }

    async fn replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        up_to: Option<StreamVersion>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<(), StoreError> {
        let events_read = &self.probe.events_read;
        let mut counted = |event: ReplayEvent| {
            events_read.fetch_add(1, Ordering::SeqCst);
            visit(event)
        };
        let inner = self.inner.replay(stream, from, up_to, &mut counted);
        self.pass(StoreCall::ReadStream, inner, StoreError::Backend).await
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(self.pass(StoreCall::ReadAll, self.inner.read_all(after, limit), StoreError::Backend).await)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.pass(StoreCall::StreamVersion, self.inner.stream_version(stream), StoreError::Backend).await
    }

    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(self.pass(StoreCall::EventsById, self.inner.events_by_id(ids), StoreError::Backend).await)
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        self.pass(StoreCall::Streams, self.inner.streams(prefix, after, limit), StoreError::Backend).await
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.pass(StoreCall::HeadPosition, self.inner.head_position(), StoreError::Backend).await
    }

    fn describe_position(&self, position: GlobalPosition) -> String {
        self.inner.describe_position(position)
    }

    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.wait_for_events_since(after, None, max_wait).await;
    }

    /// Forwarded, neither counted nor failed.
    fn wakeup_mark(&self) -> Option<WakeupMark> {
        self.inner.wakeup_mark()
    }

    /// Counted and failed as [`StoreCall::WaitForEvents`].
    async fn wait_for_events_since(
        &self,
        after: GlobalPosition,
        mark: Option<WakeupMark>,
        max_wait: Duration,
    ) {
        let fault = self.enter(StoreCall::WaitForEvents).await;
        if matches!(fault, Some(Fault::Backend | Fault::Conflict | Fault::Dropped)) {
            // No wake-up channel: the waiter sleeps until its timeout.
            tokio::time::sleep(max_wait).await;
            return;
        }
        let inner = async {
            self.inner.wait_for_events_since(after, mark, max_wait).await;
            Ok::<(), BoxError>(())
        };
        let _ = self.run(StoreCall::WaitForEvents, fault, inner, |error| error).await;
    }

    /// Forwarded, neither counted nor failed: it is no call the runtime
    /// depends on.
    async fn warm_up(&self) -> Result<(), StoreError> {
        self.inner.warm_up().await
    }

    async fn read_blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        self.pass(StoreCall::ReadBlocker, self.inner.read_blocker(), StoreError::Backend).await
    }
}

#[async_trait]
impl<S: SnapshotStore> SnapshotStore for TestStore<S> {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.pass(StoreCall::LoadSnapshot, self.inner.load_snapshot(stream), StoreError::Backend).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.pass_write(StoreCall::SaveSnapshot, self.inner.save_snapshot(snapshot), StoreError::Backend)
            .await
    }
}

#[async_trait]
impl<S: ProjectionStore> ProjectionStore for TestStore<S> {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        self.pass(StoreCall::Get, self.inner.get(projection, id), ProjectionError::Backend).await
    }

    async fn get_many(
        &self,
        projection: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        self.pass(StoreCall::GetMany, self.inner.get_many(projection, ids), ProjectionError::Backend).await
    }

    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        self.pass_write(StoreCall::Put, self.inner.put(projection, id, document), ProjectionError::Backend)
            .await
    }

    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        self.pass_write(StoreCall::Delete, self.inner.delete(projection, id), ProjectionError::Backend).await
    }

    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        self.pass(StoreCall::Query, self.inner.query(projection, query), ProjectionError::Backend).await
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        self.pass(StoreCall::Checkpoint, self.inner.checkpoint(name), ProjectionError::Backend).await
    }

    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        let fault = self.enter(StoreCall::Commit).await;
        if fault == Some(Fault::Dropped) {
            return Ok(());
        }
        if fault == Some(Fault::Conflict) {
            return Err(self.moved_under(projection).await);
        }
        self.run(StoreCall::Commit, fault, self.inner.commit(projection, work), ProjectionError::Backend)
            .await
    }

    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        self.pass_write(StoreCall::Reset, self.inner.reset(projection), ProjectionError::Backend).await
    }

    async fn count(&self, projection: &str, contains: Option<&Value>) -> Result<u64, ProjectionError> {
        self.pass(StoreCall::Query, self.inner.count(projection, contains), ProjectionError::Backend).await
    }

    /// The inner store's transactions, counted and failed as
    /// [`StoreCall::Begin`] and [`StoreCall::CommitTransaction`] (see
    /// `transactions.rs`).
    fn transactions(&self) -> Option<&dyn crate::store::ProjectionTransactions> {
        self.inner.transactions().map(|_| self as &dyn crate::store::ProjectionTransactions)
    }
}

impl<S: ProjectionStore> TestStore<S> {
    /// The answer to a commit that meets [`Fault::Conflict`]: as if another
    /// node had reset the projection under it (or the error reading the
    /// stored checkpoint, if that fails).
    pub(super) async fn moved_under(&self, projection: &str) -> ProjectionError {
        match self.inner.checkpoint(projection).await {
            Ok(stored) => ProjectionError::CheckpointMoved {
                projection: projection.to_owned(),
                expected: stored.map(|checkpoint| checkpoint.position),
                actual: None,
            },
            Err(error) => error,
        }
    }
}

#[async_trait]
impl<S: LeaseStore> LeaseStore for TestStore<S> {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        let fault = self.enter(StoreCall::Acquire).await;
        if fault == Some(Fault::Conflict) {
            return Ok(None);
        }
        self.run(StoreCall::Acquire, fault, self.inner.try_acquire(name, owner, ttl), LeaseError::Backend)
            .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        let fault = self.enter(StoreCall::Renew).await;
        match fault {
            Some(Fault::Conflict) => return Ok(false),
            Some(Fault::Dropped) => return Ok(true),
            _ => {}
        }
        self.run(StoreCall::Renew, fault, self.inner.renew(lease, ttl), LeaseError::Backend).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.pass_write(StoreCall::Release, self.inner.release(lease), LeaseError::Backend).await
    }
}
