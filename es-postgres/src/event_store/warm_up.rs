//! Warming up: pooled connections opened and primed before the first
//! command ([`EventStore::warm_up`](es_core::store::EventStore::warm_up),
//! which `EsBuilder::build` calls).
//!
//! Why: a fresh pool holds one connection, and sqlx tests each connection
//! it takes back with a round trip in a background task, so a load's
//! second statement (the replay after the snapshot) finds no idle
//! connection and opens one: a new server backend, 2-5 ms on the
//! development machine. On a new connection, each statement's first run
//! also costs a prepare round trip, and the backend reads the catalog for
//! the tables and indexes it touches. So the warm-up holds two connections
//! at once (opening what the pool lacks), runs on each the reads a load
//! runs (snapshot, replay, stream version) for a stream nobody needs to
//! have written, and hands them back to the pool (checked, as sqlx would)
//! before building goes on. It also opens the connection the first append
//! will run on (the store's own, see `writers.rs`) and prepares the append
//! there.

use es_core::error::StoreError;
use es_core::{StreamId, StreamVersion};
use sqlx::pool::PoolConnection;
use sqlx::{Executor, PgConnection, Postgres};

use super::PgEventStore;

/// How many connections the warm-up primes (never more than the pool's
/// maximum): a load's two statements run back to back, so the second needs
/// a second connection while the first is being checked.
const WARM_CONNECTIONS: u32 = 2;

/// The stream the warm-up reads. The reads are read-only: whether such a
/// stream exists does not matter.
const WARM_UP_STREAM: &str = "es-warm-up";

impl PgEventStore {
    /// Opens [`WARM_CONNECTIONS`] pooled connections and runs a load's
    /// reads on each.
    pub(super) async fn prime_connections(&self) -> Result<(), StoreError> {
        let pool = self.inner.calls.pool();
        let backend = |e: sqlx::Error| StoreError::Backend(Box::new(e));
        let wanted = pool.options().get_max_connections().min(WARM_CONNECTIONS);
        // Held together, so that each is a different connection.
        let mut held: Vec<PoolConnection<Postgres>> = Vec::new();
        for _ in 0..wanted {
            held.push(pool.acquire().await.map_err(backend)?);
        }
        let stream = StreamId::new(WARM_UP_STREAM);
        for conn in &mut held {
            self.load_snapshot_query(&stream).fetch_optional(&mut **conn).await.map_err(backend)?;
            self.replay_query(&stream, StreamVersion::FIRST, u64::MAX)
                .fetch_all(&mut **conn)
                .await
                .map_err(backend)?;
            self.version_query(&stream).fetch_one(&mut **conn).await.map_err(backend)?;
        }
        for mut conn in held {
            // What dropping the connection would do in a spawned task, done
            // here and awaited: the connection is idle in the pool when
            // this returns, ready for the first command's first read.
            conn.return_to_pool().await;
        }
        self.prime_writer().await
    }

    /// Opens the connection the first append runs on (one of the store's
    /// own, see `writers.rs`) and prepares the one-event append there.
    async fn prime_writer(&self) -> Result<(), StoreError> {
        let groups = &self.inner.groups;
        if !groups.enabled() || !groups.own_connections() {
            return Ok(());
        }
        let backend = |e: sqlx::Error| StoreError::Backend(Box::new(e));
        let calls = &self.inner.calls;
        let deadline = tokio::time::Instant::now() + calls.get();
        let sql = self.inner.sql.append_single.clone();
        let prepare = async |conn: &mut PgConnection| conn.prepare(sql).await.map(drop);
        let ran = self
            .inner
            .writers
            .run(calls, deadline, groups.max_in_flight(), prepare, Result::is_err)
            .await
            .map_err(|failed| backend(failed.into()))?;
        ran.answer.map_err(backend)
    }
}
