//! Read side cases: what a read side promises on an adapter's stores.
//!
//! Each case runs two nodes (or two runs of one node) on one fresh database
//! and checks one guarantee across them. The handover cases take the three
//! stores of the database (events, documents, leases) and clone them into
//! both nodes; the projection cases take each node's own stores
//! (`(events, documents, leases)`, its own connections to the one
//! database), as two processes have, and the restart case one node's. The
//! cases are plain async fns: an adapter's test calls them with its stores.

mod projection;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::readside::{ReadSideBuilder, ReadSideConfig, Registry, Subscriber};
use crate::store::{EventStore, ExpectedVersion, LeaseStore, NewEvent, ProjectionStore};
use crate::{
    event, Es, Event, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, ReadSide, Recorded, StreamId,
};

pub use projection::{
    a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint,
    a_node_restarted_under_its_owner_fences_off_its_earlier_runs_commit,
    two_nodes_never_both_project_and_the_second_takes_over_on_shutdown,
};

/// Far longer than the cases wait for a takeover.
const TTL: Duration = Duration::from_secs(300);
/// How long a takeover may take once the holder let go.
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
/// `head`: a handler's delivery is at least once, and the cases want to see
/// the handover, not a redelivery of what was not committed.
async fn committed(read_side: &ReadSide, head: GlobalPosition) {
    for _ in 0..1000 {
        if read_side.status("pings").unwrap().checkpoint >= Some(head) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the checkpoint never reached {head}: {:?}", read_side.status("pings"));
}

async fn ping<E: EventStore>(store: &E, n: u64) -> GlobalPosition {
    let new = NewEvent::new("pinger", Pinged::TYPE, 1, serde_json::to_value(Pinged { n }).unwrap());
    store
        .append(&StreamId::new("pinger-1"), ExpectedVersion::Any, vec![new])
        .await
        .unwrap()
        .last_position()
        .unwrap()
}

/// A read side of node `name` running the `pings` handler on `leases`.
fn node<L: LeaseStore + Clone>(name: &'static str, log: &Log, leases: &L) -> ReadSideBuilder {
    let mut registry = Registry::new();
    let seen = Seen { node: name, log: Arc::clone(log) };
    registry.register("pings", Subscriber::handler(seen).on::<Pinged>().build()).unwrap();
    ReadSide::builder().lease_store(leases.clone()).owner(name).registry(registry).config(ReadSideConfig {
        lease_ttl: TTL,
        lease_retry: Duration::from_millis(50),
        idle_wait: Duration::from_millis(200),
        ..ReadSideConfig::default()
    })
}

/// Dropping a read side without `shutdown()` releases its leases, so
/// another node takes its subscriptions over within seconds instead of
/// after the lease's TTL.
pub async fn a_dropped_read_side_hands_its_leases_over_at_once<E, P, L>(events: E, documents: P, leases: L)
where
    E: EventStore + Clone,
    P: ProjectionStore + Clone,
    L: LeaseStore + Clone,
{
    let log = Log::default();
    let a = node("a", &log, &leases)
        .event_store(events.clone())
        .projection_store(documents.clone())
        .start()
        .unwrap();
    let head = ping(&events, 1).await;
    a.wait_for("pings", head, TAKEOVER).await.unwrap();
    committed(&a, head).await;
    let b = node("b", &log, &leases).event_store(events.clone()).projection_store(documents).start().unwrap();

    drop(a);
    let head = ping(&events, 2).await;
    b.wait_for("pings", head, TAKEOVER).await.expect("b takes over well before the lease's TTL");
    assert_eq!(*log.lock().unwrap(), [("a", 1), ("b", 2)]);
    b.shutdown().await;
}

/// Dropping the last [`Es`] that owns a read side releases its leases too.
pub async fn dropping_the_last_es_hands_its_leases_over_at_once<E, P, L>(events: E, documents: P, leases: L)
where
    E: EventStore + Clone,
    P: ProjectionStore + Clone,
    L: LeaseStore + Clone,
{
    let log = Log::default();
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
