//! Prefetching projections: a batch's named documents are read in one
//! `get_many`, and the results are the same as without prefetching, with
//! ids named wrongly, with an event that fails and is retried, and with a
//! `get_many` that fails.
//!
//! Tests run on tokio's paused clock (see `readside.rs`).

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use es_core::readside::{ReadSideConfig, Registry, Subscriber};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{DocumentIds, HandlerError, Prefetch, Project, ProjectionTx, ReadSide, Recorded};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use support::readside::*;

/// How the test projection names the documents of a deposit.
#[derive(Clone, Copy, PartialEq)]
enum Naming {
    /// The account's document, the one it reads.
    Account,
    /// A document it never reads.
    Wrong,
    /// The account's document, twice, and a wrong one.
    Noisy,
    /// The account's document, then a panic.
    Panics,
}

/// `Balances`, prefetching for deposits, failing the first try at the
/// deposit of `fail_once` (after it changed its document) if set.
struct Prefetching {
    balances: Balances,
    naming: Naming,
    fail_once: Option<i64>,
    failed: AtomicBool,
}

impl Prefetching {
    fn new(naming: Naming) -> Self {
        Self { balances: Balances::default(), naming, fail_once: None, failed: AtomicBool::new(false) }
    }
}

impl Project<Deposited> for Prefetching {
    async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.balances.change(&e.account, e.amount, tx).await?;
        if self.fail_once == Some(e.amount) && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(HandlerError::msg("failing once after changing the document"));
        }
        Ok(())
    }
}

impl Project<Withdrawn> for Prefetching {
    async fn project(&self, e: &Recorded<Withdrawn>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.balances.change(&e.account, -e.amount, tx).await
    }
}

impl Prefetch<Deposited> for Prefetching {
    fn documents(&self, e: &Recorded<Deposited>, ids: &mut DocumentIds) {
        match self.naming {
            Naming::Account => {
                ids.add(e.account.as_str());
            }
            Naming::Wrong => {
                ids.add(format!("not-{}", e.account));
            }
            Naming::Noisy => {
                ids.add(e.account.as_str()).add(e.account.as_str()).add("nobody");
            }
            Naming::Panics => {
                ids.add(e.account.as_str());
                if e.amount % 2 == 0 {
                    panic!("naming the documents of deposit {} failed", e.amount);
                }
            }
        }
    }
}

fn prefetching(projection: Prefetching) -> Subscriber {
    Subscriber::projection(projection).prefetch::<Deposited>().on::<Withdrawn>().build()
}

/// Runs `subscriber` as `balances` over `deposits` (appended before it
/// starts, so batches are exactly `batch_size` events) with `cache` bytes of
/// document cache; returns the stored balances and the store calls.
async fn run<E: es_core::Event>(
    subscriber: Subscriber,
    deposits: &[E],
    cache: usize,
    documents: TestStore<InMemoryProjectionStore>,
) -> BTreeMap<String, Balance> {
    let events = InMemoryEventStore::new();
    let head = append(&events, "account-mixed", deposits).await;
    let mut registry = Registry::new();
    registry.register("balances", subscriber.retry(retry(3))).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events)
        .projection_store(documents.clone())
        .registry(registry)
        .config(ReadSideConfig { document_cache_bytes: cache, ..config() })
        .start()
        .unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    read_side.shutdown().await;
    stored_balances(documents.inner()).await
}

/// 30 deposits over six accounts: each batch of three reads three
/// documents written two batches before it. (The batch just before it
/// writes the other three, and answers for them, cache or not, while its
/// commit is in flight.)
fn deposits() -> Vec<Deposited> {
    let accounts = ["ada", "bob", "cyd", "dee", "eve", "fay"];
    (0..30).map(|n| deposit(accounts[n % 6], n as i64 + 1)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_prefetching_projection_reads_each_batch_in_one_get_many_and_no_get() {
    let deposits = deposits();
    let batches = deposits.len().div_ceil(config().batch_size) as u64;
    // Without a cache, every batch must read its documents again.
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let stored = run(prefetching(Prefetching::new(Naming::Account)), &deposits, 0, documents.clone()).await;
    assert_eq!(stored, expected_balances(&deposits));
    assert_eq!(documents.calls(StoreCall::GetMany), batches, "one get_many per batch");
    assert_eq!(documents.calls(StoreCall::Get), 0, "no get for a named document");

    // The same projection without prefetch: one get per event, same result.
    let plain = TestStore::new(InMemoryProjectionStore::new());
    let subscriber =
        Subscriber::projection(Prefetching::new(Naming::Account)).on::<Deposited>().on::<Withdrawn>().build();
    assert_eq!(run(subscriber, &deposits, 0, plain.clone()).await, stored, "same documents without prefetch");
    assert_eq!(plain.calls(StoreCall::GetMany), 0, "a projection that does not prefetch never asks");
    assert_eq!(plain.calls(StoreCall::Get), deposits.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn documents_the_cache_knows_are_not_prefetched() {
    let deposits = deposits();
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let stored =
        run(prefetching(Prefetching::new(Naming::Account)), &deposits, 1 << 20, documents.clone()).await;
    assert_eq!(stored, expected_balances(&deposits));
    // The first two batches read the six accounts; after they commit, the
    // cache answers every later batch.
    assert_eq!(documents.calls(StoreCall::GetMany), 2, "only the first two batches ask the store");
    assert_eq!(documents.calls(StoreCall::Get), 0);
}

#[tokio::test(start_paused = true)]
async fn wrong_or_repeated_ids_cost_reads_but_not_correctness() {
    let deposits = deposits();
    let batches = deposits.len().div_ceil(config().batch_size) as u64;

    let wrong = TestStore::new(InMemoryProjectionStore::new());
    let stored = run(prefetching(Prefetching::new(Naming::Wrong)), &deposits, 0, wrong.clone()).await;
    assert_eq!(stored, expected_balances(&deposits), "ids that name other documents");
    assert_eq!(wrong.calls(StoreCall::GetMany), batches);
    // The documents it did not name are read by `get`, once per account
    // and batch (later reads in the batch see its pending change).
    assert_eq!(wrong.calls(StoreCall::Get), deposits.len() as u64);

    let noisy = TestStore::new(InMemoryProjectionStore::new());
    let stored = run(prefetching(Prefetching::new(Naming::Noisy)), &deposits, 0, noisy.clone()).await;
    assert_eq!(stored, expected_balances(&deposits), "ids named twice, and an id of no document");
    assert_eq!((noisy.calls(StoreCall::GetMany), noisy.calls(StoreCall::Get)), (batches, 0));

    let panicking = TestStore::new(InMemoryProjectionStore::new());
    let stored = run(prefetching(Prefetching::new(Naming::Panics)), &deposits, 0, panicking.clone()).await;
    assert_eq!(stored, expected_balances(&deposits), "a panic while naming is no failure of the event");
    assert_eq!(
        (panicking.calls(StoreCall::GetMany), panicking.calls(StoreCall::Get)),
        (batches, 0),
        "the ids named before each panic were still prefetched"
    );
}

#[tokio::test(start_paused = true)]
async fn pending_changes_win_over_prefetched_documents() {
    // One account, so each batch reads, writes and reads again the document
    // it prefetched: the later reads must see the batch's own writes.
    let deposits: Vec<Deposited> = (1..=10).map(|n| deposit("ada", n)).collect();
    let mut withdrawals = Vec::new();
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let events = InMemoryEventStore::new();
    for (n, d) in deposits.iter().enumerate() {
        append(&events, "account-ada", std::slice::from_ref(d)).await;
        if n % 2 == 0 {
            let w = Withdrawn { account: "ada".into(), amount: 1 };
            append(&events, "account-ada", std::slice::from_ref(&w)).await;
            withdrawals.push(w);
        }
    }
    let head = append(&events, "account-ada", &[deposit("ada", 100)]).await;
    let mut registry = Registry::new();
    registry.register("balances", prefetching(Prefetching::new(Naming::Account))).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events)
        .projection_store(documents.clone())
        .registry(registry)
        .config(ReadSideConfig { document_cache_bytes: 0, ..config() })
        .start()
        .unwrap();
    read_side.wait_for("balances", head, TIMEOUT).await.unwrap();
    read_side.shutdown().await;
    let stored = stored_balances(documents.inner()).await;
    let events_applied = deposits.len() + withdrawals.len() + 1;
    let balance = deposits.iter().map(|d| d.amount).sum::<i64>() - withdrawals.len() as i64 + 100;
    assert_eq!(
        stored.get("ada"),
        Some(&Balance { balance, events: events_applied as u32 }),
        "every event applied once, on top of the batch's own changes"
    );
    assert_eq!(
        documents.calls(StoreCall::Get),
        0,
        "the withdrawals read the document the deposits of their batch prefetched"
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_that_fails_and_is_retried_keeps_the_prefetched_documents_right() {
    let deposits = deposits();
    let documents = TestStore::new(InMemoryProjectionStore::new());
    // Deposit 8 is the second of its batch (7, 8, 9), on an account the
    // batch prefetched; its first try changes the document, then fails.
    let projection = Prefetching { fail_once: Some(8), ..Prefetching::new(Naming::Account) };
    let stored = run(prefetching(projection), &deposits, 0, documents.clone()).await;
    assert_eq!(stored, expected_balances(&deposits), "the failed try's change was rolled back");
    assert_eq!(documents.calls(StoreCall::Get), 0, "the retry read the prefetched document again");
}

#[tokio::test(start_paused = true)]
async fn a_failed_get_many_is_waited_out_and_the_batch_then_prefetches() {
    let deposits = deposits();
    let batches = deposits.len().div_ceil(config().batch_size) as u64;
    let documents = TestStore::new(InMemoryProjectionStore::new());
    documents.inject(StoreCall::GetMany, Fault::Backend, 2..=3);
    let stored = run(prefetching(Prefetching::new(Naming::Account)), &deposits, 0, documents.clone()).await;
    assert_eq!(stored, expected_balances(&deposits));
    assert_eq!(
        documents.calls(StoreCall::GetMany),
        batches + 2,
        "the second batch's get_many failed twice and was tried again"
    );
    assert_eq!(documents.calls(StoreCall::Get), 0, "no batch fell back to one get per event");
}

/// Times a [`Counted`] payload was decoded.
static DECODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn counted_amount<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    DECODED.fetch_add(1, Ordering::SeqCst);
    <i64 as serde::Deserialize>::deserialize(deserializer)
}

/// A deposit whose decoding is counted.
#[es_core::event]
#[derive(Debug, Clone, PartialEq)]
struct Counted {
    account: String,
    #[serde(deserialize_with = "counted_amount")]
    amount: i64,
}

struct CountedBalances(Balances);

impl Project<Counted> for CountedBalances {
    async fn project(&self, e: &Recorded<Counted>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        self.0.change(&e.account, e.amount, tx).await
    }
}

impl Prefetch<Counted> for CountedBalances {
    fn documents(&self, e: &Recorded<Counted>, ids: &mut DocumentIds) {
        ids.add(e.account.as_str());
    }
}

#[tokio::test(start_paused = true)]
async fn a_prefetching_event_is_decoded_once_for_naming_its_documents_and_projecting() {
    let deposits: Vec<Counted> =
        (0..12).map(|n| Counted { account: format!("acc-{}", n % 4), amount: n + 1 }).collect();
    let documents = TestStore::new(InMemoryProjectionStore::new());
    let subscriber =
        Subscriber::projection(CountedBalances(Balances::default())).prefetch::<Counted>().build();
    let stored = run(subscriber, &deposits, 0, documents.clone()).await;

    for account in 0..4 {
        let sum: i64 = (0..12).filter(|n| n % 4 == account).map(|n| n + 1).sum();
        assert_eq!(stored[&format!("acc-{account}")], Balance { balance: sum, events: 3 });
    }
    assert_eq!(documents.calls(StoreCall::GetMany), 4, "one get_many per batch of three");
    assert_eq!(DECODED.load(Ordering::SeqCst), deposits.len(), "each event decoded once, not once per pass");
}
