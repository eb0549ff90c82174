//! Metadata, causation and correlation are recorded on the events.

use es_core::{Event, EventId, Metadata};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde_json::json;

use crate::domain::{Deposit, Deposited, Ledger, Open};
use crate::helpers::{app, app_with, read_side, whole_stream, WAIT};

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
    let command = Some(stored[1].metadata.causation_id.expect("a causation id"));
    assert_eq!(
        stored[1].metadata.correlation_id, command,
        "plain execute: the command id is cause and correlation"
    );
    assert!(stored[1].metadata.fields.is_empty());
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
    // Opened without one: the opening command's id starts the correlation.
    let plain = es.execute(Open { id: "c2".into(), owner: "bob".into() }).await.unwrap();
    let head = plain.position.unwrap();
    read_side(&es).wait_for("g-bonus", head, WAIT).await.unwrap();
    // The bonuses were appended by the handler before it returned.
    for (id, cause, correlation) in [
        ("c1", opened.committed[0].event_id, correlation),
        ("c2", plain.committed[0].event_id, plain.command_id.as_uuid()),
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
