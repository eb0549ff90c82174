//! Dropping a read side (or the last `Es` that owns one) without
//! `shutdown()` releases its Redis leases, so another node takes its
//! subscriptions over at once. The cases live in
//! `es_core::conformance::readside`.

mod common;

use es_core::conformance::readside;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_side_hands_its_leases_over_at_once() {
    let stores = common::fresh_stores().await;
    readside::a_dropped_read_side_hands_its_leases_over_at_once(
        stores.events,
        stores.documents,
        stores.leases,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_es_hands_its_leases_over_at_once() {
    let stores = common::fresh_stores().await;
    readside::dropping_the_last_es_hands_its_leases_over_at_once(
        stores.events,
        stores.documents,
        stores.leases,
    )
    .await;
}
