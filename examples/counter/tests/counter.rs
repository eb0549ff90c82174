//! The counter's promises on real stores: one actor per counter under a
//! racing burst with an exact count, and a `counters` read model that
//! counts each event once, also when every event is delivered again.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use counter::race::race;
use counter::store::{Backend, StoreKind};
use counter::{Create, Increment, IncrementTwice};
use es_core::readside::ReadSideBuilder;
use es_core::Es;

const WAIT: Duration = Duration::from_secs(30);

async fn app(backend: &Backend, read_side: Option<ReadSideBuilder>) -> Es {
    let builder = backend.builder();
    match read_side {
        Some(read_side) => builder.read_side(read_side),
        None => builder,
    }
    .build()
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_burst_on_one_counter_has_one_actor_and_an_exact_count() {
    for kind in [StoreKind::Memory, StoreKind::Sqlite] {
        let backend = Backend::open(kind, None).await.unwrap();
        let es = app(&backend, None).await;
        let report = race(&es, "hot", 200, 5).await.unwrap();
        assert_eq!(report.value, 1_000, "{kind}: every increment counted once");
        assert_eq!(report.actors_started, 1, "{kind}: one actor for the counter, however many callers");
        assert_eq!(report.live_actors, 1, "{kind}: one live actor");
        assert_eq!(report.conflicts, 0, "{kind}: the actor serializes the commands");
        es.shutdown().await;
        backend.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_read_model_counts_each_event_once_on_every_store() {
    for kind in StoreKind::ALL {
        let backend = Backend::open(kind, None).await.unwrap();
        let es = app(&backend, Some(backend.read_side().unwrap())).await;
        let id = "c-1".to_owned();
        es.execute(Create { counter_id: id.clone() }).await.unwrap();
        es.execute(Increment { counter_id: id.clone(), by: 2 }).await.unwrap();
        let twice = es.execute(IncrementTwice { counter_id: id.clone(), by: 3 }).await.unwrap();
        assert_eq!(twice.events.len(), 2, "{kind}: a double increment is two events");
        let read_side = es.read_side().unwrap();
        let name = backend.counters_subscription();
        read_side.wait_for(name, twice.position.unwrap(), WAIT).await.unwrap();
        let row = backend.counter_row(&id).await.unwrap().expect("a row for the counter");
        assert_eq!((row.value, row.version), (8, 4), "{kind}");
        assert_eq!(
            row.position,
            twice.position.unwrap().get(),
            "{kind}: the position of the last event counted"
        );

        // Every event delivered again: nothing is counted twice.
        read_side.rebuild(name).await.unwrap();
        let more = es.execute(Increment { counter_id: id.clone(), by: 1 }).await.unwrap();
        read_side.wait_for(name, more.position.unwrap(), WAIT).await.unwrap();
        let row = backend.counter_row(&id).await.unwrap().expect("a row for the counter");
        assert_eq!((row.value, row.version), (9, 5), "{kind}: redelivered events change nothing");
        es.shutdown().await;
        backend.close().await;
    }
}
