//! Snapshot store cases: what every [`SnapshotStore`] must do.
//!
//! Run them all with [`snapshot_store_conformance!`](crate::snapshot_store_conformance).
//! Each case takes a fresh, empty store.

use serde_json::json;

use crate::store::{Snapshot, SnapshotStore, Timestamp};
use crate::{StreamId, StreamVersion};

fn snapshot(stream: &str, version: u64, balance: u64) -> Snapshot {
    Snapshot {
        stream_id: StreamId::new(stream),
        aggregate_type: "account".to_owned(),
        stream_version: StreamVersion(version),
        schema_version: 2,
        state: json!({ "open": true, "balance": balance, "owner": "Åsa 🐢", "history": [1, 2, { "x": null }] }),
        taken_at: Timestamp::now(),
    }
}

async fn load<S: SnapshotStore>(store: &S, stream: &str) -> Option<Snapshot> {
    store
        .load_snapshot(&StreamId::new(stream))
        .await
        .unwrap_or_else(|e| panic!("load_snapshot of `{stream}` failed: {e:?}"))
}

async fn save<S: SnapshotStore>(store: &S, snapshot: Snapshot) {
    let what = format!("save_snapshot of `{}` at version {}", snapshot.stream_id, snapshot.stream_version);
    store.save_snapshot(snapshot).await.unwrap_or_else(|e| panic!("{what} failed: {e:?}"));
}

/// A stream without a snapshot loads `None`.
pub async fn snapshot_missing_is_none<S: SnapshotStore>(store: S) {
    assert_eq!(load(&store, "account-1").await, None, "a stream that was never snapshotted has no snapshot");
}

/// A saved snapshot loads back with every field intact.
pub async fn snapshot_round_trips<S: SnapshotStore>(store: S) {
    let saved = snapshot("account-1", 7, 100);
    save(&store, saved.clone()).await;
    assert_eq!(load(&store, "account-1").await, Some(saved), "a snapshot must load back exactly as saved");
}

/// A snapshot at a higher version replaces the stored one.
pub async fn newer_snapshot_replaces_older<S: SnapshotStore>(store: S) {
    save(&store, snapshot("account-1", 5, 10)).await;
    let newer = snapshot("account-1", 9, 90);
    save(&store, newer.clone()).await;
    assert_eq!(load(&store, "account-1").await, Some(newer), "a newer snapshot must replace the older one");
}

/// A snapshot at a lower version than the stored one is ignored (saving it
/// is not an error).
pub async fn older_snapshot_does_not_replace_newer<S: SnapshotStore>(store: S) {
    let newer = snapshot("account-1", 9, 90);
    save(&store, newer.clone()).await;
    save(&store, snapshot("account-1", 5, 10)).await;
    assert_eq!(
        load(&store, "account-1").await,
        Some(newer),
        "an older snapshot must not replace a newer one"
    );
}

/// Snapshots are kept per stream: saving one leaves other streams alone.
pub async fn snapshots_are_per_stream<S: SnapshotStore>(store: S) {
    let one = snapshot("account-1", 3, 30);
    let two = snapshot("account-2", 8, 80);
    save(&store, one.clone()).await;
    save(&store, two.clone()).await;
    assert_eq!(load(&store, "account-1").await, Some(one.clone()), "account-1 must keep its own snapshot");
    assert_eq!(load(&store, "account-2").await, Some(two), "account-2 must keep its own snapshot");
    let replaced = snapshot("account-2", 12, 120);
    save(&store, replaced.clone()).await;
    assert_eq!(
        load(&store, "account-1").await,
        Some(one),
        "replacing account-2's snapshot changed account-1's"
    );
    assert_eq!(load(&store, "account-2").await, Some(replaced));
    assert_eq!(load(&store, "account-3").await, None, "a stream without a snapshot still has none");
}
