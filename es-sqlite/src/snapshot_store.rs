//! Snapshots in SQLite: one row per stream, the newest kept.

use async_trait::async_trait;
use es_core::error::StoreError;
use es_core::store::{Snapshot, SnapshotStore, Timestamp};
use es_core::{StreamId, StreamVersion};
use serde_json::Value;

use crate::event_store::{column, positive, schema_version, SqliteEventStore};

const LOAD: &str = include_str!("snapshot_store/load.sql");
const SAVE: &str = include_str!("snapshot_store/save.sql");

#[async_trait]
impl SnapshotStore for SqliteEventStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let db = self.database();
        let row = sqlx::query(LOAD)
            .bind(stream.as_str())
            .fetch_optional(db.readers())
            .await
            .map_err(|e| StoreError::Backend(Box::new(db.read_error(e))))?;
        let Some(row) = row else { return Ok(None) };
        let location = || format!("snapshot of stream `{stream}`");
        let version: i64 = column(&row, 1, &location)?;
        let state: &str = column(&row, 3, &location)?;
        let state: Value = serde_json::from_str(state).map_err(|e| StoreError::Corrupt {
            location: location(),
            position: None,
            detail: format!("the state is not JSON: {e}"),
        })?;
        Ok(Some(Snapshot {
            stream_id: stream.clone(),
            aggregate_type: column(&row, 0, &location)?,
            stream_version: StreamVersion(positive(version, "stream version", &location)?),
            schema_version: schema_version(column(&row, 2, &location)?, &location)?,
            state,
            taken_at: Timestamp(column(&row, 4, &location)?),
        }))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let db = self.database();
        let version = i64::try_from(snapshot.stream_version.get()).map_err(|_| {
            StoreError::Backend(
                format!(
                    "snapshot of stream `{}`: stream version {} does not fit an SQLite integer",
                    snapshot.stream_id, snapshot.stream_version
                )
                .into(),
            )
        })?;
        let mut conn = db.writer().await.map_err(|e| StoreError::Backend(Box::new(e)))?;
        sqlx::query(SAVE)
            .bind(snapshot.stream_id.as_str())
            .bind(&snapshot.aggregate_type)
            .bind(version)
            .bind(i64::from(snapshot.schema_version))
            .bind(snapshot.state.to_string())
            .bind(snapshot.taken_at.as_micros())
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::Backend(Box::new(db.write_error(e))))?;
        Ok(())
    }
}
