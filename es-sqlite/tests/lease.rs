//! The SQLite lease store: exclusive, re-entrant, expiring on the database
//! clock, tokens strictly increasing (across names too), racing owners in
//! one process and on separate handles of one file.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{fresh_lease_store, TempDir};
use es_core::store::{Lease, LeaseStore};
use es_sqlite::{SqliteDatabase, SqliteLeaseStore};

const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `try_acquire` for `owner` until it succeeds (the lease expired on
/// the database clock), failing the test after [`DEADLINE`].
async fn acquire_when_expired(store: &SqliteLeaseStore, name: &str, owner: &str) -> Lease {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(lease) = store.try_acquire(name, owner, TTL).await.unwrap() {
            return lease;
        }
        assert!(tokio::time::Instant::now() < deadline, "the lease on `{name}` never expired");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_reentrant_and_released() {
    let store = fresh_lease_store().await;
    let a = store.try_acquire("p", "a", TTL).await.unwrap().expect("a free name is granted");
    assert_eq!((a.name.as_str(), a.owner.as_str()), ("p", "a"));
    assert!(store.try_acquire("p", "b", TTL).await.unwrap().is_none(), "held by a");
    assert_eq!(store.try_acquire("p", "a", TTL).await.unwrap(), Some(a.clone()), "re-entrant, same token");
    assert_eq!(store.holder("p").await.unwrap(), Some(a.clone()));
    assert!(store.renew(&a, TTL).await.unwrap());
    // Other names are independent, and their tokens are larger still.
    let q = store.try_acquire("q", "b", TTL).await.unwrap().expect("another name is free");
    assert!(q.token > a.token, "tokens strictly increase across names");

    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), None);
    assert!(!store.renew(&a, TTL).await.unwrap(), "a released lease is lost");
    let b = store.try_acquire("p", "b", TTL).await.unwrap().expect("free after release");
    assert!(b.token > q.token, "a new holder gets a larger token than any before");
    // Releasing a lease no longer held changes nothing.
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(b.clone()));
    store.release(&b).await.unwrap();
    store.release(&b).await.unwrap();
    // The same owner taking a released name again gets a new token too.
    let again = store.try_acquire("p", "b", TTL).await.unwrap().unwrap();
    assert!(again.token > b.token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_lease_expires_on_the_database_clock_and_is_lost() {
    let store = fresh_lease_store().await;
    let short = Duration::from_millis(20);
    let a = store.try_acquire("p", "a", short).await.unwrap().unwrap();
    let b = acquire_when_expired(&store, "p", "b").await;
    assert!(b.token > a.token);
    assert!(!store.renew(&a, TTL).await.unwrap(), "renewal after a takeover says the lease is lost");
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(b.clone()), "a stale release does not free b's lease");

    // Expired and not taken by anyone: renewal still reports it lost, and
    // the same owner taking it again gets a new token.
    let c = store.try_acquire("r", "c", short).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.holder("r").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lease on `r` never expired");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(!store.renew(&c, TTL).await.unwrap());
    let c2 = store.try_acquire("r", "c", TTL).await.unwrap().unwrap();
    assert!(c2.token > c.token);
    assert!(store.renew(&c2, TTL).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_owners_never_both_win_in_one_process_or_across_handles() {
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
