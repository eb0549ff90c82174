//! Dropping a read side (or the last `Es` that owns one) without
//! `shutdown()` releases its Postgres leases, so another node takes its
//! subscriptions over within seconds instead of after the lease's TTL. The
//! cases live in `es_core::conformance::readside`.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{drop_schema, fresh_schema, pool};
use es_core::conformance::readside;
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_side_hands_its_leases_over_at_once() {
    let pool = pool(4).await;
    let schema = fresh_schema(&pool).await;
    readside::a_dropped_read_side_hands_its_leases_over_at_once(
        PgEventStore::with_schema(pool.clone(), schema.clone()),
        PgProjectionStore::with_schema(pool.clone(), schema.clone()),
        PgLeaseStore::with_schema(pool.clone(), schema.clone()),
    )
    .await;
    drop_schema(&pool, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_es_hands_its_leases_over_at_once() {
    let pool = pool(4).await;
    let schema = fresh_schema(&pool).await;
    readside::dropping_the_last_es_hands_its_leases_over_at_once(
        PgEventStore::with_schema(pool.clone(), schema.clone()),
        PgProjectionStore::with_schema(pool.clone(), schema.clone()),
        PgLeaseStore::with_schema(pool.clone(), schema.clone()),
    )
    .await;
    drop_schema(&pool, &schema).await;
}
