//! Postgres adapters for es: a [`PgEventStore`] (also a
//! [`SnapshotStore`](es_core::store::SnapshotStore)) and a [`PgProjectionStore`],
//! on a [`sqlx::PgPool`] the application may share with its own tables.
//!
//! ```no_run
//! use es_core::store::{EventStore, ExpectedVersion, NewEvent};
//! use es_core::{GlobalPosition, StreamId};
//! use es_postgres::{PgEventStore, PgSchema};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::postgres::PgPoolOptions::new()
//!     .max_connections(8)
//!     .connect("postgres://postgres@127.0.0.1:5432/postgres")
//!     .await?;
//! let store = PgEventStore::with_schema(pool, PgSchema::new("bank")?);
//! store.migrate().await?; // idempotent; safe when several nodes start at once
//!
//! let stream = StreamId::new("account-1");
//! let event = NewEvent::new("account", "AccountOpened", 1, serde_json::json!({"owner": "ada"}));
//! store.append(&stream, ExpectedVersion::NoStream, vec![event]).await?;
//! for event in store.read_all(GlobalPosition::START, 100).await? {
//!     println!("{} {} {}", event.global_position, event.stream_id, event.event_type);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Tables
//!
//! [`migrate()`] creates, in the chosen schema (default `es`): `events`
//! (payload and metadata as JSONB, unique on `(stream_id, stream_version)`
//! and on `event_id`), `snapshots`, `documents`, `checkpoints`, `leases`
//! (see [`PgLeaseStore`]) and `schema_migrations`. The SQL ships inside the crate.
//!
//! Documents are indexed by `(projection, id)` only, so writing them costs
//! one index update. A projection whose documents are searched by content
//! ([`Documents::containing`](es_core::readside::Documents::containing))
//! asks for a partial GIN index over its own rows once, at start-up:
//! `projections.index_containment("account-summary").await?`
//! ([`PgProjectionStore::index_containment`]); without it, such a query
//! scans that projection's documents.
//!
//! Events are append only: a trigger refuses `UPDATE`, `DELETE` and
//! `TRUNCATE` on `events`. To change stored events deliberately (such as
//! erasing personal data), opt in for one transaction:
//!
//! ```sql
//! BEGIN;
//! SET LOCAL es.allow_deletion = on;
//! DELETE FROM es.events WHERE stream_id = 'customer-42';
//! COMMIT;
//! ```
//!
//! # Global positions
//!
//! Every event row stores the id of the transaction that wrote it
//! (`transaction_id xid8`), and its global position is derived from it:
//! `(xid << 20) | index`, the index counting the events that transaction
//! appended (so one transaction appends at most
//! [`MAX_EVENTS_PER_TRANSACTION`] events). Position order is then
//! transaction order, and [`read_all`](es_core::store::EventStore::read_all) only
//! returns events of transactions older than the oldest one still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`). Any transaction that may
//! still commit has an id at or above that bound, hence positions above
//! everything a reader was shown: a reader never skips an event that
//! commits late, and appends to different streams never wait on one global
//! lock. Positions strictly increase but have holes (a rolled-back append,
//! the space between transactions); readers pass over them at once.
//!
//! The price: a long-running transaction that holds a transaction id
//! (anywhere in the cluster) holds readers back until it ends; they see
//! nothing newer meanwhile. [`PgEventStore::oldest_in_flight`] names it,
//! and [`EventStore::read_blocker`](es_core::store::EventStore::read_blocker)
//! reports it while it hides committed events: a caught-up subscription
//! of an [`es_core::ReadSide`] then logs a warning naming it and shows it
//! in its status (`SubscriptionStatus::held_back_by`) once it has done so
//! for longer than `ReadSideConfig::held_back_warning`.
//!
//! # Reading your own writes
//!
//! An append that just committed can be hidden for a moment by an older
//! transaction that is still finishing. [`read_all`](es_core::store::EventStore::read_all)
//! and [`head_position`](es_core::store::EventStore::head_position) therefore wait,
//! briefly (see [`PgEventStore::set_visibility_wait`], default 100 ms), for
//! the transactions that started before the newest committed event to end,
//! when a read would otherwise come back short. Transactions that start
//! later never prolong that wait.
//!
//! # Waking readers
//!
//! [`wait_for_events`](es_core::store::EventStore::wait_for_events) listens on the
//! channel `<schema>_events` (see [`PgSchema::channel`]) on one shared
//! connection per store, outside the pool, and falls back to polling when it cannot. Appends
//! through the pool signal that channel right after they commit, from a
//! background task of the store that coalesces bursts into one `NOTIFY`
//! (at most one every 2 ms). They do not `NOTIFY` inside their own
//! transaction: Postgres then holds a database-wide lock from the commit
//! until its WAL flush, which would serialize all appends (measured: 28% of
//! the raw insert rate at 32 writers, against 60-80% without).
//! [`PgEventStore::append_in_tx`] does notify in its statement, since the
//! store cannot see the caller's commit.
//!
//! A subscription takes the store's
//! [`wakeup_mark`](es_core::store::EventStore::wakeup_mark) (notifications
//! received plus the store's own committed appends) before each read. When
//! a read comes back short and the mark has not moved since, nothing
//! committed after the read began: the subscription skips the read that
//! would find nothing and waits with the mark, which needs no query for the
//! head.
//!
//! # Group commit
//!
//! Appends (outside your transactions) to different streams that arrive
//! while other appends are committing are combined: they go together in one statement
//! and one transaction, so they share one commit (one WAL flush) instead
//! of taking one each. Each keeps its own expected version: an append whose
//! expectation does not hold is refused alone while the others commit, and
//! if the server refuses the whole statement (another writer, on this node
//! or another, took a stream's next version or an event id first), every
//! append of the group is made again alone, so only the one that lost the
//! race fails. A lone append at low load runs at once, as without group
//! commit; an append waits for a group at most
//! [`GroupCommit::max_wait`] (default 50 ms) before it is appended alone.
//! [`PgEventStore::set_group_commit`] tunes it or turns it off
//! ([`GroupCommit::off`]). [`PgEventStore::append_in_tx`] never groups: it
//! runs in your transaction.
//!
//! Lone appends and groups run on connections the store opens itself with
//! the pool's connect options, one per group slot
//! ([`GroupCommit::max_in_flight`], 2 by default), kept between appends
//! under the pool's `idle_timeout` and `max_lifetime`. sqlx checks a pooled
//! connection with a round trip when it hands it out and again when it
//! takes it back; a kept connection skips both, and appends never wait
//! behind the application's use of the pool.
//!
//! - A kept connection the server closed while it was idle (a restart,
//!   `idle_session_timeout`) fails the append or the group on it, which is
//!   then made again, once, on a new connection: the same events under the
//!   same ids, so a first try that did commit is found (an exact retry).
//! - If the server refuses to open one (too many clients), appends go
//!   through the pool instead. A closed pool stops these connections too.
//! - They do not run the pool's `after_connect` hook: if that hook sets
//!   connections up (a `SET ROLE`, say), turn them off with
//!   [`GroupCommit::own_connections`].
//! - With the listener and the notifier, a store may so hold up to four
//!   connections outside its pool.
//!
//! # When the connection fails
//!
//! An append through the pool is one statement in its own transaction, so
//! once it was sent only the server's reply says whether it committed. A
//! connection that could not be had, or a statement the server refused, is
//! [`AppendError::Backend`](es_core::error::AppendError::Backend): nothing
//! was written. A connection lost while the statement (and with it its
//! commit) was in flight is
//! [`AppendError::OutcomeUnknown`](es_core::error::AppendError::OutcomeUnknown):
//! the events may or may not be stored, and appending the same events again
//! (same ids) is safe, since a committed first attempt makes it an exact
//! retry. `event_store/outcome.rs` lists the rule per driver error; a
//! group's statement follows the same rule for each of its appends. An
//! append or a group that lost a kept connection (see *Group commit*) is
//! made again once on a new one before it answers: an exact retry settles
//! the outcome if the server can be reached.
//!
//! # When the server stops answering
//!
//! sqlx sets no timeout on a socket, so each store bounds its own calls:
//! taking a connection and everything the call does on it must end within
//! the store's call timeout ([`DEFAULT_CALL_TIMEOUT`], 30 s; set it with
//! [`PgEventStore::set_call_timeout`], [`PgProjectionStore::set_call_timeout`]
//! and [`PgLeaseStore::set_call_timeout`]). A call that overruns fails with
//! an I/O error of kind `TimedOut` and its connection is closed, not handed
//! back to the pool. An append that overran after it had a connection is
//! [`AppendError::OutcomeUnknown`](es_core::error::AppendError::OutcomeUnknown),
//! as over a lost connection; one that had no connection in time is
//! `Backend`. A read side treats an overrun like any outage: it waits and
//! tries again, and its lease runs out if the lease store does not answer
//! either, so another node takes over.
//!
//! The `LISTEN` connection that wakes caught-up readers is a silent one by
//! nature, so a listener that heard nothing for the call timeout sends its
//! server a `SELECT 1`; without an answer within the call timeout it wakes
//! every waiter and the next wait listens on a new connection.
//!
//! A transaction of the stores (a projection's commit with your SQL, a
//! table projection's batch) may also wait for its holder's next statement
//! for the call timeout at most (`idle_in_transaction_session_timeout`):
//! then the server ends its session. A node cut off from the server in the
//! middle of a batch would otherwise keep the batch's locks, its lease's
//! row among them, until the server noticed the connection was gone, and
//! no other node could take the projection over meanwhile. So a table
//! projection must not pause longer than that between two statements.
//!
//! What runs on a connection or transaction of yours is yours to bound:
//! [`PgEventStore::append_in_tx`], the `user_work` of
//! [`PgProjectionStore::commit_with`], and the statements a table
//! projection runs in its transaction (the store bounds that
//! transaction's `BEGIN` and `COMMIT`, with the checkpoint and the fence
//! check). Resetting a projection and creating indexes are not bounded
//! either: they take as long as the data needs.
//!
//! The stores begin every transaction on a task of their own, because
//! sqlx (0.9) counts a transaction only once the server answered its
//! `BEGIN`: a `pool.begin()` future dropped while it waits (under a
//! timeout, in a `select!`) hands its connection back to the pool inside
//! an open transaction, and whatever runs next on that connection is
//! rolled back when it closes, appends that were acknowledged included.
//! If your code shares the pool with the stores, do not drop a
//! `pool.begin()` before it resolves (spawn it, as the stores do), or give
//! the stores a pool of their own.
//!
//! # Several nodes
//!
//! A [`PgLeaseStore`] gives a read side on each node leases from one table,
//! so each subscription runs on one node at a time and another takes over
//! from the stored checkpoint when that node stops (its lease is released)
//! or dies (its lease expires, on the database clock):
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! use es_core::ReadSide;
//! use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore};
//!
//! let read_side = ReadSide::builder()
//!     .event_store(PgEventStore::new(pool.clone()))
//!     .projection_store(PgProjectionStore::new(pool.clone()))
//!     .lease_store(PgLeaseStore::new(pool))
//!     .owner("node-a") // unique per running node
//!     .start()?;
//! # read_side.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # TLS
//!
//! es-postgres enables no TLS backend of sqlx. To connect over TLS, enable
//! one in your own `Cargo.toml` (such as `sqlx = { version = "0.9",
//! features = ["tls-rustls"] }`); Cargo unifies the features.
//!
//! # Appending with your own writes
//!
//! [`PgEventStore::append_in_tx`] appends inside a transaction of yours,
//! and [`PgProjectionStore::commit_with`] runs your SQL in the transaction
//! that stores a projection's documents and checkpoint.

mod bounded;
mod error;
mod event_store;
mod lease;
mod migrate;
mod projection_store;
mod schema;
mod snapshot_store;

pub use bounded::DEFAULT_CALL_TIMEOUT;
pub use error::BatchTooLarge;
pub use event_store::{GroupCommit, InFlightTransaction, PgEventStore, MAX_EVENTS_PER_TRANSACTION};
pub use lease::PgLeaseStore;
pub use migrate::{migrate, MigrateError};
pub use projection_store::{sql_failure, PgProjectionStore, PgTransaction, TxFuture};
pub use schema::{InvalidSchemaName, PgSchema};
