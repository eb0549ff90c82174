//! Events that cannot be decoded are typed errors naming the event, and
//! stay stored; older versions are upcast on read.

use es_core::error::{ConsistencyError, DecodeError, DecodeErrorKind, ExecuteError, LoadError};
use es_core::readside::SubscriptionState;
use es_core::runtime::CommandPath;
use es_core::store::{EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::{Aggregate, Es, Event, Recorded, StreamId, StreamVersion};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde_json::{json, Value};

use crate::domain::{Deposit, Deposited, Ledger, Note, Noted, Open, Opened};
use crate::helpers::{app, app_with, read_side, whole_log, whole_stream, WAIT};

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
        let status = read_side.status("g-balances").unwrap();
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
