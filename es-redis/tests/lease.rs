//! The Redis lease store: exclusive, expiring on the server clock,
//! re-entrant, growing tokens, idempotent release, and commits fenced by
//! its tokens.
//!
//! Each test runs in its own namespace, deleted at the end. Nothing waits
//! on a fixed sleep: the expiry tests poll in a bounded loop with a
//! deadline.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use es_core::error::ProjectionError;
use es_core::store::{Checkpoint, Fence, Lease, LeaseStore, ProjectionStore, UnitOfWork};
use es_core::GlobalPosition;
use es_redis::RedisLeaseStore;
use serde_json::json;

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

// ---- fenced commits ----

fn fenced_work(lease: &Lease, balance: i64, position: u64) -> UnitOfWork {
    let mut work = UnitOfWork::new();
    work.put("acc-1", json!({ "balance": balance }))
        .checkpoint(Checkpoint::at(GlobalPosition(position)))
        .fence(Fence::new(lease.name.clone(), lease.token));
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_commit_lands_only_under_the_current_lease_token() {
    let stores = common::fresh_stores().await;
    let (documents, leases) = (&stores.documents, &stores.leases);
    let short = Duration::from_millis(50);

    let a = leases.try_acquire("balances", "node-a", TTL).await.unwrap().expect("a free lease");
    documents.commit("balances", fenced_work(&a, 10, 1)).await.unwrap();
    assert_eq!(documents.get("balances", "acc-1").await.unwrap(), Some(json!({ "balance": 10 })));

    // A's lease expires: its commit is refused though nobody took over.
    let again = leases.try_acquire("balances", "node-a", short).await.unwrap().expect("still a's");
    assert_eq!(again.token, a.token);
    wait_until_expired(leases, "balances").await;
    let expired = documents.commit("balances", fenced_work(&a, 20, 2)).await;
    assert!(
        matches!(&expired, Err(ProjectionError::Fenced { projection, lease, token })
            if projection == "balances" && lease == "balances" && *token == a.token),
        "{expired:?}"
    );

    // B takes over: A's commit is still refused, B's lands.
    let b = leases.try_acquire("balances", "node-b", TTL).await.unwrap().expect("expired, so free");
    assert!(matches!(
        documents.commit("balances", fenced_work(&a, 30, 3)).await,
        Err(ProjectionError::Fenced { .. })
    ));
    documents.commit("balances", fenced_work(&b, 40, 4)).await.unwrap();
    assert_eq!(documents.get("balances", "acc-1").await.unwrap(), Some(json!({ "balance": 40 })));
    assert_eq!(
        documents.checkpoint("balances").await.unwrap(),
        Some(Checkpoint::at(GlobalPosition(4))),
        "refused commits stored nothing"
    );

    // A fence on a lease never taken in this namespace (kept elsewhere)
    // cannot be checked: the commit lands.
    let elsewhere = Lease { name: "other".to_owned(), owner: "node-a".to_owned(), token: 7 };
    documents.commit("balances", fenced_work(&elsewhere, 50, 5)).await.unwrap();
    // A token the store never handed out is refused.
    let huge = Lease { name: "balances".to_owned(), owner: "node-b".to_owned(), token: u64::MAX };
    assert!(matches!(
        documents.commit("balances", fenced_work(&huge, 60, 6)).await,
        Err(ProjectionError::Fenced { .. })
    ));
    assert_eq!(documents.get("balances", "acc-1").await.unwrap(), Some(json!({ "balance": 50 })));
}
