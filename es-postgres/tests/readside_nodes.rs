//! The read side on Postgres across nodes: two nodes sharing a projection
//! (hand-over on shutdown, take-over after a crash) and one node restarted
//! under its owner id with a commit in flight (the cases are the
//! conformance suite's), a bank transfer run by a process manager, and the
//! warning about a transaction holding readers back.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bank::{
    Account, AccountEvent, AccountSummary, Deposit, OpenAccount, StartTransfer, Transfer, TransferStatus,
    VerifyAccount,
};
use es_core::conformance::readside;
use es_core::readside::{ReadSideConfig, Registry, Selection, SubscriptionState};
use es_core::store::{EventStore, ExpectedVersion};
use es_core::{Aggregate, Es, ReadSide, StreamId};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore};

use common::readside::*;

// ---- several nodes: the cases are es_core::conformance::readside's ----

/// The stores of one node, as the conformance cases take them.
fn stores(db: &Db) -> (PgEventStore, PgProjectionStore, PgLeaseStore) {
    (db.events.clone(), db.documents.clone(), db.leases.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_both_project_and_the_second_takes_over_on_shutdown() {
    let db = Db::new().await;
    let other = db.other_node().await;
    readside::two_nodes_never_both_project_and_the_second_takes_over_on_shutdown(stores(&db), stores(&other))
        .await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint() {
    let db = Db::new().await;
    let other = db.other_node().await;
    readside::a_dead_nodes_projection_resumes_on_the_other_from_its_checkpoint(stores(&db), stores(&other))
        .await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_under_its_owner_fences_off_its_earlier_runs_commit() {
    let db = Db::new().await;
    readside::a_node_restarted_under_its_owner_fences_off_its_earlier_runs_commit(stores(&db)).await;
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
    let summaries = read_side.documents::<AccountSummary>(bank::ACCOUNT_SUMMARY);
    let ada = summaries.get("ada").await.unwrap().unwrap();
    let bob = summaries.get("bob").await.unwrap().unwrap();
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
