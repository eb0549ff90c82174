//! Connections cut under load: two nodes, each with a read side, on one
//! namespace, every call of theirs going through a proxy that cuts a
//! connection at a server reply (after the server acted, so the reply is
//! lost), one cut at a time, 20 ms apart. [`es_core::conformance::faults`] checks what must
//! hold of the commands and of a document projection.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::proxy::Proxy;
use es_core::conformance::faults;
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy};
use es_core::runtime::CommandPath;
use es_core::{Es, ReadSide};
use es_redis::{RedisConnection, RedisEventStore, RedisLeaseStore, RedisNamespace, RedisProjectionStore};

/// The pause after each cut before the proxy is told to cut again.
const CUT_EVERY: Duration = Duration::from_millis(20);

/// A node on `namespace` on the command path `path`, whose every call goes
/// through `proxy`, each call bounded (a cut reply is a lost one, not a
/// wait).
async fn node(
    proxy: &Proxy,
    namespace: &RedisNamespace,
    (owner, path): (&str, CommandPath),
) -> (Es, ReadSide) {
    let client = redis::Client::open(proxy.url()).unwrap();
    let config =
        redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(2)));
    let manager = redis::aio::ConnectionManager::new_with_config(client.clone(), config).await.unwrap();
    let redis = RedisConnection::new(client, manager).with_call_timeout(Duration::from_secs(2));
    let events = RedisEventStore::new(redis.clone(), namespace.clone());
    let mut registry = Registry::new();
    registry.register(faults::TOTALS, faults::totals()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(RedisProjectionStore::new(redis.clone(), namespace.clone()))
        .lease_store(RedisLeaseStore::new(redis, namespace.clone()))
        .owner(owner)
        .registry(registry)
        .config(ReadSideConfig {
            batch_size: 16,
            catch_up_batch_size: 64,
            idle_wait: Duration::from_millis(100),
            lease_ttl: Duration::from_millis(900),
            lease_retry: Duration::from_millis(50),
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
            ..ReadSideConfig::default()
        })
        .start()
        .unwrap();
    (Es::builder().event_store(events).command_path(path).build().await.unwrap(), read_side)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_connections_lose_no_command_store_none_twice_and_the_projection_equals_the_fold() {
    let stores = common::fresh_stores().await;
    let proxy = Arc::new(Proxy::start().await);
    // Node a keeps actors; node b reads each stream before each command.
    let (a, read_a) = node(&proxy, &stores.namespace, ("a", CommandPath::Actors)).await;
    let (b, read_b) = node(&proxy, &stores.namespace, ("b", CommandPath::Reload)).await;

    let running = Arc::new(AtomicBool::new(true));
    let cutter = tokio::spawn({
        let (proxy, running) = (Arc::clone(&proxy), Arc::clone(&running));
        async move {
            let mut armed = 0u64;
            while running.load(Ordering::SeqCst) {
                // One cut at a time, then a pause, so a connection being
                // made again is not cut at every try of its handshake.
                proxy.arm();
                armed += 1;
                proxy.cut_within(Duration::from_secs(1)).await;
                tokio::time::sleep(CUT_EVERY).await;
            }
            armed
        }
    });
    let report = faults::commands_ride_through_faults(&stores.events, &[a.clone(), b.clone()], 4, 50).await;
    running.store(false, Ordering::SeqCst);
    let armed = cutter.await.unwrap();
    eprintln!(
        "armed {armed} cuts; {} unknown outcomes, {} failures that stored nothing",
        report.unknown, report.nothing_stored
    );
    assert!(report.unknown > 0, "no reply was lost: {report:?}");
    faults::totals_equal_the_fold(&[&read_a, &read_b], &stores.events, &stores.documents, &report).await;

    for read_side in [read_a, read_b] {
        read_side.shutdown().await;
    }
    a.shutdown().await;
    b.shutdown().await;
}
