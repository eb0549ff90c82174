//! Dropping a read side (or the last `Es` that owns one) without
//! `shutdown()` releases its leases, so another node takes its
//! subscriptions over within seconds instead of after the lease's TTL; two
//! nodes share a projection, never both at once. The cases live in
//! `es_core::conformance::readside`; here they run on the in-memory stores.

use es_core::conformance::readside;
use es_memory::{InMemoryEventStore, InMemoryLeaseStore, InMemoryProjectionStore};

#[tokio::test]
async fn a_dropped_read_side_hands_its_leases_over_at_once() {
    let stores = (InMemoryEventStore::new(), InMemoryProjectionStore::new(), InMemoryLeaseStore::new());
    readside::a_dropped_read_side_hands_its_leases_over_at_once(stores.0, stores.1, stores.2).await;
}

#[tokio::test]
async fn dropping_the_last_es_hands_its_leases_over_at_once() {
    let stores = (InMemoryEventStore::new(), InMemoryProjectionStore::new(), InMemoryLeaseStore::new());
    readside::dropping_the_last_es_hands_its_leases_over_at_once(stores.0, stores.1, stores.2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_both_project_and_the_second_takes_over_on_shutdown() {
    let stores = (InMemoryEventStore::new(), InMemoryProjectionStore::new(), InMemoryLeaseStore::new());
    readside::two_nodes_never_both_project_and_the_second_takes_over_on_shutdown(stores.clone(), stores)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint() {
    let stores = (InMemoryEventStore::new(), InMemoryProjectionStore::new(), InMemoryLeaseStore::new());
    readside::a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint(stores.clone(), stores).await;
}
