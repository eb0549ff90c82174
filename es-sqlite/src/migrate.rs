//! Migrations: the tables, indexes and triggers es keeps in the file.
//!
//! The SQL ships inside the crate (`migrate/*.sql`). [`migrate`] applies
//! what the file lacks in one write transaction (`BEGIN IMMEDIATE`), which
//! holds the file's write lock from the start: when two processes migrate
//! at once, the second waits (up to the busy timeout), then finds every
//! step applied.

use std::path::PathBuf;

use crate::clock;
use crate::database::SqliteDatabase;
use crate::error::SqliteError;

/// One step of the file's history.
struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Never edit a released step: add one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "events, deletion switch, snapshots, projection documents, checkpoints, leases",
    sql: include_str!("migrate/0001_initial.sql"),
}];

/// Applying migrations failed; the file was left as it was before.
#[derive(Debug, thiserror::Error)]
#[error("migrating SQLite database `{}` failed while {step}", path.display())]
pub struct MigrateError {
    /// The database file.
    pub path: PathBuf,
    /// What was being done, such as `applying migration 1`.
    pub step: String,
    /// What went wrong.
    #[source]
    pub source: MigrateFailure,
}

/// Why a migration step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateFailure {
    /// The database failed (locked, corrupt, unusable, ...).
    #[error(transparent)]
    Database(#[from] SqliteError),
    /// The file was migrated by a newer es-sqlite than this one.
    #[error("the file has migration {found}, newer than the newest this es-sqlite knows ({known})")]
    NewerFile {
        /// The newest migration the file has.
        found: i64,
        /// The newest migration this version knows.
        known: i64,
    },
}

/// Creates or upgrades the es tables in `db`'s file. Idempotent, and safe
/// when several processes call it at once.
pub(crate) async fn migrate(db: &SqliteDatabase) -> Result<(), MigrateError> {
    let fail = |step: &str| {
        let path = db.path().to_owned();
        let step = step.to_owned();
        move |source: MigrateFailure| MigrateError { path, step, source }
    };
    let sqlx_fail = |step: &str| {
        let fail = fail(step);
        move |error: sqlx::Error| fail(MigrateFailure::Database(db.write_error(error)))
    };
    let mut tx = db.begin_write().await.map_err(|e| fail("taking the write lock")(e.into()))?;
    sqlx::raw_sql(include_str!("migrate/bootstrap.sql"))
        .execute(&mut *tx)
        .await
        .map_err(sqlx_fail("creating the migrations table"))?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM es_schema_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await
        .map_err(sqlx_fail("reading applied migrations"))?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&found) = applied.iter().find(|v| **v > known) {
        return Err(fail("checking the file's migrations")(MigrateFailure::NewerFile { found, known }));
    }
    let record = clock::render(
        "INSERT INTO es_schema_migrations (version, description, applied_at) VALUES (?1, ?2, {now})",
    );
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let step = format!("applying migration {} ({})", migration.version, migration.description);
        sqlx::raw_sql(migration.sql).execute(&mut *tx).await.map_err(sqlx_fail(&step))?;
        sqlx::query(record.clone())
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *tx)
            .await
            .map_err(sqlx_fail(&step))?;
        tracing::info!(path = %db.path().display(), version = migration.version, "applied es migration");
    }
    tx.commit().await.map_err(sqlx_fail("committing"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration {} is out of order", m.description);
        }
    }
}
