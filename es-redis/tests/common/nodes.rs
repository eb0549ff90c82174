//! Nodes for the fault tests: an application and a read side whose every
//! call goes through a [`Proxy`].

use std::time::Duration;

use es_core::conformance::faults;
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy};
use es_core::runtime::CommandPath;
use es_core::{Es, ReadSide};
use es_redis::{RedisConnection, RedisEventStore, RedisLeaseStore, RedisNamespace, RedisProjectionStore};

use super::proxy::Proxy;

/// A node on `namespace` on the command path `path`, with a read side of
/// the faults family's projection, whose every call goes through `proxy`
/// and is bounded by `call_timeout`.
pub(crate) async fn node(
    proxy: &Proxy,
    namespace: &RedisNamespace,
    (owner, path): (&str, CommandPath),
    call_timeout: Duration,
) -> (Es, ReadSide) {
    let client = redis::Client::open(proxy.url()).unwrap();
    let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(call_timeout));
    let manager = redis::aio::ConnectionManager::new_with_config(client.clone(), config).await.unwrap();
    let redis = RedisConnection::new(client, manager).with_call_timeout(call_timeout);
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
