//! Snapshots: when one is due, capturing it, and saving it off the reply path.
//!
//! A snapshot is an optimization, never the truth: one that cannot be taken
//! or saved is logged and skipped, and rehydration falls back to events.

use std::sync::atomic::Ordering;

use super::rehydrate::Loaded;
use super::stats::Stats;
use crate::aggregate::Aggregate;
use crate::envelope::{Snapshot, Timestamp};
use crate::store::SnapshotStore;
use crate::version::{StreamId, StreamVersion};

/// Whether an append that moved a stream from `before` to `now` crossed a
/// multiple of `every` (so a snapshot is due).
pub(crate) fn due(every: Option<u64>, before: Option<StreamVersion>, now: Option<StreamVersion>) -> bool {
    let (Some(every), Some(now)) = (every, now) else { return false };
    let before = before.map_or(0, StreamVersion::get);
    every != 0 && before / every != now.get() / every
}

/// The snapshot of `loaded`, or `None` if its state does not serialize or
/// it has no events yet.
pub(crate) fn capture<A: Aggregate>(stream: &StreamId, loaded: &Loaded<A>) -> Option<Snapshot> {
    let version = loaded.version?;
    match serde_json::to_value(&loaded.state) {
        Ok(state) => Some(Snapshot {
            stream_id: stream.clone(),
            aggregate_type: A::NAME.to_owned(),
            stream_version: version,
            schema_version: A::SNAPSHOT_VERSION,
            state,
            taken_at: Timestamp::now(),
        }),
        Err(error) => {
            tracing::warn!(aggregate = A::NAME, %stream, %error, "aggregate state does not serialize; no snapshot taken");
            None
        }
    }
}

/// Saves `snapshot`, logging a failure.
pub(crate) async fn save(store: &dyn SnapshotStore, snapshot: Snapshot, stats: &Stats) {
    let stream = snapshot.stream_id.clone();
    let version = snapshot.stream_version;
    match store.save_snapshot(snapshot).await {
        Ok(()) => {
            stats.snapshots_saved.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%stream, %version, "snapshot saved");
        }
        Err(error) => tracing::warn!(%stream, %version, %error, "saving snapshot failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_when_an_append_crosses_a_multiple() {
        let v = |n| Some(StreamVersion(n));
        assert!(!due(None, v(9), v(10)));
        assert!(!due(Some(10), v(8), v(9)));
        assert!(due(Some(10), v(9), v(10)));
        assert!(due(Some(10), v(8), v(12)));
        assert!(due(Some(10), None, v(10)));
        assert!(!due(Some(10), None, None));
        assert!(!due(Some(0), v(1), v(2)));
        assert!(due(Some(1), v(1), v(2)));
    }
}
