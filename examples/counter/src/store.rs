//! The store a run uses, chosen by one flag: `--store memory|sqlite|postgres|redis`.
//!
//! | store | where | what is left afterwards |
//! |---|---|---|
//! | `sqlite` (the default) | a temporary file, or the file given with `--file` | the `--file` file, if given; nothing otherwise |
//! | `memory` | the process | nothing |
//! | `postgres` | `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), in a fresh schema `counter_<uuid>` | nothing: the schema is dropped at the end |
//! | `redis` | `REDIS_URL` (default `redis://127.0.0.1:6379`), in a fresh namespace `counter-<uuid>` | nothing: the namespace is deleted at the end |
//!
//! Every store runs the same domain and the same read model; only the
//! `counters` read model changes shape (see [`crate::counters`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context as _;
use es_core::readside::{ReadSideBuilder, Registry, Selection};
use es_core::runtime::EsBuilder;
use es_core::store::{EventStore, ProjectionStore, SnapshotStore};
use es_core::{Es, ReadSide};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use es_postgres::{PgEventStore, PgProjectionStore, PgSchema};
use es_redis::{RedisConnection, RedisEventStore, RedisNamespace, RedisProjectionStore};
use es_sqlite::{SqliteDatabase, SqliteEventStore, SqliteProjectionStore};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::counters::{CounterRow, CountersTable, SqlTable, COUNTERS, COUNTERS_TABLE};

/// Which store a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// The in-memory store: forgets everything when the process ends.
    Memory,
    /// SQLite, in one file, no server (the default).
    #[default]
    Sqlite,
    /// Postgres, at `DATABASE_URL`.
    Postgres,
    /// Redis, at `REDIS_URL`.
    Redis,
}

impl StoreKind {
    /// Every store, in the order the README lists them.
    pub const ALL: [StoreKind; 4] = [Self::Memory, Self::Sqlite, Self::Postgres, Self::Redis];
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Redis => "redis",
        })
    }
}

/// A store name that is none of `memory`, `sqlite`, `postgres`, `redis`.
#[derive(Debug, thiserror::Error)]
#[error("unknown store `{0}`: pick one of memory, sqlite, postgres, redis")]
pub struct UnknownStore(String);

impl FromStr for StoreKind {
    type Err = UnknownStore;

    fn from_str(name: &str) -> Result<Self, UnknownStore> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.to_string() == name)
            .ok_or_else(|| UnknownStore(name.to_owned()))
    }
}

/// The opened stores of one run, and how to clean up after it.
pub struct Backend {
    kind: StoreKind,
    /// Where the data is, for the narration.
    pub location: String,
    events: Arc<dyn EventStore>,
    snapshots: Arc<dyn SnapshotStore>,
    documents: Arc<dyn ProjectionStore>,
    table: Option<SqlTable>,
    cleanup: Cleanup,
}

enum Cleanup {
    Nothing,
    Sqlite(SqliteDatabase),
    Postgres(PgPool, PgSchema),
    Redis(RedisConnection, RedisNamespace),
}

impl Backend {
    /// Opens `kind` (on SQLite, in `file` if given, else in a temporary
    /// file) and prepares it: migrations, the `counters` table.
    ///
    /// # Errors
    /// If the store cannot be reached or prepared; the message names it.
    pub async fn open(kind: StoreKind, file: Option<PathBuf>) -> anyhow::Result<Self> {
        let run = uuid::Uuid::now_v7().simple().to_string();
        match kind {
            StoreKind::Memory => {
                let (events, documents) = (InMemoryEventStore::new(), InMemoryProjectionStore::new());
                Ok(Self::new(kind, "memory".into(), events, documents, None, Cleanup::Nothing))
            }
            StoreKind::Sqlite => {
                let db = match &file {
                    Some(path) => SqliteDatabase::open(path).await,
                    None => SqliteDatabase::temporary().await,
                }
                .context("opening the SQLite database")?;
                db.migrate().await.context("migrating the SQLite database")?;
                let table = SqlTable::Sqlite(db.clone());
                table.create().await?;
                let location = match file {
                    Some(_) => format!("SQLite file {}", db.path().display()),
                    None => format!(
                        "SQLite temporary file {} (removed at the end; --file PATH keeps one)",
                        db.path().display()
                    ),
                };
                let events = SqliteEventStore::new(db.clone());
                let documents = SqliteProjectionStore::new(db.clone());
                Ok(Self::new(kind, location, events, documents, Some(table), Cleanup::Sqlite(db)))
            }
            StoreKind::Postgres => {
                let url = std::env::var("DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
                let schema = PgSchema::new(format!("counter_{run}"))?;
                // The es stores name their schema in every statement; the
                // application's own SQL (the counters table) finds its
                // table through the search path.
                let search_path = format!("SET search_path TO \"{schema}\"");
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(std::time::Duration::from_secs(10))
                    .after_connect(move |conn, _| {
                        let search_path = search_path.clone();
                        Box::pin(async move {
                            sqlx::raw_sql(sqlx::AssertSqlSafe(search_path)).execute(conn).await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
                    .with_context(|| format!("connecting to Postgres at {url} (set DATABASE_URL)"))?;
                es_postgres::migrate(&pool, &schema).await.context("migrating the Postgres schema")?;
                let table = SqlTable::Postgres(pool.clone(), schema.clone());
                table.create().await?;
                let events = PgEventStore::with_schema(pool.clone(), schema.clone());
                let documents = PgProjectionStore::with_schema(pool.clone(), schema.clone());
                let location = format!("Postgres at {url}, schema `{schema}` (dropped at the end)");
                Ok(Self::new(kind, location, events, documents, Some(table), Cleanup::Postgres(pool, schema)))
            }
            StoreKind::Redis => {
                let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
                let redis = RedisConnection::connect(&url)
                    .await
                    .with_context(|| format!("connecting to Redis at {url} (set REDIS_URL)"))?;
                let namespace = RedisNamespace::new(format!("counter-{run}"))?;
                let events = RedisEventStore::new(redis.clone(), namespace.clone());
                let documents = RedisProjectionStore::new(redis.clone(), namespace.clone());
                let location =
                    format!("Redis at {url}, namespace `{}` (deleted at the end)", namespace.as_str());
                Ok(Self::new(kind, location, events, documents, None, Cleanup::Redis(redis, namespace)))
            }
        }
    }

    fn new<S: EventStore + SnapshotStore + Clone>(
        kind: StoreKind,
        location: String,
        events: S,
        documents: impl ProjectionStore,
        table: Option<SqlTable>,
        cleanup: Cleanup,
    ) -> Self {
        Self {
            kind,
            location,
            events: Arc::new(events.clone()),
            snapshots: Arc::new(events),
            documents: Arc::new(documents),
            table,
            cleanup,
        }
    }

    /// Which store this is.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The event store, for writing history directly through the port.
    pub fn events(&self) -> &Arc<dyn EventStore> {
        &self.events
    }

    /// The snapshot store (the event store itself, on every store here).
    pub fn snapshots(&self) -> &Arc<dyn SnapshotStore> {
        &self.snapshots
    }

    /// An application builder on these stores (events, snapshots,
    /// documents), without a read side.
    pub fn builder(&self) -> EsBuilder {
        Es::builder()
            .event_store(Arc::clone(&self.events))
            .snapshot_store(Arc::clone(&self.snapshots))
            .projection_store(Arc::clone(&self.documents))
    }

    /// The read side keeping the `counters` read model: the SQL table's
    /// handler on SQLite and Postgres, the document projection otherwise.
    ///
    /// # Errors
    /// If the registry of subscribers cannot be built.
    pub fn read_side(&self) -> anyhow::Result<ReadSideBuilder> {
        let builder = ReadSide::builder();
        Ok(match &self.table {
            Some(table) => {
                let mut registry = Registry::new();
                registry.register(COUNTERS_TABLE, CountersTable::subscriber(table.clone()))?;
                builder.registry(registry)
            }
            None => builder.select(Selection::names([COUNTERS])),
        })
    }

    /// The name of the subscription keeping the `counters` read model here.
    pub fn counters_subscription(&self) -> &'static str {
        if self.table.is_some() {
            COUNTERS_TABLE
        } else {
            COUNTERS
        }
    }

    /// The `counters` row of `id`, from the table or the documents.
    ///
    /// # Errors
    /// If the read fails.
    pub async fn counter_row(&self, id: &str) -> anyhow::Result<Option<CounterRow>> {
        match &self.table {
            Some(table) => table.row(id).await,
            None => crate::counters::document(self.documents.as_ref(), id).await,
        }
    }

    /// Removes what the run stored, unless it was asked to keep it (a
    /// SQLite `--file`); closes the connections.
    pub async fn close(self) {
        match self.cleanup {
            Cleanup::Nothing => {}
            Cleanup::Sqlite(db) => db.close().await,
            Cleanup::Postgres(pool, schema) => {
                let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&pool).await {
                    eprintln!("could not drop schema `{schema}`: {error}");
                }
                pool.close().await;
            }
            Cleanup::Redis(redis, namespace) => {
                if let Err(error) = es_redis::delete_namespace(&redis, &namespace).await {
                    eprintln!("could not delete namespace `{}`: {error}", namespace.as_str());
                }
            }
        }
    }
}
