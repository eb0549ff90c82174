//! Snapshots: taken every N events, used by rehydration and time travel,
//! ignored when their schema version differs or their state is corrupt.

// clippy.toml allows unwrap only inside #[test] fns; in this test crate's
// helpers too, a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use es_core::runtime::{AggregateConfig, CommandPath};
use es_core::store::{Snapshot, SnapshotStore, Timestamp};
use es_core::testkit::TestStore;
use es_core::{Es, StreamVersion};
use es_memory::InMemoryEventStore;
use serde_json::json;
use support::{deposit, open, stream, Account};

/// `account-a` with an open event and `deposits` deposits of 1..=deposits.
async fn history(store: &InMemoryEventStore, deposits: u64) {
    let es = Es::builder().event_store(store.clone()).build().await.unwrap();
    es.execute(open("a")).await.unwrap();
    for amount in 1..=deposits {
        es.execute(deposit("a", amount)).await.unwrap();
    }
    es.shutdown().await;
}

fn every(n: u64) -> AggregateConfig {
    AggregateConfig { snapshot_every: Some(n) }
}

#[tokio::test]
async fn snapshots_are_taken_every_n_events_and_rehydration_starts_from_the_newest() {
    for path in [CommandPath::Actors, CommandPath::Reload] {
        let store = InMemoryEventStore::new();
        let es = Es::builder()
            .event_store(store.clone())
            .snapshot_store(store.clone())
            .aggregate::<Account>(every(10))
            .command_path(path)
            .build()
            .await
            .unwrap();
        es.execute(open("a")).await.unwrap();
        for amount in 1..=25 {
            es.execute(deposit("a", amount)).await.unwrap();
        }
        // Shutdown waits for the actors, and so for their snapshot saves;
        // the reload path saves in a spawned task, awaited by yielding here.
        es.shutdown().await;
        for _ in 0..100 {
            if es.stats().snapshots_saved == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(es.stats().snapshots_saved, 2, "{path:?}");
        let snapshot = store.load_snapshot(&stream("a")).await.unwrap().unwrap();
        assert_eq!(snapshot.stream_version, StreamVersion(20), "{path:?}");
        assert_eq!(snapshot.schema_version, 1);

        // A fresh node reads the snapshot and only the 6 events after it.
        let counting = TestStore::new(store.clone());
        let node = Es::builder()
            .event_store(counting.clone())
            .snapshot_store(counting.clone())
            .aggregate::<Account>(every(10))
            .command_path(path)
            .build()
            .await
            .unwrap();
        let outcome = node.execute(deposit("a", 100)).await.unwrap();
        assert_eq!(outcome.version, Some(StreamVersion(27)), "{path:?}");
        assert_eq!(counting.events_read(), 6, "{path:?}");
        let state = node.load::<Account>("a").await.unwrap();
        assert_eq!(state.balance, (1..=25).sum::<u64>() + 100, "{path:?}");
    }
}

#[tokio::test]
async fn load_at_ignores_snapshots_newer_than_the_requested_version() {
    let store = InMemoryEventStore::new();
    history(&store, 29).await;
    let with = Es::builder().event_store(store.clone()).snapshot_store(store.clone()).build().await.unwrap();
    let without = Es::builder().event_store(store.clone()).build().await.unwrap();
    // A snapshot at version 20 (balance after deposits 1..=19).
    let at_20 = without.load_at::<Account>("a", StreamVersion(20)).await.unwrap();
    assert_eq!(at_20.balance, (1..=19).sum::<u64>());
    store
        .save_snapshot(Snapshot {
            stream_id: stream("a"),
            aggregate_type: "account".into(),
            stream_version: StreamVersion(20),
            schema_version: 1,
            state: serde_json::to_value(&at_20).unwrap(),
            taken_at: Timestamp::now(),
        })
        .await
        .unwrap();

    for version in [1, 5, 19, 20, 21, 30, 99] {
        let expected = without.load_at::<Account>("a", StreamVersion(version)).await.unwrap();
        let actual = with.load_at::<Account>("a", StreamVersion(version)).await.unwrap();
        assert_eq!(actual, expected, "load_at({version})");
    }
    let loaded = with.load_versioned::<Account>("a", Some(StreamVersion(25))).await.unwrap();
    assert_eq!(loaded.version, Some(StreamVersion(25)));
    assert_eq!(loaded.state.balance, (1..=24).sum::<u64>());
}

async fn replays_fully_despite(snapshot_version: u32, state: serde_json::Value) {
    let store = InMemoryEventStore::new();
    history(&store, 9).await;
    store
        .save_snapshot(Snapshot {
            stream_id: stream("a"),
            aggregate_type: "account".into(),
            stream_version: StreamVersion(8),
            schema_version: snapshot_version,
            state,
            taken_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let counting = TestStore::new(store.clone());
    let es =
        Es::builder().event_store(counting.clone()).snapshot_store(counting.clone()).build().await.unwrap();
    let outcome = es.execute(deposit("a", 1)).await.unwrap();
    assert_eq!(outcome.version, Some(StreamVersion(11)));
    assert_eq!(counting.events_read(), 10, "every event was replayed");
    let state = es.load::<Account>("a").await.unwrap();
    assert_eq!(state.balance, (1..=9).sum::<u64>() + 1);
    assert_eq!(state.deposits, 10);
}

#[tokio::test]
async fn a_snapshot_of_another_schema_version_is_ignored() {
    // Same shape, wrong numbers: misreading it would show in the balance.
    replays_fully_despite(2, json!({"open": true, "balance": 1_000_000, "deposits": 1})).await;
}

#[tokio::test]
async fn a_snapshot_whose_state_does_not_deserialize_is_ignored() {
    replays_fully_despite(1, json!({"open": "yes", "balance": [1]})).await;
}
