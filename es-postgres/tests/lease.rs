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
    es_core::conformance::lease_store::lease_holder_follows_acquire_release_and_expiry(
        store.clone(),
        |name| {
            let store = store.clone();
            async move { store.holder(name).await.unwrap() }
        },
    )
    .await;
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
