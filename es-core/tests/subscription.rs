//! `EventSubscription` on the in-memory store: a `next()` abandoned while
//! waiting loses nothing, and a failed read is retried by calling again.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use es_core::error::StoreError;
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::testkit::{StoreCall, TestStore};
use es_core::{EventSubscription, GlobalPosition, StreamId};
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

#[tokio::test(start_paused = true)]
async fn a_failed_read_is_an_error_and_the_next_call_goes_on_from_the_same_place() {
    let store = TestStore::new(InMemoryEventStore::new());
    let first = append(&store, 1).await;
    let second = append(&store, 2).await;
    let mut subscription = EventSubscription::new(store.clone(), GlobalPosition::START).page_size(1);
    assert_eq!(subscription.next().await.unwrap().global_position, first);
    store.fail_next(StoreCall::ReadAll, 2);
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
