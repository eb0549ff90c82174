//! Snapshots in Redis: one hash per stream (`{ns}:snapshot:<stream>`), the
//! newest kept.

use std::sync::LazyLock;

use async_trait::async_trait;
use es_core::error::{BoxError, StoreError};
use es_core::store::{Snapshot, SnapshotStore, Timestamp};
use es_core::{StreamId, StreamVersion};
use redis::Script;

use crate::event_store::RedisEventStore;

static SAVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("snapshot_store/save.lua")));

fn backend(error: impl Into<BoxError>) -> StoreError {
    StoreError::Backend(error.into())
}

#[async_trait]
impl SnapshotStore for RedisEventStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.namespace().snapshot(stream.as_str()))
            .arg(&["aggregate", "version", "schema", "state", "at"])
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        if fields.iter().all(Option::is_none) {
            return Ok(None);
        }
        let corrupt = |detail: String| StoreError::Corrupt {
            location: format!("snapshot of stream `{stream}`"),
            position: None,
            detail,
        };
        let field = |i: usize, name: &str| {
            fields
                .get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| corrupt(format!("the snapshot has no field `{name}`")))
        };
        let number = |i: usize, name: &str| {
            let raw = field(i, name)?;
            raw.parse::<i64>().map_err(|_| corrupt(format!("field `{name}` is {raw:?}, not a number")))
        };
        let version = number(1, "version")?;
        let version = u64::try_from(version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| corrupt(format!("stream version {version} is not positive")))?;
        let schema = number(2, "schema")?;
        let schema_version =
            u32::try_from(schema).map_err(|_| corrupt(format!("schema version {schema} is out of range")))?;
        let state = serde_json::from_str(&field(3, "state")?)
            .map_err(|e| corrupt(format!("field `state` is not JSON: {e}")))?;
        Ok(Some(Snapshot {
            stream_id: stream.clone(),
            aggregate_type: field(0, "aggregate")?,
            stream_version: StreamVersion(version),
            schema_version,
            state,
            taken_at: Timestamp(number(4, "at")?),
        }))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let state = serde_json::to_string(&snapshot.state).map_err(backend)?;
        let _stored: i64 = SAVE
            .key(self.namespace().snapshot(snapshot.stream_id.as_str()))
            .arg(&snapshot.aggregate_type)
            .arg(snapshot.stream_version.get())
            .arg(snapshot.schema_version)
            .arg(state)
            .arg(snapshot.taken_at.as_micros())
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        Ok(())
    }
}
