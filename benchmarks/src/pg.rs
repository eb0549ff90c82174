//! Postgres helpers: connecting, a throwaway schema, and the raw-INSERT
//! baseline the event store is compared with.

use std::sync::Arc;

use es_core::store::NewEvent;
use es_postgres::PgSchema;
use sqlx::postgres::PgPoolOptions;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool};

use super::{run_writers, Run};

/// `DATABASE_URL`, or the local default
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A pool of at most `connections` connections to `url`.
///
/// # Errors
/// When Postgres cannot be reached.
pub async fn pool(url: &str, connections: u32) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new().max_connections(connections).connect(url).await?)
}

/// A small pool for setup and teardown, with an error that says how to
/// get a server.
///
/// # Errors
/// When Postgres cannot be reached.
pub async fn admin_pool(url: &str) -> anyhow::Result<PgPool> {
    pool(url, 2).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach Postgres at {url} ({e}): set DATABASE_URL or run scripts/test.sh, which starts one"
        )
    })
}

/// Creates and migrates a fresh schema `es_bench_<uuid>`.
///
/// # Errors
/// When migrating fails.
pub async fn fresh_schema(admin: &PgPool) -> anyhow::Result<PgSchema> {
    let schema = PgSchema::new(format!("es_bench_{}", uuid::Uuid::now_v7().simple()))?;
    es_postgres::migrate(admin, &schema).await?;
    Ok(schema)
}

/// Drops `schema` and everything in it.
///
/// # Errors
/// When the statement fails.
pub async fn drop_schema(admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(admin).await?;
    Ok(())
}

/// Prints the first line of a Postgres benchmark: `program: Postgres
/// <version> (synchronous_commit = <setting>), schema <schema>`.
///
/// # Errors
/// When the queries fail.
pub async fn print_server(program: &str, admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(admin).await?;
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(admin).await?;
    println!("{program}: Postgres {server} (synchronous_commit = {sync}), schema {schema}");
    Ok(())
}

/// Runs `bench` with the [`database_url`], an [`admin_pool`] and a
/// [`fresh_schema`], then drops the schema whether `bench` succeeded or not.
///
/// # Errors
/// When Postgres cannot be reached, setting up or dropping the schema
/// fails, or `bench` fails.
pub async fn in_fresh_schema(
    bench: impl AsyncFnOnce(&str, &PgPool, &PgSchema) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let url = database_url();
    let admin = admin_pool(&url).await?;
    let schema = fresh_schema(&admin).await?;
    let outcome = bench(&url, &admin, &schema).await;
    drop_schema(&admin, &schema).await?;
    outcome
}

/// Gives the planner the statistics a running database has (fresh
/// tables have none until autovacuum gets to them).
///
/// # Errors
/// When the statement fails.
pub async fn analyze(admin: &PgPool, schema: &PgSchema, table: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE {schema}.{table}"))).execute(admin).await?;
    Ok(())
}

/// The two raw baselines es is compared with, so the cost of es's
/// schema and the cost of its code show apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawTable {
    /// `raw_minimal`: an identity key and a JSONB payload, nothing else:
    /// the way people usually write a row to Postgres.
    Minimal,
    /// `raw_events`: the columns, keys and unique indexes of es's
    /// `events` table, none of its position scheme, version check,
    /// trigger or notification.
    EsColumns,
}

impl RawTable {
    /// Both, minimal first.
    pub const BOTH: [RawTable; 2] = [RawTable::Minimal, RawTable::EsColumns];

    /// How the figures name it.
    pub fn label(self) -> &'static str {
        match self {
            RawTable::Minimal => "raw INSERT, minimal table",
            RawTable::EsColumns => "raw INSERT, es columns+indexes",
        }
    }

    /// The INSERT of `events` rows (one statement, its own transaction).
    pub fn sql(self, schema: &PgSchema, events: usize) -> String {
        match (self, events) {
            (RawTable::Minimal, 1) => format!("INSERT INTO {schema}.raw_minimal (payload) VALUES ($1)"),
            (RawTable::Minimal, _) => {
                format!("INSERT INTO {schema}.raw_minimal (payload) SELECT unnest($1::jsonb[])")
            }
            (RawTable::EsColumns, 1) => format!(
                "INSERT INTO {schema}.raw_events (event_id, stream_id, stream_version, aggregate_type, \
                 event_type, schema_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            (RawTable::EsColumns, _) => format!(
                "INSERT INTO {schema}.raw_events (event_id, stream_id, stream_version, aggregate_type, \
                 event_type, schema_version, payload, metadata)
                 SELECT u.id, $2, u.v, u.a, u.t, u.s, u.p, u.m
                 FROM unnest($1::uuid[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::jsonb[], \
                 $8::jsonb[]) AS u(id, v, a, t, s, p, m)"
            ),
        }
    }
}

/// Creates both raw tables in `schema`.
///
/// # Errors
/// When a statement fails.
pub async fn create_raw_tables(pool: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"CREATE TABLE {schema}.raw_events (
        global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id uuid NOT NULL UNIQUE,
        stream_id text COLLATE "C" NOT NULL,
        stream_version bigint NOT NULL,
        aggregate_type text NOT NULL,
        event_type text NOT NULL,
        schema_version bigint NOT NULL,
        payload jsonb NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{{}}',
        recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
        UNIQUE (stream_id, stream_version)
    );
    CREATE TABLE {schema}.raw_minimal (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payload jsonb NOT NULL
    )"#
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// Inserts `events` into `table` as versions `first_version..` of
/// `stream`, in one statement (its own transaction); `sql` is
/// [`RawTable::sql`] for that many events.
///
/// # Errors
/// When the statement fails.
pub async fn raw_insert(
    pool: &PgPool,
    table: RawTable,
    sql: &str,
    stream: &str,
    first_version: usize,
    events: &[NewEvent],
) -> anyhow::Result<()> {
    let payloads: Vec<Json<&es_core::store::Payload>> = events.iter().map(|e| Json(&e.payload)).collect();
    if table == RawTable::Minimal {
        let query = sqlx::query(AssertSqlSafe(sql));
        let query = if events.len() == 1 { query.bind(payloads[0]) } else { query.bind(&payloads) };
        query.execute(pool).await?;
        return Ok(());
    }
    let ids: Vec<_> = events.iter().map(|e| e.event_id.as_uuid()).collect();
    let versions: Vec<i64> = (0..events.len()).map(|i| (first_version + i) as i64).collect();
    let aggregate_types: Vec<&str> = events.iter().map(|e| e.aggregate_type.as_str()).collect();
    let event_types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let schema_versions: Vec<i64> = events.iter().map(|e| i64::from(e.schema_version)).collect();
    let metadata: Vec<Json<&es_core::Metadata>> = events.iter().map(|e| Json(&e.metadata)).collect();
    if events.len() == 1 {
        sqlx::query(AssertSqlSafe(sql))
            .bind(ids[0])
            .bind(stream)
            .bind(versions[0])
            .bind(aggregate_types[0])
            .bind(event_types[0])
            .bind(schema_versions[0])
            .bind(payloads[0])
            .bind(metadata[0])
            .execute(pool)
            .await?;
    } else {
        sqlx::query(AssertSqlSafe(sql))
            .bind(&ids)
            .bind(stream)
            .bind(&versions)
            .bind(&aggregate_types)
            .bind(&event_types)
            .bind(&schema_versions)
            .bind(&payloads)
            .bind(&metadata)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// `writers` tasks inserting into `table` in `schema`, each `per_writer` times
/// `batch` events (`event(n)` is event `n` of the writer's stream,
/// counted from 0) into its own stream `stream(writer)`.
///
/// # Errors
/// The first failed insert.
#[allow(clippy::too_many_arguments)] // reason: each names one dimension of the run
pub async fn raw_runs<S, E>(
    pool: &PgPool,
    schema: &PgSchema,
    table: RawTable,
    writers: usize,
    per_writer: usize,
    batch: usize,
    stream: S,
    event: E,
) -> anyhow::Result<Run>
where
    S: Fn(usize) -> String + Send + Sync + 'static,
    E: Fn(usize) -> NewEvent + Send + Sync + 'static,
{
    let pool = pool.clone();
    let sql: Arc<str> = table.sql(schema, batch).into();
    let event = Arc::new(event);
    run_writers(writers, per_writer, batch, move |w, i| {
        let (pool, sql, event) = (pool.clone(), sql.clone(), event.clone());
        let stream = stream(w);
        async move {
            let events: Vec<NewEvent> = (0..batch).map(|n| event(i * batch + n)).collect();
            raw_insert(&pool, table, &sql, &stream, i * batch + 1, &events).await
        }
    })
    .await
}
