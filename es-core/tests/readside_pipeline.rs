//! Pipelined projection: a catch-up projects a full batch while the batch
//! before commits, reading that batch's documents before the store (they
//! are not there yet), and still commits in order, each event once.
//!
//! Tests run on tokio's paused clock: a bounded wait that nothing can end
//! returns at once (time moves when every task is idle), so "did this
//! happen while that commit was held" is answered without real waiting.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::error::ConsistencyError;
use es_core::readside::{ReadSideConfig, Registry, Subscriber};
use es_core::store::{EventStore, ProjectionStore};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{GlobalPosition, HandlerError, Project, ProjectionTx, ReadSide, Recorded};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use support::readside::*;

/// `Balances`, counting the events it has projected.
#[derive(Clone, Default)]
struct Counted {
    balances: Arc<Balances>,
    seen: Arc<AtomicUsize>,
}

impl Project<Deposited> for Counted {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.balances.change(&e.account, e.amount, tx).await?;
        self.seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Twelve deposits over three accounts, one event each: four batches of
/// three, each touching every account.
async fn deposits(events: &InMemoryEventStore) -> (Vec<Deposited>, GlobalPosition) {
    let deposits: Vec<Deposited> =
        (1..=12).map(|n| deposit(["ada", "bob", "cyd"][n % 3], n as i64)).collect();
    for d in &deposits {
        append(events, &format!("account-{}", d.account), std::slice::from_ref(d)).await;
    }
    (deposits, events.head_position().await.unwrap())
}

fn read_side(
    events: InMemoryEventStore,
    documents: impl ProjectionStore,
    projection: Subscriber,
) -> ReadSide {
    let mut registry = Registry::new();
    registry.register("balances", projection).unwrap();
    ReadSide::builder()
        .event_store(events)
        .projection_store(documents)
        .registry(registry)
        // No document cache: what the next batch reads of the one still
        // committing can only come from that batch's own changes.
        .config(ReadSideConfig { document_cache_bytes: 0, ..config() })
        .start()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_next_batch_is_projected_while_the_one_before_commits_and_reads_its_documents() {
    let events = InMemoryEventStore::new();
    let (deposits, head) = deposits(&events).await;
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let projection = Counted::default();
    // The first commit (the first batch) waits until the second batch has
    // been projected, for at most a second of the paused clock.
    let overlapped = Arc::new(AtomicBool::new(false));
    documents.before(StoreCall::Commit, {
        let (seen, overlapped) = (Arc::clone(&projection.seen), Arc::clone(&overlapped));
        move |n| {
            let (seen, overlapped) = (Arc::clone(&seen), Arc::clone(&overlapped));
            async move {
                if n != 1 {
                    return;
                }
                let second_batch = async {
                    while seen.load(Ordering::SeqCst) < 6 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                };
                let done = tokio::time::timeout(Duration::from_secs(1), second_batch).await.is_ok();
                overlapped.store(done, Ordering::SeqCst);
            }
        }
    });
    let subscriber = Subscriber::projection(projection.clone()).on::<Deposited>().build();
    let read_side = read_side(events, documents.clone(), subscriber);
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert!(overlapped.load(Ordering::SeqCst), "the second batch was projected while the first committed");
    // Read from the first batch's changes while they committed: the fold.
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(&deposits));
    assert_eq!(projection.seen.load(Ordering::SeqCst), 12, "every event once");
    assert_eq!(documents.inner().checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pipelined_commit_that_fails_is_committed_again_before_the_next_batch() {
    let events = InMemoryEventStore::new();
    let (deposits, head) = deposits(&events).await;
    let documents = TestStore::new(InMemoryProjectionStore::new());
    // The second commit is the first one made while a batch is projected.
    documents.inject(StoreCall::Commit, Fault::Backend, 2..=2);
    let projection = Counted::default();
    let subscriber = Subscriber::projection(projection.clone()).on::<Deposited>().build();
    let read_side = read_side(events, documents.clone(), subscriber);
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(&deposits));
    assert_eq!(projection.seen.load(Ordering::SeqCst), 12, "no event projected twice");
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pipelined_commit_refused_for_good_stops_with_nothing_after_it_stored() {
    let events = InMemoryEventStore::new();
    let (deposits, head) = deposits(&events).await;
    let documents = TestStore::new(InMemoryProjectionStore::new());
    documents.inject(StoreCall::Commit, Fault::Conflict, 2..);
    let projection = Counted::default();
    let subscriber = Subscriber::projection(projection).on::<Deposited>().build().retry(retry(2));
    let read_side = read_side(events.clone(), documents.clone(), subscriber);
    let error = read_side.wait_for("balances", head, TIMEOUT).await.unwrap_err();
    assert!(matches!(error, ConsistencyError::Failed { .. }), "{error:?}");
    // The first pipelined attempt counted as the first of the two.
    assert_eq!(documents.calls(StoreCall::Commit), 3);
    // Only the first batch landed: its checkpoint, its documents.
    let first_batch = events.read_all(GlobalPosition::START, 3).await.unwrap();
    let end = first_batch.last().unwrap().global_position;
    assert_eq!(documents.inner().checkpoint("balances").await.unwrap().map(|c| c.position), Some(end));
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(&deposits[..3]));
    read_side.shutdown().await;
}
