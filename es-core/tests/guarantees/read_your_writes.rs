//! Read your own writes: waiting for a projection to reach a position,
//! and strong consistency that reports a failing handler.

use std::time::Duration;

use es_core::error::{ConsistencyError, ExecuteError};
use es_core::store::{EventStore, ProjectionStore};
use es_core::GlobalPosition;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use crate::domain::{Deposit, Ledger, Open};
use crate::helpers::{app, app_with, read_side, whole_stream, WAIT};
use crate::subscribers::{Balance, REFUSED_AMOUNT, STRICT};

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
