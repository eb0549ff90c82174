//! A projection rebuilt under load folds every event once; one that
//! panics stops alone.

use es_core::error::ConsistencyError;
use es_core::store::{DocumentQuery, EventStore, ProjectionStore};
use es_core::StreamVersion;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde_json::json;

use crate::domain::{Deposit, Ledger, Open};
use crate::helpers::{app, app_with, many_writers, read_side, WAIT};
use crate::subscribers::{Balance, FRAGILE_AMOUNT};

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
    let status = read_side.status("g-fragile").unwrap();
    assert_eq!(status.position, before);
    let checkpoint = documents.checkpoint("g-fragile").await.unwrap().map(|c| c.position);
    assert!(checkpoint.is_some_and(|c| c < fatal.position.unwrap()), "{checkpoint:?}");
    assert_eq!(documents.get("g-fragile", "ledger-f").await.unwrap(), Some(json!(13)));

    read_side.wait_for("g-balances", last, WAIT).await.unwrap();
    let after = es.execute(Deposit { id: "f".into(), amount: 1 }).await.unwrap();
    assert_eq!(after.version, Some(StreamVersion(6)), "the command side goes on");
    es.shutdown().await;
}
