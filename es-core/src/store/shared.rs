//! Every port for `Arc<T>`: a store shared by several owners (an
//! application, its read side, a test's fault-injecting wrapper) is still a
//! store, so builders take `impl EventStore` and nothing needs a second
//! setter for an `Arc<dyn EventStore>`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Checkpoint, Direction, DocumentQuery, EventStore, Lease, LeaseStore, ProjectionStore, ReadBlocker,
    ReplayVisitor, SnapshotStore, StreamSummary, UnitOfWork, WakeupMark,
};
use crate::envelope::{AppendOutcome, NewEvent, RecordedEvent, ReplayEvent, Snapshot};
use crate::error::{AppendError, LeaseError, ProjectionError, StoreError};
use crate::version::{EventId, ExpectedVersion, GlobalPosition, StreamId, StreamVersion};

#[async_trait]
impl<T: EventStore + ?Sized> EventStore for Arc<T> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        (**self).append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        (**self).read_stream(stream, from, direction, limit).await
    }

    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        (**self).read_replay(stream, from, limit).await
    }

    async fn replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        up_to: Option<StreamVersion>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<(), StoreError> {
        (**self).replay(stream, from, up_to, visit).await
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        (**self).read_all(after, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        (**self).stream_version(stream).await
    }

    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        (**self).events_by_id(ids).await
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        (**self).streams(prefix, after, limit).await
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        (**self).head_position().await
    }

    fn describe_position(&self, position: GlobalPosition) -> String {
        (**self).describe_position(position)
    }

    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        (**self).wait_for_events(after, max_wait).await;
    }

    fn wakeup_mark(&self) -> Option<WakeupMark> {
        (**self).wakeup_mark()
    }

    async fn wait_for_events_since(
        &self,
        after: GlobalPosition,
        mark: Option<WakeupMark>,
        max_wait: Duration,
    ) {
        (**self).wait_for_events_since(after, mark, max_wait).await;
    }

    async fn warm_up(&self) -> Result<(), StoreError> {
        (**self).warm_up().await
    }

    async fn read_blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        (**self).read_blocker().await
    }
}

#[async_trait]
impl<T: SnapshotStore + ?Sized> SnapshotStore for Arc<T> {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        (**self).load_snapshot(stream).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        (**self).save_snapshot(snapshot).await
    }
}

#[async_trait]
impl<T: ProjectionStore + ?Sized> ProjectionStore for Arc<T> {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        (**self).get(projection, id).await
    }

    async fn get_many(
        &self,
        projection: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        (**self).get_many(projection, ids).await
    }

    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        (**self).put(projection, id, document).await
    }

    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        (**self).delete(projection, id).await
    }

    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        (**self).query(projection, query).await
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        (**self).checkpoint(name).await
    }

    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        (**self).commit(projection, work).await
    }

    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        (**self).reset(projection).await
    }

    async fn count(&self, projection: &str, contains: Option<&Value>) -> Result<u64, ProjectionError> {
        (**self).count(projection, contains).await
    }

    fn transactions(&self) -> Option<&dyn super::ProjectionTransactions> {
        (**self).transactions()
    }
}

#[async_trait]
impl<T: LeaseStore + ?Sized> LeaseStore for Arc<T> {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        (**self).try_acquire(name, owner, ttl).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        (**self).renew(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        (**self).release(lease).await
    }
}
