//! Snapshots in Postgres: one row per stream, the newest kept.

use async_trait::async_trait;
use es_core::error::StoreError;
use es_core::store::{Snapshot, SnapshotStore, Timestamp};
use es_core::{StreamId, StreamVersion};
use serde_json::Value;

use crate::event_store::{column, holds_nul, positive, read_error, schema_version, PgEventStore, PgQuery};

impl PgEventStore {
    /// The statement that loads the snapshot of `stream`. Loads and the
    /// warm-up run it through here, so they bind alike.
    pub(crate) fn load_snapshot_query<'q>(&self, stream: &'q StreamId) -> PgQuery<'q> {
        let (load, _) = self.snapshot_sql();
        sqlx::query(load.clone()).bind(stream.as_str())
    }
}

#[async_trait]
impl SnapshotStore for PgEventStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        if holds_nul(stream) {
            return Ok(None);
        }
        let statement = self.load_snapshot_query(stream);
        let row = self
            .calls()
            .run(async |conn| statement.fetch_optional(conn).await)
            .await
            .map_err(|e| read_error(e, || format!("snapshot of stream `{stream}`")))?;
        let Some(row) = row else { return Ok(None) };
        let location = || format!("snapshot of stream `{stream}`");
        let version: i64 = column(&row, "stream_version", &location)?;
        let state: Value = column(&row, "state", &location)?;
        Ok(Some(Snapshot {
            stream_id: stream.clone(),
            aggregate_type: column(&row, "aggregate_type", &location)?,
            stream_version: StreamVersion(positive(version, "stream version", &location)?),
            schema_version: schema_version(column(&row, "schema_version", &location)?, &location)?,
            state,
            taken_at: Timestamp(column(&row, "taken_at_micros", &location)?),
        }))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let (_, save) = self.snapshot_sql();
        let version = i64::try_from(snapshot.stream_version.get()).map_err(|_| {
            StoreError::Backend(
                format!(
                    "snapshot of stream `{}`: stream version {} does not fit a bigint",
                    snapshot.stream_id, snapshot.stream_version
                )
                .into(),
            )
        })?;
        let statement = sqlx::query(save.clone())
            .bind(snapshot.stream_id.as_str())
            .bind(&snapshot.aggregate_type)
            .bind(version)
            .bind(i64::from(snapshot.schema_version))
            .bind(&snapshot.state)
            .bind(snapshot.taken_at.as_micros());
        self.calls()
            .run(async |conn| statement.execute(conn).await)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(())
    }
}
