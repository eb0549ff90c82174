//! The SQLite lease store beyond the port's rules (those are the
//! conformance suite's, `lease_store_conformance!`): `holder` names the
//! current lease, tokens strictly increase across names too, racing owners
//! on separate handles of one file, and a table that survives a second
//! migration.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{fresh_lease_store, TempDir};
use es_core::store::LeaseStore;
use es_sqlite::{SqliteDatabase, SqliteLeaseStore};

const TTL: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_names_the_current_lease_and_none_once_released_or_expired() {
    let store = fresh_lease_store().await;
    es_core::conformance::lease_store::lease_holder_follows_acquire_release_and_expiry(
        store.clone(),
        |name| {
            let store = store.clone();
            async move { store.holder(name).await.unwrap() }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_strictly_increase_across_names() {
    let store = fresh_lease_store().await;
    let mut tokens = Vec::new();
    for name in ["p", "q", "r", "p"] {
        let lease = store.try_acquire(name, "a", TTL).await.unwrap().expect("a free name is granted");
        tokens.push(lease.token);
        store.release(&lease).await.unwrap();
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_owners_on_separate_handles_never_both_win() {
    let dir = TempDir::new();
    let path = dir.file("leases.db");
    let first = SqliteDatabase::open(&path).await.unwrap();
    first.migrate().await.unwrap();
    let second = SqliteDatabase::open(&path).await.unwrap();
    let stores = [SqliteLeaseStore::new(first), SqliteLeaseStore::new(second)];
    for round in 0..20 {
        let name = format!("race-{round}");
        let tries = (0..6).map(|i| {
            let store = stores[i % 2].clone();
            let name = name.clone();
            tokio::spawn(async move { store.try_acquire(&name, &format!("node-{i}"), TTL).await.unwrap() })
        });
        let mut winners = Vec::new();
        for task in tries.collect::<Vec<_>>() {
            winners.extend(task.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(stores[round % 2].holder(&name).await.unwrap(), winners.pop());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_table_survives_a_second_migration() {
    let store = fresh_lease_store().await;
    let a = store.try_acquire("p", "a", TTL).await.unwrap().unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(a));
}
