//! Projection cases: two nodes, each on its own stores of one database,
//! run one projection; never both at once, and every event lands exactly
//! once across a handover, and across a restart of one node under its
//! owner id while its earlier run still had a commit in flight.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};

use super::ping;
use crate::error::LeaseError;
use crate::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState};
use crate::store::{
    DocumentQuery, EventStore, ExpectedVersion, Lease, LeaseStore, NewEvent, ProjectionStore,
};
use crate::testkit::{Fault, StoreCall, TestStore};
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
            catch_up_batch_size: 8,
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

/// A node's lease store that remembers the lease it granted last, so a case
/// can name the lease a runner holds without acquiring it (which would hand
/// out a new token and fence the runner off). Clones share the memory.
#[derive(Clone)]
struct Granted<L> {
    inner: L,
    last: Arc<Mutex<Option<Lease>>>,
}

impl<L> Granted<L> {
    fn last(&self) -> Option<Lease> {
        self.last.lock().unwrap().clone()
    }
}

#[async_trait]
impl<L: LeaseStore> LeaseStore for Granted<L> {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        let granted = self.inner.try_acquire(name, owner, ttl).await?;
        if let Some(lease) = &granted {
            *self.last.lock().unwrap() = Some(lease.clone());
        }
        Ok(granted)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        self.inner.renew(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.inner.release(lease).await
    }
}

/// A node's stores, its lease store remembering what it granted.
fn granting<E, P, L>((events, documents, leases): (E, P, L)) -> (E, P, Granted<L>) {
    (events, documents, Granted { inner: leases, last: Arc::default() })
}

/// The lease on `totals`, asked through the port: `other` is refused it,
/// and the lease last granted to `owner`'s node is still held (renewed for
/// `ttl`, as its runner's renewals do).
async fn held_by<L: LeaseStore>(leases: &Granted<L>, owner: &str, other: &str, ttl: Duration) -> Lease {
    let refused = leases.inner.try_acquire("totals", other, ttl).await.unwrap();
    assert_eq!(refused, None, "`{other}` acquired the lease on `totals` that `{owner}` should hold");
    let lease = leases.last().unwrap_or_else(|| panic!("`{owner}` was never granted the lease on `totals`"));
    assert_eq!(lease.owner, owner, "the lease on `totals` was granted last to another owner");
    let held = leases.inner.renew(&lease, ttl).await.unwrap();
    assert!(held, "`{owner}` does not hold the lease on `totals` it was granted last: {lease:?}");
    lease
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
    let (one, two) = (granting(one), granting(two));
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
    let (one, two) = (granting(one), granting(two));
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

/// A node restarted under the same owner id while its earlier run still
/// has a commit in flight: the new run takes the lease (under a new token)
/// and reads the old checkpoint, and the earlier run's commit reaches the
/// store only then, before the new run reads the documents. It must be
/// fenced off, or the new run applies its events a second time on top of
/// it. Every event is applied exactly once.
///
/// Takes one node's stores, whose projection store checks fences against
/// the lease store's leases (so not the in-memory ones, which ignore fences
/// by design). [`TestStore`] hooks hold the earlier run's commit back and
/// let it go from the new run's first document read; the earlier run
/// never releases its lease, as a killed process does not.
pub async fn a_node_restarted_under_its_owner_fences_off_its_earlier_runs_commit<E, P, L>(stores: (E, P, L))
where
    E: EventStore + Clone,
    P: ProjectionStore + Clone,
    L: LeaseStore + Clone,
{
    let (events, documents, leases) = stores;
    let totals = Totals::default();
    let earlier_documents = TestStore::new(documents.clone());
    // The earlier run goes away as a killed process does, never releasing
    // its lease: its releases are dropped.
    let earlier_leases = TestStore::new(leases.clone());
    earlier_leases.inject(StoreCall::Release, Fault::Dropped, ..);
    let earlier = start(&(events.clone(), earlier_documents.clone(), earlier_leases), "node-a", &totals, TTL);
    let mut added = vec![("a", 1..=3)];
    let head = tally(&events, "a", 1..=3).await;
    earlier.wait_for("totals", head, DEADLINE).await.unwrap();

    // The earlier run's first commit that carries a projected event waits
    // for the gate.
    let gate = Arc::new(Semaphore::new(0));
    let (holding, mut held) = watch::channel(false);
    let projected = totals.runs.load(Ordering::SeqCst);
    earlier_documents.before(StoreCall::Commit, {
        let (gate, runs, holding) = (Arc::clone(&gate), Arc::clone(&totals.runs), Arc::new(holding));
        move |_| {
            let (gate, holding) = (Arc::clone(&gate), Arc::clone(&holding));
            let hold = runs.load(Ordering::SeqCst) > projected && !holding.send_replace(true);
            async move {
                if hold {
                    gate.acquire().await.expect("the gate stays open").forget();
                }
            }
        }
    });
    added.push(("b", 4..=6));
    let head = tally(&events, "b", 4..=6).await;
    let holds = tokio::time::timeout(DEADLINE, held.wait_for(|held| *held)).await;
    assert!(holds.is_ok(), "the earlier run never committed the events it projected");

    // The earlier run is stopped with its commit pending: it ends once the
    // commit has landed or been refused.
    let (stopped, earlier_gone) = watch::channel(false);
    tokio::spawn(async move {
        earlier.shutdown().await;
        stopped.send_replace(true);
    });
    // The new run reads the checkpoint, then its first document read lets
    // the earlier commit go and waits until it is through.
    let waited = Arc::new(AtomicBool::new(false));
    let later_documents = TestStore::new(documents.clone());
    later_documents.before(StoreCall::Get, {
        let (gate, waited) = (Arc::clone(&gate), Arc::clone(&waited));
        move |n| {
            let (gate, waited, mut earlier_gone) =
                (Arc::clone(&gate), Arc::clone(&waited), earlier_gone.clone());
            async move {
                if n == 1 {
                    gate.add_permits(1);
                    let gone = tokio::time::timeout(DEADLINE, earlier_gone.wait_for(|gone| *gone)).await;
                    waited.store(gone.is_ok(), Ordering::SeqCst);
                }
            }
        }
    });
    let later = start(&(events.clone(), later_documents, leases.clone()), "node-a", &totals, TTL);
    later.wait_for("totals", head, DEADLINE).await.unwrap();
    assert!(
        waited.load(Ordering::SeqCst),
        "the new run's first document read should have let the earlier run's commit go and seen that run stop"
    );
    assert_eq!(
        stored(&documents).await,
        fold(&added),
        "every event exactly once: the new run's lease must fence off the earlier run's commit"
    );
    later.shutdown().await;
}
