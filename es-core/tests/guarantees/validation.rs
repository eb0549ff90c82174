//! An invalid command is refused before its aggregate is loaded.

use es_core::error::ExecuteError;
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{Aggregate, StreamId};
use es_memory::InMemoryEventStore;
use serde_json::json;

use crate::domain::{Deposit, Ledger, Open};
use crate::helpers::{app, whole_log};

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
