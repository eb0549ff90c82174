//! Dropping a read side without `shutdown()` releases its Postgres leases,
//! so a second read side takes its subscriptions over within seconds
//! instead of after the lease's TTL.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{drop_schema, fresh_schema, pool};
use es_core::readside::{ReadSideBuilder, ReadSideConfig, Registry, Subscriber};
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{
    event, Event, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, ReadSide, Recorded, StreamId,
};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
use sqlx::PgPool;

/// Far longer than the test waits for the takeover.
const TTL: Duration = Duration::from_secs(300);
const TAKEOVER: Duration = Duration::from_secs(10);

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Pinged {
    n: u64,
}

type Log = Arc<Mutex<Vec<(&'static str, u64)>>>;

/// Records which node handled which ping.
#[derive(Clone)]
struct Seen {
    node: &'static str,
    log: Log,
}

impl HandleEvent<Pinged> for Seen {
    async fn handle(&self, event: &Recorded<Pinged>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.log.lock().unwrap().push((self.node, event.n));
        Ok(())
    }
}

/// Waits (bounded) until `read_side` has committed its checkpoint at
/// `head`: a handler's delivery is at least once, and this test wants to
/// see the handover, not a redelivery of what was not committed.
async fn committed(read_side: &ReadSide, head: GlobalPosition) {
    for _ in 0..1000 {
        if read_side.status("pings").unwrap().checkpoint >= Some(head) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the checkpoint never reached {head}: {:?}", read_side.status("pings"));
}

async fn ping(store: &PgEventStore, n: u64) -> GlobalPosition {
    let new = NewEvent::new("pinger", Pinged::TYPE, 1, serde_json::to_value(Pinged { n }).unwrap());
    store
        .append(&StreamId::new("pinger-1"), ExpectedVersion::Any, vec![new])
        .await
        .unwrap()
        .last_position()
        .unwrap()
}

fn node(name: &'static str, log: &Log, pool: &PgPool, schema: &PgSchema) -> ReadSideBuilder {
    let mut registry = Registry::new();
    let seen = Seen { node: name, log: Arc::clone(log) };
    registry.register("pings", Subscriber::handler(seen).on::<Pinged>().build()).unwrap();
    ReadSide::builder()
        .event_store(PgEventStore::with_schema(pool.clone(), schema.clone()))
        .projection_store(PgProjectionStore::with_schema(pool.clone(), schema.clone()))
        .lease_store(PgLeaseStore::with_schema(pool.clone(), schema.clone()))
        .owner(name)
        .registry(registry)
        .config(ReadSideConfig {
            lease_ttl: TTL,
            lease_retry: Duration::from_millis(50),
            idle_wait: Duration::from_millis(200),
            ..ReadSideConfig::default()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_side_hands_its_leases_over_at_once() {
    let pool = pool(4).await;
    let schema = fresh_schema(&pool).await;
    let events = PgEventStore::with_schema(pool.clone(), schema.clone());
    let log = Log::default();
    let a = node("a", &log, &pool, &schema).start().unwrap();
    let head = ping(&events, 1).await;
    a.wait_for("pings", head, TAKEOVER).await.unwrap();
    committed(&a, head).await;
    let b = node("b", &log, &pool, &schema).start().unwrap();

    drop(a);
    let head = ping(&events, 2).await;
    b.wait_for("pings", head, TAKEOVER).await.expect("b takes over well before the lease's TTL");
    assert_eq!(*log.lock().unwrap(), [("a", 1), ("b", 2)]);
    b.shutdown().await;
    drop_schema(&pool, &schema).await;
}
