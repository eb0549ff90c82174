//! The Redis lease store beyond the port's rules (those, and commits fenced
//! by its tokens, are the conformance suite's: `lease_store_conformance!`,
//! `lease_fencing_conformance!`): `holder` names the current lease.
//!
//! Each test runs in its own namespace, deleted at the end. Nothing waits
//! on a fixed sleep: the expiry test polls in a bounded loop with a
//! deadline.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use es_core::store::LeaseStore;

const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_names_the_current_lease_and_none_once_released_or_expired() {
    let scoped = common::fresh_lease_store().await;
    let store = scoped.inner();
    assert_eq!(store.holder("p").await.unwrap(), None, "never taken");
    let a = store.try_acquire("p", "a", TTL).await.unwrap().expect("a free name is granted");
    assert_eq!(store.holder("p").await.unwrap(), Some(a.clone()));
    store.release(&a).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), None, "released");

    let b = store.try_acquire("p", "b", TTL).await.unwrap().expect("free after release");
    assert_eq!(store.holder("p").await.unwrap(), Some(b.clone()));
    // Re-acquired by its holder with a short TTL (same token), it expires.
    let short = store.try_acquire("p", "b", Duration::from_millis(20)).await.unwrap();
    assert_eq!(short, Some(b.clone()));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.holder("p").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lease on `p` never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let c = store.try_acquire("p", "c", TTL).await.unwrap().expect("expired, so free");
    store.release(&b).await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(c), "a stale release leaves the new holder");
}
