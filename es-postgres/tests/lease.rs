//! The Postgres lease store: exclusive, re-entrant, expiring on the
//! database clock, tokens strictly increasing, racing owners, and a table
//! that survives a second migration.
//!
//! Each test runs in its own schema. Nothing waits on a fixed sleep: the
//! expiry tests poll in a bounded loop with a deadline.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{drop_schema, fresh_schema, pool};
use es_core::store::{Lease, LeaseStore};
use es_postgres::PgLeaseStore;

const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

async fn lease_store() -> PgLeaseStore {
    let pool = pool(3).await;
    let schema = fresh_schema(&pool).await;
    PgLeaseStore::with_schema(pool, schema)
}

async fn drop_leases(store: PgLeaseStore) {
    drop_schema(store.pool(), store.schema()).await;
}

/// Polls `try_acquire` for `owner` until it succeeds (the lease expired on
/// the database clock), failing the test after [`DEADLINE`].
async fn acquire_when_expired(store: &PgLeaseStore, name: &str, owner: &str) -> Lease {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(lease) = store.try_acquire(name, owner, TTL).await.unwrap() {
            return lease;
        }
        assert!(tokio::time::Instant::now() < deadline, "the lease on `{name}` never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_reentrant_and_released() {
    let store = lease_store().await;
    let a = store.try_acquire("p", "a", TTL).await.unwrap().expect("a free name is granted");
    assert_eq!((a.name.as_str(), a.owner.as_str()), ("p", "a"));
    assert!(store.try_acquire("p", "b", TTL).await.unwrap().is_none(), "held by a");
    assert_eq!(store.try_acquire("p", "a", TTL).await.unwrap(), Some(a.clone()), "re-entrant, same token");
    assert_eq!(store.holder("p").await.unwrap(), Some(a.clone()));
    assert!(store.renew(&a, TTL).await.unwrap());
    // Other names are independent.
    assert!(store.try_acquire("q", "b", TTL).await.unwrap().is_some());

    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), None);
    assert!(!store.renew(&a, TTL).await.unwrap(), "a released lease is lost");
    let b = store.try_acquire("p", "b", TTL).await.unwrap().expect("free after release");
    assert!(b.token > a.token, "a new holder gets a larger token");
    // Releasing a lease no longer held changes nothing.
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(b.clone()));
    store.release(&b).await.unwrap();
    store.release(&b).await.unwrap();
    // The same owner taking a released name again gets a new token too.
    let again = store.try_acquire("p", "b", TTL).await.unwrap().unwrap();
    assert!(again.token > b.token);
    drop_leases(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_lease_expires_on_the_database_clock_and_is_lost() {
    let store = lease_store().await;
    let short = Duration::from_millis(50);
    let a = store.try_acquire("p", "a", short).await.unwrap().unwrap();
    let b = acquire_when_expired(&store, "p", "b").await;
    assert!(b.token > a.token);
    assert!(!store.renew(&a, TTL).await.unwrap(), "renewal after a takeover says the lease is lost");
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(b.clone()), "a stale release does not free b's lease");

    // Expired and not taken by anyone: renewal still reports it lost, and
    // the same owner taking it again gets a new token (its old writes are
    // fenced off).
    let c = store.try_acquire("r", "c", short).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.holder("r").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lease on `r` never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let c2 = store.try_acquire("r", "c", TTL).await.unwrap().unwrap();
    assert!(c2.token > c.token);
    assert!(!store.renew(&c, TTL).await.unwrap());
    assert!(store.renew(&c2, TTL).await.unwrap());
    drop_leases(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_owners_never_both_win() {
    let store = lease_store().await;
    for round in 0..20 {
        let name = format!("race-{round}");
        let tries = (0..6).map(|i| {
            let store = store.clone();
            let name = name.clone();
            tokio::spawn(async move { store.try_acquire(&name, &format!("node-{i}"), TTL).await.unwrap() })
        });
        let mut winners = Vec::new();
        for task in tries.collect::<Vec<_>>() {
            winners.extend(task.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(store.holder(&name).await.unwrap(), winners.pop());
    }
    drop_leases(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_table_survives_a_second_migration() {
    let store = lease_store().await;
    let a = store.try_acquire("p", "a", TTL).await.unwrap().unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(a));
    drop_leases(store).await;
}
