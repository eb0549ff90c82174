//! Test support: a fresh namespace per test on the server named by
//! REDIS_URL, deleted when the test's store goes away.

// Each test binary uses a different part of this module.
#![allow(dead_code)]
// Test support: a failed setup step must fail the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod proxy;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, LeaseError, ProjectionError, StoreError};
use es_core::store::{
    AppendOutcome, Checkpoint, Direction, DocumentQuery, EventStore, ExpectedVersion, Lease, LeaseStore,
    NewEvent, ProjectionStore, RecordedEvent, ReplayEvent, Snapshot, SnapshotStore, StreamSummary,
    UnitOfWork,
};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_redis::{RedisConnection, RedisEventStore, RedisLeaseStore, RedisNamespace, RedisProjectionStore};
use serde_json::Value;

/// The server tests run against unless REDIS_URL says otherwise.
pub(crate) const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// Test namespaces are named `es_test_<uuid v7>`.
const PREFIX: &str = "es_test_";

/// Test namespaces older than this are left over from earlier runs (a test
/// that panicked before its cleanup, or a killed run).
const STALE_AFTER_MS: u128 = 60 * 60 * 1000;

pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

pub(crate) async fn connection() -> RedisConnection {
    let url = redis_url();
    match RedisConnection::connect(&url).await {
        Ok(redis) => redis,
        Err(error) => {
            panic!("cannot reach Redis at {url} ({error}): set REDIS_URL or run scripts/test.sh, which starts one")
        }
    }
}

/// Deletes `es_test_<uuid v7>` namespaces created more than an hour ago
/// (the UUID v7's first 48 bits are its creation time in ms). Once per
/// process.
async fn sweep_stale_namespaces(redis: &RedisConnection) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut conn = redis.manager();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let mut stale = std::collections::BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{PREFIX}*}}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in keys {
            let Some(name) = key.strip_prefix('{').and_then(|k| k.split_once('}')).map(|(n, _)| n.to_owned())
            else {
                continue;
            };
            let created =
                name.strip_prefix(PREFIX).and_then(|hex| u128::from_str_radix(hex.get(..12)?, 16).ok());
            if created.is_some_and(|ms| now.saturating_sub(ms) > STALE_AFTER_MS) {
                stale.insert(name);
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for name in stale {
        if let Ok(namespace) = RedisNamespace::new(name) {
            es_redis::delete_namespace(redis, &namespace).await.unwrap();
        }
    }
}

/// A new namespace `es_test_<uuid v7>` (nothing to create: keys appear on
/// first write).
pub(crate) async fn fresh_namespace(redis: &RedisConnection) -> RedisNamespace {
    sweep_stale_namespaces(redis).await;
    RedisNamespace::new(format!("{PREFIX}{}", uuid::Uuid::now_v7().simple())).unwrap()
}

/// Deletes a namespace's keys when dropped (with the last clone of the
/// store it guards), on a blocking connection of its own, since `Drop`
/// cannot await.
pub(crate) struct Cleanup {
    client: redis::Client,
    namespace: RedisNamespace,
}

impl Cleanup {
    pub(crate) fn new(redis: &RedisConnection, namespace: &RedisNamespace) -> Arc<Self> {
        Arc::new(Self { client: redis.client().clone(), namespace: namespace.clone() })
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // A failure leaves the keys to the sweep of a later run.
        let Ok(mut conn) = self.client.get_connection_with_timeout(Duration::from_secs(5)) else { return };
        let mut cursor: u64 = 0;
        loop {
            let scanned: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.namespace.pattern())
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn);
            let Ok((next, keys)) = scanned else { return };
            if !keys.is_empty() && redis::cmd("UNLINK").arg(&keys).query::<u64>(&mut conn).is_err() {
                return;
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// A store that deletes its namespace when its last clone is dropped: the
/// conformance cases consume their store, so they cannot clean up after
/// themselves.
#[derive(Clone)]
pub(crate) struct Scoped<S> {
    pub(crate) store: S,
    _cleanup: Arc<Cleanup>,
}

impl<S> Scoped<S> {
    pub(crate) fn new(store: S, cleanup: Arc<Cleanup>) -> Self {
        Self { store, _cleanup: cleanup }
    }
}

pub(crate) async fn fresh_event_store() -> Scoped<RedisEventStore> {
    let redis = connection().await;
    let namespace = fresh_namespace(&redis).await;
    let cleanup = Cleanup::new(&redis, &namespace);
    Scoped::new(RedisEventStore::new(redis, namespace), cleanup)
}

pub(crate) async fn fresh_projection_store() -> Scoped<RedisProjectionStore> {
    let redis = connection().await;
    let namespace = fresh_namespace(&redis).await;
    let cleanup = Cleanup::new(&redis, &namespace);
    Scoped::new(RedisProjectionStore::new(redis, namespace), cleanup)
}

pub(crate) async fn fresh_lease_store() -> Scoped<RedisLeaseStore> {
    let redis = connection().await;
    let namespace = fresh_namespace(&redis).await;
    let cleanup = Cleanup::new(&redis, &namespace);
    Scoped::new(RedisLeaseStore::new(redis, namespace), cleanup)
}

/// All three stores on one fresh namespace, and its cleanup.
pub(crate) struct Stores {
    pub(crate) redis: RedisConnection,
    pub(crate) namespace: RedisNamespace,
    pub(crate) events: RedisEventStore,
    pub(crate) documents: RedisProjectionStore,
    pub(crate) leases: RedisLeaseStore,
    pub(crate) cleanup: Arc<Cleanup>,
}

pub(crate) async fn fresh_stores() -> Stores {
    let redis = connection().await;
    let namespace = fresh_namespace(&redis).await;
    Stores {
        events: RedisEventStore::new(redis.clone(), namespace.clone()),
        documents: RedisProjectionStore::new(redis.clone(), namespace.clone()),
        leases: RedisLeaseStore::new(redis.clone(), namespace.clone()),
        cleanup: Cleanup::new(&redis, &namespace),
        redis,
        namespace,
    }
}

#[async_trait]
impl<S: EventStore> EventStore for Scoped<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.store.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_stream(stream, from, direction, limit).await
    }

    async fn read_replay(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<ReplayEvent>, StoreError> {
        self.store.read_replay(stream, from, limit).await
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(after, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.store.stream_version(stream).await
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        self.store.streams(prefix, after, limit).await
    }

    async fn events_by_id(&self, ids: &[es_core::EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.events_by_id(ids).await
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.store.head_position().await
    }

    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.store.wait_for_events(after, max_wait).await;
    }
}

#[async_trait]
impl<S: SnapshotStore> SnapshotStore for Scoped<S> {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.store.load_snapshot(stream).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.store.save_snapshot(snapshot).await
    }
}

#[async_trait]
impl<S: ProjectionStore> ProjectionStore for Scoped<S> {
    async fn get(&self, projection: &str, id: &str) -> Result<Option<Value>, ProjectionError> {
        self.store.get(projection, id).await
    }

    async fn put(&self, projection: &str, id: &str, document: Value) -> Result<(), ProjectionError> {
        self.store.put(projection, id, document).await
    }

    async fn delete(&self, projection: &str, id: &str) -> Result<(), ProjectionError> {
        self.store.delete(projection, id).await
    }

    async fn query(
        &self,
        projection: &str,
        query: &DocumentQuery,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        self.store.query(projection, query).await
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        self.store.checkpoint(name).await
    }

    async fn commit(&self, projection: &str, work: UnitOfWork) -> Result<(), ProjectionError> {
        self.store.commit(projection, work).await
    }

    async fn reset(&self, projection: &str) -> Result<(), ProjectionError> {
        self.store.reset(projection).await
    }
}

#[async_trait]
impl<S: LeaseStore> LeaseStore for Scoped<S> {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        self.store.try_acquire(name, owner, ttl).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        self.store.renew(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.store.release(lease).await
    }
}

/// A lease store and a projection store on one fresh namespace: the
/// projection store checks fences against the lease store's leases.
pub(crate) async fn fresh_leases_and_projections() -> (Scoped<RedisLeaseStore>, Scoped<RedisProjectionStore>)
{
    let stores = fresh_stores().await;
    (Scoped::new(stores.leases, stores.cleanup.clone()), Scoped::new(stores.documents, stores.cleanup))
}

/// Stores, behind the store's back, a log entry of `stream` that no
/// envelope can be made of (it says it is version 0), at the next global
/// position, indexed like an appended event; returns its position. One
/// script, so it lands after everything stored so far.
pub(crate) async fn plant_corrupt_row(store: Scoped<RedisEventStore>, stream: StreamId) -> GlobalPosition {
    const PLANT: &str = r"
        local position = redis.call('INCR', KEYS[2])
        redis.call('XADD', KEYS[1], position .. '-0', 'id', ARGV[2], 'stream', ARGV[1], 'version', '0',
            'aggregate', 'test', 'type', 'Tested', 'schema', '1', 'payload', '{}', 'metadata', '{}', 'at', '0')
        redis.call('HSET', KEYS[3], ARGV[2], position)
        redis.call('RPUSH', KEYS[4], position)
        redis.call('ZADD', KEYS[5], 0, ARGV[1])
        return position";
    let ns = store.store.namespace().as_str().to_owned();
    let key = |kind: &str| format!("{{{ns}}}:{kind}");
    let position: u64 = redis::Script::new(PLANT)
        .key(key("events"))
        .key(key("position"))
        .key(key("ids"))
        .key(key(&format!("stream:{stream}")))
        .key(key("streams"))
        .arg(stream.as_str())
        .arg(uuid::Uuid::now_v7().to_string())
        .invoke_async(&mut store.store.connection().manager())
        .await
        .unwrap();
    GlobalPosition(position)
}
