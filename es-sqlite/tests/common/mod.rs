//! Test support: each test gets its own database file in a fresh directory
//! under the system's temporary directory (`es-sqlite-<uuid>`), removed
//! when the test's last handle on it is dropped.

// Each test binary uses a different part of this module.
#![allow(dead_code)]
// Test support: a failed setup step must fail the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use es_core::{GlobalPosition, StreamId};
use es_sqlite::{SqliteDatabase, SqliteEventStore, SqliteLeaseStore, SqliteOptions, SqliteProjectionStore};

/// A fresh, migrated database in its own temporary file.
pub(crate) async fn fresh_database() -> SqliteDatabase {
    fresh_database_with(SqliteOptions::new()).await
}

pub(crate) async fn fresh_database_with(options: SqliteOptions) -> SqliteDatabase {
    let db = SqliteDatabase::temporary_with(options).await.unwrap();
    db.migrate().await.unwrap();
    db
}

pub(crate) async fn fresh_event_store() -> SqliteEventStore {
    SqliteEventStore::new(fresh_database().await)
}

pub(crate) async fn fresh_projection_store() -> SqliteProjectionStore {
    SqliteProjectionStore::new(fresh_database().await)
}

pub(crate) async fn fresh_lease_store() -> SqliteLeaseStore {
    SqliteLeaseStore::new(fresh_database().await)
}

/// A directory of its own under the temporary directory, for tests that
/// open files by path; removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("es-sqlite-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lease store and a projection store on one fresh file: the projection
/// store checks fences against the lease store's leases.
pub(crate) async fn fresh_leases_and_projections() -> (SqliteLeaseStore, SqliteProjectionStore) {
    let db = fresh_database().await;
    (SqliteLeaseStore::new(db.clone()), SqliteProjectionStore::new(db))
}

/// Stores, behind the store's back, a row of `stream` that no envelope can
/// be made of (an event id of 3 bytes, not a UUID's 16: the table's
/// constraints allow it, a hand edit or a foreign writer could do it), in
/// its own transaction after everything stored so far; returns its global
/// position.
pub(crate) async fn plant_corrupt_row(store: SqliteEventStore, stream: StreamId) -> GlobalPosition {
    let mut writer = store.database().writer().await.unwrap();
    let position: i64 = sqlx::query_scalar(
        "INSERT INTO es_events (event_id, stream_id, stream_version, aggregate_type, event_type,
             schema_version, payload, metadata, recorded_at)
         VALUES (x'010203', ?1, 1, 'test', 'Tested', 1, '{}', '{}', 0)
         RETURNING global_position",
    )
    .bind(stream.as_str())
    .fetch_one(&mut *writer)
    .await
    .unwrap();
    GlobalPosition(u64::try_from(position).unwrap())
}
