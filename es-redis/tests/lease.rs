//! The Redis lease store: exclusive, expiring on the server clock,
//! re-entrant, growing tokens, idempotent release. Commits fenced by its
//! tokens are the conformance suite's (`lease_fencing_conformance!`).
//!
//! Each test runs in its own namespace, deleted at the end. Nothing waits
//! on a fixed sleep: the expiry tests poll in a bounded loop with a
//! deadline.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use es_core::store::{Lease, LeaseStore};
use es_redis::RedisLeaseStore;

const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

// ---- the lease store ----

/// Polls `try_acquire` for `owner` until it succeeds (the lease expired on
/// the server clock), failing the test after [`DEADLINE`].
async fn acquire_when_expired(store: &RedisLeaseStore, name: &str, owner: &str) -> Lease {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(lease) = store.try_acquire(name, owner, TTL).await.unwrap() {
            return lease;
        }
        assert!(tokio::time::Instant::now() < deadline, "the lease on `{name}` never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls until `name`'s lease has expired on the server clock.
async fn wait_until_expired(store: &RedisLeaseStore, name: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.holder(name).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lease on `{name}` never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_reentrant_and_released() {
    let scoped = common::fresh_lease_store().await;
    let store = scoped.inner();
    let a = store.try_acquire("p", "a", TTL).await.unwrap().expect("a free name is granted");
    assert_eq!((a.name.as_str(), a.owner.as_str()), ("p", "a"));
    assert!(store.try_acquire("p", "b", TTL).await.unwrap().is_none(), "held by a");
    assert_eq!(store.try_acquire("p", "a", TTL).await.unwrap(), Some(a.clone()), "re-entrant, same token");
    assert_eq!(store.holder("p").await.unwrap(), Some(a.clone()));
    assert!(store.renew(&a, TTL).await.unwrap());
    assert!(store.try_acquire("q", "b", TTL).await.unwrap().is_some(), "other names are independent");

    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), None);
    assert!(!store.renew(&a, TTL).await.unwrap(), "a released lease is lost");
    let b = store.try_acquire("p", "b", TTL).await.unwrap().expect("free after release");
    assert!(b.token > a.token, "a new holder gets a larger token");
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(b.clone()), "a stale release changes nothing");
    store.release(&b).await.unwrap();
    store.release(&b).await.unwrap();
    let again = store.try_acquire("p", "b", TTL).await.unwrap().unwrap();
    assert!(again.token > b.token, "the same owner taking a released name again gets a new token");
    let stolen = Lease { owner: "c".to_owned(), ..again.clone() };
    assert!(!store.renew(&stolen, TTL).await.unwrap(), "another owner with the right token renews nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_lease_expires_on_the_server_clock_and_is_lost() {
    let scoped = common::fresh_lease_store().await;
    let store = scoped.inner();
    let short = Duration::from_millis(50);
    let a = store.try_acquire("p", "a", short).await.unwrap().unwrap();
    let b = acquire_when_expired(store, "p", "b").await;
    assert!(b.token > a.token);
    assert!(!store.renew(&a, TTL).await.unwrap(), "renewal after a takeover says the lease is lost");
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(b), "a stale release does not free b's lease");

    // Expired and not taken: renewal reports it lost, and the same owner
    // taking it again gets a new token.
    let c = store.try_acquire("r", "c", short).await.unwrap().unwrap();
    wait_until_expired(store, "r").await;
    assert!(!store.renew(&c, TTL).await.unwrap());
    let c2 = store.try_acquire("r", "c", TTL).await.unwrap().unwrap();
    assert!(c2.token > c.token);
    assert!(store.renew(&c2, TTL).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_owners_never_both_win() {
    let scoped = common::fresh_lease_store().await;
    for round in 0..20 {
        let name = format!("race-{round}");
        let tries: Vec<_> = (0..6)
            .map(|i| {
                let store = scoped.inner().clone();
                let name = name.clone();
                tokio::spawn(
                    async move { store.try_acquire(&name, &format!("node-{i}"), TTL).await.unwrap() },
                )
            })
            .collect();
        let mut winners = Vec::new();
        for task in tries {
            winners.extend(task.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(scoped.inner().holder(&name).await.unwrap(), winners.pop());
    }
}
