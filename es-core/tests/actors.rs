//! The actor command path: one actor per aggregate, passivation, the live
//! cap, panics, several nodes, shutdown.

// clippy.toml allows unwrap only inside #[test] fns; in this test crate's
// helpers too, a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use es_core::error::BuildError;
use es_core::error::{ExecuteError, Unknown};
use es_core::runtime::{AggregateConfig, CommandPath};
use es_core::store::EventStore;
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{Es, StreamVersion};
use es_memory::InMemoryEventStore;
use support::{deposit, open, stream, Account, AccountError, Explode, Withdraw};

async fn app(store: &InMemoryEventStore) -> Es {
    Es::builder().event_store(store.clone()).build().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_a_cold_aggregate_starts_one_actor_that_rehydrates_once() {
    let store = InMemoryEventStore::new();
    app(&store).await.execute(open("a")).await.unwrap();
    let es = app(&store).await;

    let tasks: Vec<_> = (1..=200u64)
        .map(|amount| {
            let es = es.clone();
            tokio::spawn(async move { es.execute(deposit("a", amount)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let stats = es.stats();
    assert_eq!(stats.actors_started, 1);
    assert_eq!(stats.rehydrations, 1);
    assert_eq!(stats.conflicts, 0);
    assert_eq!(stats.live_actors, 1);
    let loaded = es.load_versioned::<Account>("a", None).await.unwrap();
    assert_eq!(loaded.state.balance, (1..=200).sum::<u64>());
    assert_eq!(loaded.version, Some(StreamVersion(201)));
}

#[tokio::test(start_paused = true)]
async fn an_idle_actor_passivates_and_the_next_command_rehydrates_its_state() {
    let store = InMemoryEventStore::new();
    let es =
        Es::builder().event_store(store.clone()).idle_timeout(Duration::from_secs(60)).build().await.unwrap();
    es.execute(open("a")).await.unwrap();
    es.execute(deposit("a", 10)).await.unwrap();
    assert_eq!(es.live_actors(), 1);

    // Half the timeout: still live, and a command restarts the idle clock.
    tokio::time::sleep(Duration::from_secs(30)).await;
    es.execute(deposit("a", 5)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(es.live_actors(), 1);
    assert_eq!(es.stats().passivations, 0);

    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(es.live_actors(), 0);
    assert_eq!(es.stats().passivations, 1);

    let outcome = es.execute(deposit("a", 1)).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(4)));
    let stats = es.stats();
    // The first actor assumed a new account and read nothing; the second
    // found it was not new and loaded it.
    assert_eq!((stats.rehydrations, stats.actors_started, stats.live_actors), (1, 2, 1));
    assert_eq!(es.load::<Account>("a").await.unwrap().balance, 16);
}

#[tokio::test]
async fn the_live_actor_cap_holds_after_every_command() {
    let store = InMemoryEventStore::new();
    let es = Es::builder().event_store(store.clone()).max_live_actors(100).build().await.unwrap();
    for round in 0..2u64 {
        for n in 0..1_000 {
            let id = format!("acct-{n}");
            if round == 0 {
                es.execute(open(&id)).await.unwrap();
                assert!(es.live_actors() <= 100, "{} live actors", es.live_actors());
            }
            es.execute(deposit(&id, n + 1)).await.unwrap();
            assert!(es.live_actors() <= 100, "{} live actors", es.live_actors());
        }
    }
    let stats = es.stats();
    assert_eq!(stats.live_actors, 100);
    assert_eq!(stats.actors_started, 2_000);
    assert_eq!(stats.evictions, 1_900);
    assert_eq!(stats.conflicts, 0);
    for n in [0u64, 1, 499, 999] {
        assert_eq!(es.load::<Account>(&format!("acct-{n}")).await.unwrap().balance, 2 * (n + 1));
    }
}

#[tokio::test]
async fn the_least_recently_used_actor_is_the_one_evicted() {
    let store = InMemoryEventStore::new();
    let es = Es::builder().event_store(store.clone()).max_live_actors(2).build().await.unwrap();
    es.execute(open("a")).await.unwrap();
    es.execute(open("b")).await.unwrap();
    es.execute(deposit("a", 1)).await.unwrap(); // b is now the least recently used
    es.execute(open("c")).await.unwrap();
    assert_eq!((es.stats().evictions, es.stats().actors_started), (1, 3));

    es.execute(deposit("a", 1)).await.unwrap(); // still live: no new actor
    assert_eq!(es.stats().actors_started, 3);
    es.execute(deposit("b", 1)).await.unwrap(); // evicted: starts again, evicting c
    assert_eq!((es.stats().evictions, es.stats().actors_started, es.live_actors()), (2, 4, 2));
    es.execute(deposit("a", 1)).await.unwrap();
    assert_eq!(es.stats().actors_started, 4);
    assert_eq!(es.load::<Account>("a").await.unwrap().balance, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_and_passivation_racing_with_commands_lose_nothing() {
    let store = InMemoryEventStore::new();
    // A tiny cap and idle time, so actors stop all the time while commands
    // are routed to them.
    let es = Es::builder()
        .event_store(store.clone())
        .max_live_actors(2)
        .idle_timeout(Duration::from_millis(1))
        .mailbox_capacity(4)
        .build()
        .await
        .unwrap();
    for n in 0..5 {
        es.execute(open(&format!("r-{n}"))).await.unwrap();
    }
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let es = es.clone();
            tokio::spawn(async move {
                for i in 0..150u64 {
                    let id = format!("r-{}", (task + i) % 5);
                    es.execute(deposit(&id, 1)).await.unwrap();
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    for n in 0..5 {
        total += es.load::<Account>(&format!("r-{n}")).await.unwrap().balance;
    }
    assert_eq!(total, 8 * 150);
    // At most one actor per aggregate works at a time: a successor waits
    // for its predecessor to exit, so one node never conflicts with itself.
    assert_eq!(es.stats().conflicts, 0);
    assert!(es.live_actors() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_only_its_command_and_its_aggregate_recovers() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    for id in ["p", "q"] {
        es.execute(open(id)).await.unwrap();
        es.execute(deposit(id, 10)).await.unwrap();
    }
    let started = es.stats().actors_started;

    let error = es.execute(Explode { account_id: "p".into(), in_apply: false }).await.unwrap_err();
    assert!(
        matches!(&error, ExecuteError::Panicked { aggregate: "account", id, appended: false } if id == "p"),
        "{error:?}"
    );
    assert_eq!(store.stream_version(&stream("p")).await.unwrap(), Some(StreamVersion(2)));
    assert_eq!(es.stats().panics, 1);

    // The other aggregate's actor was not touched.
    es.execute(deposit("q", 1)).await.unwrap();
    assert_eq!(es.stats().actors_started, started);

    // The panicked aggregate starts a fresh actor from the store.
    let outcome = es.execute(deposit("p", 5)).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(3)));
    assert_eq!(es.stats().actors_started, started + 1);
    assert_eq!(es.load::<Account>("p").await.unwrap().balance, 15);
    assert_eq!(es.load::<Account>("q").await.unwrap().balance, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_behind_a_panic_are_rerouted_not_failed() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    es.execute(open("x")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..60u64 {
        let es = es.clone();
        tasks.push(tokio::spawn(async move {
            if i % 20 == 10 {
                es.execute(Explode { account_id: "x".into(), in_apply: false }).await.map(|_| 0)
            } else {
                es.execute(deposit("x", 1)).await.map(|_| 1)
            }
        }));
    }
    let (mut deposited, mut panicked) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(n) => deposited += n,
            Err(ExecuteError::Panicked { appended: false, .. }) => panicked += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((deposited, panicked), (57, 3));
    assert_eq!(es.load::<Account>("x").await.unwrap().balance, 57);
}

#[tokio::test]
async fn a_panic_in_apply_after_the_append_reports_the_events_as_appended() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    es.execute(open("boom")).await.unwrap();
    support::ARMED.store(true, Ordering::SeqCst);
    let error = es.execute(Explode { account_id: "boom".into(), in_apply: true }).await.unwrap_err();
    assert!(matches!(error, ExecuteError::Panicked { appended: true, .. }), "{error:?}");
    assert_eq!(store.stream_version(&stream("boom")).await.unwrap(), Some(StreamVersion(2)));
    // The next command rehydrates from the store, Exploded included.
    let outcome = es.execute(deposit("boom", 3)).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(3)));
    // The first actor assumed a new account and read nothing.
    assert_eq!(es.stats().rehydrations, 1);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_accepted_commands_then_refuses_new_ones() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    es.execute(open("s")).await.unwrap();
    let tasks: Vec<_> = (1..=100u64)
        .map(|amount| {
            let es = es.clone();
            tokio::spawn(async move { es.execute(deposit("s", amount)).await.map(|_| amount) })
        })
        .collect();
    tokio::task::yield_now().await;
    es.shutdown().await;
    assert_eq!(es.live_actors(), 0);

    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(amount) => accepted += amount,
            Err(ExecuteError::Shutdown) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(es.load::<Account>("s").await.unwrap().balance, accepted);
    assert!(matches!(es.execute(deposit("s", 1)).await, Err(ExecuteError::Shutdown)));
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_actors() {
    let es = Es::builder().event_store(InMemoryEventStore::new()).build().await.unwrap();
    for n in 0..10 {
        es.execute(open(&format!("d-{n}"))).await.unwrap();
    }
    let store = Arc::downgrade(es.event_store());
    assert!(store.strong_count() > 2, "the actors hold the store");
    drop(es);
    // Each actor sees its mailbox close, exits and drops its store handle.
    for _ in 0..1_000 {
        if store.strong_count() == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(store.strong_count(), 0, "an actor outlived the last handle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_path_gives_the_same_results_and_starts_no_actors() {
    let store = InMemoryEventStore::new();
    let es =
        Es::builder().event_store(store.clone()).command_path(CommandPath::Reload).build().await.unwrap();
    es.execute(open("l")).await.unwrap();
    let tasks: Vec<_> = (1..=20u64)
        .map(|amount| {
            let es = es.clone();
            tokio::spawn(async move { es.execute(deposit("l", amount)).await })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(ExecuteError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let state = es.load::<Account>("l").await.unwrap();
    assert_eq!(state.deposits, succeeded);
    assert_eq!(es.stats().actors_started, 0);
    assert_eq!(es.live_actors(), 0);
    assert!(es.stats().rehydrations >= 21);
    es.shutdown().await;
    assert!(matches!(es.execute(deposit("l", 1)).await, Err(ExecuteError::Shutdown)));
}

#[tokio::test]
async fn zero_settings_are_refused_at_build_time() {
    let store = InMemoryEventStore::new();
    let built = Es::builder().event_store(store.clone()).max_live_actors(0).build().await;
    assert!(matches!(built, Err(BuildError::ZeroLiveActors)));
    let built = Es::builder().event_store(store.clone()).mailbox_capacity(0).build().await;
    assert!(matches!(built, Err(BuildError::ZeroMailbox)));
    let built = Es::builder()
        .event_store(store.clone())
        .aggregate::<Account>(AggregateConfig { snapshot_every: Some(0) })
        .build()
        .await;
    assert!(matches!(built, Err(BuildError::ZeroSnapshotInterval { aggregate: "account" })));
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
