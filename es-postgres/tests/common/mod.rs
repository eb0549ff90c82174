//! Test support: a fresh schema per test on the server named by DATABASE_URL.

// Each test binary uses a different part of this module.
#![allow(dead_code)]
// Test support: a failed setup step must fail the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod proxy;
pub(crate) mod readside;
pub(crate) mod tallies;

use std::sync::atomic::{AtomicBool, Ordering};

use es_core::store::{EventStore, WakeupMark};
use es_core::{GlobalPosition, StreamId};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The server tests run against unless DATABASE_URL says otherwise.
pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A small pool (many tests run at once against max_connections = 100).
pub(crate) async fn pool(max: u32) -> PgPool {
    let url = database_url();
    // A transaction a test leaves open (a task dropped mid-transaction)
    // would hold every reader of the cluster back and block dropping the
    // schema: the server ends it after a while instead.
    let options = match url.parse::<PgConnectOptions>() {
        Ok(options) => options.options([("idle_in_transaction_session_timeout", "30s")]),
        Err(error) => panic!("DATABASE_URL {url} is not a Postgres URL: {error}"),
    };
    match PgPoolOptions::new().max_connections(max).connect_with(options).await {
        Ok(pool) => pool,
        Err(error) => panic!(
            "cannot reach Postgres at {url} ({error}): set DATABASE_URL or run scripts/test.sh, which starts one"
        ),
    }
}

/// Waits (bounded) until a connection of `pool` is idle in it (sqlx hands
/// a connection back on a task of its own, after a ping).
pub(crate) async fn until_idle(pool: &PgPool) {
    let idle = async {
        // sqlx's idle count can wrap below zero for a moment (a connection
        // taken before its return was counted): a count above the pool's
        // size is no idle connection.
        while !(1..=pool.size() as usize).contains(&pool.num_idle()) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), idle)
        .await
        .expect("the connection never came back to the pool");
}

/// Waits (short waits, bounded) until `store` has a listener running
/// whose wake-up mark is not `other_than`, starting one if none runs (the
/// first wait starts it; connecting can take longer than one short wait
/// on a busy machine). Returns that mark.
pub(crate) async fn listening_mark(
    store: &PgEventStore,
    head: GlobalPosition,
    other_than: Option<WakeupMark>,
) -> WakeupMark {
    let listening = async {
        loop {
            store.wait_for_events(head, std::time::Duration::from_millis(10)).await;
            match store.wakeup_mark() {
                Some(mark) if Some(mark) != other_than => return mark,
                _ => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), listening)
        .await
        .expect("no listener started within 30 s")
}

/// Test schemas older than this are left over from earlier runs (tests whose
/// store the conformance macro consumes cannot drop theirs).
const STALE_AFTER_MS: u128 = 60 * 60 * 1000;

/// Drops `es_test_<uuid v7>` schemas created more than an hour ago (the
/// UUID v7's first 48 bits are its creation time in ms). Once per process.
async fn sweep_stale_schemas(pool: &PgPool) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'es\\_test\\_%'")
            .fetch_all(pool)
            .await
            .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    for name in names {
        let created =
            name.strip_prefix("es_test_").and_then(|hex| u128::from_str_radix(hex.get(..12)?, 16).ok());
        if created.is_some_and(|ms| now.saturating_sub(ms) > STALE_AFTER_MS) {
            if let Ok(schema) = PgSchema::new(name) {
                drop_schema(pool, &schema).await;
            }
        }
    }
}

/// A new, migrated schema named `es_test_<uuid v7>`. Tests drop theirs with
/// [`drop_schema`]; leftovers are swept after an hour.
pub(crate) async fn fresh_schema(pool: &PgPool) -> PgSchema {
    sweep_stale_schemas(pool).await;
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

pub(crate) async fn fresh_lease_store() -> PgLeaseStore {
    let pool = pool(3).await;
    let schema = fresh_schema(&pool).await;
    PgLeaseStore::with_schema(pool, schema)
}

/// A lease store and a projection store in one fresh schema: the projection
/// store checks fences against the lease store's leases.
pub(crate) async fn fresh_leases_and_projections() -> (PgLeaseStore, PgProjectionStore) {
    let pool = pool(3).await;
    let schema = fresh_schema(&pool).await;
    (PgLeaseStore::with_schema(pool.clone(), schema.clone()), PgProjectionStore::with_schema(pool, schema))
}

/// Stores, behind the store's back, a row of `stream` that no envelope can
/// be made of (stream version 0; the table's constraints allow it, an
/// operator's hand edit could do it), in its own transaction after
/// everything stored so far; returns its global position.
pub(crate) async fn plant_corrupt_row(store: PgEventStore, stream: StreamId) -> GlobalPosition {
    let position: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{}\".events (global_position, event_id, stream_id, stream_version, aggregate_type,
             event_type, schema_version, payload, metadata)
         VALUES (pg_current_xact_id()::text::bigint << 20, $1, $2, 0, 'test', 'Tested', 1, '{{}}', '{{}}')
         RETURNING global_position",
        store.schema()
    )))
    .bind(uuid::Uuid::now_v7())
    .bind(stream.as_str())
    .fetch_one(store.pool())
    .await
    .unwrap();
    GlobalPosition(u64::try_from(position).unwrap())
}

/// Drops one test schema with everything in it.
pub(crate) async fn drop_schema(pool: &PgPool, schema: &PgSchema) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
        .execute(pool)
        .await
        .unwrap();
}
