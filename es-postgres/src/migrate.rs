//! Migrations: the tables, indexes and triggers of one es schema.
//!
//! The SQL ships inside the crate (`migrate/*.sql`). [`migrate`] applies
//! what a schema lacks, in one transaction that first takes a transaction
//! level advisory lock keyed by the schema name, so two nodes starting at
//! once apply each step exactly once and the second waits for the first.

use sqlx::PgPool;

use crate::schema::PgSchema;

/// One step of the schema's history.
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Never edit a released step: add one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "events, snapshots, projection documents and checkpoints",
        sql: include_str!("migrate/0001_initial.sql"),
    },
    Migration {
        version: 2,
        description: "subscription leases",
        sql: include_str!("migrate/0002_leases.sql"),
    },
    Migration {
        version: 3,
        description: "checkpoints per subscription name, with the end of a replay",
        sql: include_str!("migrate/0003_checkpoint_replay.sql"),
    },
    Migration {
        version: 4,
        description: "containment indexes per projection instead of one over all documents",
        sql: include_str!("migrate/0004_containment_index_per_projection.sql"),
    },
    Migration {
        version: 5,
        description: "the lease token as part of a key, so that renewals do not wait for fenced commits",
        sql: include_str!("migrate/0005_lease_token_key.sql"),
    },
];

/// Applying migrations failed; the schema was left as it was before.
#[derive(Debug, thiserror::Error)]
#[error("migrating schema `{schema}` failed while {step}")]
pub struct MigrateError {
    /// The schema being migrated.
    pub schema: String,
    /// What was being done, such as `applying migration 1`.
    pub step: String,
    /// The database's error.
    #[source]
    pub source: sqlx::Error,
}

/// Creates or upgrades the es tables in `schema`. Idempotent, and safe when
/// several processes call it at once.
///
/// # Errors
/// [`MigrateError`] naming the step that failed (connecting, locking,
/// applying migration N); nothing of the run is kept.
pub async fn migrate(pool: &PgPool, schema: &PgSchema) -> Result<(), MigrateError> {
    let fail = |step: String| {
        let schema = schema.as_str().to_owned();
        move |source| MigrateError { schema, step, source }
    };
    let mut tx = crate::bounded::begin(pool, None).await.map_err(fail("beginning a transaction".into()))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("es-postgres migrate {}", schema.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(fail("taking the migration lock".into()))?;
    sqlx::raw_sql(schema.render(include_str!("migrate/bootstrap.sql")))
        .execute(&mut *tx)
        .await
        .map_err(fail("creating the schema and its migrations table".into()))?;
    let applied: Vec<i32> =
        sqlx::query_scalar(schema.render("SELECT version FROM {schema}.schema_migrations"))
            .fetch_all(&mut *tx)
            .await
            .map_err(fail("reading applied migrations".into()))?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let step = || format!("applying migration {} ({})", migration.version, migration.description);
        sqlx::raw_sql(schema.render(migration.sql)).execute(&mut *tx).await.map_err(fail(step()))?;
        sqlx::query(
            schema.render("INSERT INTO {schema}.schema_migrations (version, description) VALUES ($1, $2)"),
        )
        .bind(migration.version)
        .bind(migration.description)
        .execute(&mut *tx)
        .await
        .map_err(fail(step()))?;
        tracing::info!(schema = schema.as_str(), version = migration.version, "applied es migration");
    }
    tx.commit().await.map_err(fail("committing".into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "migration {} is out of order", m.description);
        }
    }
}
