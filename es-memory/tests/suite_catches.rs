//! The conformance suite has teeth: stores that break a rule fail its cases.
//!
//! Each test runs one case against a deliberately broken store and checks
//! that the case fails with a message naming the broken rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use es_core::conformance::{self, event_store, lease_store, readside};
use es_core::error::LeaseError;
use es_core::store::{Lease, LeaseStore};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_memory::{InMemoryEventStore, InMemoryLeaseStore, InMemoryProjectionStore};

/// The in-memory store without its wake-ups: every `wait_for_events`
/// fails, so it sleeps its whole `max_wait` (see `Fault::Backend`).
fn never_wakes() -> TestStore<InMemoryEventStore> {
    let store = TestStore::new(InMemoryEventStore::new());
    store.fail_next(StoreCall::WaitForEvents, u64::MAX);
    store
}

/// Runs `case` as the conformance macros do and returns its panic message;
/// fails if the case passed.
fn failure_of<F: Future<Output = ()>>(case: F) -> String {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conformance::run_case(case)));
    let panic = outcome.expect_err("the case passed on a broken store");
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn a_store_that_never_wakes_waiters_fails_the_wake_up_case() {
    let message = failure_of(event_store::wait_for_events_wakes_when_an_event_lands(never_wakes()));
    assert!(message.contains("did not wake the waiter"), "{message}");
}

#[test]
fn a_store_that_never_wakes_waiters_fails_the_subscription_case() {
    let message = failure_of(event_store::subscription_catches_up_then_goes_live(never_wakes()));
    assert!(message.contains("did not wake the waiter"), "{message}");
}

/// The in-memory lease store, except that `renew` says yes without
/// extending the lease.
fn renew_lies() -> TestStore<InMemoryLeaseStore> {
    let store = TestStore::new(InMemoryLeaseStore::new());
    store.inject(StoreCall::Renew, Fault::Dropped, ..);
    store
}

#[test]
fn a_lease_store_whose_renew_does_not_extend_fails_the_renew_case() {
    let message = failure_of(lease_store::lease_renew_extends_a_held_lease(renew_lies()));
    assert!(message.contains("renew must extend the lease"), "{message}");
}

#[test]
fn a_projection_store_that_ignores_fences_fails_the_fencing_case() {
    let stores = (InMemoryLeaseStore::new(), InMemoryProjectionStore::new());
    let message = failure_of(lease_store::fenced_commit_is_refused_after_takeover(stores));
    assert!(message.contains("expected ProjectionError::Fenced, but the commit landed"), "{message}");
}

#[test]
fn a_projection_store_that_ignores_fences_fails_the_expired_lease_case() {
    let stores = (InMemoryLeaseStore::new(), InMemoryProjectionStore::new());
    let message = failure_of(lease_store::fenced_commit_is_refused_once_its_lease_expired(stores));
    assert!(message.contains("expected ProjectionError::Fenced, but the commit landed"), "{message}");
}

/// The in-memory lease store made re-entrant, as the lease stores were
/// once: the owner that holds a lease gets it back, extended, with the
/// same token.
#[derive(Clone, Default)]
struct Reentrant {
    inner: InMemoryLeaseStore,
    granted: Arc<Mutex<HashMap<(String, String), Lease>>>,
}

#[async_trait]
impl LeaseStore for Reentrant {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        let key = (name.to_owned(), owner.to_owned());
        let held = self.granted.lock().unwrap().get(&key).cloned();
        if let Some(held) = held {
            if self.inner.renew(&held, ttl).await? {
                return Ok(Some(held));
            }
        }
        let lease = self.inner.try_acquire(name, owner, ttl).await?;
        if let Some(lease) = &lease {
            self.granted.lock().unwrap().insert(key, lease.clone());
        }
        Ok(lease)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        self.inner.renew(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.inner.release(lease).await
    }
}

#[test]
fn a_re_entrant_lease_store_fails_the_reacquire_case() {
    let message = failure_of(lease_store::lease_reacquire_by_its_owner_gets_a_larger_token_and_extends(
        Reentrant::default(),
    ));
    assert!(message.contains("re-acquiring one's own lease gets a larger token"), "{message}");
}

#[test]
fn a_projection_store_that_ignores_fences_fails_the_reacquire_fencing_case() {
    let stores = (InMemoryLeaseStore::new(), InMemoryProjectionStore::new());
    let message = failure_of(lease_store::fenced_commit_is_refused_after_its_owner_reacquired(stores));
    assert!(message.contains("expected ProjectionError::Fenced, but the commit landed"), "{message}");
}

/// The in-memory projection store ignores fences (by design), so the
/// earlier run's late commit lands and the restarted run applies its events
/// again: the read side case catches it.
#[test]
fn a_projection_store_that_ignores_fences_fails_the_restarted_owner_case() {
    let stores = (InMemoryEventStore::new(), InMemoryProjectionStore::new(), InMemoryLeaseStore::new());
    let message =
        failure_of(readside::a_node_restarted_under_its_owner_fences_off_its_earlier_runs_commit(stores));
    assert!(message.contains("every event exactly once"), "{message}");
}
