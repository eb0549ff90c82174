//! Test support: a fresh schema per test on the server named by DATABASE_URL.

// Each test binary uses a different part of this module.
#![allow(dead_code)]
// Test support: a failed setup step must fail the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use es_postgres::{PgEventStore, PgProjectionStore, PgSchema};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The server tests run against unless DATABASE_URL says otherwise.
pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A small pool (many tests run at once against max_connections = 100).
pub(crate) async fn pool(max: u32) -> PgPool {
    let url = database_url();
    match PgPoolOptions::new().max_connections(max).connect(&url).await {
        Ok(pool) => pool,
        Err(error) => panic!(
            "cannot reach Postgres at {url} ({error}): set DATABASE_URL or run scripts/test.sh, which starts one"
        ),
    }
}

/// A new, migrated schema named `es_test_<uuid v7>`; drop these with
/// `drop_test_schemas` or by name.
pub(crate) async fn fresh_schema(pool: &PgPool) -> PgSchema {
    let schema = PgSchema::new(format!("es_test_{}", uuid::Uuid::now_v7().simple())).unwrap();
    es_postgres::migrate(pool, &schema).await.unwrap();
    schema
}

pub(crate) async fn fresh_event_store() -> PgEventStore {
    let pool = pool(3).await;
    let schema = fresh_schema(&pool).await;
    PgEventStore::with_schema(pool, schema)
}

pub(crate) async fn fresh_projection_store() -> PgProjectionStore {
    let pool = pool(3).await;
    let schema = fresh_schema(&pool).await;
    PgProjectionStore::with_schema(pool, schema)
}

/// Drops one test schema with everything in it.
pub(crate) async fn drop_schema(pool: &PgPool, schema: &PgSchema) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
        .execute(pool)
        .await
        .unwrap();
}
