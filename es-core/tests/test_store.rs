//! `TestStore`'s injected faults do what their docs say, on the in-memory
//! stores.
//!
//! Runs on tokio's paused clock: sleeps and timeouts cost no real time.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::error::{AppendError, ProjectionError};
use es_core::store::{
    Checkpoint, EventStore, ExpectedVersion, LeaseStore, NewEvent, ProjectionStore, UnitOfWork,
};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_memory::{InMemoryEventStore, InMemoryLeaseStore, InMemoryProjectionStore};
use serde_json::json;
use tokio::time::{timeout, Instant};

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

async fn append(store: &impl EventStore, n: u64) -> Result<(), AppendError> {
    store.append(&StreamId::new("s"), ExpectedVersion::Any, vec![event(n)]).await.map(|_| ())
}

fn checkpoint_at(position: u64) -> UnitOfWork {
    UnitOfWork { checkpoint: Some(Checkpoint::at(GlobalPosition(position))), ..UnitOfWork::new() }
}

#[tokio::test(start_paused = true)]
async fn injected_faults_meet_only_the_numbered_calls() {
    let store = TestStore::new(InMemoryEventStore::new());
    store.inject(StoreCall::Append, Fault::Backend, 2..=3);
    let outcomes: Vec<bool> = [
        append(&store, 1).await.is_ok(),
        append(&store, 2).await.is_ok(),
        append(&store, 3).await.is_ok(),
        append(&store, 4).await.is_ok(),
    ]
    .into();
    assert_eq!(outcomes, [true, false, false, true]);
    assert_eq!(store.calls(StoreCall::Append), 4);
    assert_eq!(store.inner().stream_version(&StreamId::new("s")).await.unwrap(), Some(StreamVersion(2)));
}

#[tokio::test(start_paused = true)]
async fn a_conflict_is_the_port_s_refusal_not_a_backend_failure() {
    let events = TestStore::new(InMemoryEventStore::new());
    append(&events, 1).await.unwrap();
    events.inject(StoreCall::Append, Fault::Conflict, ..);
    match append(&events, 2).await {
        Err(AppendError::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, Some(StreamVersion(1))),
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }

    let documents = TestStore::new(InMemoryProjectionStore::new());
    documents.commit("p", checkpoint_at(3)).await.unwrap();
    documents.inject(StoreCall::Commit, Fault::Conflict, 2..=2);
    match documents.commit("p", checkpoint_at(5)).await {
        Err(ProjectionError::CheckpointMoved { expected, actual: None, .. }) => {
            assert_eq!(expected, Some(GlobalPosition(3)));
        }
        other => panic!("expected CheckpointMoved, got {other:?}"),
    }
    assert_eq!(documents.checkpoint("p").await.unwrap().map(|c| c.position), Some(GlobalPosition(3)));

    let leases = TestStore::new(InMemoryLeaseStore::new());
    let ttl = Duration::from_secs(10);
    let lease = leases.try_acquire("l", "me", ttl).await.unwrap().expect("a free lease");
    leases.inject(StoreCall::Acquire, Fault::Conflict, ..);
    leases.inject(StoreCall::Renew, Fault::Conflict, ..);
    assert_eq!(leases.try_acquire("m", "me", ttl).await.unwrap(), None);
    assert!(!leases.renew(&lease, ttl).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn panic_after_stores_first() {
    let inner = InMemoryEventStore::new();
    let store = TestStore::new(inner.clone());
    store.inject(StoreCall::Append, Fault::PanicAfter, 1..=1);
    let panicked = tokio::spawn(async move { append(&store, 1).await }).await.unwrap_err();
    assert!(panicked.is_panic());
    assert_eq!(inner.stream_version(&StreamId::new("s")).await.unwrap(), Some(StreamVersion(1)));
}

#[tokio::test(start_paused = true)]
async fn a_hung_call_never_answers_and_a_slow_reply_answers_late() {
    let documents = TestStore::new(InMemoryProjectionStore::new());
    documents.inject(StoreCall::Checkpoint, Fault::Hang, 1..=1);
    let hour = Duration::from_secs(3600);
    assert!(timeout(hour, documents.checkpoint("p")).await.is_err(), "a hung call answered");
    assert!(timeout(hour, documents.checkpoint("p")).await.is_ok(), "only the first call hangs");

    let leases = TestStore::new(InMemoryLeaseStore::new());
    leases.inject(StoreCall::Acquire, Fault::SlowReply(Duration::from_secs(9)), ..);
    let asked = Instant::now();
    let lease = leases.try_acquire("l", "me", Duration::from_secs(10)).await.unwrap();
    assert!(lease.is_some());
    assert_eq!(asked.elapsed(), Duration::from_secs(9));
    assert_eq!(leases.inner().holder("l").as_deref(), Some("me"), "granted before the reply");
}

#[tokio::test(start_paused = true)]
async fn a_failed_wait_for_events_sleeps_its_whole_max_wait() {
    let store = TestStore::new(InMemoryEventStore::new());
    let max_wait = Duration::from_secs(30);
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            store.wait_for_events(GlobalPosition::START, max_wait).await;
            started.elapsed()
        })
    };
    tokio::task::yield_now().await;
    append(&store, 1).await.unwrap();
    assert!(waiter.await.unwrap() < max_wait, "a healthy store wakes its waiter");

    store.fail_next(StoreCall::WaitForEvents, 1);
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            store.wait_for_events(GlobalPosition(1), max_wait).await;
            started.elapsed()
        })
    };
    tokio::task::yield_now().await;
    append(&store, 2).await.unwrap();
    assert_eq!(waiter.await.unwrap(), max_wait, "a failed wait hears nothing");
    assert_eq!(store.calls(StoreCall::WaitForEvents), 2);
}

#[tokio::test(start_paused = true)]
async fn heal_drops_injected_faults() {
    let store = TestStore::new(InMemoryEventStore::new());
    store.inject(StoreCall::Append, Fault::Backend, ..);
    assert!(append(&store, 1).await.is_err());
    store.heal();
    assert!(append(&store, 2).await.is_ok());
}

#[tokio::test]
async fn a_held_guard_lives_as_long_as_the_last_clone() {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let store = TestStore::new(InMemoryEventStore::new()).holding(SetOnDrop(Arc::clone(&dropped)));
    let clone = store.clone();
    drop(store);
    assert!(!dropped.load(Ordering::SeqCst));
    append(&clone, 1).await.unwrap();
    drop(clone);
    assert!(dropped.load(Ordering::SeqCst), "the guard went with the last clone");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_write_says_done_and_changes_nothing() {
    let documents = TestStore::new(InMemoryProjectionStore::new());
    documents.inject(StoreCall::Commit, Fault::Dropped, 1..=1);
    documents.inject(StoreCall::Put, Fault::Dropped, ..);
    documents.inject(StoreCall::Get, Fault::Dropped, 1..=1);
    documents.commit("p", checkpoint_at(3)).await.unwrap();
    assert_eq!(documents.inner().checkpoint("p").await.unwrap(), None, "the commit was dropped");
    documents.put("p", "a", json!(1)).await.unwrap();
    assert!(documents.get("p", "a").await.is_err(), "a read has no 'done' to answer: a backend error");
    assert_eq!(documents.get("p", "a").await.unwrap(), None, "the put was dropped");

    let leases = TestStore::new(InMemoryLeaseStore::new());
    let lease = leases.try_acquire("l", "me", Duration::from_secs(10)).await.unwrap().expect("a free lease");
    leases.inject(StoreCall::Renew, Fault::Dropped, ..);
    tokio::time::advance(Duration::from_secs(8)).await;
    assert!(leases.renew(&lease, Duration::from_secs(10)).await.unwrap(), "the renew says yes");
    tokio::time::advance(Duration::from_secs(3)).await;
    let taken = leases.inner().try_acquire("l", "other", Duration::from_secs(10)).await.unwrap();
    assert!(taken.is_some(), "the lease ran out at 10 s: the renew did not extend it");
}

#[tokio::test(start_paused = true)]
async fn a_hook_runs_as_each_call_starts_and_holds_it_until_it_returns() {
    let store = TestStore::new(InMemoryEventStore::new());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (gate, seen, inner) = (Arc::clone(&gate), Arc::clone(&seen), store.inner().clone());
        store.before(StoreCall::Append, move |n| {
            let (gate, seen, inner) = (Arc::clone(&gate), Arc::clone(&seen), inner.clone());
            async move {
                let stored = inner.stream_version(&StreamId::new("s")).await.unwrap();
                seen.lock().unwrap().push((n, stored));
                if n == 2 {
                    gate.acquire().await.unwrap().forget();
                }
            }
        });
    }
    append(&store, 1).await.unwrap();
    let second = tokio::spawn({
        let store = store.clone();
        async move { append(&store, 2).await }
    });
    store.reached(StoreCall::Append, 2).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!second.is_finished(), "the hook holds the second append");
    assert_eq!(store.inner().stream_version(&StreamId::new("s")).await.unwrap(), Some(StreamVersion(1)));
    gate.add_permits(1);
    second.await.unwrap().unwrap();
    append(&store, 3).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [(1, None), (2, Some(StreamVersion(1))), (3, Some(StreamVersion(2)))],
        "each hook ran before its call reached the store, with the call's number"
    );
}

#[tokio::test(start_paused = true)]
async fn reached_waits_for_calls_made_on_any_clone() {
    let store = TestStore::new(InMemoryEventStore::new());
    store.reached(StoreCall::HeadPosition, 0).await;
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.reached(StoreCall::HeadPosition, 2).await }
    });
    let clone = store.clone();
    clone.head_position().await.unwrap();
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "one call of two");
    clone.head_position().await.unwrap();
    timeout(Duration::from_secs(1), waiting).await.expect("woken by the second call").unwrap();
}
