//! A subscription that catches up reads its next batch while the previous
//! one commits (pipelined): each full batch's commit is still in flight
//! when the read of the batch after it starts.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, ProjectionError, StoreError};
use es_core::readside::{ReadSideConfig, Registry, Subscriber};
use es_core::store::{
    AppendOutcome, Checkpoint, Direction, DocumentQuery, EventStore, ExpectedVersion, NewEvent,
    ProjectionStore, RecordedEvent, StreamSummary, UnitOfWork,
};
use es_core::{
    event, EventId, GlobalPosition, HandlerError, Project, ProjectionTx, ReadSide, Recorded, StreamId,
    StreamVersion,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde_json::Value;
use tokio::sync::watch;

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Pinged;

struct Pings;

impl Project<Pinged> for Pings {
    async fn project(&self, _: &Recorded<Pinged>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let n: u64 = tx.get("count").await?.unwrap_or(0);
        Ok(tx.put("count", &(n + 1))?)
    }
}

/// The in-memory event store, counting `read_all` calls as they start.
#[derive(Clone)]
struct CountedReads {
    inner: InMemoryEventStore,
    reads: Arc<watch::Sender<usize>>,
}

#[async_trait]
impl EventStore for CountedReads {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, direction, limit).await
    }
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reads.send_modify(|n| *n += 1);
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.events_by_id(ids).await
    }
    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        self.inner.streams(prefix, after, limit).await
    }
    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head_position().await
    }
    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.inner.wait_for_events(after, max_wait).await;
    }
}

/// How long a commit waits for the next read to start. A runner that reads
/// ahead starts it at once; one that does not would start it only after
/// the commit, so the wait runs out and the commit counts as not
/// overlapped (the bound only keeps that failure from hanging).
const OVERLAP_WAIT: Duration = Duration::from_secs(10);

/// The in-memory projection store, whose `commit` number k waits until
/// read number k + 1 of the global stream has started, and counts the
/// commits that saw it start.
#[derive(Clone)]
struct WaitingCommits {
    inner: InMemoryProjectionStore,
    reads: watch::Receiver<usize>,
    commits: Arc<AtomicUsize>,
    overlapped: Arc<AtomicUsize>,
}

#[async_trait]
impl ProjectionStore for WaitingCommits {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        self.inner.get(projection, id).await
    }
    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        self.inner.put(projection, id, document).await
    }
    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        self.inner.delete(projection, id).await
    }
    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        self.inner.query(projection, query).await
    }
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        self.inner.checkpoint(name).await
    }
    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        let k = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        let mut reads = self.reads.clone();
        let started = tokio::time::timeout(OVERLAP_WAIT, async { reads.wait_for(|n| *n > k).await.is_ok() })
            .await
            .unwrap_or(false);
        if started {
            self.overlapped.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.commit(projection, work).await
    }
    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        self.inner.reset(projection).await
    }
}

#[tokio::test]
async fn each_full_batch_commits_while_the_next_batch_is_read() {
    let (reads, watching) = watch::channel(0);
    let events = CountedReads { inner: InMemoryEventStore::new(), reads: Arc::new(reads) };
    for _ in 0..30 {
        let event = NewEvent::new("ping", <Pinged as es_core::Event>::TYPE, 1, serde_json::json!(null));
        events.append(&StreamId::new("p"), ExpectedVersion::Any, vec![event]).await.unwrap();
    }
    let head = events.head_position().await.unwrap();
    let projections = WaitingCommits {
        inner: InMemoryProjectionStore::new(),
        reads: watching,
        commits: Arc::default(),
        overlapped: Arc::default(),
    };
    let mut registry = Registry::new();
    registry.register("pings", Subscriber::projection(Pings).on::<Pinged>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(projections.clone())
        .registry(registry)
        .config(ReadSideConfig { batch_size: 10, ..ReadSideConfig::default() })
        .start()
        .unwrap();
    read_side.wait_for("pings", head, Duration::from_secs(60)).await.unwrap();
    read_side.shutdown().await;

    let count = projections.inner.get("pings", "count").await.unwrap();
    assert_eq!(count, Some(serde_json::json!(30)), "every event projected once");
    assert_eq!(projections.commits.load(Ordering::SeqCst), 3, "three full batches of 10");
    assert_eq!(
        projections.overlapped.load(Ordering::SeqCst),
        3,
        "the read after each batch started while that batch committed"
    );
}
