//! Projection cases: two nodes, each on its own stores of one database,
//! run one projection; never both at once, and every event lands exactly
//! once across a handover.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ping;
use crate::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState};
use crate::store::{
    DocumentQuery, EventStore, ExpectedVersion, Lease, LeaseStore, NewEvent, ProjectionStore,
};
use crate::{
    event, Event, GlobalPosition, HandlerError, Project, ProjectionTx, ReadSide, Recorded, StreamId,
};

/// Far longer than the cases run.
const TTL: Duration = Duration::from_secs(30);
/// The lease TTL of the case where a node dies.
const SHORT_TTL: Duration = Duration::from_millis(600);
/// How long any bounded wait in these cases may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Something was added to a tally.
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Tallied {
    amount: i64,
}

/// One tally's document: the sum of its amounts and how many went in, so
/// an event applied twice shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Total {
    total: i64,
    events: u32,
}

/// Keeps a [`Total`] per tally stream, and counts its runs and the most
/// that ran at once (over every node).
#[derive(Default, Clone)]
struct Totals {
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
}

impl Project<Tallied> for Totals {
    async fn project(&self, e: &Recorded<Tallied>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        let id = e.stream_id.as_str();
        let result = async {
            let mut doc: Total = tx.get(id).await?.unwrap_or_default();
            // Give the other node every chance to run at the same time.
            tokio::task::yield_now().await;
            doc.total += e.amount;
            doc.events += 1;
            tx.put(id, &doc)?;
            Ok(())
        }
        .await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// A node's read side running `totals`: small batches, quick retries,
/// waits that are never the reason a case passes.
fn start<E, P, L>(node: &(E, P, L), owner: &str, totals: &Totals, lease_ttl: Duration) -> ReadSide
where
    E: EventStore + Clone,
    P: ProjectionStore + Clone,
    L: LeaseStore + Clone,
{
    let (events, documents, leases) = node;
    let mut registry = Registry::new();
    registry.register("totals", Subscriber::projection(totals.clone()).on::<Tallied>().build()).unwrap();
    ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .lease_store(leases.clone())
        .owner(owner)
        .registry(registry)
        .config(ReadSideConfig {
            batch_size: 8,
            idle_wait: Duration::from_millis(200),
            lease_ttl,
            lease_retry: Duration::from_millis(20),
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
            remote_poll: Duration::from_millis(20),
            ..ReadSideConfig::default()
        })
        .start()
        .unwrap()
}

/// Appends one `Tallied` per amount to `tally-<tally>`, then an event
/// `totals` does not consume; returns the last position.
async fn tally<E: EventStore>(events: &E, tally: &str, amounts: RangeInclusive<i64>) -> GlobalPosition {
    let stream = StreamId::new(format!("tally-{tally}"));
    for amount in amounts {
        let event =
            NewEvent::new("tally", Tallied::TYPE, 1, serde_json::to_value(Tallied { amount }).unwrap());
        events.append(&stream, ExpectedVersion::Any, vec![event]).await.unwrap();
    }
    ping(events, 0).await
}

/// What `totals` must hold after every amount exactly once.
fn fold(added: &[(&str, RangeInclusive<i64>)]) -> BTreeMap<String, Total> {
    let mut expected: BTreeMap<String, Total> = BTreeMap::new();
    for (tally, amounts) in added {
        let doc = expected.entry(format!("tally-{tally}")).or_default();
        for amount in amounts.clone() {
            doc.total += amount;
            doc.events += 1;
        }
    }
    expected
}

async fn stored<P: ProjectionStore>(documents: &P) -> BTreeMap<String, Total> {
    let all = documents.query("totals", &DocumentQuery::all()).await.unwrap();
    all.into_iter().map(|(id, doc)| (id, serde_json::from_value(doc).unwrap())).collect()
}

/// Starts node `node-a` on `one` and, once it processes `totals`, node
/// `node-b` on `two`.
async fn start_both<E, P, L>(
    one: &(E, P, L),
    two: &(E, P, L),
    totals: &Totals,
    lease_ttl: Duration,
) -> (ReadSide, ReadSide)
where
    E: EventStore + Clone,
    P: ProjectionStore + Clone,
    L: LeaseStore + Clone,
{
    let a = start(one, "node-a", totals, lease_ttl);
    until_active(&a).await;
    (a, start(two, "node-b", totals, lease_ttl))
}

/// Checks that `totals` projected every amount of `added` exactly once,
/// never two events at once.
async fn each_once<P: ProjectionStore>(
    documents: &P,
    totals: &Totals,
    added: &[(&str, RangeInclusive<i64>)],
    what: &str,
) {
    assert_eq!(stored(documents).await, fold(added), "every event exactly once: {what}");
    let events = added.iter().map(|(_, amounts)| amounts.clone().count()).sum::<usize>();
    assert_eq!(totals.runs.load(Ordering::SeqCst), events, "every event projected once: {what}");
    assert_eq!(totals.most_at_once.load(Ordering::SeqCst), 1, "never two at once: {what}");
}

/// Waits until `read_side` processes `totals` (its state is active).
async fn until_active(read_side: &ReadSide) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !read_side.status("totals").unwrap().state.is_active() {
        assert!(tokio::time::Instant::now() < deadline, "`{}` never took `totals` over", read_side.owner());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The lease on `totals`, asked through the port: `other` is refused it,
/// and `owner` re-acquiring it gets it back (re-entrant, same token) for
/// `ttl`, as its runner's renewals do.
async fn held_by<L: LeaseStore>(leases: &L, owner: &str, other: &str, ttl: Duration) -> Lease {
    let refused = leases.try_acquire("totals", other, ttl).await.unwrap();
    assert_eq!(refused, None, "`{other}` acquired the lease on `totals` that `{owner}` should hold");
    let held = leases.try_acquire("totals", owner, ttl).await.unwrap();
    held.unwrap_or_else(|| panic!("`{owner}` does not hold the lease on `totals`"))
}

/// Two nodes run one projection: the first takes the lease, the second
/// stands by (and still sees the first's progress), events from either
/// node are projected by the holder; on the first's shutdown the second
/// takes over. Every event lands exactly once, never two at once.
pub async fn two_nodes_never_both_project_and_the_second_takes_over_on_shutdown<E, P, L>(
    one: (E, P, L),
    two: (E, P, L),
) where
    E: EventStore + Clone,
    P: ProjectionStore + Clone,
    L: LeaseStore + Clone,
{
    let totals = Totals::default();
    let (a, b) = start_both(&one, &two, &totals, TTL).await;
    let mut added = vec![("a", 1..=10), ("b", 11..=20)];
    tally(&one.0, "a", 1..=10).await;
    let head = tally(&two.0, "b", 11..=20).await;
    a.wait_for("totals", head, DEADLINE).await.unwrap();
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(b.status("totals").unwrap().state, SubscriptionState::Standby);
    held_by(&one.2, "node-a", "node-b", TTL).await;

    a.shutdown().await;
    until_active(&b).await;
    added.push(("c", 21..=30));
    let head = tally(&one.0, "c", 21..=30).await;
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    each_once(&two.1, &totals, &added, "over both nodes").await;
    held_by(&two.2, "node-b", "node-a", TTL).await;
    b.shutdown().await;
}

/// A node that goes away without a shutdown (dropped mid-run) loses its
/// lease to the other node, under a larger token, and the other resumes
/// the projection from the checkpoint the first committed: every event
/// lands exactly once.
pub async fn a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint<E, P, L>(
    one: (E, P, L),
    two: (E, P, L),
) where
    E: EventStore + Clone,
    P: ProjectionStore + Clone,
    L: LeaseStore + Clone,
{
    let totals = Totals::default();
    let (a, b) = start_both(&one, &two, &totals, SHORT_TTL).await;
    let mut added = vec![("a", 1..=20)];
    let head = tally(&one.0, "a", 1..=20).await;
    a.wait_for("totals", head, DEADLINE).await.unwrap();
    let first = held_by(&one.2, "node-a", "node-b", SHORT_TTL).await;

    drop(a);
    until_active(&b).await;
    let taken = held_by(&two.2, "node-b", "node-a", SHORT_TTL).await;
    assert!(taken.token > first.token, "a takeover gets a larger token: {taken:?} after {first:?}");
    added.push(("b", 21..=40));
    let head = tally(&two.0, "b", 21..=40).await;
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    each_once(&two.1, &totals, &added, "b resumed from a's checkpoint").await;
    b.shutdown().await;
}
