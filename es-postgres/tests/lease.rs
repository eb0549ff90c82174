//! The Postgres lease store beyond the port's rules (those are the
//! conformance suite's, `lease_store_conformance!`): `holder` names the
//! current lease, and the table survives a second migration.
//!
//! Each test runs in its own schema. Nothing waits on a fixed sleep: the
//! expiry test polls in a bounded loop with a deadline.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{drop_schema, fresh_schema, pool};
use es_core::store::LeaseStore;
use es_postgres::PgLeaseStore;

const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

async fn lease_store() -> PgLeaseStore {
    let pool = pool(3).await;
    let schema = fresh_schema(&pool).await;
    PgLeaseStore::with_schema(pool, schema)
}

async fn drop_leases(store: PgLeaseStore) {
    drop_schema(store.pool(), store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_names_the_current_lease_and_none_once_released_or_expired() {
    let store = lease_store().await;
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
    drop_leases(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_table_survives_a_second_migration() {
    let store = lease_store().await;
    let a = store.try_acquire("p", "a", TTL).await.unwrap().unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.holder("p").await.unwrap(), Some(a));
    drop_leases(store).await;
}
