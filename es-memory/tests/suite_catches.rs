//! The conformance suite has teeth: stores that break a rule fail its cases.
//!
//! Each test runs one case against a deliberately broken store and checks
//! that the case fails with a message naming the broken rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;

use es_core::conformance::{self, event_store, lease_store};
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
