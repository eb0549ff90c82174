//! The read side on the in-memory stores: projections and handlers, a
//! crash mid-batch, the document cache, consistency and replay. Errors and
//! status are in `readside_status.rs`; leases and nodes taking turns in
//! `readside_leases.rs` and `readside_races.rs`.
//!
//! Tests run on tokio's paused clock: time only moves when every task is
//! idle, so backoffs, lease expiry and timeouts cost no real time and no
//! test waits on the wall clock.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::error::ConsistencyError;
use es_core::readside::{
    Backlog, Consistency, ReadSideConfig, Registry, Replay, Subscriber, SubscriptionState,
};
use es_core::store::{EventStore, ProjectionStore};
use es_core::testkit::{StoreCall, TestStore};
use es_core::{GlobalPosition, ReadSide};
use es_memory::InMemoryLeaseStore;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use support::readside::*;

#[tokio::test(start_paused = true)]
async fn a_projection_killed_mid_batch_resumes_and_applies_every_event_once() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let failing = refusing_commit(&documents, 3);
    let deposits: Vec<Deposited> =
        (1..=10).map(|n| deposit(["ada", "bob", "cyd"][n % 3], n as i64)).collect();
    for (i, d) in deposits.iter().enumerate() {
        append(&events, &format!("account-{}", d.account), std::slice::from_ref(d)).await;
        append(&events, "noise", &[Noise { n: i as u64 }]).await;
    }
    let head = events.head_position().await.unwrap();

    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).retry(retry(1))).unwrap();
    let first = start(events.clone(), failing.clone(), registry);
    let error = first.wait_for("balances", head, TIMEOUT).await.unwrap_err();
    let ConsistencyError::Failed { failure, .. } = error else { panic!("expected a failure, got {error:?}") };
    assert!(failure.error.contains("checkpoint of projection `balances` is at"), "{}", failure.error);
    assert_eq!(failure.event_id, None, "a failed commit names no event");
    // Two batches of three events committed before the failing third one.
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(GlobalPosition(6)));
    let partial = stored_balances(&documents).await;
    assert_eq!(partial.values().map(|b| b.events).sum::<u32>(), 3, "only the committed batches are visible");
    first.shutdown().await;

    // A new runner over the same stores resumes from the checkpoint.
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).retry(retry(1))).unwrap();
    let second = start(events.clone(), failing, registry);
    second.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits));
    let status = caught_up(&second, "balances").await;
    assert_eq!(status.position, head);
    assert_eq!((status.behind, status.behind_for), (Backlog::Exactly(0), Duration::ZERO));
    second.shutdown().await;
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
}

/// Runs `balances` over `deposits` with a document cache of `cache`, then
/// rebuilds it; returns the store reads of the first run and of the
/// rebuild, after checking that both end at the fold of the deposits.
async fn document_reads(deposits: &[Deposited], cache: usize) -> (u64, u64) {
    let events = InMemoryEventStore::new();
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let head = append(&events, "account-mixed", deposits).await;
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events)
        .projection_store(documents.clone())
        .registry(registry)
        .config(ReadSideConfig { document_cache_bytes: cache, ..config() })
        .start()
        .unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(documents.inner()).await, expected_balances(deposits), "cache {cache}");
    let first = documents.calls(StoreCall::Get);
    read_side.rebuild("balances").await.unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(
        stored_balances(documents.inner()).await,
        expected_balances(deposits),
        "cache {cache}, rebuilt"
    );
    read_side.shutdown().await;
    (first, documents.calls(StoreCall::Get) - first)
}

#[tokio::test(start_paused = true)]
async fn a_projection_reads_each_document_from_the_store_once_and_a_rebuild_reads_none() {
    // Batches of three: each batch's accounts differ from the batch
    // before it, whose commit is still in flight (and answers for the
    // documents it wrote, cache or not) while the batch is projected.
    let accounts = ["ada", "bob", "cyd", "dee", "eve", "fay"];
    let deposits: Vec<Deposited> = (0..30).map(|n| deposit(accounts[n % 6], n as i64 + 1)).collect();
    // Without a cache every event reads its account's document.
    assert_eq!(document_reads(&deposits, 0).await, (30, 30));
    // With one, each document is read once; a rebuild starts from an empty
    // store and reads nothing.
    assert_eq!(document_reads(&deposits, 1 << 20).await, (6, 0));
    // More documents than the cache holds: it evicts, reads again, and the
    // results are still the fold.
    let many: Vec<Deposited> = (0..40).map(|n| deposit(&format!("acc-{}", n % 10), 1)).collect();
    let (first, rebuild) = document_reads(&many, 600).await;
    assert!(first > 10 && rebuild > 0, "an evicting cache reads again: {first}, {rebuild}");
}

/// A projection that moves between nodes and back sees what the other
/// node wrote meanwhile: no node answers from documents it cached before.
#[tokio::test(start_paused = true)]
async fn a_projection_handed_between_nodes_and_back_equals_the_fold() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let node = |owner: &str| {
        let mut registry = Registry::new();
        registry.register("balances", balances(Balances::default())).unwrap();
        ReadSide::builder()
            .event_store(events.clone())
            .projection_store(documents.clone())
            .lease_store(leases.clone())
            .owner(owner)
            .registry(registry)
            .config(ReadSideConfig { document_cache_bytes: 1 << 20, ..config() })
            .start()
            .unwrap()
    };
    let (a, b) = (node("a"), node("b"));
    let mut deposits = Vec::new();
    let mut head = GlobalPosition::START;
    for round in 0..3 {
        for n in 0..4 {
            let d = deposit(["ada", "bob"][n % 2], round * 10 + n as i64 + 1);
            head = append(&events, "account-mixed", std::slice::from_ref(&d)).await;
            deposits.push(d);
        }
        let (active, standby) =
            if leases.holder("balances").as_deref() == Some("b") { (&b, &a) } else { (&a, &b) };
        active.wait_for("balances", head, TIMEOUT).await.unwrap();
        assert_eq!(stored_balances(&documents).await, expected_balances(&deposits), "round {round}");
        // Hand the projection over: the active node stops, the other takes
        // the lease; then the stopped one starts again as the standby.
        active.stop("balances").await.unwrap();
        standby.wait_for("balances", head, TIMEOUT).await.unwrap();
        active.start().unwrap();
    }
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_projection_after_a_failed_commit_equals_the_fold() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let failing = refusing_commit(&documents, 2);
    let deposits: Vec<Deposited> = (1..=8).map(|n| deposit(["ada", "bob"][n % 2], n as i64)).collect();
    let head = append(&events, "account-mixed", &deposits).await;
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).retry(retry(1))).unwrap();
    let read_side = start(events, failing, registry);
    assert!(matches!(
        read_side.wait_for("balances", head, TIMEOUT).await,
        Err(ConsistencyError::Failed { .. })
    ));
    assert!(matches!(read_side.status("balances").unwrap().state, SubscriptionState::Failed(_)));
    read_side.restart("balances").await.unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits));
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn filtered_events_move_the_checkpoint() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default())).unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);

    // Only filtered events: the checkpoint still reaches the head.
    let noise: Vec<Noise> = (0..7).map(|n| Noise { n }).collect();
    let head = append(&events, "noise", &noise).await;
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert!(stored_balances(&documents).await.is_empty());

    // A consumed event after filtered ones commits them together.
    append(&events, "noise", &noise[..2]).await;
    let consumed = append(&events, "account-ada", &[deposit("ada", 5)]).await;
    let head = append(&events, "noise", &noise[..4]).await;
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&[deposit("ada", 5)]));
    let status = read_side.status("balances").unwrap();
    assert_eq!(status.position, head);
    assert!(status.checkpoint >= Some(consumed));
    read_side.shutdown().await;
    assert_eq!(documents.checkpoint("balances").await.unwrap().map(|c| c.position), Some(head));
    assert_eq!(read_side.status("balances").unwrap().state, SubscriptionState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_stops_at_that_event_and_reports_it() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let recorder =
        Recorder { fail_amount: Some(13), failing: Arc::new(AtomicBool::new(true)), ..Recorder::default() };
    let mut registry = Registry::new();
    registry
        .register("recorder", Subscriber::handler(recorder.clone()).on::<Deposited>().build().retry(retry(3)))
        .unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);
    let before = append(&events, "account-ada", &[deposit("ada", 1), deposit("ada", 2)]).await;
    let failing = append(&events, "account-ada", &[deposit("ada", 13)]).await;
    let head = append(&events, "account-ada", &[deposit("ada", 4)]).await;

    let error = read_side.wait_for("recorder", head, TIMEOUT).await.unwrap_err();
    let ConsistencyError::Failed { name, failure, .. } = error else {
        panic!("expected a failure, got {error:?}")
    };
    assert_eq!(name, "recorder");
    assert_eq!(failure.position, failing);
    assert_eq!(failure.event_type.as_deref(), Some("Deposited"));
    let stored = events.read_all(GlobalPosition(failing.get() - 1), 1).await.unwrap();
    assert_eq!(failure.event_id, Some(stored[0].event_id));
    assert_eq!(failure.attempts, 3);
    assert!(failure.error.contains("cannot handle amount 13"), "{}", failure.error);

    let status = read_side.status("recorder").unwrap();
    assert_eq!(status.state, SubscriptionState::Failed(failure));
    assert_eq!(status.position, before, "stopped right before the failing event");
    assert!(
        matches!(status.behind, Backlog::Exactly(n) | Backlog::AtLeast(n) if n >= 1),
        "the failing event is still to handle: {:?}",
        status.behind
    );
    assert_eq!(documents.checkpoint("recorder").await.unwrap().map(|c| c.position), Some(before));
    assert_eq!(recorder.positions(), [1, 2], "nothing after the failing event ran");
    assert_eq!(recorder.attempts.load(Ordering::SeqCst), 2 + 3);

    // Fixed: a restart retries the failing event and goes on.
    recorder.failing.store(false, Ordering::SeqCst);
    read_side.restart("recorder").await.unwrap();
    read_side.wait_for("recorder", head, TIMEOUT).await.unwrap();
    assert_eq!(recorder.positions(), [1, 2, 3, 4]);
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn strong_consistency_is_visible_right_after_waiting() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let mut registry = Registry::new();
    registry.register("balances", balances(Balances::default()).consistency(Consistency::Strong)).unwrap();
    registry
        .register("recorder", Subscriber::handler(Recorder::default()).on::<Deposited>().build())
        .unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);
    for n in 1..=5 {
        let position = append(&events, "account-ada", &[deposit("ada", n)]).await;
        read_side.wait_for_strong(position, TIMEOUT).await.unwrap();
        let doc: Balance =
            serde_json::from_value(documents.get("balances", "ada").await.unwrap().unwrap()).unwrap();
        assert_eq!(doc.events, n as u32, "the strong projection saw event {n} before the wait returned");
    }

    // A strong subscription that does not run: the wait times out with a
    // typed error that says the events are stored.
    read_side.stop("balances").await.unwrap();
    let position = append(&events, "account-ada", &[deposit("ada", 6)]).await;
    let error = read_side.wait_for_strong(position, Duration::from_secs(2)).await.unwrap_err();
    assert!(
        matches!(&error, ConsistencyError::Timeout { name, position: p, .. } if name == "balances" && *p == position)
    );
    assert!(error.to_string().contains("events are stored up to position"), "{error}");
    assert!(matches!(
        read_side.wait_for("nope", position, TIMEOUT).await,
        Err(ConsistencyError::Unknown { name }) if name == "nope"
    ));
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn rebuild_and_replay_never_run_skip_on_replay_handlers() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let mailer = Mailer::default();
    let audit = Recorder::default();
    let projection = Arc::new(Balances::default());
    let mut registry = Registry::new();
    registry
        .register(
            "welcome-mail",
            Subscriber::handler(mailer.clone()).on::<Opened>().replay(Replay::Skip).build(),
        )
        .unwrap();
    registry
        .register("audit", Subscriber::handler(audit.clone()).on::<Opened>().on::<Deposited>().build())
        .unwrap();
    registry
        .register(
            "balances",
            Subscriber::projection(SharedBalances(Arc::clone(&projection))).on::<Deposited>().build(),
        )
        .unwrap();
    let read_side = start(events.clone(), documents.clone(), registry);
    let mut deposits = Vec::new();
    for account in ["ada", "bob", "cyd"] {
        append(&events, account, &[Opened { account: account.into() }]).await;
        deposits.push(deposit(account, 10));
        append(&events, account, &[deposit(account, 10)]).await;
    }
    let head = events.head_position().await.unwrap();
    for name in ["welcome-mail", "audit", "balances"] {
        read_side.wait_for(name, head, TIMEOUT).await.unwrap();
    }
    assert_eq!(mailer.outbox.load(Ordering::SeqCst), 3);

    read_side.rebuild("welcome-mail").await.unwrap();
    read_side.wait_for("welcome-mail", head, TIMEOUT).await.unwrap();
    assert_eq!(mailer.outbox.load(Ordering::SeqCst), 3, "replay sent no mail again");
    assert_eq!(documents.checkpoint("welcome-mail").await.unwrap().map(|c| c.position), Some(head));
    let stored = documents.checkpoint("welcome-mail").await.unwrap().unwrap();
    assert_eq!(stored.replay_until, None, "the replay is over: its end is cleared with the checkpoint");

    read_side.rebuild("audit").await.unwrap();
    read_side.wait_for("audit", head, TIMEOUT).await.unwrap();
    let seen = audit.seen.lock().unwrap().clone();
    let live: Vec<u64> = seen.iter().filter(|(_, r)| !r).map(|(p, _)| p.get()).collect();
    let replayed: Vec<u64> = seen.iter().filter(|(_, r)| *r).map(|(p, _)| p.get()).collect();
    assert_eq!(live, (1..=head.get()).collect::<Vec<_>>());
    assert_eq!(replayed, live, "a run-on-replay handler sees history again, flagged as replay");

    read_side.rebuild("balances").await.unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    assert_eq!(stored_balances(&documents).await, expected_balances(&deposits), "rebuilt, not doubled");
    assert_eq!(projection.replayed.load(Ordering::SeqCst), 3);

    // New events after the replay are news: the mail goes out.
    let next = append(&events, "dan", &[Opened { account: "dan".into() }]).await;
    read_side.wait_for("welcome-mail", next, TIMEOUT).await.unwrap();
    assert_eq!(mailer.outbox.load(Ordering::SeqCst), 4);
    read_side.shutdown().await;
}
