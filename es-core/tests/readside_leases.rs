//! The read side's leases on the in-memory stores: runners on several
//! nodes taking turns, a dead node's lease expiring, and slow lease
//! replies. Races of stops, starts and rebuilds are in `readside_races.rs`.
//!
//! Tests run on tokio's paused clock: time only moves when every task is
//! idle, so backoffs, lease expiry and timeouts cost no real time and no
//! test waits on the wall clock.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::readside::{ReadSideConfig, Registry, Subscriber, SubscriptionState};
use es_core::store::{LeaseStore, ProjectionStore};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{
    Es, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, Project, ProjectionTx, ReadSide, Recorded,
};
use es_memory::InMemoryLeaseStore;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use support::readside::*;

/// Counts how many nodes run it at the same moment.
#[derive(Clone, Default)]
struct Exclusive {
    active: Arc<AtomicU32>,
    max_active: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<(String, u64)>>>,
    node: String,
}

impl HandleEvent<Deposited> for Exclusive {
    async fn handle(&self, e: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        // Give the other node every chance to run at the same time.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        self.seen.lock().unwrap().push((self.node.clone(), e.position.get()));
        self.active.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

fn node(
    name: &str,
    shared: &Exclusive,
    events: &InMemoryEventStore,
    documents: &InMemoryProjectionStore,
    leases: &InMemoryLeaseStore,
    config: ReadSideConfig,
) -> ReadSide {
    let handler = Exclusive { node: name.into(), ..shared.clone() };
    let subscriber = Subscriber::handler(handler).on::<Deposited>().build();
    start_node(name, ("exclusive", subscriber), events, documents, leases, config)
}

/// A read side named `name` running one subscriber on the given stores.
fn start_node(
    name: &str,
    (subscription, subscriber): (&str, Subscriber),
    events: &InMemoryEventStore,
    documents: &InMemoryProjectionStore,
    leases: &InMemoryLeaseStore,
    config: ReadSideConfig,
) -> ReadSide {
    let mut registry = Registry::new();
    registry.register(subscription, subscriber).unwrap();
    ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .lease_store(leases.clone())
        .owner(name)
        .registry(registry)
        .config(config)
        .start()
        .unwrap()
}

/// Two nodes share one lease store: only one processes at any moment, and
/// after it stops the other goes on from its checkpoint.
async fn two_runners_take_turns(config: ReadSideConfig) {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let shared = Exclusive::default();
    let a = node("a", &shared, &events, &documents, &leases, config.clone());
    let b = node("b", &shared, &events, &documents, &leases, config);
    let mut head = GlobalPosition::START;
    for n in 0..12 {
        head = append(&events, "account-ada", &[deposit("ada", n)]).await;
        tokio::task::yield_now().await;
    }
    // Either node sees the position reached: by running it, or through the
    // checkpoint the other one stored.
    tokio::select! {
        reached = a.wait_for("exclusive", head, TIMEOUT) => reached.unwrap(),
        reached = b.wait_for("exclusive", head, TIMEOUT) => reached.unwrap(),
    }
    let holder = leases.holder("exclusive").expect("one node holds the lease");
    let (active, standby) = if holder == "a" { (a, b) } else { (b, a) };
    active.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(standby.status("exclusive").unwrap().state, SubscriptionState::Standby);
    standby.wait_for("exclusive", head, TIMEOUT).await.unwrap();

    active.shutdown().await;
    for n in 0..6 {
        head = append(&events, "account-ada", &[deposit("ada", 100 + n)]).await;
    }
    standby.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some(standby.owner()));
    assert_eq!(shared.max_active.load(Ordering::SeqCst), 1, "never two nodes at once");
    let seen = shared.seen.lock().unwrap().clone();
    let positions: Vec<u64> = seen.iter().map(|(_, p)| *p).collect();
    assert_eq!(positions, (1..=head.get()).collect::<Vec<_>>(), "every event once, in order");
    let by_node: HashMap<&str, usize> = seen.iter().fold(HashMap::new(), |mut m, (n, _)| {
        *m.entry(n.as_str()).or_default() += 1;
        m
    });
    assert_eq!(by_node.get(holder.as_str()), Some(&12));
    assert_eq!(by_node.get(standby.owner()), Some(&6));
    standby.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn two_runners_never_both_process_and_the_second_takes_over() {
    two_runners_take_turns(config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_on_two_threads_never_both_process() {
    let config = ReadSideConfig {
        lease_retry: Duration::from_millis(5),
        idle_wait: Duration::from_millis(50),
        ..config()
    };
    two_runners_take_turns(config).await;
}

#[tokio::test(start_paused = true)]
async fn when_a_runner_dies_its_lease_expires_and_another_takes_over() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let shared = Exclusive::default();
    let a = node("a", &shared, &events, &documents, &leases, config());
    let head = append(&events, "account-ada", &[deposit("ada", 1), deposit("ada", 2)]).await;
    a.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some("a"));
    assert_eq!(documents.checkpoint("exclusive").await.unwrap().map(|c| c.position), Some(head));
    let b = node("b", &shared, &events, &documents, &leases, config());
    drop(a); // aborts the task without releasing the lease, like a crash

    let head = append(&events, "account-ada", &[deposit("ada", 3)]).await;
    b.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some("b"));
    let seen = shared.seen.lock().unwrap().clone();
    assert_eq!(seen, [("a".to_owned(), 1), ("a".to_owned(), 2), ("b".to_owned(), 3)]);
    assert!(leases.try_acquire("exclusive", "c", Duration::from_secs(1)).await.unwrap().is_none());
    b.shutdown().await;
}

/// The read side an `Es` owns dispatches through it, yet does not keep it
/// alive: dropping the last `Es` handle stops that node like a crash, and
/// another node takes its subscriptions over.
#[tokio::test(start_paused = true)]
async fn dropping_the_last_es_stops_its_read_side_and_another_node_takes_over() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let shared = Exclusive::default();
    let handler = Exclusive { node: "a".into(), ..shared.clone() };
    let mut registry = Registry::new();
    registry.register("exclusive", Subscriber::handler(handler).on::<Deposited>().build()).unwrap();
    let a = Es::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .read_side(
            ReadSide::builder().lease_store(leases.clone()).owner("a").registry(registry).config(config()),
        )
        .build()
        .await
        .unwrap();
    let head = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    a.read_side().unwrap().wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some("a"));
    let b = node("b", &shared, &events, &documents, &leases, config());
    drop(a);

    let head = append(&events, "account-ada", &[deposit("ada", 2)]).await;
    b.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    assert_eq!(leases.holder("exclusive").as_deref(), Some("b"));
    let seen = shared.seen.lock().unwrap().clone();
    assert_eq!(seen, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
    b.shutdown().await;
}

/// A clone of an `Es`'s read side outlives the `Es`: its handlers, which
/// dispatch through the `Es`, stop (releasing their leases) instead of
/// failing event after event without it.
#[tokio::test(start_paused = true)]
async fn handlers_stop_when_the_es_owning_their_read_side_is_gone() {
    let events = InMemoryEventStore::new();
    let leases = InMemoryLeaseStore::new();
    let shared = Exclusive::default();
    let mut registry = Registry::new();
    let handler = Exclusive { node: "a".into(), ..shared.clone() };
    registry.register("exclusive", Subscriber::handler(handler).on::<Deposited>().build()).unwrap();
    let es = Es::builder()
        .event_store(events.clone())
        .projection_store(InMemoryProjectionStore::new())
        .read_side(
            ReadSide::builder().lease_store(leases.clone()).owner("a").registry(registry).config(config()),
        )
        .build()
        .await
        .unwrap();
    let read_side = es.read_side().unwrap().clone();
    let head = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    read_side.wait_for("exclusive", head, TIMEOUT).await.unwrap();
    drop(es);

    append(&events, "account-ada", &[deposit("ada", 2)]).await;
    let mut state = read_side.status("exclusive").unwrap().state;
    for _ in 0..600 {
        if state == SubscriptionState::Stopped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = read_side.status("exclusive").unwrap().state;
    }
    assert_eq!(state, SubscriptionState::Stopped);
    assert_eq!(
        shared.seen.lock().unwrap().clone(),
        [("a".to_owned(), 1)],
        "the second event was not handled"
    );
    assert_eq!(leases.holder("exclusive"), None, "a stopped subscription releases its lease");
}

/// Takes two seconds of (paused) time per event.
struct SlowCount;

impl Project<Deposited> for SlowCount {
    async fn project(&self, _: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let n: u64 = tx.get("count").await?.unwrap_or(0);
        Ok(tx.put("count", &(n + 1))?)
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_granted_by_a_slow_reply_is_renewed_before_it_runs_out() {
    // The lease (TTL 10 s) is granted at once but the reply takes 9 s: a
    // runner that counts the TTL from the reply believes it holds the lease
    // until 19 s, and commits the 2 s event at 11 s without renewing.
    let events = InMemoryEventStore::new();
    let leases = InMemoryLeaseStore::new();
    let slow = TestStore::new(leases.clone());
    slow.inject(StoreCall::Acquire, Fault::SlowReply(Duration::from_secs(9)), 1..=1);
    // Records every commit that starts while this node does not hold the lease.
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let unleased_commits = Arc::new(AtomicU32::new(0));
    {
        let (leases, unleased_commits) = (leases.clone(), Arc::clone(&unleased_commits));
        documents.before(StoreCall::Commit, move |_| {
            if leases.holder("count").as_deref() != Some("slow") {
                unleased_commits.fetch_add(1, Ordering::SeqCst);
            }
            std::future::ready(())
        });
    }
    let position = append(&events, "account-ada", &[deposit("ada", 1)]).await;
    let mut registry = Registry::new();
    registry.register("count", Subscriber::projection(SlowCount).on::<Deposited>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .lease_store(slow)
        .owner("slow")
        .registry(registry)
        .config(config())
        .start()
        .unwrap();
    read_side.wait_for("count", position, TIMEOUT).await.unwrap();
    assert_eq!(unleased_commits.load(Ordering::SeqCst), 0, "a commit ran after the lease had expired");
    read_side.shutdown().await;
}

/// Takes three lease TTLs over each event, and records who handled it.
#[derive(Clone, Default)]
struct SlowHandler {
    seen: Arc<Mutex<Vec<(String, u64)>>>,
    node: String,
}

impl HandleEvent<Deposited> for SlowHandler {
    async fn handle(&self, e: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
        tokio::time::sleep(config().lease_ttl * 3).await;
        self.seen.lock().unwrap().push((self.node.clone(), e.position.get()));
        Ok(())
    }
}

/// Takes three lease TTLs over each event it counts.
struct SlowProjection;

impl Project<Deposited> for SlowProjection {
    async fn project(&self, _: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        tokio::time::sleep(config().lease_ttl * 3).await;
        let n: u64 = tx.get("count").await?.unwrap_or(0);
        Ok(tx.put("count", &(n + 1))?)
    }
}

/// Two deposits, then node a running `subscriber("a")` as `slow` until it
/// holds the lease, then node b running `subscriber("b")`, waiting for it.
/// Returns both nodes and the position of the last deposit.
async fn slow_work_with_a_node_waiting(
    events: &InMemoryEventStore,
    documents: &InMemoryProjectionStore,
    leases: &InMemoryLeaseStore,
    subscriber: impl Fn(&str) -> Subscriber,
) -> (ReadSide, ReadSide, GlobalPosition) {
    let start =
        |name: &str| start_node(name, ("slow", subscriber(name)), events, documents, leases, config());
    let head = append(events, "account-ada", &[deposit("ada", 1), deposit("ada", 2)]).await;
    let a = start("a");
    tokio::time::timeout(TIMEOUT, async {
        while leases.holder("slow").as_deref() != Some("a") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("node a never took the lease");
    (a, start("b"), head)
}

#[tokio::test(start_paused = true)]
async fn a_handler_slower_than_the_lease_keeps_it_and_no_other_node_handles_its_events() {
    let (events, documents, leases) =
        (InMemoryEventStore::new(), InMemoryProjectionStore::new(), InMemoryLeaseStore::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = |node: &str| {
        let handler = SlowHandler { seen: Arc::clone(&seen), node: node.into() };
        Subscriber::handler(handler).on::<Deposited>().build()
    };
    let (a, b, head) = slow_work_with_a_node_waiting(&events, &documents, &leases, handler).await;
    a.wait_for("slow", head, TIMEOUT * 2).await.unwrap();
    assert_eq!(leases.holder("slow").as_deref(), Some("a"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, [("a".to_owned(), 1), ("a".to_owned(), 2)], "every event once, by the lease's holder");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_projection_slower_than_the_lease_keeps_it_and_commits_its_batch() {
    let (events, documents, leases) =
        (InMemoryEventStore::new(), InMemoryProjectionStore::new(), InMemoryLeaseStore::new());
    let projection = |_: &str| Subscriber::projection(SlowProjection).on::<Deposited>().build();
    let (a, b, head) = slow_work_with_a_node_waiting(&events, &documents, &leases, projection).await;
    a.wait_for("slow", head, TIMEOUT * 2).await.unwrap();
    assert_eq!(leases.holder("slow").as_deref(), Some("a"), "node b never took the projection over");
    assert_eq!(documents.get("slow", "count").await.unwrap(), Some(serde_json::json!(2)));
    a.shutdown().await;
    b.shutdown().await;
}
