//! Faults on every port at once: two nodes on one in-memory store, each
//! with a read side, while appends fail before reaching the store, panic
//! after it stored them (a lost reply) or answer late, reads and waits
//! fail, projection commits fail or panic after landing, and lease calls
//! fail. Every command, executed again with its id until it answers, is
//! stored exactly once; an error that says nothing was stored stored
//! nothing; the aggregates and the read model equal the fold.
//!
//! The clock is tokio's paused one, so the schedule of faults (by call
//! number) and every backoff run the same way each time.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use es_core::error::ExecuteError;
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState};
use es_core::store::{Direction, DocumentQuery, EventStore, ProjectionStore};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{CommandId, Es, HandlerError, Project, ProjectionTx, ReadSide, Recorded, StreamVersion};
use es_memory::{InMemoryEventStore, InMemoryLeaseStore, InMemoryProjectionStore};
use support::{deposit, open, stream, Account, MoneyDeposited};

/// How long any wait may take (paused clock) before the test fails.
const DEADLINE: Duration = Duration::from_secs(600);
/// Accounts, and writers per account (one on each node).
const ACCOUNTS: usize = 3;
/// Commands per writer.
const COMMANDS: u64 = 60;
/// The most tries of one command before the test gives up on it.
const MAX_TRIES: usize = 200;

/// The read model: an account's deposited total, read, changed, put back.
struct Totals;

impl Project<MoneyDeposited> for Totals {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = e.stream_id.to_string();
        let total: u64 = tx.get(&id).await?.unwrap_or(0);
        tx.put(id, &(total + e.amount))?;
        Ok(())
    }
}

/// Injects `fault` into every `every`th call of kind `call`, from the
/// `first`th on (up to call 100,000).
fn every<S>(store: &TestStore<S>, call: StoreCall, fault: Fault, first: u64, every: usize) {
    for n in (first..100_000).step_by(every) {
        store.inject(call, fault, n..=n);
    }
}

/// One node's view of the shared stores, with its own schedule of faults
/// (`offset` shifts it, so the nodes do not fail in step).
struct Node {
    es: Es,
    read_side: ReadSide,
}

async fn node(
    events: &InMemoryEventStore,
    documents: &InMemoryProjectionStore,
    leases: &InMemoryLeaseStore,
    owner: &str,
    offset: u64,
) -> Node {
    let faulty_events = TestStore::new(events.clone());
    every(&faulty_events, StoreCall::Append, Fault::Backend, 3 + offset, 7);
    every(&faulty_events, StoreCall::Append, Fault::PanicAfter, 5 + offset, 11);
    every(&faulty_events, StoreCall::Append, Fault::SlowReply(Duration::from_millis(30)), 2 + offset, 5);
    every(&faulty_events, StoreCall::ReadStream, Fault::Backend, 2 + offset, 9);
    every(&faulty_events, StoreCall::StreamVersion, Fault::Backend, 1 + offset, 4);
    every(&faulty_events, StoreCall::ReadAll, Fault::Backend, 2 + offset, 6);
    every(&faulty_events, StoreCall::WaitForEvents, Fault::Backend, 1 + offset, 4);
    let faulty_documents = TestStore::new(documents.clone());
    every(&faulty_documents, StoreCall::Commit, Fault::Backend, 2 + offset, 5);
    every(&faulty_documents, StoreCall::Commit, Fault::PanicAfter, 4 + offset, 7);
    every(&faulty_documents, StoreCall::Get, Fault::Backend, 1 + offset, 8);
    every(&faulty_documents, StoreCall::Checkpoint, Fault::Backend, 1 + offset, 3);
    let faulty_leases = TestStore::new(leases.clone());
    every(&faulty_leases, StoreCall::Renew, Fault::Backend, 2 + offset, 4);
    every(&faulty_leases, StoreCall::Acquire, Fault::Backend, 1 + offset, 3);

    let mut registry = Registry::new();
    registry.register("totals", Subscriber::projection(Totals).on::<MoneyDeposited>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(faulty_events.clone())
        .projection_store(faulty_documents)
        .lease_store(faulty_leases)
        .owner(owner)
        .registry(registry)
        .config(ReadSideConfig {
            batch_size: 8,
            catch_up_batch_size: 32,
            idle_wait: Duration::from_millis(100),
            lease_ttl: Duration::from_millis(900),
            lease_retry: Duration::from_millis(50),
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
            ..ReadSideConfig::default()
        })
        .start()
        .unwrap();
    let es = Es::builder().event_store(faulty_events).build().await.unwrap();
    Node { es, read_side }
}

/// How many events the command `id` stored in `account`'s stream (its
/// events carry it as their causation id).
async fn stored_by(events: &InMemoryEventStore, account: &str, id: CommandId) -> usize {
    let stored =
        events.read_stream(&stream(account), StreamVersion(1), Direction::Forward, usize::MAX).await.unwrap();
    stored.iter().filter(|e| e.metadata.causation_id == Some(id.as_uuid())).count()
}

/// Deposits `1..=COMMANDS` into `account`, each executed again with its id
/// until it answers; after a failure that says nothing was stored, checks
/// that this try stored nothing. Returns (unknown outcomes, failures that stored
/// nothing).
async fn write(es: Es, events: InMemoryEventStore, account: String) -> (u64, u64) {
    let (mut unknown, mut nothing_stored) = (0, 0);
    for amount in 1..=COMMANDS {
        let id = CommandId::new();
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(tries <= MAX_TRIES, "command {id} on {account} never answered");
            // An earlier try may have stored it (its outcome unknown).
            let before = stored_by(&events, &account, id).await;
            match es.execute(deposit(&account, amount)).id(id).await {
                Ok(_) => break,
                Err(ExecuteError::OutcomeUnknown { .. }) => unknown += 1,
                Err(
                    error @ (ExecuteError::Load(_)
                    | ExecuteError::Append(_)
                    | ExecuteError::Conflict { .. }
                    | ExecuteError::Timeout { .. }),
                ) => {
                    nothing_stored += 1;
                    let after = stored_by(&events, &account, id).await;
                    assert_eq!(after, before, "`{error}` says this try stored nothing");
                }
                Err(other) => panic!("command {id} on {account}: {other}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    (unknown, nothing_stored)
}

#[tokio::test(start_paused = true)]
async fn commands_and_a_projection_ride_through_faults_on_every_port() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let leases = InMemoryLeaseStore::new();
    let setup = Es::builder().event_store(events.clone()).build().await.unwrap();
    let accounts: Vec<String> = (0..ACCOUNTS).map(|n| format!("acc-{n}")).collect();
    for account in &accounts {
        setup.execute(open(account)).await.unwrap();
    }
    let nodes =
        [node(&events, &documents, &leases, "a", 0).await, node(&events, &documents, &leases, "b", 1).await];

    let writers: Vec<_> = accounts
        .iter()
        .flat_map(|account| nodes.iter().map(move |node| (node.es.clone(), account.clone())))
        .map(|(es, account)| tokio::spawn(write(es, events.clone(), account)))
        .collect();
    let (mut unknown, mut nothing_stored) = (0, 0);
    for writer in writers {
        let (u, n) = tokio::time::timeout(DEADLINE, writer).await.unwrap().unwrap();
        unknown += u;
        nothing_stored += n;
    }
    assert!(
        unknown > 0 && nothing_stored > 0,
        "faults of both kinds met: {unknown} unknown, {nothing_stored}"
    );

    // One event per acknowledged command (and the opening), none twice.
    let per_account = 2 * COMMANDS;
    let total = 2 * COMMANDS * (COMMANDS + 1) / 2;
    for account in &accounts {
        let stored = events
            .read_stream(&stream(account), StreamVersion(1), Direction::Forward, usize::MAX)
            .await
            .unwrap();
        assert_eq!(stored.len() as u64, per_account + 1, "{account}: events stored");
        let mut causes: Vec<_> = stored.iter().map(|e| e.metadata.causation_id).collect();
        causes.sort();
        causes.dedup();
        assert_eq!(causes.len(), stored.len(), "{account}: no command stored twice");
        for node in &nodes {
            let loaded = node.es.load::<Account>(account).await.unwrap();
            assert_eq!((loaded.deposits, loaded.balance), (per_account, total), "{account}");
        }
    }

    // The read model, run by whichever node holds the lease, equals the fold.
    let head = events.head_position().await.unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reached = nodes.iter().any(|node| {
            let status = node.read_side.status("totals").unwrap();
            assert!(!matches!(status.state, SubscriptionState::Failed(_)), "{status:?}");
            status.checkpoint.is_some_and(|checkpoint| checkpoint >= head)
        });
        if reached {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the projection never reached the head");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored: BTreeMap<String, u64> = documents
        .query("totals", &DocumentQuery::all())
        .await
        .unwrap()
        .into_iter()
        .map(|(id, doc)| (id, serde_json::from_value(doc).unwrap()))
        .collect();
    let expected: BTreeMap<String, u64> = accounts.iter().map(|a| (stream(a).to_string(), total)).collect();
    assert_eq!(stored, expected);
    for node in nodes {
        node.read_side.shutdown().await;
        node.es.shutdown().await;
    }
}
