//! Acceptance checks of the guarantees in DESIGN.md, written the way a user
//! would: a domain defined with the macros, driven through the public API
//! of `Es`, `ReadSide` and the in-memory adapters.
//!
//! Guarantees already pinned elsewhere (store conformance, actors,
//! snapshots, strong consistency, projection crash/resume) are not
//! repeated here; these cover the rest.

// Helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use es_core::error::ConsistencyError;
use es_core::error::{DecodeError, DecodeErrorKind, ExecuteError, LoadError};
use es_core::readside::{ReadSideConfig, Selection, SubscriptionState};
use es_core::runtime::CommandPath;
use es_core::store::{
    Direction, DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore, RecordedEvent,
    Snapshot, SnapshotStore, Timestamp,
};
use es_core::{
    command, event, event_handler, projection, Aggregate, Apply, Es, Event, EventId, Events, GlobalPosition,
    Handle, HandlerCtx, HandlerError, Metadata, Project, ProjectionTx, ReadSide, Recorded, StreamId,
    StreamVersion,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::task::JoinSet;

// ---------------------------------------------------------------- domain

/// A ledger was opened.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// Who owns it.
    pub owner: String,
}

/// Money came in.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct Deposited {
    /// How much.
    pub amount: u64,
}

/// A note was written. Version 1 had `body` instead of `text`.
#[event(version = 2, upcast = upcast_noted)]
#[derive(Debug, Clone, PartialEq)]
pub struct Noted {
    /// The note.
    pub text: String,
}

fn upcast_noted(from_version: u32, payload: Value) -> Result<Value, String> {
    match from_version {
        1 => {
            let body = payload.get("body").cloned().ok_or("a version 1 note has a `body`")?;
            Ok(json!({ "text": body }))
        }
        other => Err(format!("no upcaster from version {other}")),
    }
}

/// Opens a ledger.
#[command(aggregate = Ledger)]
#[derive(Debug, Clone)]
pub struct Open {
    /// The ledger.
    #[id]
    pub id: String,
    /// Its owner.
    #[validate(non_empty)]
    pub owner: String,
}

/// Deposits money.
#[command(aggregate = Ledger)]
#[derive(Debug, Clone)]
pub struct Deposit {
    /// The ledger.
    #[id]
    pub id: String,
    /// How much.
    #[validate(min = 1)]
    pub amount: u64,
}

/// Writes a note.
#[command(aggregate = Ledger)]
#[derive(Debug, Clone)]
pub struct Note {
    /// The ledger.
    #[id]
    pub id: String,
    /// The note.
    pub text: String,
}

/// Why a ledger refused a command.
#[derive(Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// Opening twice.
    AlreadyOpen,
    /// Using a ledger that was never opened.
    NotOpen,
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyOpen => f.write_str("the ledger is already open"),
            Self::NotOpen => f.write_str("the ledger is not open"),
        }
    }
}

impl std::error::Error for LedgerError {}

/// A ledger: a balance and notes.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(
    name = "ledger",
    error = LedgerError,
    events(Opened, Deposited, Noted),
    commands(Open, Deposit, Note)
)]
pub struct Ledger {
    owner: Option<String>,
    balance: u64,
    notes: Vec<String>,
}

impl Handle<Open> for Ledger {
    fn handle(&self, command: Open) -> Result<Events<Self>, LedgerError> {
        if self.owner.is_some() {
            return Err(LedgerError::AlreadyOpen);
        }
        Ok(Events::one(Opened { owner: command.owner }))
    }
}

impl Handle<Deposit> for Ledger {
    fn handle(&self, command: Deposit) -> Result<Events<Self>, LedgerError> {
        if self.owner.is_none() {
            return Err(LedgerError::NotOpen);
        }
        Ok(Events::one(Deposited { amount: command.amount }))
    }
}

impl Handle<Note> for Ledger {
    fn handle(&self, command: Note) -> Result<Events<Self>, LedgerError> {
        if self.owner.is_none() {
            return Err(LedgerError::NotOpen);
        }
        Ok(Events::one(Noted { text: command.text }))
    }
}

impl Apply<Opened> for Ledger {
    fn apply(&mut self, event: &Opened) {
        self.owner = Some(event.owner.clone());
    }
}

impl Apply<Deposited> for Ledger {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

impl Apply<Noted> for Ledger {
    fn apply(&mut self, event: &Noted) {
        self.notes.push(event.text.clone());
    }
}

// ------------------------------------------------------------- read side

/// Every (stream, position, event id) the `g-seen` handler was given, in
/// order. Tests tell their events apart by stream name prefix.
static SEEN: Mutex<Vec<(String, u64, EventId)>> = Mutex::new(Vec::new());

#[event_handler(name = "g-seen", events(Opened, Deposited, Noted), group = "guarantees")]
#[derive(Default)]
struct Seen;

impl Seen {
    fn record<E>(e: &Recorded<E>) {
        SEEN.lock().unwrap().push((e.stream_id.as_str().to_owned(), e.position.get(), e.event_id));
    }

    /// What `g-seen` was given of the streams starting with `prefix`.
    fn of(prefix: &str) -> Vec<(u64, EventId)> {
        let seen = SEEN.lock().unwrap();
        seen.iter().filter(|(stream, ..)| stream.starts_with(prefix)).map(|(_, p, id)| (*p, *id)).collect()
    }
}

impl es_core::HandleEvent<Opened> for Seen {
    async fn handle(&self, e: &Recorded<Opened>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Self::record(e);
        Ok(())
    }
}

impl es_core::HandleEvent<Deposited> for Seen {
    async fn handle(&self, e: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Self::record(e);
        Ok(())
    }
}

impl es_core::HandleEvent<Noted> for Seen {
    async fn handle(&self, e: &Recorded<Noted>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Self::record(e);
        Ok(())
    }
}

/// A ledger's balance as the `g-balances` projection keeps it.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Balance {
    owner: String,
    balance: u64,
}

#[projection(name = "g-balances", events(Opened, Deposited), group = "guarantees")]
#[derive(Default)]
struct Balances;

impl Project<Opened> for Balances {
    async fn project(&self, e: &Recorded<Opened>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Ok(tx.put(e.stream_id.as_str(), &Balance { owner: e.owner.clone(), balance: 0 })?)
    }
}

impl Project<Deposited> for Balances {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let mut balance: Balance = tx.get(e.stream_id.as_str()).await?.unwrap_or_default();
        balance.balance += e.amount;
        Ok(tx.put(e.stream_id.as_str(), &balance)?)
    }
}

/// A process manager: every opened ledger gets a welcome bonus of 5.
#[event_handler(name = "g-bonus", group = "guarantees")]
async fn welcome_bonus(e: &Recorded<Opened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let id = e.stream_id.as_str().trim_start_matches("ledger-").to_owned();
    ctx.execute(Deposit { id, amount: 5 }).await?;
    Ok(())
}

/// The deposit `g-fragile` cannot take.
const FRAGILE_AMOUNT: u64 = 13;

/// Sums deposits, and panics on one unlucky amount.
#[projection(name = "g-fragile", events(Deposited), group = "guarantees")]
#[derive(Default)]
struct Fragile;

impl Project<Deposited> for Fragile {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        assert_ne!(e.amount, FRAGILE_AMOUNT, "unlucky amount");
        let total: u64 = tx.get(e.stream_id.as_str()).await?.unwrap_or(0);
        Ok(tx.put(e.stream_id.as_str(), &(total + e.amount))?)
    }
}

/// Every owner the `g-mail` handler welcomed, with the stream prefix
/// telling tests apart.
static MAILED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A side effect that must never happen twice: welcome mail.
#[event_handler(name = "g-mail", replay = "skip", group = "guarantees")]
async fn welcome_mail(e: &Recorded<Opened>, _: &HandlerCtx) -> Result<(), HandlerError> {
    MAILED.lock().unwrap().push(e.owner.clone());
    Ok(())
}

/// The deposit `g-strict` refuses.
const REFUSED_AMOUNT: u64 = 66;

/// Every deposit the strongly consistent `g-strict` handler accepted.
static STRICT: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// A strongly consistent handler that refuses one amount.
#[event_handler(name = "g-strict", consistency = "strong", group = "guarantees")]
async fn strict(e: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
    if e.amount == REFUSED_AMOUNT {
        return Err(HandlerError::msg(format!("cannot take {REFUSED_AMOUNT}")));
    }
    STRICT.lock().unwrap().push(e.amount);
    Ok(())
}

// --------------------------------------------------------------- helpers

const WAIT: Duration = Duration::from_secs(60);

async fn app(store: &InMemoryEventStore) -> Es {
    Es::builder().event_store(store.clone()).build().await.unwrap()
}

/// An `Es` on `store` running the named subscribers of this file.
async fn app_with(store: &InMemoryEventStore, documents: &InMemoryProjectionStore, names: &[&str]) -> Es {
    Es::builder()
        .event_store(store.clone())
        .projection_store(documents.clone())
        .read_side(ReadSide::builder().select(Selection::names(names.iter().copied())))
        .build()
        .await
        .unwrap()
}

fn read_side(es: &Es) -> &ReadSide {
    es.read_side().expect("the app runs a read side")
}

async fn whole_stream(store: &InMemoryEventStore, id: &str) -> Vec<RecordedEvent> {
    let stream = StreamId::for_aggregate(Ledger::NAME, id);
    store.read_stream(&stream, StreamVersion(1), Direction::Forward, usize::MAX).await.unwrap()
}

async fn whole_log(store: &InMemoryEventStore) -> Vec<RecordedEvent> {
    store.read_all(GlobalPosition(0), usize::MAX).await.unwrap()
}

// ------------------------------------------------------------------ tests

/// Within one node, commands to one aggregate are serialized by its
/// actor: no conflicts, no lost updates, however many arrive at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_deposits_on_one_node_never_conflict_nor_get_lost() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    es.execute(Open { id: "hot".into(), owner: "ada".into() }).await.unwrap();

    let mut deposits = JoinSet::new();
    for amount in 1..=500u64 {
        let es = es.clone();
        deposits.spawn(async move { es.execute(Deposit { id: "hot".into(), amount }).await });
    }
    let mut versions = Vec::new();
    while let Some(done) = deposits.join_next().await {
        versions.push(done.unwrap().unwrap().version.unwrap().get());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=501).collect::<Vec<_>>(), "each deposit got its own version");

    let loaded = es.load_versioned::<Ledger>("hot", None).await.unwrap();
    assert_eq!(loaded.state.balance, (1..=500).sum::<u64>());
    assert_eq!(loaded.version, Some(StreamVersion(501)));
    assert_eq!(es.stats().conflicts, 0);
    assert_eq!(es.stats().actors_started, 1);
}

/// Many writers on two nodes: eight tasks, each writing 40 commands to its
/// own ledger and, every third command, to one shared ledger. Returns how
/// many events they appended.
async fn many_writers(one: &Es, two: &Es, prefix: &str) -> usize {
    for id in std::iter::once("shared".to_owned()).chain((0..8).map(|w| format!("w{w}"))) {
        one.execute(Open { id: format!("{prefix}{id}"), owner: id }).await.unwrap();
    }
    let mut writers = JoinSet::new();
    for writer in 0..8u64 {
        let node = if writer % 2 == 0 { one.clone() } else { two.clone() };
        let prefix = prefix.to_owned();
        writers.spawn(async move {
            for i in 1..=40u64 {
                let id = if i % 3 == 0 { format!("{prefix}shared") } else { format!("{prefix}w{writer}") };
                if i % 5 == 0 {
                    node.execute(Note { id, text: format!("{writer}/{i}") }).await.unwrap();
                } else {
                    node.execute(Deposit { id, amount: i }).await.unwrap();
                }
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    9 + 8 * 40
}

/// Every (position, event id) of the store, in position order.
async fn positions_and_ids(store: &InMemoryEventStore) -> Vec<(u64, EventId)> {
    whole_log(store).await.iter().map(|e| (e.global_position.get(), e.event_id)).collect()
}

/// A subscriber sees every committed event exactly once, in position
/// order, while many writers on two nodes append concurrently to shared
/// and own streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_every_event_once_in_order_with_many_concurrent_writers() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-seen"]).await;
    // A second node writing to the same store, running no read side.
    let other = app(&store).await;
    let written = many_writers(&es, &other, "live-").await;

    let head = store.head_position().await.unwrap();
    read_side(&es).wait_for("g-seen", head, WAIT).await.unwrap();
    let log = positions_and_ids(&store).await;
    assert_eq!(log.len(), written);
    assert_eq!(Seen::of("ledger-live-"), log, "every event once, in position order");
    let status = read_side(&es).status("g-seen").await.unwrap();
    assert_eq!((status.position, status.lag), (head, 0));
    // A handler's checkpoint is stored after its batch; stopping commits it.
    es.shutdown().await;
    assert_eq!(documents.checkpoint("g-seen").await.unwrap().map(|c| c.position), Some(head));
}

/// The same when the subscriber starts late: it catches up on stored
/// history while writers keep appending, and hands over to live events
/// without skipping or repeating one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_hands_over_from_catch_up_to_live_without_gaps_or_repeats() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let (one, two) = (app(&store).await, app(&store).await);
    let history = many_writers(&one, &two, "late-a-").await;
    assert_eq!(store.head_position().await.unwrap(), GlobalPosition(history as u64));

    let read_side = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(documents.clone())
        .select(Selection::names(["g-seen"]))
        .config(ReadSideConfig { batch_size: 7, ..ReadSideConfig::default() })
        .start()
        .unwrap();
    let news = many_writers(&one, &two, "late-b-").await;

    let head = store.head_position().await.unwrap();
    read_side.wait_for("g-seen", head, WAIT).await.unwrap();
    let log = positions_and_ids(&store).await;
    assert_eq!(log.len(), history + news);
    let seen: Vec<_> = Seen::of("ledger-late-").into_iter().collect();
    assert_eq!(seen, log, "every event once, in position order");
    read_side.shutdown().await;
    assert_eq!(documents.checkpoint("g-seen").await.unwrap().map(|c| c.position), Some(head));
}

/// A projection rebuilt while commands keep coming ends up equal to the
/// fold of every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_rebuilt_under_load_equals_the_fold_of_every_event_once() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-balances"]).await;
    let other = app(&store).await;
    many_writers(&es, &other, "first-").await;

    let read_side = read_side(&es);
    let (rebuilt, more) = tokio::join!(read_side.rebuild("g-balances"), many_writers(&es, &other, "second-"));
    rebuilt.unwrap();
    assert!(more > 0);
    let head = store.head_position().await.unwrap();
    read_side.wait_for("g-balances", head, WAIT).await.unwrap();

    let documents_now = documents.query("g-balances", &DocumentQuery::all()).await.unwrap();
    assert_eq!(documents_now.len(), 18, "one document per ledger");
    for (stream, document) in documents_now {
        let balance: Balance = serde_json::from_value(document).unwrap();
        let id = stream.trim_start_matches("ledger-");
        let ledger = es.load::<Ledger>(id).await.unwrap();
        assert_eq!(balance.balance, ledger.balance, "{stream}");
        assert_eq!(Some(balance.owner), ledger.owner, "{stream}");
    }
    es.shutdown().await;
}

/// A projection whose code panics stops on that event and reports the
/// panic by name; its checkpoint stays below the event; other subscribers
/// and the command side go on.
#[tokio::test]
async fn a_panicking_projection_stops_alone_and_reports_the_event() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-fragile", "g-balances"]).await;
    es.execute(Open { id: "f".into(), owner: "ada".into() }).await.unwrap();
    es.execute(Deposit { id: "f".into(), amount: 12 }).await.unwrap();
    let before = es.execute(Deposit { id: "f".into(), amount: 1 }).await.unwrap().position.unwrap();
    let fatal = es.execute(Deposit { id: "f".into(), amount: FRAGILE_AMOUNT }).await.unwrap();
    let last = es.execute(Deposit { id: "f".into(), amount: 1 }).await.unwrap().position.unwrap();

    let read_side = read_side(&es);
    let waited = read_side.wait_for("g-fragile", last, WAIT).await;
    let Err(ConsistencyError::Failed { failure, .. }) = waited else { panic!("{waited:?}") };
    assert_eq!(failure.position, fatal.position.unwrap());
    assert_eq!(failure.event_id, Some(fatal.committed[0].event_id));
    assert!(failure.error.contains("panicked"), "{}", failure.error);
    assert!(failure.error.contains("unlucky amount"), "{}", failure.error);
    let status = read_side.status("g-fragile").await.unwrap();
    assert_eq!(status.position, before);
    let checkpoint = documents.checkpoint("g-fragile").await.unwrap().map(|c| c.position);
    assert!(checkpoint.is_some_and(|c| c < fatal.position.unwrap()), "{checkpoint:?}");
    assert_eq!(documents.get("g-fragile", "ledger-f").await.unwrap(), Some(json!(13)));

    read_side.wait_for("g-balances", last, WAIT).await.unwrap();
    let after = es.execute(Deposit { id: "f".into(), amount: 1 }).await.unwrap();
    assert_eq!(after.version, Some(StreamVersion(6)), "the command side goes on");
    es.shutdown().await;
}

/// Read your own writes: `execute` returns the global position of its last
/// event, and a reader can wait for a projection to reach it; a wait that
/// cannot succeed in time is a typed error, and the events stay stored.
#[tokio::test]
async fn execute_returns_its_position_and_a_reader_can_wait_for_a_projection_to_reach_it() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-balances"]).await;
    let read_side = read_side(&es);

    let opened = es.execute(Open { id: "r".into(), owner: "ada".into() }).await.unwrap();
    assert_eq!(opened.position, opened.committed.last().map(|c| c.global_position));
    let mut expected = 0;
    for amount in [10, 20, 30] {
        let outcome = es.execute(Deposit { id: "r".into(), amount }).await.unwrap();
        expected += amount;
        let position = outcome.position.expect("a deposit appends an event");
        assert_eq!(position, store.head_position().await.unwrap());
        read_side.wait_for("g-balances", position, WAIT).await.unwrap();
        let balance: Balance =
            serde_json::from_value(documents.get("g-balances", "ledger-r").await.unwrap().unwrap()).unwrap();
        assert_eq!(balance, Balance { owner: "ada".into(), balance: expected });
    }

    // On any node: a write through another `Es` on the same store.
    let elsewhere = app(&store).await;
    let outcome = elsewhere.execute(Deposit { id: "r".into(), amount: 40 }).await.unwrap();
    read_side.wait_for("g-balances", outcome.position.unwrap(), WAIT).await.unwrap();
    let balance: Balance =
        serde_json::from_value(documents.get("g-balances", "ledger-r").await.unwrap().unwrap()).unwrap();
    assert_eq!(balance.balance, expected + 40);

    // A position nobody has written yet cannot be reached: typed timeout.
    let head = store.head_position().await.unwrap();
    let beyond = GlobalPosition(head.get() + 1);
    let timeout = Duration::from_millis(20);
    let error = read_side.wait_for("g-balances", beyond, timeout).await.unwrap_err();
    assert_eq!(
        error,
        ConsistencyError::Timeout { name: "g-balances".into(), position: beyond, reached: head, timeout }
    );
    let unknown = read_side.wait_for("no-such-projection", head, timeout).await.unwrap_err();
    assert_eq!(unknown, ConsistencyError::Unknown { name: "no-such-projection".into() });
    assert_eq!(whole_stream(&store, "r").await.len(), 5, "the events stay stored");
    es.shutdown().await;
}

/// Metadata given to `execute_with` (correlation, causation, user fields)
/// is recorded on every event of the command, and events get UUID v7 ids.
#[tokio::test]
async fn metadata_given_to_execute_with_is_recorded_on_the_events() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    let correlation = EventId::new().as_uuid();
    let causation = EventId::new().as_uuid();
    let metadata = Metadata::new()
        .with_correlation_id(correlation)
        .with_causation_id(causation)
        .with_field("user", "ada")
        .with_field("ip", json!({ "v4": "10.0.0.1" }));

    let opened =
        es.execute_with(Open { id: "m".into(), owner: "ada".into() }, metadata.clone()).await.unwrap();
    es.execute(Deposit { id: "m".into(), amount: 3 }).await.unwrap();

    let stored = whole_stream(&store, "m").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].metadata, metadata);
    assert_eq!(stored[0].event_id, opened.committed[0].event_id);
    assert_eq!(stored[0].event_id.as_uuid().get_version_num(), 7, "event ids are UUID v7");
    assert_eq!(stored[1].metadata, Metadata::default(), "plain execute records no metadata");
}

/// Causation and correlation flow from an event, through the commands a
/// handler dispatches, into the events those commands produce.
#[tokio::test]
async fn causation_and_correlation_flow_from_an_event_through_a_process_manager() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-bonus"]).await;

    // Opened with a correlation id: the bonus carries it on.
    let correlation = EventId::new().as_uuid();
    let opened = es
        .execute_with(
            Open { id: "c1".into(), owner: "ada".into() },
            Metadata::new().with_correlation_id(correlation),
        )
        .await
        .unwrap();
    // Opened without one: the opening event starts the correlation.
    let plain = es.execute(Open { id: "c2".into(), owner: "bob".into() }).await.unwrap();
    let head = plain.position.unwrap();
    read_side(&es).wait_for("g-bonus", head, WAIT).await.unwrap();
    // The bonuses were appended by the handler before it returned.
    for (id, cause, correlation) in [
        ("c1", opened.committed[0].event_id, correlation),
        ("c2", plain.committed[0].event_id, plain.committed[0].event_id.as_uuid()),
    ] {
        let stored = whole_stream(&store, id).await;
        assert_eq!(stored.len(), 2, "{id}: opened, then the bonus");
        assert_eq!(stored[1].event_type, Deposited::TYPE);
        assert_eq!(stored[1].metadata.causation_id, Some(cause.as_uuid()), "{id}");
        assert_eq!(stored[1].metadata.correlation_id, Some(correlation), "{id}");
        assert_eq!(es.load::<Ledger>(id).await.unwrap().balance, 5);
    }
    es.shutdown().await;
}

/// One way a stored event can be unreadable by this code.
struct Undecodable {
    label: &'static str,
    event_type: &'static str,
    schema_version: u32,
    payload: Value,
    is_expected_kind: fn(&DecodeErrorKind) -> bool,
}

fn undecodable_cases() -> [Undecodable; 4] {
    [
        Undecodable {
            label: "unknown type",
            event_type: "Vanished",
            schema_version: 1,
            payload: json!({}),
            is_expected_kind: |k| matches!(k, DecodeErrorKind::UnknownType),
        },
        Undecodable {
            label: "bad payload",
            event_type: Deposited::TYPE,
            schema_version: 1,
            payload: json!({ "amount": "lots" }),
            is_expected_kind: |k| matches!(k, DecodeErrorKind::Payload(_)),
        },
        Undecodable {
            label: "newer version",
            event_type: Deposited::TYPE,
            schema_version: 9,
            payload: json!({ "amount": 1 }),
            is_expected_kind: |k| matches!(k, DecodeErrorKind::NewerVersion { found: 9, supported: 1 }),
        },
        Undecodable {
            label: "old version the upcaster refuses",
            event_type: Noted::TYPE,
            schema_version: 1,
            payload: json!({ "title": "no body" }),
            is_expected_kind: |k| matches!(k, DecodeErrorKind::Upcast { from: 1, .. }),
        },
    ]
}

fn assert_names_the_event(error: &DecodeError, case: &Undecodable, id: &str) {
    assert_eq!(error.stream, StreamId::for_aggregate(Ledger::NAME, id), "{}", case.label);
    assert_eq!(error.version, StreamVersion(2), "{}", case.label);
    assert_eq!(error.event_type, case.event_type, "{}", case.label);
    assert_eq!(error.schema_version, case.schema_version, "{}", case.label);
    assert!((case.is_expected_kind)(&error.kind), "{}: {:?}", case.label, error.kind);
    let message = error.to_string();
    for part in [case.event_type, &format!("ledger-{id}"), "version 2"] {
        assert!(message.contains(part), "{}: `{message}` does not name {part}", case.label);
    }
}

/// Undecodable events (unknown type, bad payload, newer version, failed
/// upcast) are typed errors naming stream, version and type through
/// `load`, `execute` on both command paths: never a panic, nothing appended,
/// and the stored event is untouched. History before it still loads.
#[tokio::test]
async fn undecodable_events_are_typed_errors_through_load_and_execute_and_stay_stored() {
    for path in [CommandPath::Actors, CommandPath::Reload] {
        for case in undecodable_cases() {
            let store = InMemoryEventStore::new();
            let es = Es::builder().event_store(store.clone()).command_path(path).build().await.unwrap();
            let id = format!("{}-{path:?}", case.label.replace(' ', "-"));
            es.execute(Open { id: id.clone(), owner: "ada".into() }).await.unwrap();
            let bad = NewEvent::new(Ledger::NAME, case.event_type, case.schema_version, case.payload.clone());
            let stream = StreamId::for_aggregate(Ledger::NAME, &id);
            store.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![bad]).await.unwrap();
            let before = whole_stream(&store, &id).await;

            match es.load::<Ledger>(&id).await {
                Err(LoadError::Decode(error)) => assert_names_the_event(&error, &case, &id),
                other => panic!("{}: load gave {other:?}", case.label),
            }
            match es.execute(Deposit { id: id.clone(), amount: 1 }).await {
                Err(ExecuteError::Load(LoadError::Decode(error))) => {
                    assert_names_the_event(&error, &case, &id)
                }
                other => panic!("{} ({path:?}): execute gave {other:?}", case.label),
            }
            // Asked again, the same answer: nothing was skipped or cached.
            let again = es.execute(Note { id: id.clone(), text: "x".into() }).await;
            assert!(matches!(again, Err(ExecuteError::Load(LoadError::Decode(_)))), "{again:?}");

            let time_travel = es.load_at::<Ledger>(&id, StreamVersion(1)).await.unwrap();
            assert_eq!(time_travel.owner.as_deref(), Some("ada"), "{}", case.label);
            assert_eq!(whole_stream(&store, &id).await, before, "{}: stored events untouched", case.label);
            assert_eq!(es.stats().panics, 0, "{}", case.label);
        }
    }
}

/// A projection that meets an event of a type it consumes but cannot
/// decode stops there and reports it by name; its checkpoint stays below
/// the event, and the event stays stored. Types it does not consume
/// (including ones nobody knows) are passed over.
#[tokio::test]
async fn a_projection_stops_on_an_undecodable_event_and_reports_it() {
    for case in undecodable_cases().into_iter().filter(|c| c.event_type == Deposited::TYPE) {
        let store = InMemoryEventStore::new();
        let documents = InMemoryProjectionStore::new();
        let es = app_with(&store, &documents, &["g-balances"]).await;
        es.execute(Open { id: "p".into(), owner: "ada".into() }).await.unwrap();
        es.execute(Note { id: "p".into(), text: "filtered out".into() }).await.unwrap();
        let stream = StreamId::for_aggregate(Ledger::NAME, "p");
        let unknown = NewEvent::new(Ledger::NAME, "Vanished", 1, json!({}));
        store.append(&stream, ExpectedVersion::Any, vec![unknown]).await.unwrap();
        let last_good = store.head_position().await.unwrap();
        let bad = NewEvent::new(Ledger::NAME, case.event_type, case.schema_version, case.payload.clone());
        let appended = store.append(&stream, ExpectedVersion::Any, vec![bad]).await.unwrap();
        let bad_position = appended.last_position().unwrap();
        let before = whole_log(&store).await;

        let read_side = read_side(&es);
        let waited = read_side.wait_for("g-balances", bad_position, WAIT).await;
        let Err(ConsistencyError::Failed { failure, .. }) = waited else {
            panic!("{}: waiting gave {waited:?}", case.label);
        };
        assert_eq!(failure.position, bad_position, "{}", case.label);
        assert_eq!(failure.event_type.as_deref(), Some(Deposited::TYPE), "{}", case.label);
        assert_eq!(failure.event_id, Some(appended.committed[0].event_id), "{}", case.label);
        for part in ["Deposited", "ledger-p", "version 4"] {
            assert!(failure.error.contains(part), "{}: `{}` does not name {part}", case.label, failure.error);
        }
        let status = read_side.status("g-balances").await.unwrap();
        assert_eq!(status.state, SubscriptionState::Failed(failure), "{}", case.label);
        assert_eq!(status.position, last_good, "{}: stopped right before it", case.label);
        let checkpoint = documents.checkpoint("g-balances").await.unwrap().map(|c| c.position);
        assert!(checkpoint.is_some_and(|c| c < bad_position), "{}: checkpoint {checkpoint:?}", case.label);
        assert_eq!(whole_log(&store).await, before, "{}: nothing rewritten", case.label);
        es.shutdown().await;
    }
}

/// Events of an older schema version are upcast when a subscriber reads
/// them, as they are when an aggregate loads them.
#[tokio::test]
async fn old_event_versions_are_upcast_for_aggregates_and_subscribers() {
    let store = InMemoryEventStore::new();
    let stream = StreamId::for_aggregate(Ledger::NAME, "u");
    let history = vec![
        NewEvent::new(Ledger::NAME, Opened::TYPE, 1, json!({ "owner": "ada" })),
        NewEvent::new(Ledger::NAME, Noted::TYPE, 1, json!({ "body": "written by v1" })),
    ];
    store.append(&stream, ExpectedVersion::NoStream, history).await.unwrap();
    let es = app(&store).await;
    es.execute(Note { id: "u".into(), text: "written by v2".into() }).await.unwrap();

    let ledger = es.load::<Ledger>("u").await.unwrap();
    assert_eq!(ledger.notes, ["written by v1", "written by v2"]);
    let stored = whole_stream(&store, "u").await;
    assert_eq!(stored[1].payload, json!({ "body": "written by v1" }), "upcasting does not rewrite");
    assert_eq!((stored[1].schema_version, stored[2].schema_version), (1, 2));
    let decoded = Recorded::<Noted>::decode(&stored[1]).unwrap();
    assert_eq!(decoded.text, "written by v1");
}

/// A command that breaks a validation rule is refused before its aggregate
/// is loaded (so even an unreadable stream does not matter) and nothing is
/// appended.
#[tokio::test]
async fn an_invalid_command_is_refused_before_loading_and_appends_nothing() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    es.execute(Open { id: "v".into(), owner: "ada".into() }).await.unwrap();
    // The stream cannot be decoded: loading it would fail.
    let stream = StreamId::for_aggregate(Ledger::NAME, "v");
    let broken = NewEvent::new(Ledger::NAME, "Vanished", 1, json!({}));
    store.append(&stream, ExpectedVersion::Any, vec![broken]).await.unwrap();

    let refused = es.execute(Deposit { id: "v".into(), amount: 0 }).await;
    let Err(ExecuteError::Validation(error)) = refused else { panic!("{refused:?}") };
    assert_eq!(error.command, "Deposit");
    assert_eq!(error.violations[0].field, Some("amount"));
    let unnamed = es.execute(Open { id: "new".into(), owner: String::new() }).await;
    assert!(matches!(unnamed, Err(ExecuteError::Validation(_))), "{unnamed:?}");
    assert_eq!(whole_log(&store).await.len(), 2, "nothing appended");
    assert_eq!(es.stats().actors_started, 1, "only the valid Open started an actor");
}

/// Replaying a `replay = "skip"` handler never runs it for history, also
/// when the replay is stopped half way and the subscription restarted (or
/// taken over by a fresh read side); news after the replay runs it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_replay_never_runs_a_skipping_handler_for_history() {
    let mailed = || MAILED.lock().unwrap().iter().filter(|o| o.starts_with("mail-")).count();
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-mail"]).await;
    for n in 0..300 {
        es.execute(Open { id: format!("m{n}"), owner: format!("mail-{n}") }).await.unwrap();
    }
    let head = store.head_position().await.unwrap();
    let read_side = read_side(&es);
    read_side.wait_for("g-mail", head, WAIT).await.unwrap();
    assert_eq!(mailed(), 300, "one mail per opening");

    // Replay, interrupted at once, resumed on this node.
    read_side.rebuild("g-mail").await.unwrap();
    read_side.stop("g-mail").await.unwrap();
    read_side.restart("g-mail").await.unwrap();
    read_side.wait_for("g-mail", head, WAIT).await.unwrap();
    assert_eq!(mailed(), 300, "no mail sent again after an interrupted replay");

    // Replay, interrupted, and resumed by another read side on the store.
    read_side.rebuild("g-mail").await.unwrap();
    es.shutdown().await;
    let fresh = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(documents.clone())
        .select(Selection::names(["g-mail"]))
        .start()
        .unwrap();
    fresh.wait_for("g-mail", head, WAIT).await.unwrap();
    assert_eq!(mailed(), 300, "no mail sent again when another node resumes the replay");

    let news =
        app(&store).await.execute(Open { id: "late".into(), owner: "mail-late".into() }).await.unwrap();
    fresh.wait_for("g-mail", news.position.unwrap(), WAIT).await.unwrap();
    assert_eq!(mailed(), 301, "news is mailed once");
    fresh.shutdown().await;
}

/// `Duration::MAX` is how a user says "wait as long as it takes": as a
/// consistency timeout, a wait, a lease or an idle timeout it must work,
/// not overflow a clock.
#[tokio::test]
async fn unbounded_timeouts_are_accepted_without_panicking() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let forever = Duration::MAX;
    let es = Es::builder()
        .event_store(store.clone())
        .projection_store(documents.clone())
        .consistency_timeout(forever)
        .idle_timeout(forever)
        .read_side(
            ReadSide::builder()
                .select(Selection::names(["g-balances"]))
                .config(ReadSideConfig { lease_ttl: forever, ..ReadSideConfig::default() }),
        )
        .build()
        .await
        .unwrap();
    es.execute(Open { id: "t".into(), owner: "ada".into() }).await.unwrap();
    let outcome = es.execute(Deposit { id: "t".into(), amount: 8 }).await.unwrap();
    read_side(&es).wait_for("g-balances", outcome.position.unwrap(), forever).await.unwrap();
    let balance: Balance =
        serde_json::from_value(documents.get("g-balances", "ledger-t").await.unwrap().unwrap()).unwrap();
    assert_eq!(balance.balance, 8);
    es.shutdown().await;
}

/// A corrupt snapshot (one claiming the last possible version) neither
/// panics nor makes rehydration apply the history on top of it.
#[tokio::test]
async fn a_snapshot_at_the_last_possible_version_does_not_overflow() {
    let store = InMemoryEventStore::new();
    let es = Es::builder().event_store(store.clone()).snapshot_store(store.clone()).build().await.unwrap();
    es.execute(Open { id: "s".into(), owner: "ada".into() }).await.unwrap();
    es.execute(Deposit { id: "s".into(), amount: 5 }).await.unwrap();
    let snapshot = Snapshot {
        stream_id: StreamId::for_aggregate(Ledger::NAME, "s"),
        aggregate_type: Ledger::NAME.to_owned(),
        stream_version: StreamVersion(u64::MAX),
        schema_version: Ledger::SNAPSHOT_VERSION,
        state: json!({ "owner": "ada", "balance": 1000, "notes": [] }),
        taken_at: Timestamp::now(),
    };
    store.save_snapshot(snapshot).await.unwrap();

    let fresh = Es::builder().event_store(store.clone()).snapshot_store(store.clone()).build().await.unwrap();
    let loaded = fresh.load::<Ledger>("s").await.unwrap();
    assert!(
        [5, 1000].contains(&loaded.balance),
        "history applied on top of the snapshot: {}",
        loaded.balance
    );
    assert_eq!(whole_stream(&store, "s").await.len(), 2);
}

/// With a strongly consistent handler, `execute` returns after it ran; when
/// it stops on a failing event, `execute` says so with a typed error
/// naming the position and the handler, and the events stay stored.
#[tokio::test]
async fn a_failing_strong_handler_makes_execute_report_stored_events_and_the_failure() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-strict"]).await;
    es.execute(Open { id: "x".into(), owner: "ada".into() }).await.unwrap();
    es.execute(Deposit { id: "x".into(), amount: 1 }).await.unwrap();
    assert_eq!(*STRICT.lock().unwrap(), [1], "the strong handler ran before execute returned");

    for amount in [REFUSED_AMOUNT, 2] {
        let result = es.execute(Deposit { id: "x".into(), amount }).await;
        let Err(ExecuteError::ConsistencyFailed { position, waiting_for, cause }) = result else {
            panic!("depositing {amount}: {result:?}")
        };
        assert_eq!(position, store.head_position().await.unwrap(), "names the stored position");
        assert_eq!(waiting_for, "g-strict");
        let reason = cause.to_string();
        assert!(reason.contains(&format!("cannot take {REFUSED_AMOUNT}")), "{reason}");
    }
    let stored = whole_stream(&store, "x").await;
    assert_eq!(stored.len(), 4, "the events stay stored");
    assert_eq!(es.load::<Ledger>("x").await.unwrap().balance, 1 + REFUSED_AMOUNT + 2);
    assert_eq!(*STRICT.lock().unwrap(), [1], "nothing after the failing event ran");
    es.shutdown().await;
}
