//! A projection's batch commits while the next batch is projected
//! (pipelined commits), and every event still counts exactly once: when the
//! documents the next batch reads are only in the commit in flight (evicted
//! from a small cache), when that commit fails and is made again, and when
//! it cannot be made at all.
//!
//! Tests run on tokio's paused clock: each commit sleeps a little before it
//! reaches the store, so the runner has projected the next batch by then.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, SubscriptionState};
use es_core::store::ProjectionStore;
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{GlobalPosition, ReadSide};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use support::readside::*;

/// Batches of 10 over nine accounts, with a cache of about five documents:
/// the next batch reads documents the cache evicted while their commit was
/// in flight.
fn pipelined() -> ReadSideConfig {
    ReadSideConfig { batch_size: 10, document_cache_bytes: 600, ..config() }
}

const ACCOUNTS: [&str; 9] = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];

/// 200 deposits, the accounts taken in an order that repeats within and
/// across batches.
async fn deposits(events: &InMemoryEventStore) -> (Vec<Deposited>, GlobalPosition) {
    let deposits: Vec<Deposited> =
        (0..200).map(|n| deposit(ACCOUNTS[(n * 7 + n / 3) % ACCOUNTS.len()], n as i64 + 1)).collect();
    let head = append(events, "account-mixed", &deposits).await;
    (deposits, head)
}

/// The projection store, each commit held back a little (it reaches the
/// store only once the runner waits for it), counting the commits that
/// started while the runner read the batch after the next one: proof that
/// the commit of one batch overlapped the projection of the next.
fn slow_commits(
    events: &TestStore<InMemoryEventStore>,
) -> (TestStore<InMemoryProjectionStore>, Arc<AtomicU64>) {
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let overlapped = Arc::new(AtomicU64::new(0));
    let (events, counted) = (events.clone(), Arc::clone(&overlapped));
    documents.before(StoreCall::Commit, move |k| {
        let (events, counted) = (events.clone(), Arc::clone(&counted));
        async move {
            // Read k + 1 ran while batch k was projected (read ahead); read
            // k + 2 starts with the projection of batch k + 1.
            if tokio::time::timeout(Duration::from_millis(50), events.reached(StoreCall::ReadAll, k + 2))
                .await
                .is_ok()
            {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (documents, overlapped)
}

fn run_balances(
    events: &TestStore<InMemoryEventStore>,
    documents: &TestStore<InMemoryProjectionStore>,
) -> ReadSide {
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).retry(retry(3))).unwrap();
    ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .registry(registry)
        .config(pipelined())
        .start()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_batch_commits_while_the_next_is_projected_and_counts_once() {
    let events = TestStore::new(InMemoryEventStore::new());
    let (deposits, head) = deposits(events.inner()).await;
    let (documents, overlapped) = slow_commits(&events);
    let read_side = run_balances(&events, &documents);
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(
        stored_balances(documents.inner()).await,
        expected_balances(&deposits),
        "a position waited for is one whose commit went through"
    );
    read_side.shutdown().await;
    assert_eq!(documents.calls(StoreCall::Commit), 20, "one commit per batch of 10");
    assert_eq!(
        overlapped.load(Ordering::SeqCst),
        20,
        "every commit was still going when the batch after it was being projected"
    );
}

#[tokio::test(start_paused = true)]
async fn a_commit_that_fails_in_flight_is_made_again_from_what_it_staged() {
    let events = TestStore::new(InMemoryEventStore::new());
    let (deposits, head) = deposits(events.inner()).await;
    let (documents, _) = slow_commits(&events);
    // Lost connections (never reaching the store), a refusal counted by the
    // retry policy, and an adapter that panics after its commit went
    // through: each while the next batch is already projected on top.
    documents.inject(StoreCall::Commit, Fault::Backend, 3..=4);
    documents.inject(StoreCall::Commit, Fault::Conflict, 9..=9);
    documents.inject(StoreCall::Commit, Fault::PanicAfter, 14..=14);
    let read_side = run_balances(&events, &documents);
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    let status = read_side.status("balances").unwrap();
    read_side.shutdown().await;

    assert!(!matches!(status.state, SubscriptionState::Failed(_)), "{:?}", status.state);
    assert_eq!(
        stored_balances(documents.inner()).await,
        expected_balances(&deposits),
        "each event applied once"
    );
    assert_eq!(documents.inner().checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
}

#[tokio::test(start_paused = true)]
async fn a_commit_that_cannot_be_made_takes_the_batch_projected_on_it_along() {
    let events = TestStore::new(InMemoryEventStore::new());
    let (deposits, head) = deposits(events.inner()).await;
    let (documents, _) = slow_commits(&events);
    // Commit 5 (batch 5) and its two retries are refused: the subscription
    // fails there, with batch 6 already projected on top of batch 5.
    documents.inject(StoreCall::Commit, Fault::Conflict, 5..=7);
    let read_side = run_balances(&events, &documents);
    let mut failed = None;
    for _ in 0..600 {
        if let SubscriptionState::Failed(failure) = read_side.status("balances").unwrap().state {
            failed = Some(failure);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failure = failed.unwrap_or_else(|| {
        panic!(
            "the subscription fails at the commit it cannot make: {:?} commits {}",
            read_side.status("balances"),
            documents.calls(StoreCall::Commit)
        )
    });
    read_side.shutdown().await;

    let checkpoint = documents.inner().checkpoint("balances").await.unwrap().map(|c| c.position);
    let after_four = GlobalPosition(40);
    assert_eq!(checkpoint, Some(after_four), "batches 1 to 4 stored, nothing after: {failure:?}");
    assert_eq!(
        stored_balances(documents.inner()).await,
        expected_balances(&deposits[..40]),
        "the documents are those of the checkpoint"
    );

    // A new run takes it from there, each event once.
    documents.heal();
    let read_side = run_balances(&events, &documents);
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    read_side.shutdown().await;
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(&deposits));
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_the_failed_commit_waits_to_be_made_again_stores_nothing_past_it() {
    let events = TestStore::new(InMemoryEventStore::new());
    let (deposits, head) = deposits(events.inner()).await;
    let (documents, _) = slow_commits(&events);
    // Commit 5 (batch 5) meets a lost connection; the runner waits 10 s
    // before it tries again, batch 6 projected and held.
    documents.inject(StoreCall::Commit, Fault::Backend, 5..=5);
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .registry(registry)
        .config(ReadSideConfig {
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_secs(10)),
            ..pipelined()
        })
        .start()
        .unwrap();
    documents.reached(StoreCall::Commit, 5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Stopped while it waits: stopping stores the position reached only if
    // everything up to it is stored.
    read_side.stop("balances").await.unwrap();
    assert_eq!(documents.calls(StoreCall::Commit), 5, "stopped before the next try");
    let checkpoint = documents.inner().checkpoint("balances").await.unwrap().map(|c| c.position);
    assert_eq!(
        checkpoint,
        Some(GlobalPosition(40)),
        "batch 5 never went through, so nothing after 40 is stored"
    );
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(&deposits[..40]));

    read_side.start().unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    read_side.shutdown().await;
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(&deposits));
}
