//! The Redis lease store beyond the port's rules (those, and commits fenced
//! by its tokens, are the conformance suite's: `lease_store_conformance!`,
//! `lease_fencing_conformance!`): `holder` names the current lease.
//!
//! The test runs in its own namespace, deleted at the end; the case polls
//! for expiry in a bounded loop.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_names_the_current_lease_and_none_once_released_or_expired() {
    let scoped = common::fresh_lease_store().await;
    let store = scoped.inner().clone();
    es_core::conformance::lease_store::lease_holder_follows_acquire_release_and_expiry(
        store.clone(),
        |name| {
            let store = store.clone();
            async move { store.holder(name).await.unwrap() }
        },
    )
    .await;
}
