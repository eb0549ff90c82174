//! SQLite adapters for es: the embedded, durable default. Events,
//! snapshots, projection documents, checkpoints and leases live in one
//! file on the application's machine; there is no server to install or
//! run, and a second run of the program finds what the first one stored.
//!
//! - [`SqliteDatabase`]: the file (WAL mode), opened once per process;
//! - [`SqliteEventStore`]: an [`EventStore`](es_core::store::EventStore) and
//!   [`SnapshotStore`](es_core::store::SnapshotStore);
//! - [`SqliteProjectionStore`]: a [`ProjectionStore`](es_core::store::ProjectionStore),
//!   with [`commit_with`](SqliteProjectionStore::commit_with) for SQL
//!   projections into the application's own tables in the same file;
//! - [`SqliteLeaseStore`]: a [`LeaseStore`](es_core::store::LeaseStore) for
//!   several processes sharing the file, which the projection store checks
//!   fenced commits against.
//!
//! SQLite is compiled into the crate (sqlx's bundled build): no system
//! library is needed.
//!
//! ```
//! use es_core::store::{EventStore, ExpectedVersion, NewEvent};
//! use es_core::{GlobalPosition, StreamId};
//! use es_sqlite::{SqliteDatabase, SqliteEventStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("es-sqlite-doc-{}", uuid::Uuid::now_v7()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("bank.db");
//! let db = SqliteDatabase::open(&path).await?; // created if missing
//! db.migrate().await?; // idempotent; safe when processes start together
//! let store = SqliteEventStore::new(db.clone());
//!
//! let stream = StreamId::new("account-1");
//! let opened = NewEvent::new("account", "AccountOpened", 1, serde_json::json!({"owner": "ada"}));
//! let outcome = store.append(&stream, ExpectedVersion::NoStream, vec![opened]).await?;
//! assert_eq!(outcome.last_position(), Some(GlobalPosition(1)));
//!
//! // Another run of the program (here: another handle on the file) finds it.
//! db.close().await;
//! let again = SqliteEventStore::new(SqliteDatabase::open(&path).await?);
//! let events = again.read_all(GlobalPosition::START, 100).await?;
//! assert_eq!(events[0].event_type, "AccountOpened");
//! # again.database().close().await;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! For tests, [`SqliteDatabase::temporary`] makes a file in the system's
//! temporary directory that is removed with the last handle.
//!
//! # Tables
//!
//! [`SqliteDatabase::migrate`] creates, in the file, beside the
//! application's own tables (every es table starts with `es_`):
//!
//! | table | holds |
//! |---|---|
//! | `es_events` | one row per event: `global_position` (the rowid), `event_id` (16-byte blob, unique), `stream_id`, `stream_version` (unique with the stream), `aggregate_type`, `event_type`, `schema_version`, `payload` and `metadata` (JSON text, for SQLite's `json_*` functions), `recorded_at` (µs since the Unix epoch) |
//! | `es_snapshots` | the newest snapshot per stream |
//! | `es_documents`, `es_checkpoints` | projection documents (JSON text) by (projection, id), and one checkpoint per subscription (position, end of a running replay) |
//! | `es_leases` | one lease per subscription name (see [`SqliteLeaseStore`]) |
//! | `es_settings` | one row: the deletion switch |
//! | `es_schema_migrations` | the migrations applied |
//!
//! Tables are `STRICT`. The SQL ships inside the crate.
//!
//! # Global positions
//!
//! SQLite lets one connection write at a time. Every append runs in a
//! write transaction that takes the file's write lock before it reads the
//! stream's version (`BEGIN IMMEDIATE`, or a single `INSERT` statement that
//! checks the version itself); its events take the next rowids. So positions are handed out in commit order and the global
//! stream is a gap-free sequence `1, 2, 3, ...`: a reader that has seen
//! position N has seen everything below it, and a rolled-back append
//! leaves no hole. (`AUTOINCREMENT` keeps a position from being handed out
//! twice, even after the newest events were deleted with the switch
//! below; deleted events are the only holes.) Readers never wait for the
//! writer, nor it for them (WAL).
//!
//! Within one process every write queues for the process's one writer
//! connection (appends, projection commits, leases, and
//! [`SqliteDatabase::begin_write`]), in arrival order. Appends that wait
//! for it together commit together (group commit): one transaction, each
//! append checked and stored or refused as if alone, one flush to disk. A
//! lone single-event append is one `INSERT` statement with its version
//! check inside. A write that cannot get the lock within the busy timeout
//! (5 s by default, [`SqliteOptions::busy_timeout`]) fails with
//! [`SqliteError::Locked`] (carried as the source of the es-core error),
//! having written nothing.
//!
//! # Append only, and the deletion switch
//!
//! Triggers refuse `UPDATE` and `DELETE` on `es_events`. To change stored
//! events deliberately (such as erasing personal data), turn the switch on
//! inside one write transaction and off again before it commits, so no
//! other connection ever sees it on:
//!
//! ```sql
//! BEGIN IMMEDIATE;
//! UPDATE es_settings SET allow_deletion = 1;
//! DELETE FROM es_events WHERE stream_id = 'customer-42';
//! UPDATE es_settings SET allow_deletion = 0;
//! COMMIT;
//! ```
//!
//! # Several processes on one file
//!
//! Several processes may open the same file (on a local disk: SQLite's
//! locks do not work over network file systems). They take turns for the
//! write lock, waiting up to the busy timeout, and positions stay
//! gap-free. [`migrate`](SqliteDatabase::migrate) is safe when they start
//! together. Within a process, open each file once and clone the handle.
//!
//! Caught-up readers ([`wait_for_events`](es_core::store::EventStore::wait_for_events),
//! hence subscriptions and the read side) wake at once for appends made
//! through the same [`SqliteDatabase`]; appends by other processes are
//! seen by polling, every [`SqliteOptions::poll_interval`] (50 ms by
//! default).
//!
//! A [`SqliteLeaseStore`] on the file runs each subscription in one
//! process at a time. Leases expire on the machine's clock as SQLite reads
//! it (millisecond resolution). Every process of the file reads the same
//! clock; a clock stepped backwards only makes leases last longer, and one
//! stepped forwards may expire a lease early, after which the fenced
//! commits of its former holder are refused.
//!
//! # Durability
//!
//! [`Synchronous::Full`] (the default) flushes every commit to disk before
//! it returns, so an acknowledged append survives a power loss.
//! [`Synchronous::Normal`] flushes at checkpoints only: faster where a
//! flush is slow, and an acknowledged append still survives a crash of the
//! process, but not necessarily of the machine.
//!
//! # Errors
//!
//! Failures of the file carry a [`SqliteError`] naming it: `Locked`
//! (nothing was written), `Corrupt` (not an SQLite database, or damaged),
//! `Unusable` (cannot be opened, read or written), or `Backend`.
//!
//! What an append's error says about what was written (SQLite runs in the
//! process, so only a failing commit leaves doubt):
//!
//! | error of an append | written? |
//! |---|---|
//! | `WrongExpectedVersion`, `DuplicateEventId`, `DuplicateInBatch`, `Unstorable` | nothing |
//! | `Backend`: the write lock not had within the busy timeout ([`SqliteError::Locked`]), a statement refused before the commit, the commit refused as busy | nothing (the transaction was rolled back) |
//! | `OutcomeUnknown`: the commit failed writing or flushing the write-ahead log (`SQLITE_IOERR` of a write or fsync, `SQLITE_FULL`, ...), or the group commit running it ended without an answer | maybe: the commit frame may be in the log, and the next open may find the events stored; append the same events (same ids) again to settle it |
//!
//! Projection commits, snapshot saves and lease calls are one transaction
//! each, all or nothing, with the same doubt only at their commit; written
//! again, they come out the same (a lease acquired again comes back under a
//! new token, which fences off the first). A stored
//! row that cannot become an envelope is
//! [`StoreError::Corrupt`](es_core::error::StoreError::Corrupt) naming the
//! stream, version and position (a read of the global stream returns the
//! events before such a row first). Nothing panics on bad data.

mod clock;
mod database;
mod error;
mod event_store;
mod lease;
mod migrate;
mod projection_store;
mod snapshot_store;

pub use database::{SqliteDatabase, SqliteOptions, Synchronous};
pub use error::SqliteError;
pub use event_store::SqliteEventStore;
pub use lease::SqliteLeaseStore;
pub use migrate::{MigrateError, MigrateFailure};
pub use projection_store::{SqliteProjectionStore, SqliteTransaction, TxFuture};
