//! The read side on Postgres: projections that survive a crash, rebuilds, failures, strong consistency, LISTEN/NOTIFY wake-ups,
//! two nodes sharing subscriptions, a bank transfer run by a process
//! manager, and the warning about a transaction holding readers back.
//!
//! Each test runs in its own schema. Nothing waits on a fixed sleep: tests
//! wait for positions with `ReadSide::wait_for`, or poll a condition in a
//! bounded loop with a deadline.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bank::{
    Account, AccountEvent, AccountSummary, Deposit, OpenAccount, StartTransfer, Transfer, TransferStatus,
    VerifyAccount,
};
use common::{drop_schema, fresh_schema, pool};
use es_core::error::ConsistencyError;
use es_core::readside::{
    Consistency, ReadSideBuilder, ReadSideConfig, Registry, Replay, RetryPolicy, Selection, Subscriber,
    SubscriptionState,
};
use es_core::store::{Direction, DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::testkit::{StoreCall, TestStore};
use es_core::{
    command, event, Aggregate, Apply, Es, Event, Events, GlobalPosition, Handle, HandleEvent, HandlerCtx,
    HandlerError, Project, ProjectionTx, ReadSide, Recorded, StreamId, StreamVersion,
};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::Notify;

const TTL: Duration = Duration::from_secs(30);

/// How long any bounded wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

// ---- a small domain, written the way users write one ----

/// Something was added to a tally.
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Added {
    amount: i64,
}

/// A remark no subscriber here consumes.
#[event]
#[derive(Debug, Clone, PartialEq)]
struct Noted {
    text: String,
}

/// Add to a tally.
#[command(aggregate = Tally)]
#[derive(Debug, Clone)]
struct Add {
    #[id]
    tally: String,
    amount: i64,
}

/// A tally refuses nothing; the error type is required all the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tally refuses nothing")]
struct TallyError;

/// A running total.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(name = "tally", error = TallyError, events(Added, Noted), commands(Add))]
struct Tally {
    total: i64,
}

impl Handle<Add> for Tally {
    fn handle(&self, command: Add) -> Result<Events<Self>, TallyError> {
        Ok(Events::one(Added { amount: command.amount }))
    }
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.amount;
    }
}

impl Apply<Noted> for Tally {
    fn apply(&mut self, _: &Noted) {}
}

// ---- stores and helpers ----

/// The stores of one test, in its own schema.
struct Db {
    pool: PgPool,
    schema: PgSchema,
    events: PgEventStore,
    documents: PgProjectionStore,
    leases: PgLeaseStore,
}

impl Db {
    async fn new() -> Self {
        let pool = pool(8).await;
        let schema = fresh_schema(&pool).await;
        Self {
            events: PgEventStore::with_schema(pool.clone(), schema.clone()),
            documents: PgProjectionStore::with_schema(pool.clone(), schema.clone()),
            leases: PgLeaseStore::with_schema(pool.clone(), schema.clone()),
            pool,
            schema,
        }
    }

    /// The stores of another node on the same database: its own pool and
    /// listener, the same tables.
    async fn other_node(&self) -> Self {
        let pool = pool(8).await;
        let schema = self.schema.clone();
        Self {
            events: PgEventStore::with_schema(pool.clone(), schema.clone()),
            documents: PgProjectionStore::with_schema(pool.clone(), schema.clone()),
            leases: PgLeaseStore::with_schema(pool.clone(), schema.clone()),
            pool,
            schema,
        }
    }

    /// A read side over these stores running `registry`.
    fn read_side(&self, owner: &str, registry: Registry, config: ReadSideConfig) -> ReadSideBuilder {
        ReadSide::builder()
            .event_store(self.events.clone())
            .projection_store(self.documents.clone())
            .lease_store(self.leases.clone())
            .owner(owner)
            .registry(registry)
            .config(config)
    }

    /// Appends `Added` events with these amounts to `tally-<tally>`, one
    /// append each; returns the position of the last.
    async fn add(&self, tally: &str, amounts: impl IntoIterator<Item = i64>) -> GlobalPosition {
        let stream = StreamId::for_aggregate(Tally::NAME, tally);
        let mut last = GlobalPosition::START;
        for amount in amounts {
            let event = new_event(&Added { amount });
            last = self
                .events
                .append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap()
                .last_position()
                .unwrap();
        }
        last
    }

    /// Appends a `Noted` event nobody consumes.
    async fn note(&self, tally: &str, text: &str) -> GlobalPosition {
        let stream = StreamId::for_aggregate(Tally::NAME, tally);
        let event = new_event(&Noted { text: text.into() });
        self.events.append(&stream, ExpectedVersion::Any, vec![event]).await.unwrap().last_position().unwrap()
    }

    /// The `totals` document of every tally.
    async fn totals(&self, projection: &str) -> BTreeMap<String, Total> {
        self.documents
            .query(projection, &DocumentQuery::all())
            .await
            .unwrap()
            .into_iter()
            .map(|(id, doc)| (id, serde_json::from_value(doc).unwrap()))
            .collect()
    }

    async fn drop(self) {
        drop_schema(&self.pool, &self.schema).await;
    }
}

fn new_event<E: Event + Serialize>(event: &E) -> NewEvent {
    NewEvent::new(Tally::NAME, E::TYPE, E::VERSION, serde_json::to_value(event).unwrap())
}

/// Settings for tests: small batches, quick retries; waits that are never
/// the reason a test passes (wake-ups come from NOTIFY or the runner).
fn config() -> ReadSideConfig {
    ReadSideConfig {
        batch_size: 8,
        idle_wait: Duration::from_millis(200),
        lease_ttl: TTL,
        lease_retry: Duration::from_millis(20),
        store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
        remote_poll: Duration::from_millis(20),
        ..ReadSideConfig::default()
    }
}

fn retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts, Duration::from_millis(5))
}

/// The `totals` projection's document per tally.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Total {
    total: i64,
    events: u32,
}

/// Sums `Added` per tally and counts the events that went in, so applying
/// one twice shows. Optionally stops for good at one amount (a crash
/// mid-batch), fails at one amount, and counts how many run at once.
#[derive(Default, Clone)]
struct Totals {
    hang_at: Option<i64>,
    hung: Arc<Notify>,
    fail_at: Option<i64>,
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
}

impl Project<Added> for Totals {
    async fn project(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        let outcome = self.apply(e, tx).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

impl Totals {
    async fn apply(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        if self.fail_at == Some(e.amount) {
            return Err(HandlerError::msg(format!("refusing amount {}", e.amount)));
        }
        if self.hang_at == Some(e.amount) {
            self.hung.notify_one();
            std::future::pending::<()>().await;
        }
        let id = e.stream_id.as_str();
        let mut doc: Total = tx.get(id).await?.unwrap_or_default();
        // Give another node every chance to run at the same time.
        tokio::task::yield_now().await;
        doc.total += e.amount;
        doc.events += 1;
        tx.put(id, &doc)?;
        Ok(())
    }

    fn subscriber(&self) -> Subscriber {
        Subscriber::projection(self.clone()).on::<Added>().build()
    }
}

fn registry(entries: Vec<(&str, Subscriber)>) -> Registry {
    let mut registry = Registry::new();
    for (name, subscriber) in entries {
        registry.register(name, subscriber).unwrap();
    }
    registry
}

/// What `totals` must hold after every event of `added` exactly once.
fn fold(added: &[(&str, Vec<i64>)]) -> BTreeMap<String, Total> {
    let mut expected: BTreeMap<String, Total> = BTreeMap::new();
    for (tally, amounts) in added {
        let doc =
            expected.entry(StreamId::for_aggregate(Tally::NAME, tally).as_str().to_owned()).or_default();
        for amount in amounts {
            doc.total += amount;
            doc.events += 1;
        }
    }
    expected
}

/// Appends the amounts tally by tally, with an unconsumed event between
/// tallies; returns the last position.
async fn add_all(db: &Db, added: &[(&str, Vec<i64>)]) -> GlobalPosition {
    let mut last = GlobalPosition::START;
    for (tally, amounts) in added {
        db.add(tally, amounts.iter().copied()).await;
        last = db.note(tally, "between tallies").await;
    }
    last
}

fn forty() -> Vec<(&'static str, Vec<i64>)> {
    vec![
        ("a", (1..=10).collect()),
        ("b", (11..=20).collect()),
        ("c", (21..=30).collect()),
        ("d", (31..=40).collect()),
    ]
}

// ---- projections: crash, failed commit, rebuild, failure ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_batch_resumes_and_applies_every_event_once() {
    let db = Db::new().await;
    let added = forty();
    let head = add_all(&db, &added).await;

    // Node "a" stops for good inside a batch (at amount 13), with the
    // batch's earlier events applied in its open unit of work.
    let crashing = Totals { hang_at: Some(13), ..Totals::default() };
    let hung = Arc::clone(&crashing.hung);
    let a = db.read_side("a", registry(vec![("totals", crashing.subscriber())]), config()).start().unwrap();
    tokio::time::timeout(DEADLINE, hung.notified()).await.expect("the projection reached amount 13");
    let stored = db.documents.checkpoint("totals").await.unwrap().map(|c| c.position);
    assert!(stored.is_some(), "earlier batches were committed");
    // Killed: dropped without shutdown, so its task is aborted mid-batch and
    // its lease is not released.
    drop(a);

    // The node restarts under the same name, takes its own lease again and
    // resumes from the stored checkpoint.
    let b = db
        .read_side("a", registry(vec![("totals", Totals::default().subscriber())]), config())
        .start()
        .unwrap();
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(db.totals("totals").await, fold(&added));
    assert_eq!(db.documents.checkpoint("totals").await.unwrap().map(|c| c.position), Some(head));
    b.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commits_are_waited_out_and_every_event_is_applied_once() {
    let db = Db::new().await;
    let added = forty();
    let head = add_all(&db, &added).await;
    // The connection drops during the first three commits: the outcome of
    // each is unknown, and the runner commits the same batch again.
    let documents = TestStore::new(db.documents.clone());
    documents.fail_next(StoreCall::Commit, 3);
    let subscriber = Totals::default().subscriber().retry(retry(1));
    let read_side = ReadSide::builder()
        .event_store(db.events.clone())
        .projection_store(documents.clone())
        .lease_store(db.leases.clone())
        .registry(registry(vec![("totals", subscriber)]))
        .config(config())
        .start()
        .unwrap();
    read_side.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(db.totals("totals").await, fold(&added));
    assert!(documents.calls(StoreCall::Commit) > 3);
    read_side.shutdown().await;
    db.drop().await;
}

/// Counts the events a handler ran for, and the replays among them.
#[derive(Default, Clone)]
struct Mailer {
    sent: Arc<AtomicUsize>,
    replayed: Arc<AtomicUsize>,
}

impl HandleEvent<Added> for Mailer {
    async fn handle(&self, _: &Recorded<Added>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        if ctx.is_replay() {
            self.replayed.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_replays_projections_but_never_runs_skip_on_replay_handlers() {
    let db = Db::new().await;
    let added = forty();
    let head = add_all(&db, &added).await;
    let totals = Totals::default();
    let skipping = Mailer::default();
    let replaying = Mailer::default();
    let read_side = db
        .read_side(
            "a",
            registry(vec![
                ("totals", totals.subscriber()),
                ("mailer", Subscriber::handler(skipping.clone()).on::<Added>().replay(Replay::Skip).build()),
                ("auditor", Subscriber::handler(replaying.clone()).on::<Added>().build()),
            ]),
            config(),
        )
        .start()
        .unwrap();
    for name in ["totals", "mailer", "auditor"] {
        read_side.wait_for(name, head, DEADLINE).await.unwrap();
    }
    assert_eq!(skipping.sent.load(Ordering::SeqCst), 40);
    assert_eq!(replaying.sent.load(Ordering::SeqCst), 40);
    assert_eq!(totals.runs.load(Ordering::SeqCst), 40);

    read_side.rebuild("totals").await.unwrap();
    read_side.rebuild("mailer").await.unwrap();
    read_side.rebuild("auditor").await.unwrap();
    for name in ["totals", "mailer", "auditor"] {
        read_side.wait_for(name, head, DEADLINE).await.unwrap();
    }
    assert_eq!(totals.runs.load(Ordering::SeqCst), 80, "the rebuild projected every event again");
    assert_eq!(db.totals("totals").await, fold(&added), "into a fresh state");
    assert_eq!(skipping.sent.load(Ordering::SeqCst), 40, "the skip-on-replay handler did not run");
    assert_eq!(replaying.sent.load(Ordering::SeqCst), 80);
    assert_eq!(replaying.replayed.load(Ordering::SeqCst), 40, "the replay was flagged as one");

    // After the replay, new events are news again.
    let later = db.add("a", [100]).await;
    read_side.wait_for("mailer", later, DEADLINE).await.unwrap();
    assert_eq!(skipping.sent.load(Ordering::SeqCst), 41);
    assert_eq!(skipping.replayed.load(Ordering::SeqCst), 0);
    read_side.shutdown().await;
    db.drop().await;
}

/// Fails on one amount, every time.
#[derive(Clone)]
struct Refuser(i64);

impl HandleEvent<Added> for Refuser {
    async fn handle(&self, e: &Recorded<Added>, _: &HandlerCtx) -> Result<(), HandlerError> {
        if e.amount == self.0 {
            return Err(HandlerError::msg(format!("cannot handle amount {}", e.amount)));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscriber_stops_at_its_event_and_reports_it() {
    let db = Db::new().await;
    let added = forty();
    let head = add_all(&db, &added).await;
    let stream = StreamId::for_aggregate(Tally::NAME, "b");
    let failing = db
        .events
        .read_stream(&stream, StreamVersion::FIRST, Direction::Forward, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.payload == serde_json::json!({"amount": 13}))
        .unwrap();
    let before = db
        .events
        .read_all(GlobalPosition::START, 1000)
        .await
        .unwrap()
        .into_iter()
        .take_while(|e| e.global_position < failing.global_position)
        .last()
        .unwrap()
        .global_position;
    let read_side = db
        .read_side(
            "a",
            registry(vec![
                ("refuser", Subscriber::handler(Refuser(13)).on::<Added>().build().retry(retry(3))),
                ("totals", Totals { fail_at: Some(13), ..Totals::default() }.subscriber().retry(retry(2))),
            ]),
            config(),
        )
        .start()
        .unwrap();
    for (name, namespace, attempts) in [("refuser", "refuser", 3), ("totals", "totals", 2)] {
        match read_side.wait_for(name, head, DEADLINE).await {
            Err(ConsistencyError::Failed { failure, .. }) => {
                assert_eq!(failure.position, failing.global_position)
            }
            other => panic!("`{name}`: expected a failure, got {other:?}"),
        }
        let status = read_side.status(name).unwrap();
        let SubscriptionState::Failed(failure) = status.state else { panic!("`{name}`: {status:?}") };
        assert_eq!(failure.position, failing.global_position, "`{name}`");
        assert_eq!(failure.event_id, Some(failing.event_id), "`{name}`");
        assert_eq!(failure.event_type.as_deref(), Some("Added"), "`{name}`");
        assert_eq!(failure.attempts, attempts, "`{name}`");
        assert!(failure.error.contains("amount 13"), "`{name}`: {}", failure.error);
        assert_eq!(status.position, before, "`{name}` reached the event before");
        let stored = db.documents.checkpoint(namespace).await.unwrap().map(|c| c.position).unwrap();
        assert!(stored < failing.global_position, "`{name}`: checkpoint {stored} is below the failing event");
        assert_eq!(stored, before, "`{name}`: what came before is kept");
    }
    // The projection holds exactly the events before the failing one.
    let mut expected = forty();
    expected.truncate(2);
    expected[1].1.retain(|a| *a < 13);
    assert_eq!(db.totals("totals").await, fold(&expected));
    read_side.shutdown().await;
    db.drop().await;
}

// ---- consistency and wake-ups ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strong_projection_is_visible_right_after_execute() {
    let db = Db::new().await;
    let strong = Totals::default().subscriber().consistency(Consistency::Strong);
    let es = Es::builder()
        .event_store(db.events.clone())
        .projection_store(db.documents.clone())
        .read_side(
            ReadSide::builder()
                .lease_store(db.leases.clone())
                .registry(registry(vec![("totals", strong)]))
                .config(config()),
        )
        .consistency_timeout(DEADLINE)
        .build()
        .await
        .unwrap();
    let id = StreamId::for_aggregate(Tally::NAME, "a").as_str().to_owned();
    let mut expected = Total::default();
    for amount in 1..=15 {
        es.execute(Add { tally: "a".into(), amount }).await.unwrap();
        expected.total += amount;
        expected.events += 1;
        let doc = db.documents.get("totals", &id).await.unwrap().map(|d| serde_json::from_value(d).unwrap());
        assert_eq!(doc, Some(expected.clone()), "right after adding {amount}");
    }
    assert_eq!(es.load::<Tally>("a").await.unwrap().total, expected.total);
    es.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_subscriber_is_woken_by_notify_for_an_event_appended_later() {
    let db = Db::new().await;
    let head = db.add("a", [1, 2]).await;
    // No polling could deliver the late event in time: the subscriber waits
    // an hour between reads unless a notification wakes it.
    let config = ReadSideConfig {
        idle_wait: Duration::from_secs(3600),
        lease_ttl: Duration::from_secs(3 * 3600),
        ..config()
    };
    let read_side = db
        .read_side("a", registry(vec![("totals", Totals::default().subscriber())]), config)
        .start()
        .unwrap();
    read_side.wait_for("totals", head, DEADLINE).await.unwrap();
    // Caught up, it is waiting for events now.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while read_side.status("totals").unwrap().state != SubscriptionState::CaughtUp {
        assert!(tokio::time::Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Another node appends (its own pool and connections).
    let other = db.other_node().await;
    let later = other.add("a", [3]).await;
    read_side.wait_for("totals", later, DEADLINE).await.unwrap();
    assert_eq!(db.totals("totals").await, fold(&[("a", vec![1, 2, 3])]));
    read_side.shutdown().await;
    db.drop().await;
}

// ---- several nodes ----

/// Waits until `read_side` processes `name` (its state is active).
async fn until_active(read_side: &ReadSide, name: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !read_side.status(name).unwrap().state.is_active() {
        assert!(tokio::time::Instant::now() < deadline, "`{}` never took `{name}` over", read_side.owner());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Two nodes running one projection; the first takes the lease.
async fn two_nodes(db: &Db, other: &Db, totals: &Totals, config: ReadSideConfig) -> (ReadSide, ReadSide) {
    let a = db
        .read_side("node-a", registry(vec![("totals", totals.subscriber())]), config.clone())
        .start()
        .unwrap();
    until_active(&a, "totals").await;
    let b =
        other.read_side("node-b", registry(vec![("totals", totals.subscriber())]), config).start().unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_both_process_and_the_second_takes_over_on_shutdown() {
    let db = Db::new().await;
    let other = db.other_node().await;
    let totals = Totals::default();
    let (a, b) = two_nodes(&db, &other, &totals, config()).await;
    let mut added = forty();
    let head = add_all(&db, &added).await;
    a.wait_for("totals", head, DEADLINE).await.unwrap();
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(b.status("totals").unwrap().state, SubscriptionState::Standby);
    assert_eq!(db.leases.holder("totals").await.unwrap().map(|l| l.owner).as_deref(), Some("node-a"));

    a.shutdown().await;
    until_active(&b, "totals").await;
    added.push(("e", (41..=60).collect()));
    let head = add_all(&other, &added[4..]).await;
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(db.totals("totals").await, fold(&added), "every event exactly once over both nodes");
    assert_eq!(totals.runs.load(Ordering::SeqCst), 60);
    assert_eq!(totals.most_at_once.load(Ordering::SeqCst), 1, "never two at once");
    assert_eq!(db.leases.holder("totals").await.unwrap().map(|l| l.owner).as_deref(), Some("node-b"));
    b.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_node_dies_its_lease_expires_and_the_other_takes_over_from_the_checkpoint() {
    let db = Db::new().await;
    let other = db.other_node().await;
    let totals = Totals::default();
    let config = ReadSideConfig { lease_ttl: Duration::from_millis(600), ..config() };
    let (a, b) = two_nodes(&db, &other, &totals, config).await;
    let mut added = forty();
    let head = add_all(&db, &added).await;
    a.wait_for("totals", head, DEADLINE).await.unwrap();
    let first_lease = db.leases.holder("totals").await.unwrap().unwrap();
    assert_eq!(first_lease.owner, "node-a");

    // Node a goes away without a shutdown: dropped, it stops its tasks and
    // releases its lease off the drop path.
    drop(a);
    until_active(&b, "totals").await;
    let taken = db.leases.holder("totals").await.unwrap().unwrap();
    assert_eq!(taken.owner, "node-b");
    assert!(taken.token > first_lease.token);
    added.push(("e", (41..=60).collect()));
    let head = add_all(&other, &added[4..]).await;
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(db.totals("totals").await, fold(&added));
    assert_eq!(totals.runs.load(Ordering::SeqCst), 60, "b resumed from a's checkpoint");
    assert_eq!(totals.most_at_once.load(Ordering::SeqCst), 1);
    b.shutdown().await;
    db.drop().await;
}

// ---- a process manager: the bank's transfer ----

/// The bank on Postgres, running its transfer process manager (strong) and
/// account summaries, picked from the subscribers the bank registers at
/// link time.
async fn bank(db: &Db) -> Es {
    let registry = Registry::from_inventory().unwrap();
    for name in ["transfer-process", bank::ACCOUNT_SUMMARY] {
        assert!(registry.get(name).is_some(), "the bank registers `{name}` at link time");
    }
    Es::builder()
        .event_store(db.events.clone())
        .projection_store(db.documents.clone())
        .read_side(
            ReadSide::builder()
                .lease_store(db.leases.clone())
                .registry(registry)
                .select(Selection::names(["transfer-process", bank::ACCOUNT_SUMMARY]))
                .config(config()),
        )
        .consistency_timeout(DEADLINE)
        .build()
        .await
        .unwrap()
}

/// Opens a verified account holding `balance`.
async fn open_account(es: &Es, id: &str, balance: u64) {
    let opened = es.execute(OpenAccount { account_id: id.into(), owner: id.to_uppercase() }).await.unwrap();
    let code = match &opened.events[..] {
        [AccountEvent::AccountOpened(opened)] => opened.verification_code.clone(),
        other => panic!("unexpected events {other:?}"),
    };
    es.execute(VerifyAccount { account_id: id.into(), code }).await.unwrap();
    es.execute(Deposit { account_id: id.into(), amount: balance }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_completes_and_a_failed_one_is_refunded_on_postgres() {
    let db = Db::new().await;
    let es = bank(&db).await;
    open_account(&es, "ada", 10_000).await;
    open_account(&es, "bob", 500).await;

    // The process manager is strongly consistent: when `StartTransfer`
    // returns, the transfer has run to its end.
    es.execute(StartTransfer {
        transfer_id: "t-1".into(),
        from: "ada".into(),
        to: "bob".into(),
        amount: 4_000,
    })
    .await
    .unwrap();
    let done = es.load::<Transfer>("t-1").await.unwrap();
    assert_eq!((done.status, done.reason), (TransferStatus::Completed, None));
    assert_eq!(es.load::<Account>("ada").await.unwrap().balance, 6_000);
    assert_eq!(es.load::<Account>("bob").await.unwrap().balance, 4_500);

    // Credit refused (no such account): the debit is refunded.
    es.execute(StartTransfer {
        transfer_id: "t-2".into(),
        from: "ada".into(),
        to: "nobody".into(),
        amount: 1_000,
    })
    .await
    .unwrap();
    assert_eq!(es.load::<Transfer>("t-2").await.unwrap().status, TransferStatus::Refunded);
    assert_eq!(es.load::<Account>("ada").await.unwrap().balance, 6_000);

    let read_side = es.read_side().unwrap().clone();
    bank::settle(&read_side, DEADLINE).await.unwrap();
    let ada = AccountSummary::load(&db.documents, "ada").await.unwrap().unwrap();
    let bob = AccountSummary::load(&db.documents, "bob").await.unwrap().unwrap();
    assert_eq!((ada.balance, bob.balance), (6_000, 4_500));
    es.shutdown().await;
    db.drop().await;
}

// ---- a long transaction holding readers back ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_holding_readers_back_is_named_in_the_status() {
    let db = Db::new().await;
    let first = db.add("a", [1]).await;
    let config = ReadSideConfig {
        idle_wait: Duration::from_millis(20),
        held_back_warning: Duration::from_millis(200),
        ..config()
    };
    let read_side = db
        .read_side("a", registry(vec![("totals", Totals::default().subscriber())]), config)
        .start()
        .unwrap();
    read_side.wait_for("totals", first, DEADLINE).await.unwrap();
    assert_eq!(read_side.status("totals").unwrap().held_back_by, None);

    // A writer opens a transaction, appends, and stays open; another
    // append commits after it, and stays hidden meanwhile.
    let mut blocker = db.pool.begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *blocker).await.unwrap();
    let stream = StreamId::for_aggregate(Tally::NAME, "slow");
    db.events
        .append_in_tx(&mut blocker, &stream, ExpectedVersion::Any, vec![new_event(&Added { amount: 10 })])
        .await
        .unwrap();
    let hidden = db.add("a", [2]).await;
    assert_eq!(db.events.head_position().await.unwrap(), first, "the committed append is hidden");

    let deadline = tokio::time::Instant::now() + DEADLINE;
    let status = loop {
        let status = read_side.status("totals").unwrap();
        if status.held_back_by.is_some() {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "the blocker was never reported: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let named = status.held_back_by.unwrap();
    assert!(named.contains(&format!("pid {pid}")), "{named}");
    assert!(named.contains("idle in transaction"), "{named}");
    assert_eq!(status.position, first);
    assert_eq!(status.state, SubscriptionState::CaughtUp);
    let blocker_info = db.events.read_blocker().await.unwrap().expect("still held back");
    assert!(blocker_info.hiding_for >= Duration::from_millis(200), "{blocker_info:?}");

    // The transaction ends: the events come through and the report clears.
    blocker.commit().await.unwrap();
    read_side.wait_for("totals", hidden, DEADLINE).await.unwrap();
    read_side.wait_for("totals", db.events.head_position().await.unwrap(), DEADLINE).await.unwrap();
    assert_eq!(read_side.status("totals").unwrap().held_back_by, None);
    assert_eq!(db.totals("totals").await, fold(&[("a", vec![1, 2]), ("slow", vec![10])]));
    assert_eq!(db.events.read_blocker().await.unwrap(), None);
    read_side.shutdown().await;
    db.drop().await;
}
