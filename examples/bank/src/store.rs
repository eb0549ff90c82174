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
use std::sync::Arc;

use anyhow::Context;
use es_core::readside::{Documents, ReadSideBuilder, Registry};
use es_core::store::{EventStore, ProjectionStore};
use es_core::{Es, GlobalPosition, ReadSide};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
use es_sqlite::{SqliteDatabase, SqliteEventStore, SqliteLeaseStore, SqliteProjectionStore};
use sqlx::postgres::PgPoolOptions;

use crate::{Account, Outbox, Summaries, SummaryTable, ACCOUNT_SUMMARY, TRANSACTION_HISTORY};

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

/// The bank application and where its account summaries are read.
#[derive(Debug, Clone)]
pub struct BankApp {
    /// The application.
    pub es: Es,
    /// The account summaries: documents, or the `account_summaries` table
    /// on Postgres.
    pub summaries: Summaries,
}

impl BankApp {
    /// The mail outbox the welcome mail handler writes to.
    pub fn outbox(&self) -> Option<Outbox> {
        self.es.projection_store().map(|store| Outbox::new(Arc::clone(store)))
    }
}

/// Builds the bank application on `choice`, with its whole read side
/// (`configure` may adjust the read side before it starts) and the
/// [`Outbox`] as the read side's state. Creates the tables (or the SQLite
/// file and its directory) when missing; on Postgres the account summary is
/// the table projection [`SqlAccountSummaries`](crate::SqlAccountSummaries)
/// into the bank's own `account_summaries` table, registered in place of
/// the document projection.
///
/// # Errors
/// When the store cannot be opened or migrated, or the application not built.
pub async fn open(
    choice: &StoreChoice,
    configure: impl FnOnce(ReadSideBuilder) -> ReadSideBuilder,
) -> anyhow::Result<BankApp> {
    let app = match choice {
        StoreChoice::Memory => {
            let store = InMemoryEventStore::new();
            let documents: Arc<dyn ProjectionStore> = Arc::new(InMemoryProjectionStore::new());
            let read_side = configure(ReadSide::builder().state(Outbox::new(Arc::clone(&documents))));
            let es = Es::builder()
                .event_store(store.clone())
                .snapshot_store(store)
                .projection_store(Arc::clone(&documents))
                .read_side(read_side)
                .build()
                .await?;
            BankApp { es, summaries: Summaries::Documents(Documents::new(documents, ACCOUNT_SUMMARY)) }
        }
        StoreChoice::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the directory {}", dir.display()))?;
            }
            let db = SqliteDatabase::open(path).await?;
            db.migrate().await?;
            let events = SqliteEventStore::new(db.clone());
            let documents: Arc<dyn ProjectionStore> = Arc::new(SqliteProjectionStore::new(db.clone()));
            // Leases in the file: several processes on one file (the service
            // and `bank inspect`, say) run each subscription in one of them.
            let read_side = ReadSide::builder()
                .state(Outbox::new(Arc::clone(&documents)))
                .lease_store(SqliteLeaseStore::new(db));
            let es = Es::builder()
                .event_store(events.clone())
                .snapshot_store(events)
                .projection_store(Arc::clone(&documents))
                .read_side(configure(read_side))
                .build()
                .await?;
            BankApp { es, summaries: Summaries::Documents(Documents::new(documents, ACCOUNT_SUMMARY)) }
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
            let table = SummaryTable::new(pool.clone(), &schema);
            table.migrate().await.context("cannot create the account_summaries table")?;
            let mut registry = Registry::from_inventory()?;
            registry.replace(ACCOUNT_SUMMARY, table.subscriber())?;
            let projections = PgProjectionStore::with_schema(pool, schema);
            // An account's history is one containment query on its entries.
            projections
                .index_containment(TRANSACTION_HISTORY)
                .await
                .context("cannot index the transaction history")?;
            let documents: Arc<dyn ProjectionStore> = Arc::new(projections);
            // Leases in Postgres: when several nodes run this binary, each
            // subscription runs on one of them at a time.
            let read_side = ReadSide::builder()
                .registry(registry)
                .state(Outbox::new(Arc::clone(&documents)))
                .lease_store(leases);
            let es = Es::builder()
                .event_store(events.clone())
                .snapshot_store(events)
                .projection_store(documents)
                .read_side(configure(read_side))
                .build()
                .await?;
            BankApp { es, summaries: Summaries::Table(table) }
        }
    };
    Ok(app)
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
