//! Dropping a read side (or the last `Es` that owns one) without
//! `shutdown()` releases its leases, so another node takes its
//! subscriptions over within seconds instead of after the lease's TTL. The
//! cases live in `es_core::conformance::readside`; here they run on the
//! in-memory stores.

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
