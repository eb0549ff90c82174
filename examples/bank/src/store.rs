//! Where the bank keeps its data, and the application built on it.
//!
//! Chosen in this order, for the demo, the service and the inspector alike:
//!
//! 1. the in-memory store, with `--memory` or `BANK_STORE=memory`
//!    (everything is forgotten when the process ends);
//! 2. Postgres, when `DATABASE_URL` is set (schema `bank`, or `BANK_SCHEMA`);
//! 3. otherwise an SQLite file: `--db PATH`, or `BANK_DB`, or by default
//!    `bank.db` in the user's data directory (`$XDG_DATA_HOME/es-bank`, else
//!    `~/.local/share/es-bank`, else the current directory). No server is
//!    needed, and the next run finds what this one stored.

use std::path::{Path, PathBuf};

use anyhow::Context;
use es_core::readside::ReadSideBuilder;
use es_core::store::EventStore;
use es_core::{Es, GlobalPosition, ReadSide};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
use es_sqlite::{SqliteDatabase, SqliteEventStore, SqliteLeaseStore, SqliteProjectionStore};
use sqlx::postgres::PgPoolOptions;

use crate::Account;

/// The environment variable that picks the in-memory store (`memory`).
pub const STORE_ENV: &str = "BANK_STORE";
/// The environment variable naming the SQLite file.
pub const DB_ENV: &str = "BANK_DB";
/// The environment variable naming the Postgres database.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
/// The environment variable naming the Postgres schema (default `bank`).
pub const SCHEMA_ENV: &str = "BANK_SCHEMA";

/// Which store the bank runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// The in-memory store: nothing survives the process.
    Memory,
    /// An SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A Postgres database, in one schema.
    Postgres {
        /// The connection URL.
        url: String,
        /// The schema holding the bank's tables.
        schema: String,
    },
}

impl StoreChoice {
    /// The store the flags and the environment ask for (see the module
    /// docs): `memory` is the `--memory` flag, `db` the `--db` path.
    pub fn select(memory: bool, db: Option<PathBuf>) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        if memory || env(STORE_ENV).is_some_and(|store| store.eq_ignore_ascii_case("memory")) {
            return Self::Memory;
        }
        if let Some(url) = env(DATABASE_URL_ENV) {
            let schema = env(SCHEMA_ENV).unwrap_or_else(|| "bank".to_owned());
            return Self::Postgres { url, schema };
        }
        Self::Sqlite(db.or_else(|| env(DB_ENV).map(PathBuf::from)).unwrap_or_else(default_db_path))
    }

    /// Says where the data is, for a person.
    pub fn describe(&self) -> String {
        match self {
            Self::Memory => "the in-memory store (nothing is kept after exit)".to_owned(),
            Self::Sqlite(path) => format!("SQLite file {}", path.display()),
            Self::Postgres { schema, .. } => format!("Postgres (schema `{schema}`)"),
        }
    }
}

/// `bank.db` in the user's data directory, or in the current directory
/// when there is none.
pub fn default_db_path() -> PathBuf {
    let data_dir =
        std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()).map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| Path::new(&home).join(".local").join("share"))
        });
    match data_dir {
        Some(dir) => dir.join("es-bank").join("bank.db"),
        None => PathBuf::from("bank.db"),
    }
}

/// Builds the bank application on `choice`, with its whole read side
/// (`configure` may adjust the read side before it starts). Creates the
/// tables (or the SQLite file and its directory) when missing.
///
/// # Errors
/// When the store cannot be opened or migrated, or the application not built.
pub async fn open(
    choice: &StoreChoice,
    configure: impl FnOnce(ReadSideBuilder) -> ReadSideBuilder,
) -> anyhow::Result<Es> {
    let read_side = configure(ReadSide::builder());
    let es = match choice {
        StoreChoice::Memory => {
            let store = InMemoryEventStore::new();
            Es::builder()
                .event_store(store.clone())
                .snapshot_store(store)
                .projection_store(InMemoryProjectionStore::new())
                .read_side(read_side)
                .build()
                .await?
        }
        StoreChoice::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the directory {}", dir.display()))?;
            }
            let db = SqliteDatabase::open(path).await?;
            db.migrate().await?;
            let events = SqliteEventStore::new(db.clone());
            // Leases in the file: several processes on one file (the service
            // and `bank inspect`, say) run each subscription in one of them.
            Es::builder()
                .event_store(events.clone())
                .snapshot_store(events)
                .projection_store(SqliteProjectionStore::new(db.clone()))
                .read_side(read_side.lease_store(SqliteLeaseStore::new(db)))
                .build()
                .await?
        }
        StoreChoice::Postgres { url, schema } => {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .connect(url)
                .await
                .with_context(|| format!("cannot connect to {DATABASE_URL_ENV} {url}"))?;
            let schema = PgSchema::new(schema.clone())?;
            let events = PgEventStore::with_schema(pool.clone(), schema.clone());
            events.migrate().await?;
            let leases = PgLeaseStore::with_schema(pool.clone(), schema.clone());
            leases.migrate().await?;
            // Leases in Postgres: when several nodes run this binary, each
            // subscription runs on one of them at a time.
            Es::builder()
                .event_store(events.clone())
                .snapshot_store(events)
                .projection_store(PgProjectionStore::with_schema(pool, schema))
                .read_side(read_side.lease_store(leases))
                .build()
                .await?
        }
    };
    Ok(es)
}

/// What a store already holds: its events and its accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    /// Stored events, every stream.
    pub events: u64,
    /// Account streams.
    pub accounts: u64,
}

/// Counts what `store` holds, in pages.
///
/// # Errors
/// When the store cannot be read.
pub async fn contents(store: &dyn EventStore) -> anyhow::Result<Contents> {
    const PAGE: usize = 1_000;
    let mut events = 0;
    let mut after = GlobalPosition::START;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        events += page.len() as u64;
    }
    let mut accounts = 0;
    let prefix = format!("{}-", <Account as es_core::Aggregate>::NAME);
    let mut after = None;
    loop {
        let page = store.streams(&prefix, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.stream_id.clone());
        accounts += page.len() as u64;
    }
    Ok(Contents { events, accounts })
}
