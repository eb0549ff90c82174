//! Test support: a fresh namespace per test on the server named by
//! REDIS_URL, deleted when the test's store goes away.

// Each test binary uses a different part of this module.
#![allow(dead_code)]
// Test support: a failed setup step must fail the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod nodes;
pub(crate) mod proxy;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::testkit::TestStore;
use es_core::{GlobalPosition, StreamId};
use es_redis::{RedisConnection, RedisEventStore, RedisLeaseStore, RedisNamespace, RedisProjectionStore};

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
pub(crate) type Scoped<S> = TestStore<S>;

fn scoped<S>(store: S, cleanup: Arc<Cleanup>) -> Scoped<S> {
    TestStore::new(store).holding(cleanup)
}

pub(crate) async fn fresh_event_store() -> Scoped<RedisEventStore> {
    let redis = connection().await;
    let namespace = fresh_namespace(&redis).await;
    let cleanup = Cleanup::new(&redis, &namespace);
    scoped(RedisEventStore::new(redis, namespace), cleanup)
}

pub(crate) async fn fresh_projection_store() -> Scoped<RedisProjectionStore> {
    let redis = connection().await;
    let namespace = fresh_namespace(&redis).await;
    let cleanup = Cleanup::new(&redis, &namespace);
    scoped(RedisProjectionStore::new(redis, namespace), cleanup)
}

pub(crate) async fn fresh_lease_store() -> Scoped<RedisLeaseStore> {
    let redis = connection().await;
    let namespace = fresh_namespace(&redis).await;
    let cleanup = Cleanup::new(&redis, &namespace);
    scoped(RedisLeaseStore::new(redis, namespace), cleanup)
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

/// A lease store and a projection store on one fresh namespace: the
/// projection store checks fences against the lease store's leases.
pub(crate) async fn fresh_leases_and_projections() -> (Scoped<RedisLeaseStore>, Scoped<RedisProjectionStore>)
{
    let stores = fresh_stores().await;
    (scoped(stores.leases, stores.cleanup.clone()), scoped(stores.documents, stores.cleanup))
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
    let ns = store.inner().namespace().as_str().to_owned();
    let key = |kind: &str| format!("{{{ns}}}:{kind}");
    let position: u64 = redis::Script::new(PLANT)
        .key(key("events"))
        .key(key("position"))
        .key(key("ids"))
        .key(key(&format!("stream:{stream}")))
        .key(key("streams"))
        .arg(stream.as_str())
        .arg(uuid::Uuid::now_v7().to_string())
        .invoke_async(&mut store.inner().connection().manager())
        .await
        .unwrap();
    GlobalPosition(position)
}
