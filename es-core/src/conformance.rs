//! The store conformance suite: behaviour every adapter must show.
//!
//! Each case is an async fn that takes a fresh, empty store. An adapter
//! instantiates the whole suite in its `tests/` with
//! [`event_store_conformance!`](crate::event_store_conformance), which stamps
//! one `#[tokio::test]` per case, so a failure names the case and adapter.

// This module is a test suite that ships in the library: a failed
// expectation must panic so that the adapter's test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;

use crate::{EventStore, ExpectedVersion, NewEvent, StreamId, StreamVersion};

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

/// Appending to a new stream with `NoStream` starts it at version 1.
pub async fn append_to_new_stream<S: EventStore>(store: S) {
    let stream = StreamId::new("conformance-new");
    let outcome = store.append(&stream, ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
    assert_eq!(outcome.stream_version, Some(StreamVersion(2)));
    assert_eq!(store.stream_version(&stream).await.unwrap(), Some(StreamVersion(2)));
}

/// A wrong expected version writes nothing and names stream, expected and actual.
pub async fn wrong_expected_version_writes_nothing<S: EventStore>(store: S) {
    let stream = StreamId::new("conformance-wrong");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let err =
        store.append(&stream, ExpectedVersion::Exact(StreamVersion(5)), vec![event(2)]).await.unwrap_err();
    match err {
        crate::AppendError::WrongExpectedVersion { stream: s, expected, actual } => {
            assert_eq!(s, stream);
            assert_eq!(expected, ExpectedVersion::Exact(StreamVersion(5)));
            assert_eq!(actual, Some(StreamVersion(1)));
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
    assert_eq!(store.stream_version(&stream).await.unwrap(), Some(StreamVersion(1)));
}

/// Stamps one `#[tokio::test]` per conformance case for an event store.
///
/// `$make` is an expression evaluating to a future that yields a fresh,
/// empty store.
#[macro_export]
macro_rules! event_store_conformance {
    ($make:expr) => {
        $crate::event_store_conformance!(@cases $make;
            append_to_new_stream,
            wrong_expected_version_writes_nothing,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = ($make).await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
