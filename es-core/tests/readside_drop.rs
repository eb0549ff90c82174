//! Dropping a read side (or the last `Es` that owns one) without
//! `shutdown()` releases its leases, so another node takes its
//! subscriptions over within seconds instead of after the lease's TTL.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::readside::{ReadSideConfig, Registry, Subscriber};
use es_core::store::{EventStore, ExpectedVersion, LeaseStore, NewEvent};
use es_core::{
    event, Es, Event, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, ReadSide, Recorded, StreamId,
};
use es_memory::{InMemoryEventStore, InMemoryLeaseStore, InMemoryProjectionStore};

/// Far longer than the test waits for the takeover.
const TTL: Duration = Duration::from_secs(300);
const TAKEOVER: Duration = Duration::from_secs(10);

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Pinged {
    n: u64,
}

/// Records which node handled which ping.
#[derive(Clone)]
struct Seen {
    node: &'static str,
    log: Arc<Mutex<Vec<(&'static str, u64)>>>,
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

async fn ping(store: &InMemoryEventStore, n: u64) -> GlobalPosition {
    let new = NewEvent::new("pinger", Pinged::TYPE, 1, serde_json::to_value(Pinged { n }).unwrap());
    store
        .append(&StreamId::new("pinger-1"), ExpectedVersion::Any, vec![new])
        .await
        .unwrap()
        .last_position()
        .unwrap()
}

fn node(
    name: &'static str,
    log: &Arc<Mutex<Vec<(&'static str, u64)>>>,
    leases: &InMemoryLeaseStore,
) -> es_core::readside::ReadSideBuilder {
    let mut registry = Registry::new();
    let seen = Seen { node: name, log: Arc::clone(log) };
    registry.register("pings", Subscriber::handler(seen).on::<Pinged>().build()).unwrap();
    ReadSide::builder().lease_store(leases.clone()).owner(name).registry(registry).config(ReadSideConfig {
        lease_ttl: TTL,
        lease_retry: Duration::from_millis(50),
        ..ReadSideConfig::default()
    })
}

#[tokio::test]
async fn a_dropped_read_side_hands_its_leases_over_at_once() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let log = Arc::default();
    let a = node("a", &log, &leases)
        .event_store(events.clone())
        .projection_store(documents.clone())
        .start()
        .unwrap();
    let head = ping(&events, 1).await;
    a.wait_for("pings", head, TAKEOVER).await.unwrap();
    committed(&a, head).await;
    let b = node("b", &log, &leases)
        .event_store(events.clone())
        .projection_store(documents.clone())
        .start()
        .unwrap();

    drop(a);
    let head = ping(&events, 2).await;
    b.wait_for("pings", head, TAKEOVER).await.expect("b takes over well before the lease's TTL");
    assert_eq!(*log.lock().unwrap(), [("a", 1), ("b", 2)]);
    b.shutdown().await;
}

#[tokio::test]
async fn dropping_the_last_es_hands_its_leases_over_at_once() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let log = Arc::default();
    let es = Es::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .read_side(node("a", &log, &leases))
        .build()
        .await
        .unwrap();
    let head = ping(&events, 1).await;
    es.read_side().unwrap().wait_for("pings", head, TAKEOVER).await.unwrap();
    committed(es.read_side().unwrap(), head).await;
    assert!(leases.try_acquire("pings", "b", TTL).await.unwrap().is_none(), "a holds the lease");

    drop(es);
    let b = node("b", &log, &leases).event_store(events.clone()).projection_store(documents).start().unwrap();
    let head = ping(&events, 2).await;
    b.wait_for("pings", head, TAKEOVER).await.expect("b takes over well before the lease's TTL");
    assert_eq!(*log.lock().unwrap(), [("a", 1), ("b", 2)]);
    b.shutdown().await;
}
