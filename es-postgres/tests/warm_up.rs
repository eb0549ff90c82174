//! Building an `Es` on Postgres opens and primes two pooled connections
//! (`EventStore::warm_up`), so the first load on a fresh pool opens none;
//! a pool of one, or a database that cannot be reached, does not stop
//! building.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bank::{Account, Deposit, OpenAccount};
use common::{drop_schema, fresh_schema, pool};
use es_core::store::{Snapshot, SnapshotStore, Timestamp};
use es_core::{Aggregate, Es, StreamId, StreamVersion};
use es_postgres::{PgEventStore, PgSchema};
use sqlx::postgres::PgPoolOptions;

/// Account `a` with four events, and a snapshot at version 3, written
/// through a pool of its own.
async fn account_with_snapshot(schema: &PgSchema) {
    let setup = PgEventStore::with_schema(pool(2).await, schema.clone());
    let es = Es::builder().event_store(setup.clone()).build().await.unwrap();
    es.execute(OpenAccount { account_id: "a".into(), owner: "ada".into() }).await.unwrap();
    for amount in [10, 20, 30] {
        es.execute(Deposit { account_id: "a".into(), amount }).await.unwrap();
    }
    let at_3 = es.load_at::<Account>("a", StreamVersion(3)).await.unwrap();
    setup
        .save_snapshot(Snapshot {
            stream_id: StreamId::for_aggregate(Account::NAME, "a"),
            aggregate_type: Account::NAME.into(),
            stream_version: StreamVersion(3),
            schema_version: Account::SNAPSHOT_VERSION,
            state: serde_json::to_value(&at_3).unwrap(),
            taken_at: Timestamp::now(),
        })
        .await
        .unwrap();
    es.shutdown().await;
    setup.pool().close().await;
}

#[tokio::test]
async fn building_primes_two_connections_and_the_first_load_opens_none() {
    let admin = pool(2).await;
    let schema = fresh_schema(&admin).await;
    account_with_snapshot(&schema).await;

    // A fresh application: `connect` leaves one connection in the pool.
    let fresh = pool(4).await;
    assert_eq!(fresh.size(), 1, "a pool that has just connected holds one connection");
    let store = PgEventStore::with_schema(fresh.clone(), schema.clone());
    let es = Es::builder().event_store(store.clone()).snapshot_store(store).build().await.unwrap();
    assert_eq!(fresh.size(), 2, "building opened a second connection");
    assert_eq!(fresh.num_idle(), 2, "both are back in the pool when building returns");

    // The snapshot, then the event after it: two reads back to back. The
    // second finds the other primed connection idle while the first one
    // is being checked after its use.
    let account = es.load::<Account>("a").await.unwrap();
    assert_eq!(account.balance, 60);
    assert_eq!(fresh.size(), 2, "the first load opened no connection");

    es.shutdown().await;
    fresh.close().await;
    drop_schema(&admin, &schema).await;
}

#[tokio::test]
async fn a_pool_of_one_connection_is_warmed_alone() {
    let admin = pool(2).await;
    let schema = fresh_schema(&admin).await;
    account_with_snapshot(&schema).await;
    let single = pool(1).await;
    let store = PgEventStore::with_schema(single.clone(), schema.clone());
    let es = Es::builder().event_store(store.clone()).snapshot_store(store).build().await.unwrap();
    assert_eq!((single.size(), single.num_idle()), (1, 1), "the one connection, idle");
    assert_eq!(es.load::<Account>("a").await.unwrap().balance, 60);
    es.shutdown().await;
    single.close().await;
    drop_schema(&admin, &schema).await;
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_does_not_fail_building() {
    // Nothing listens on port 1: every connection attempt is refused.
    let unreachable = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/postgres")
        .unwrap();
    let store = PgEventStore::new(unreachable.clone());
    let built = Es::builder().event_store(store).build().await;
    assert!(built.is_ok(), "building failed: {:?}", built.err());
    assert_eq!(unreachable.size(), 0, "no connection could be opened");
}
