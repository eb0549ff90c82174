//! A store outage under running subscriptions is waited out, never blamed
//! on an event: failed reads (of events, documents, the checkpoint) and
//! failed commits are retried for as long as they last, the status says
//! the subscription waits for the store meanwhile, and it goes on by itself
//! afterwards. Only the subscriber's own errors count against its retries.
//! A projection store that panics in a commit is waited out the same way,
//! unless it panics at every try; a store that panics anywhere else stops
//! the subscription, saying so.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::error::FailureKind;
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState};
use es_core::store::{DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{
    event, Event, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, Project, ProjectionTx, ReadSide,
    Recorded, StreamId,
};
use es_memory::{InMemoryEventStore, InMemoryLeaseStore, InMemoryProjectionStore};

const TIMEOUT: Duration = Duration::from_secs(60);

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    account: String,
    amount: i64,
}

async fn deposit(store: &InMemoryEventStore, account: &str, amount: i64) -> GlobalPosition {
    let event = Deposited { account: account.into(), amount };
    let new = NewEvent::new("account", Deposited::TYPE, 1, serde_json::to_value(event).unwrap());
    let stream = StreamId::new(format!("account-{account}"));
    store.append(&stream, ExpectedVersion::Any, vec![new]).await.unwrap().last_position().unwrap()
}

struct Balances;

impl Project<Deposited> for Balances {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let balance: i64 = tx.get(&e.account).await?.unwrap_or(0);
        tx.put(e.account.clone(), &(balance + e.amount))?;
        Ok(())
    }
}

/// Counts the deposits it handled.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU32>);

impl HandleEvent<Deposited> for Counter {
    async fn handle(&self, _: &Recorded<Deposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// One attempt per event: any failure counted against an event stops the
/// subscription at once.
fn no_retries() -> RetryPolicy {
    RetryPolicy::new(1, Duration::from_millis(10))
}

fn config() -> ReadSideConfig {
    ReadSideConfig {
        batch_size: 4,
        store_retry: RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
        },
        ..ReadSideConfig::default()
    }
}

struct Setup {
    events: InMemoryEventStore,
    faulty_events: TestStore<InMemoryEventStore>,
    documents: TestStore<InMemoryProjectionStore>,
    counter: Counter,
    read_side: ReadSide,
}

fn setup() -> Setup {
    let events = InMemoryEventStore::new();
    let faulty_events = TestStore::new(events.clone());
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let counter = Counter::default();
    let mut registry = Registry::new();
    registry
        .register("balances", Subscriber::projection(Balances).on::<Deposited>().build().retry(no_retries()))
        .unwrap();
    registry
        .register(
            "counter",
            Subscriber::handler(counter.clone()).on::<Deposited>().build().retry(no_retries()),
        )
        .unwrap();
    let read_side = ReadSide::builder()
        .event_store(faulty_events.clone())
        .projection_store(documents.clone())
        .registry(registry)
        .config(config())
        .start()
        .unwrap();
    Setup { events, faulty_events, documents, counter, read_side }
}

/// Waits (bounded) until every subscription of `read_side` says it waits for
/// the store, and checks what it says.
async fn all_waiting_for_the_store(read_side: &ReadSide) {
    for _ in 0..1000 {
        let statuses = read_side.statuses();
        let waiting: Vec<_> = statuses
            .iter()
            .filter_map(|s| match &s.state {
                SubscriptionState::WaitingForStore(outage) => Some(outage.clone()),
                _ => None,
            })
            .collect();
        if waiting.len() == statuses.len() {
            for outage in waiting {
                assert!(
                    outage.error.contains("injected fault"),
                    "the outage names the error: {}",
                    outage.error
                );
                assert!(outage.attempts >= 1);
                assert!(outage.since.as_micros() > 0);
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not every subscription waits for the store: {:?}", read_side.statuses());
}

async fn balances(documents: &InMemoryProjectionStore) -> BTreeMap<String, i64> {
    documents
        .query("balances", &DocumentQuery::all())
        .await
        .unwrap()
        .into_iter()
        .map(|(id, doc)| (id, serde_json::from_value(doc).unwrap()))
        .collect()
}

async fn resumed_and_equal_to_the_fold(setup: &Setup, head: GlobalPosition, deposits: u32, total: i64) {
    for name in ["balances", "counter"] {
        setup.read_side.wait_for(name, head, TIMEOUT).await.unwrap();
        assert!(setup.read_side.status(name).unwrap().state.is_active(), "`{name}` runs on by itself");
    }
    assert_eq!(balances(setup.documents.inner()).await, BTreeMap::from([("ada".to_owned(), total)]));
    assert_eq!(setup.counter.0.load(Ordering::SeqCst), deposits, "every deposit handled once");
}

#[tokio::test(start_paused = true)]
async fn an_outage_of_both_stores_is_waited_out_and_blames_no_event() {
    let setup = setup();
    let head = deposit(&setup.events, "ada", 1).await;
    resumed_and_equal_to_the_fold(&setup, head, 1, 1).await;

    setup.faulty_events.outage(true);
    setup.documents.outage(true);
    for amount in 2..=6 {
        deposit(&setup.events, "ada", amount).await;
    }
    all_waiting_for_the_store(&setup.read_side).await;
    // Far longer than the subscribers' retry policy (one attempt) allows.
    tokio::time::sleep(Duration::from_secs(30)).await;
    all_waiting_for_the_store(&setup.read_side).await;
    assert!(setup.faulty_events.calls(StoreCall::ReadAll) > 10, "reads are retried all along");

    setup.faulty_events.outage(false);
    setup.documents.outage(false);
    let head = setup.events.head_position().await.unwrap();
    resumed_and_equal_to_the_fold(&setup, head, 6, 21).await;
    setup.read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failing_commits_and_document_reads_never_count_against_the_event() {
    let setup = setup();
    let head = deposit(&setup.events, "ada", 1).await;
    resumed_and_equal_to_the_fold(&setup, head, 1, 1).await;

    // The projection store accepts no commit (of documents or a handler's
    // checkpoint) and answers no document read, while events stay readable.
    setup.documents.fail_next(StoreCall::Commit, u64::MAX);
    setup.documents.fail_next(StoreCall::Get, u64::MAX);
    let head = deposit(&setup.events, "ada", 10).await;
    all_waiting_for_the_store(&setup.read_side).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    all_waiting_for_the_store(&setup.read_side).await;

    setup.documents.heal();
    resumed_and_equal_to_the_fold(&setup, head, 2, 11).await;
    assert!(setup.documents.calls(StoreCall::Commit) > 10);
    setup.read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_projection_store_that_panics_in_commits_is_waited_out_like_an_outage() {
    let setup = setup();
    let head = deposit(&setup.events, "ada", 1).await;
    resumed_and_equal_to_the_fold(&setup, head, 1, 1).await;

    // The next six commits (the projection's, made on a task of their own,
    // and the handler's checkpoints, made in the runner's task) are
    // applied, then the adapter panics: neither runner may die of it.
    let next = setup.documents.calls(StoreCall::Commit) + 1;
    setup.documents.inject(StoreCall::Commit, Fault::PanicAfter, next..next + 6);
    let head = deposit(&setup.events, "ada", 10).await;
    resumed_and_equal_to_the_fold(&setup, head, 2, 11).await;
    assert!(setup.documents.calls(StoreCall::Commit) >= next + 6, "every panicking commit was tried again");
    setup.read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_projection_store_whose_commit_panics_at_every_try_stops_the_subscription() {
    let setup = setup();
    let head = deposit(&setup.events, "ada", 1).await;
    resumed_and_equal_to_the_fold(&setup, head, 1, 1).await;

    // Every commit from here on panics (after being applied): a bug no wait
    // mends, so it must not be waited out forever as an outage.
    let before = setup.documents.calls(StoreCall::Commit);
    setup.documents.inject(StoreCall::Commit, Fault::PanicAfter, before + 1..);
    deposit(&setup.events, "ada", 10).await;
    let mut failures = BTreeMap::new();
    for _ in 0..6000 {
        for status in setup.read_side.statuses() {
            if let SubscriptionState::Failed(failure) = status.state {
                failures.insert(status.name.to_string(), failure);
            }
        }
        if failures.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(failures.len(), 2, "both stop: {:?}", setup.read_side.statuses());
    for failure in failures.values() {
        assert_eq!(failure.kind, FailureKind::Commit, "{failure:?}");
        assert!(failure.error.contains("panicked"), "the panic is named: {}", failure.error);
        assert_eq!(failure.attempts, 8, "{failure:?}");
    }
    assert_eq!(setup.documents.calls(StoreCall::Commit), before + 16, "eight tries each");
    setup.read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_lease_store_that_panics_stops_the_subscription_saying_so() {
    let events = InMemoryEventStore::new();
    let leases = TestStore::new(InMemoryLeaseStore::new());
    // The first renewal panics (after renewing): a bug in the adapter.
    leases.inject(StoreCall::Renew, Fault::PanicAfter, 1..=1);
    let mut registry = Registry::new();
    registry.register("balances", Subscriber::projection(Balances).on::<Deposited>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(InMemoryProjectionStore::new())
        .lease_store(leases.clone())
        .registry(registry)
        .config(ReadSideConfig { lease_ttl: Duration::from_millis(300), ..config() })
        .start()
        .unwrap();
    deposit(&events, "ada", 1).await;
    let mut failure = None;
    for _ in 0..500 {
        if let SubscriptionState::Failed(f) = read_side.status("balances").unwrap().state {
            failure = Some(f);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failure = failure.unwrap_or_else(|| {
        panic!("a dead task must not look alive: {:?}", read_side.status("balances").unwrap().state)
    });
    assert_eq!(failure.kind, FailureKind::Panicked, "{failure:?}");
    assert!(failure.error.contains("injected fault"), "the panic's message is kept: {}", failure.error);
    assert!(leases.calls(StoreCall::Release) >= 1, "its lease is released");
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_subscribers_own_errors_still_stop_it() {
    struct Refuses;
    impl Project<Deposited> for Refuses {
        async fn project(&self, _: &Recorded<Deposited>, _: &mut ProjectionTx) -> Result<(), HandlerError> {
            Err(HandlerError::msg("refused"))
        }
    }
    let events = InMemoryEventStore::new();
    let mut registry = Registry::new();
    registry
        .register("refuses", Subscriber::projection(Refuses).on::<Deposited>().build().retry(no_retries()))
        .unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(InMemoryProjectionStore::new())
        .registry(registry)
        .config(config())
        .start()
        .unwrap();
    let head = deposit(&events, "ada", 1).await;
    let error = read_side.wait_for("refuses", head, TIMEOUT).await.unwrap_err();
    assert!(error.to_string().contains("refuses"), "{error}");
    assert!(
        matches!(read_side.status("refuses").unwrap().state, SubscriptionState::Failed(f) if f.attempts == 1)
    );
    read_side.shutdown().await;
}
