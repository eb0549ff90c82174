//! Test support: each test gets its own database file in a fresh directory
//! under the system's temporary directory (`es-sqlite-<uuid>`), removed
//! when the test's last handle on it is dropped.

// Each test binary uses a different part of this module.
#![allow(dead_code)]
// Test support: a failed setup step must fail the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

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
