//! The default `EventStore::replay`, which adapters without a streamed read
//! keep: it pages through `read_replay`, crosses page boundaries, and asks
//! the last page for no more than the version a load stops at.

// clippy.toml allows unwrap only inside #[test] fns; in this test crate's
// helpers too, a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use es_core::error::{AppendError, StoreError};
use es_core::store::{
    AppendOutcome, Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent, ReplayEvent,
    StreamSummary,
};
use es_core::{Es, EventId, GlobalPosition, StreamId, StreamVersion};
use es_memory::InMemoryEventStore;
use support::{deposit, open, Account};

/// The in-memory store, counting `read_replay` calls and the events they
/// return. It keeps the port's default `replay`, the one under test.
#[derive(Clone)]
struct PageCounter {
    inner: InMemoryEventStore,
    reads: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
}

impl PageCounter {
    fn over(inner: InMemoryEventStore) -> Self {
        Self { inner, reads: Arc::default(), events: Arc::default() }
    }
    fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
    fn events_read(&self) -> u64 {
        self.events.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EventStore for PageCounter {
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
    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        let page = self.inner.read_replay(stream, from, limit).await?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.events.fetch_add(page.len() as u64, Ordering::SeqCst);
        Ok(page)
    }
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
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
}

#[tokio::test]
async fn a_load_longer_than_a_page_reads_every_event_in_pages() {
    const DEPOSITS: u64 = 2_500;
    let store = InMemoryEventStore::new();
    let es = Es::builder().event_store(store.clone()).build().await.unwrap();
    es.execute(open("a")).await.unwrap();
    for amount in 1..=DEPOSITS {
        es.execute(deposit("a", amount)).await.unwrap();
    }
    es.shutdown().await;

    let counting = PageCounter::over(store);
    let node = Es::builder().event_store(counting.clone()).build().await.unwrap();
    let account = node.load::<Account>("a").await.unwrap();
    assert_eq!(account.balance, (1..=DEPOSITS).sum::<u64>(), "every deposit was applied");
    assert_eq!(counting.events_read(), DEPOSITS + 1, "each event read once");
    assert_eq!(counting.reads(), 3, "2,501 events in pages of 1,024");

    // Version 2,049 is the first event of the third page: that page asks
    // for one event only.
    let (events_before, reads_before) = (counting.events_read(), counting.reads());
    let past = node.load_at::<Account>("a", StreamVersion(2_049)).await.unwrap();
    assert_eq!(past.balance, (1..=2_048).sum::<u64>(), "the open and 2,048 deposits");
    assert_eq!(counting.events_read() - events_before, 2_049, "no event past version 2,049 was read");
    assert_eq!(counting.reads() - reads_before, 3, "two full pages and one of a single event");
    node.shutdown().await;
}
