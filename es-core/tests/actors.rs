//! The actor command path: one actor per aggregate, passivation, the live
//! cap, panics, shutdown. A command's attempts (conflicts, unknown
//! outcomes, new aggregates) are in `actors_attempts.rs`.

// clippy.toml allows unwrap only inside #[test] fns; in this test crate's
// helpers too, a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use es_core::error::BuildError;
use es_core::error::ExecuteError;
use es_core::runtime::{AggregateConfig, CommandPath};
use es_core::store::EventStore;
use es_core::{Es, StreamVersion};
use es_memory::InMemoryEventStore;
use support::{deposit, open, stream, Account, Explode};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoever_sees_an_actor_gone_sees_its_passivation_counted() {
    // Sampled on the real clock while 200 actors passivate at once: a
    // reader that sees the live count drop must see the passivation too
    // (a test that waits for no live actors and then reads the count).
    let store = InMemoryEventStore::new();
    let es = Es::builder()
        .event_store(store.clone())
        .idle_timeout(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    for n in 0..200 {
        es.execute(open(&format!("acct-{n}"))).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = es.stats();
        let gone = 200 - stats.live_actors as u64;
        assert!(
            stats.passivations >= gone,
            "{gone} actors gone, {} passivations counted",
            stats.passivations
        );
        if stats.live_actors == 0 {
            assert_eq!(stats.passivations, 200);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "actors still live after 10 s: {stats:?}");
        tokio::task::yield_now().await;
    }
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
