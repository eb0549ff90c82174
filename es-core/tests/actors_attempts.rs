//! A command's attempts on the actor path: several nodes on one store,
//! refusals, endless conflicts, an append whose outcome is unknown and its
//! exact retry, command ids reused, and new aggregates decided without a
//! read.

// clippy.toml allows unwrap only inside #[test] fns; in this test crate's
// helpers too, a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use es_core::error::{ExecuteError, Unknown};
use es_core::runtime::CommandPath;
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{Es, StreamVersion};
use es_memory::InMemoryEventStore;
use support::{deposit, open, stream, Account, AccountError, Withdraw};

async fn app(store: &InMemoryEventStore) -> Es {
    Es::builder().event_store(store.clone()).build().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_store_both_succeed_without_lost_updates() {
    let store = InMemoryEventStore::new();
    let build = || Es::builder().event_store(store.clone()).max_attempts(1_000).build();
    let (one, two) = (build().await.unwrap(), build().await.unwrap());
    one.execute(open("shared")).await.unwrap();
    // Node two writes behind node one's back: one's next command conflicts,
    // catches up and decides again.
    two.execute(deposit("shared", 5)).await.unwrap();
    let outcome = one.execute(deposit("shared", 7)).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(3)));
    assert_eq!(one.stats().conflicts, 1);

    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let node = if i % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move { node.execute(deposit("shared", i + 1)).await.map(|_| i + 1) }));
    }
    let mut accepted = 5 + 7;
    for task in tasks {
        accepted += task.await.unwrap().unwrap();
    }
    assert_eq!(one.load::<Account>("shared").await.unwrap().balance, accepted);
    assert_eq!(two.load::<Account>("shared").await.unwrap().deposits, 202);
}

#[tokio::test]
async fn a_refused_command_appends_nothing_and_the_actor_goes_on() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    es.execute(open("r")).await.unwrap();
    let error = es.execute(Withdraw { account_id: "r".into(), amount: 1 }).await.unwrap_err();
    assert!(matches!(error, ExecuteError::Rejected(AccountError::Insufficient { balance: 0, wanted: 1 })));
    assert_eq!(store.len(), 1);
    es.execute(deposit("r", 2)).await.unwrap();
    assert_eq!(es.stats().actors_started, 1);
}

#[tokio::test]
async fn a_validation_failure_appends_nothing_and_starts_no_actor() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    let error = es.execute(deposit("v", 0)).await.unwrap_err();
    assert!(matches!(&error, ExecuteError::Validation(v) if v.violations.len() == 1), "{error:?}");
    assert!(store.is_empty());
    assert_eq!(es.stats().actors_started, 0);
}

#[tokio::test]
async fn conflicts_that_never_end_give_up_after_max_attempts() {
    for path in [CommandPath::Actors, CommandPath::Reload] {
        // Every append loses a race that never happened.
        let store = TestStore::new(InMemoryEventStore::new());
        store.inject(StoreCall::Append, Fault::Conflict, ..);
        // Not assuming a new aggregate, so every append counts as an attempt.
        let es = Es::builder()
            .event_store(store.clone())
            .max_attempts(3)
            .command_path(path)
            .assume_new_aggregates(false)
            .build()
            .await
            .unwrap();
        let error = es.execute(open("c")).await.unwrap_err();
        assert!(
            matches!(&error, ExecuteError::Conflict { stream: s, attempts: 3 } if *s == stream("c")),
            "{path:?}: {error:?}"
        );
        assert_eq!(store.calls(StoreCall::Append), 3, "{path:?}");
        assert_eq!(es.stats().conflicts, 3, "{path:?}");
    }
}

#[tokio::test]
async fn an_actor_that_ran_out_of_attempts_catches_up_for_the_next_command() {
    // With one attempt, a conflict is final: the actor must still learn
    // what the other node wrote, or every later command conflicts too.
    let store = InMemoryEventStore::new();
    let build = || Es::builder().event_store(store.clone()).max_attempts(1).build();
    let (one, two) = (build().await.unwrap(), build().await.unwrap());
    one.execute(open("stale")).await.unwrap();
    two.execute(deposit("stale", 5)).await.unwrap();

    let error = one.execute(deposit("stale", 7)).await.unwrap_err();
    assert!(matches!(&error, ExecuteError::Conflict { attempts: 1, .. }), "{error:?}");
    let outcome = one.execute(deposit("stale", 7)).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(3)));
    assert_eq!(one.load::<Account>("stale").await.unwrap().balance, 12);
}

#[tokio::test]
async fn an_actor_that_dies_during_its_append_says_the_outcome_is_unknown_and_a_retry_is_exact() {
    let store = InMemoryEventStore::new();
    app(&store).await.execute(open("a")).await.unwrap();
    // The adapter panics once its events are stored, as a buggy one might after its commit.
    let panicking = TestStore::new(store.clone());
    panicking.inject(StoreCall::Append, Fault::PanicAfter, ..);
    let es = Es::builder().event_store(panicking).build().await.unwrap();
    let error = es.execute(deposit("a", 5)).await.unwrap_err();
    let command_id = match &error {
        ExecuteError::OutcomeUnknown {
            aggregate: "account",
            id,
            command_id,
            cause: Unknown::Interrupted,
        } => {
            assert_eq!(id, "a");
            *command_id
        }
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    };
    assert!(error.to_string().contains("outcome is unknown"), "{error}");
    // Here it was stored, which is why `Panicked { appended: false }` would mislead.
    assert_eq!(app(&store).await.load::<Account>("a").await.unwrap().balance, 5);
    // Executing the same command id again, on another node, is an exact
    // retry: the original outcome, nothing stored twice.
    let next = Es::builder().event_store(store.clone()).build().await.unwrap();
    let retried = next.execute(deposit("a", 5)).id(command_id).await.unwrap();
    assert_eq!(retried.command_id, command_id);
    assert_eq!(retried.version, Some(StreamVersion(2)), "the original outcome");
    assert_eq!(next.load::<Account>("a").await.unwrap().balance, 5, "stored once");
    // And a later command runs as usual.
    assert_eq!(next.execute(deposit("a", 1)).await.unwrap().version, Some(StreamVersion(3)));
}

#[tokio::test]
async fn on_the_reload_path_an_adapter_that_panics_is_answered_not_unwound_through_the_caller() {
    let store = InMemoryEventStore::new();
    app(&store).await.execute(open("r")).await.unwrap();
    let panicking = TestStore::new(store.clone());
    let es =
        Es::builder().event_store(panicking.clone()).command_path(CommandPath::Reload).build().await.unwrap();

    // A panic while loading: nothing was sent, nothing stored.
    panicking.inject(StoreCall::ReadStream, Fault::PanicAfter, 1..=1);
    let error = es.execute(deposit("r", 5)).await.unwrap_err();
    assert!(matches!(error, ExecuteError::Panicked { appended: false, .. }), "{error:?}");
    assert_eq!(app(&store).await.load::<Account>("r").await.unwrap().balance, 0);

    // A panic after the append stored the events: the outcome is unknown,
    // and executing the command id again is exact.
    panicking.inject(StoreCall::Append, Fault::PanicAfter, 1..=1);
    let command_id = match es.execute(deposit("r", 5)).await.unwrap_err() {
        ExecuteError::OutcomeUnknown { command_id, cause: Unknown::Interrupted, .. } => command_id,
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    };
    let retried = es.execute(deposit("r", 5)).id(command_id).await.unwrap();
    assert_eq!(retried.version, Some(StreamVersion(2)), "the original outcome");
    assert_eq!(app(&store).await.load::<Account>("r").await.unwrap().balance, 5, "stored once");
    // The aggregate's turn was given back: the next command runs.
    assert_eq!(es.execute(deposit("r", 1)).await.unwrap().version, Some(StreamVersion(3)));
}

#[tokio::test]
async fn a_command_id_that_ran_on_another_aggregate_is_refused_not_answered_with_its_outcome() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    es.execute(open("a")).await.unwrap();
    es.execute(open("b")).await.unwrap();
    let first = es.execute(deposit("a", 5)).await.unwrap();
    // The same id (an idempotency key reused by a caller) sent to `b`, on
    // both command paths: refused, nothing stored, `a` untouched.
    let reload =
        Es::builder().event_store(store.clone()).command_path(CommandPath::Reload).build().await.unwrap();
    for es in [es.clone(), reload] {
        let error = es.execute(deposit("b", 7)).id(first.command_id).await.unwrap_err();
        match &error {
            ExecuteError::CommandIdReused { command_id, stream, ran_on } => {
                assert_eq!(*command_id, first.command_id);
                assert_eq!((stream.as_str(), ran_on.as_str()), ("account-b", "account-a"));
            }
            other => panic!("expected CommandIdReused, got {other:?}"),
        }
        assert!(error.to_string().contains("nothing was stored"), "{error}");
    }
    let later = app(&store).await;
    assert_eq!(later.load::<Account>("b").await.unwrap().balance, 0);
    assert_eq!(later.load::<Account>("a").await.unwrap().balance, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_aggregate_is_appended_without_reading_its_stream() {
    let store = TestStore::new(InMemoryEventStore::new());
    let es = Es::builder().event_store(store.clone()).build().await.unwrap();
    let outcome = es.execute(open("new")).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(1)));
    assert_eq!(store.calls(StoreCall::ReadStream), 0, "a new aggregate's first command reads nothing");
    let stats = es.stats();
    assert_eq!((stats.conflicts, stats.rehydrations), (0, 0));

    // Turned off, the first command reads the (empty) stream first.
    let store = TestStore::new(InMemoryEventStore::new());
    let es = Es::builder().event_store(store.clone()).assume_new_aggregates(false).build().await.unwrap();
    es.execute(open("new")).await.unwrap();
    assert_eq!(store.calls(StoreCall::ReadStream), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_aggregate_assumed_new_is_loaded_and_decided_again() {
    let store = InMemoryEventStore::new();
    let first = app(&store).await;
    first.execute(open("a")).await.unwrap();
    first.execute(deposit("a", 10)).await.unwrap();

    // A decision with events on the assumed (empty) state: its append is
    // refused, the actor loads the account and decides again.
    let es = app(&store).await;
    let outcome = es.execute(deposit("a", 5)).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(3)));
    let stats = es.stats();
    assert_eq!(
        (stats.conflicts, stats.retries, stats.rehydrations),
        (0, 0, 1),
        "a wrong guess is no conflict"
    );

    // A refusal on the assumed state (nothing to withdraw from) is
    // confirmed against the stream even by a single writer: the account
    // exists and holds 15, so the withdrawal goes through.
    let single = Es::builder().event_store(store.clone()).single_writer().build().await.unwrap();
    let outcome = single.execute(Withdraw { account_id: "a".into(), amount: 12 }).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(4)));
    // And a refusal on the real state is still a refusal.
    let refused = single.execute(Withdraw { account_id: "a".into(), amount: 12 }).await;
    assert!(matches!(refused, Err(ExecuteError::Rejected(AccountError::Insufficient { balance: 3, .. }))));

    // A command refused on the assumed state and on the real one alike.
    let again = app(&store).await;
    assert!(matches!(again.execute(open("a")).await, Err(ExecuteError::Rejected(AccountError::AlreadyOpen))));
    assert_eq!(es.load::<Account>("a").await.unwrap().balance, 3);
}

#[tokio::test]
async fn an_assumed_new_state_that_a_failed_command_never_checked_is_not_kept() {
    let store = InMemoryEventStore::new();
    let other = app(&store).await;
    other.execute(open("x")).await.unwrap();
    other.execute(deposit("x", 5)).await.unwrap();

    // A single-writer node whose first command for `x` decides on the
    // assumed-new default state (a refusal), and whose check of that
    // refusal against the stream's head fails.
    let flaky = TestStore::new(store.clone());
    flaky.inject(StoreCall::StreamVersion, Fault::Backend, 1..=1);
    let es = Es::builder().event_store(flaky.clone()).single_writer().build().await.unwrap();
    let first = es.execute(Withdraw { account_id: "x".into(), amount: 3 }).await.unwrap_err();
    assert!(!matches!(first, ExecuteError::Rejected(_)), "the unchecked refusal is not answered: {first:?}");

    // The next command loads the stream instead of trusting that state.
    let outcome = es.execute(Withdraw { account_id: "x".into(), amount: 3 }).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(3)));
    assert_eq!(es.load::<Account>("x").await.unwrap().balance, 2);
}
