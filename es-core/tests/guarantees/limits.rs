//! Extreme values: unbounded timeouts and a snapshot at the last version.

use std::time::Duration;

use es_core::readside::{ReadSideConfig, Selection};
use es_core::store::{ProjectionStore, Snapshot, SnapshotStore, Timestamp};
use es_core::{Aggregate, Es, ReadSide, StreamId, StreamVersion};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde_json::json;

use crate::domain::{Deposit, Ledger, Open};
use crate::helpers::{read_side, whole_stream};
use crate::subscribers::Balance;

/// `Duration::MAX` is how a user says "wait as long as it takes": as a
/// consistency timeout, a wait, a lease or an idle timeout it must work,
/// not overflow a clock.
#[tokio::test]
async fn unbounded_timeouts_are_accepted_without_panicking() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let forever = Duration::MAX;
    let es = Es::builder()
        .event_store(store.clone())
        .projection_store(documents.clone())
        .consistency_timeout(forever)
        .idle_timeout(forever)
        .read_side(
            ReadSide::builder()
                .select(Selection::names(["g-balances"]))
                .config(ReadSideConfig { lease_ttl: forever, ..ReadSideConfig::default() }),
        )
        .build()
        .await
        .unwrap();
    es.execute(Open { id: "t".into(), owner: "ada".into() }).await.unwrap();
    let outcome = es.execute(Deposit { id: "t".into(), amount: 8 }).await.unwrap();
    read_side(&es).wait_for("g-balances", outcome.position.unwrap(), forever).await.unwrap();
    let balance: Balance =
        serde_json::from_value(documents.get("g-balances", "ledger-t").await.unwrap().unwrap()).unwrap();
    assert_eq!(balance.balance, 8);
    es.shutdown().await;
}

/// A corrupt snapshot (one claiming the last possible version) neither
/// panics nor makes rehydration apply the history on top of it.
#[tokio::test]
async fn a_snapshot_at_the_last_possible_version_does_not_overflow() {
    let store = InMemoryEventStore::new();
    let es = Es::builder().event_store(store.clone()).snapshot_store(store.clone()).build().await.unwrap();
    es.execute(Open { id: "s".into(), owner: "ada".into() }).await.unwrap();
    es.execute(Deposit { id: "s".into(), amount: 5 }).await.unwrap();
    let snapshot = Snapshot {
        stream_id: StreamId::for_aggregate(Ledger::NAME, "s"),
        aggregate_type: Ledger::NAME.to_owned(),
        stream_version: StreamVersion(u64::MAX),
        schema_version: Ledger::SNAPSHOT_VERSION,
        state: json!({ "owner": "ada", "balance": 1000, "notes": [] }),
        taken_at: Timestamp::now(),
    };
    store.save_snapshot(snapshot).await.unwrap();

    let fresh = Es::builder().event_store(store.clone()).snapshot_store(store.clone()).build().await.unwrap();
    let loaded = fresh.load::<Ledger>("s").await.unwrap();
    assert!(
        [5, 1000].contains(&loaded.balance),
        "history applied on top of the snapshot: {}",
        loaded.balance
    );
    assert_eq!(whole_stream(&store, "s").await.len(), 2);
}
