//! A projection that is behind reads and commits `catch_up_batch_size`
//! events at once, and goes back to `batch_size` once it has caught up; a
//! handler always keeps to `batch_size`. Every event still counts once.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use es_core::readside::{ReadSideConfig, Registry, Subscriber};
use es_core::store::ProjectionStore;
use es_core::testkit::{StoreCall, TestStore};
use es_core::ReadSide;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use support::readside::*;

const ACCOUNTS: [&str; 5] = ["a", "b", "c", "d", "e"];

fn catching_up() -> ReadSideConfig {
    ReadSideConfig { batch_size: 3, catch_up_batch_size: 20, ..config() }
}

fn deposits(from: usize, count: usize) -> Vec<Deposited> {
    (from..from + count).map(|n| deposit(ACCOUNTS[n % ACCOUNTS.len()], n as i64 + 1)).collect()
}

fn start_with(
    events: &TestStore<InMemoryEventStore>,
    documents: &TestStore<InMemoryProjectionStore>,
    registry: Registry,
) -> ReadSide {
    ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .registry(registry)
        .config(catching_up())
        .start()
        .unwrap()
}

#[tokio::test]
async fn a_projection_behind_commits_catch_up_batches_and_keeps_to_batch_size_once_caught_up() {
    let events = TestStore::new(InMemoryEventStore::new());
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let mut all = deposits(0, 100);
    append(events.inner(), "account-mixed", &all).await;
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    let read_side = start_with(&events, &documents, registry);
    caught_up(&read_side, "balances").await;
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(&all));
    // 3 (the first read, as a subscription that keeps up reads), then 20,
    // 20, 20, 20 and the 17 left.
    assert_eq!(documents.calls(StoreCall::Commit), 6, "commits of up to 20 events while behind");

    // Caught up: ten new events are read 3 first (the live batch size),
    // then, that read having come back full, the 7 left at once.
    let more = deposits(100, 10);
    let head = append(events.inner(), "account-more", &more).await;
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    all.extend(more);
    read_side.shutdown().await;
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(&all), "each event once");
    assert_eq!(documents.calls(StoreCall::Commit), 8);
    assert_eq!(documents.inner().checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
}

#[tokio::test]
async fn a_handler_behind_keeps_to_batch_size() {
    let events = TestStore::new(InMemoryEventStore::new());
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let head = append(events.inner(), "account-mixed", &deposits(0, 30)).await;
    let recorder = Recorder::default();
    let mut registry = Registry::new();
    registry.register("recorder", Subscriber::handler(recorder.clone()).on::<Deposited>().build()).unwrap();
    let read_side = start_with(&events, &documents, registry);
    read_side.wait_for("recorder", head, TIMEOUT).await.unwrap();
    read_side.shutdown().await;
    assert_eq!(recorder.positions().len(), 30, "each event handled once");
    // Ten full reads of 3 (and at least one more that finds nothing): a
    // crash redelivers at most a batch of 3.
    assert!(events.calls(StoreCall::ReadAll) >= 11, "reads: {}", events.calls(StoreCall::ReadAll));
}
