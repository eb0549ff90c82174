//! Redis adapters for es: a [`RedisEventStore`] (also a
//! [`SnapshotStore`](es_core::store::SnapshotStore)), a [`RedisProjectionStore`]
//! and a [`RedisLeaseStore`], sharing one [`RedisConnection`] and keeping
//! their keys under one [`RedisNamespace`].
//!
//! ```no_run
//! use es_core::store::{EventStore, ExpectedVersion, NewEvent};
//! use es_core::{GlobalPosition, StreamId};
//! use es_redis::{RedisConnection, RedisEventStore, RedisNamespace};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisConnection::connect("redis://127.0.0.1:6379").await?;
//! let store = RedisEventStore::new(redis, RedisNamespace::new("bank")?);
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
//! Needs Redis 7.0 or newer (the scripts declare their flags in a shebang
//! line). Nothing needs to be created first: keys appear on first write.
//!
//! # Durability: read this first
//!
//! Redis keeps its data in memory. Whether anything survives a restart
//! depends entirely on how the server is configured, and es-redis cannot
//! change that:
//!
//! - **With no persistence** (`save ""` and `appendonly no`, as on the
//!   development machines of this project and in the throwaway server the
//!   test script starts), a restart or crash of Redis **loses every event,
//!   snapshot, document, checkpoint and lease**. That is fine for tests,
//!   demos and caches of data kept elsewhere, and nothing else.
//! - **RDB snapshots alone** (`save 60 1000`, say) lose everything written
//!   since the last snapshot.
//! - **For an event store of record, turn on the append-only file with
//!   `appendonly yes` and `appendfsync always`**: Redis then writes each
//!   command (each append script) to the AOF and fsyncs it before it
//!   replies, so an acknowledged append survives a crash of the process or
//!   the machine. The cost is an fsync on every write: one writer appends
//!   at most about as often as the disk can fsync (hundreds to a few
//!   thousand times a second on SSDs, far fewer on network disks), and
//!   writers that commit in the same event-loop turn share one fsync. The
//!   `redis_append` benchmark measures it on the machine at hand when a
//!   `redis-server` binary is installed. On the project's 2-core development
//!   VM (shared, so figures moved by 2x between runs) one writer made
//!   120-190 single-event appends a second with `appendfsync always`
//!   against 1,700-3,600 without persistence: each append waited for an
//!   fsync of several milliseconds. `appendfsync everysec` (the
//!   default once AOF is on) fsyncs once a second and may lose about the
//!   last second of acknowledged appends when the machine (not just the
//!   process) fails.
//! - Replication is asynchronous: a replica promoted after a failover may
//!   lack the last appends its primary acknowledged.
//!
//! # Keys
//!
//! Every key starts with `{<namespace>}:` (default `{es}:`), so several
//! applications or test runs share one Redis without meeting, and a
//! namespace's keys share one hash tag. [`delete_namespace`] removes a
//! namespace's keys.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns}:events` | stream | the global log: one entry per event, entry id `<global position>-0`, fields `id`, `stream`, `version`, `aggregate`, `type`, `schema`, `payload` (JSON text), `metadata` (JSON text), `at` (µs, server clock) |
//! | `{ns}:position` | string | the last global position handed out |
//! | `{ns}:ids` | hash | event id → global position (uniqueness of event ids) |
//! | `{ns}:streams` | sorted set | every stream id (score 0), for listing streams by prefix |
//! | `{ns}:stream:<stream id>` | list | the stream's global positions; element *v*−1 is version *v* |
//! | `{ns}:snapshot:<stream id>` | hash | the newest snapshot: `aggregate`, `version`, `schema`, `state`, `at` |
//! | `{ns}:docs:<projection>` | hash | document id → document JSON |
//! | `{ns}:docids:<projection>` | sorted set | the document ids (score 0), for paging in id order |
//! | `{ns}:checkpoints` | hash | subscription name → checkpoint, JSON text `{"position":12}` (with `"replay_until"` during a replay) |
//! | `{ns}:lease:<name>` | hash | `owner`, `token`, `expires` (µs, server clock) |
//!
//! Payloads are stored as the text the application gave; nothing on the
//! server parses them (Lua's cjson has other limits than serde_json).
//! Events are appended only by the append script; nothing in es-redis
//! changes or deletes a stored event, but Redis itself cannot forbid a
//! client from doing so.
//!
//! # Appends
//!
//! An append is one Lua script. Redis runs one script at a time, so the
//! event-id check, the expectation check and the writes are one atomic
//! step, and positions come from one counter in the order readers see them:
//! the global order has no gaps and no event becomes readable late.
//! Expectations: `Exact(StreamVersion(0))` means "no stream" (no stream is
//! ever at version 0).
//!
//! **Exact retries.** An append whose event ids are all stored, in the same
//! stream, at consecutive versions in batch order, with the same content
//! (aggregate type, event type, schema version, payload compared as a JSON
//! value, metadata), under an expectation that admitted the original
//! placement, is an exact retry (as after a lost reply): it succeeds with
//! the original versions and positions and stores nothing. Any other reuse
//! of a stored id is [`AppendError::DuplicateEventId`](es_core::error::AppendError::DuplicateEventId)
//! naming the id and the stream. The script only finds the stored events
//! of a batch's ids (it writes nothing then); the verdict is es-core's
//! [`classify_stored`](es_core::store::classify_stored), the rule every
//! adapter shares, so payloads compare as JSON values in Rust and nothing
//! on the server parses them. If the connection fails after the script
//! was sent, or the call outlives its bound
//! ([`RedisConnection::with_call_timeout`], 15 s by default; every call of
//! every store is bounded so), the append may or may not have run: it
//! fails with [`AppendError::OutcomeUnknown`](es_core::error::AppendError::OutcomeUnknown),
//! and retrying it with the same event ids (for a command: executing it
//! again with the same command id) is safe for that reason.
//!
//! # Errors: what may have been written
//!
//! | error of an append | written? |
//! |---|---|
//! | `WrongExpectedVersion`, `DuplicateEventId`, `DuplicateInBatch`, `Unstorable` | nothing |
//! | `Backend`: an error reply from the server (the script refused, or stopped at a check: it makes every check before its first write), a refused connection, failed authentication | nothing |
//! | `OutcomeUnknown`: the connection broke or the reply did not come within its bound after the script was sent, or the reply could not be read | maybe: retry with the same event ids |
//!
//! Reads, snapshot saves, projection commits and lease calls write all or
//! nothing too (each is one command or one script); their
//! `Backend` errors after a lost connection may hide a write that went
//! through, which is harmless for them: a snapshot, or a projection's
//! documents and checkpoint, written again are the same, and a lease taken
//! without its owner hearing so is taken again by the same owner (under a
//! new token) or expires.
//!
//! # Reading and waking
//!
//! [`read_all`](es_core::store::EventStore::read_all) is one `XRANGE` on the log;
//! a stream read is one script (the stream's positions, then their log
//! entries). A log entry that cannot become an envelope is
//! [`StoreError::Corrupt`](es_core::error::StoreError::Corrupt) naming its stream, version
//! and position; a read of the global stream returns the events before such
//! an entry first, and a read after its position goes on past it.
//! [`wait_for_events`](es_core::store::EventStore::wait_for_events)
//! is served by one blocking `XREAD` per store on a connection of its own
//! (a blocked command would hold up the shared connection), and appends
//! through the store wake waiters in the same process at once.
//!
//! # Several nodes
//!
//! A [`RedisLeaseStore`] gives a read side on each node leases on the
//! server clock, and a [`RedisProjectionStore`] in the same namespace
//! refuses commits fenced with a lease that is no longer held:
//!
//! ```no_run
//! # async fn demo(redis: es_redis::RedisConnection) -> Result<(), Box<dyn std::error::Error>> {
//! use es_core::ReadSide;
//! use es_redis::{RedisEventStore, RedisLeaseStore, RedisNamespace, RedisProjectionStore};
//!
//! let ns = RedisNamespace::new("bank")?;
//! let read_side = ReadSide::builder()
//!     .event_store(RedisEventStore::new(redis.clone(), ns.clone()))
//!     .projection_store(RedisProjectionStore::new(redis.clone(), ns.clone()))
//!     .lease_store(RedisLeaseStore::new(redis, ns))
//!     .owner("node-a") // unique per running node
//!     .start()?;
//! # read_side.shutdown().await;
//! # Ok(()) }
//! ```

mod connection;
mod event_store;
mod lease_store;
mod namespace;
mod projection_store;
mod snapshot_store;

pub use connection::{
    RedisConnection, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECTION_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT,
};
pub use event_store::RedisEventStore;
pub use lease_store::RedisLeaseStore;
pub use namespace::{delete_namespace, InvalidNamespace, RedisNamespace};
pub use projection_store::RedisProjectionStore;
