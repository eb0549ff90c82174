//! A subscription that catches up reads its next batch while the previous
//! one commits (pipelined): each full batch's commit is still in flight
//! when the read of the batch after it starts.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::readside::{ReadSideConfig, Registry, Subscriber};
use es_core::store::{EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::testkit::{StoreCall, TestStore};
use es_core::{event, HandlerError, Project, ProjectionTx, ReadSide, Recorded, StreamId};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Pinged;

struct Pings;

impl Project<Pinged> for Pings {
    async fn project(&self, _: &Recorded<Pinged>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let n: u64 = tx.get("count").await?.unwrap_or(0);
        Ok(tx.put("count", &(n + 1))?)
    }
}

/// How long a commit waits for the next read to start. A runner that reads
/// ahead starts it at once; one that does not would start it only after
/// the commit, so the wait runs out and the commit counts as not
/// overlapped (the bound only keeps that failure from hanging).
const OVERLAP_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn each_full_batch_commits_while_the_next_batch_is_read() {
    let events = TestStore::new(InMemoryEventStore::new());
    for _ in 0..30 {
        let event = NewEvent::new("ping", <Pinged as es_core::Event>::TYPE, 1, serde_json::json!(null));
        events.append(&StreamId::new("p"), ExpectedVersion::Any, vec![event]).await.unwrap();
    }
    let head = events.head_position().await.unwrap();
    // Commit number k waits until read number k + 1 of the global stream
    // has started, and counts the commits that saw it start.
    let projections = TestStore::new(InMemoryProjectionStore::new());
    let overlapped = Arc::new(AtomicUsize::new(0));
    {
        let (events, overlapped) = (events.clone(), Arc::clone(&overlapped));
        projections.before(StoreCall::Commit, move |k| {
            let (events, overlapped) = (events.clone(), Arc::clone(&overlapped));
            async move {
                if tokio::time::timeout(OVERLAP_WAIT, events.reached(StoreCall::ReadAll, k + 1)).await.is_ok()
                {
                    overlapped.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    let mut registry = Registry::new();
    registry.register("pings", Subscriber::projection(Pings).on::<Pinged>().build()).unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(projections.clone())
        .registry(registry)
        .config(ReadSideConfig { batch_size: 10, catch_up_batch_size: 10, ..ReadSideConfig::default() })
        .start()
        .unwrap();
    read_side.wait_for("pings", head, Duration::from_secs(60)).await.unwrap();
    read_side.shutdown().await;

    let count = projections.inner().get("pings", "count").await.unwrap();
    assert_eq!(count, Some(serde_json::json!(30)), "every event projected once");
    assert_eq!(projections.calls(StoreCall::Commit), 3, "three full batches of 10");
    assert_eq!(
        overlapped.load(Ordering::SeqCst),
        3,
        "the read after each batch started while that batch committed"
    );
}
