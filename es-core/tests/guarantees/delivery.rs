//! A subscriber sees every committed event exactly once, in position
//! order, live and when it starts late.

use es_core::readside::{ReadSideConfig, Selection};
use es_core::store::{EventStore, ProjectionStore};
use es_core::{GlobalPosition, ReadSide};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

use crate::helpers::{app, app_with, many_writers, positions_and_ids, read_side, WAIT};
use crate::subscribers::Seen;

/// A subscriber sees every committed event exactly once, in position
/// order, while many writers on two nodes append concurrently to shared
/// and own streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_every_event_once_in_order_with_many_concurrent_writers() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let es = app_with(&store, &documents, &["g-seen"]).await;
    // A second node writing to the same store, running no read side.
    let other = app(&store).await;
    let written = many_writers(&es, &other, "live-").await;

    let head = store.head_position().await.unwrap();
    read_side(&es).wait_for("g-seen", head, WAIT).await.unwrap();
    let log = positions_and_ids(&store).await;
    assert_eq!(log.len(), written);
    assert_eq!(Seen::of("ledger-live-"), log, "every event once, in position order");
    let status = read_side(&es).status("g-seen").unwrap();
    assert_eq!(status.position, head);
    // A handler's checkpoint is stored after its batch; stopping commits it.
    es.shutdown().await;
    assert_eq!(documents.checkpoint("g-seen").await.unwrap().map(|c| c.position), Some(head));
}

/// The same when the subscriber starts late: it catches up on stored
/// history while writers keep appending, and hands over to live events
/// without skipping or repeating one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_hands_over_from_catch_up_to_live_without_gaps_or_repeats() {
    let store = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let (one, two) = (app(&store).await, app(&store).await);
    let history = many_writers(&one, &two, "late-a-").await;
    assert_eq!(store.head_position().await.unwrap(), GlobalPosition(history as u64));

    let read_side = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(documents.clone())
        .select(Selection::names(["g-seen"]))
        .config(ReadSideConfig { batch_size: 7, ..ReadSideConfig::default() })
        .start()
        .unwrap();
    let news = many_writers(&one, &two, "late-b-").await;

    let head = store.head_position().await.unwrap();
    read_side.wait_for("g-seen", head, WAIT).await.unwrap();
    let log = positions_and_ids(&store).await;
    assert_eq!(log.len(), history + news);
    let seen: Vec<_> = Seen::of("ledger-late-").into_iter().collect();
    assert_eq!(seen, log, "every event once, in position order");
    read_side.shutdown().await;
    assert_eq!(documents.checkpoint("g-seen").await.unwrap().map(|c| c.position), Some(head));
}
