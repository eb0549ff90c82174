//! `EventSubscription` on the in-memory store: a `next()` abandoned while
//! waiting loses nothing, and a failed read is retried by calling again.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::{
    AppendError, AppendOutcome, Direction, EventStore, EventSubscription, ExpectedVersion, GlobalPosition,
    NewEvent, RecordedEvent, StoreError, StreamId, StreamVersion,
};
use es_memory::InMemoryEventStore;
use serde_json::json;

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

async fn append(store: &impl EventStore, n: u64) -> GlobalPosition {
    let outcome = store.append(&StreamId::new("s"), ExpectedVersion::Any, vec![event(n)]).await.unwrap();
    outcome.last_position().unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_next_loses_no_event() {
    let store = InMemoryEventStore::new();
    let mut subscription = EventSubscription::new(store.clone(), GlobalPosition::START);
    for _ in 0..3 {
        let waited = tokio::time::timeout(Duration::from_millis(50), subscription.next()).await;
        assert!(waited.is_err(), "nothing is stored yet, so next() waits");
    }
    let first = append(&store, 1).await;
    let second = append(&store, 2).await;
    assert_eq!(subscription.next().await.unwrap().global_position, first);
    assert_eq!(subscription.next().await.unwrap().global_position, second);
    assert!(subscription.next_batch().await.unwrap().is_empty());
    assert_eq!(subscription.position(), second);
}

/// The in-memory store, with `read_all` failing while `failures` lasts.
#[derive(Clone)]
struct Flaky {
    inner: InMemoryEventStore,
    failures: Arc<AtomicU32>,
}

#[async_trait]
impl EventStore for Flaky {
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
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError::Backend("the connection dropped".into()));
        }
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head_position().await
    }
    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.inner.wait_for_events(after, max_wait).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_read_is_an_error_and_the_next_call_goes_on_from_the_same_place() {
    let store = Flaky { inner: InMemoryEventStore::new(), failures: Arc::new(AtomicU32::new(0)) };
    let first = append(&store, 1).await;
    let second = append(&store, 2).await;
    let mut subscription = EventSubscription::new(store.clone(), GlobalPosition::START).page_size(1);
    assert_eq!(subscription.next().await.unwrap().global_position, first);
    store.failures.store(2, Ordering::SeqCst);
    assert!(matches!(subscription.next().await, Err(StoreError::Backend(_))));
    assert!(matches!(subscription.next_batch().await, Err(StoreError::Backend(_))));
    assert_eq!(subscription.position(), first, "a failed read moves nothing");
    assert_eq!(
        subscription.next().await.unwrap().global_position,
        second,
        "delivered once, after the failure"
    );
    assert!(subscription.next_batch().await.unwrap().is_empty());
}
