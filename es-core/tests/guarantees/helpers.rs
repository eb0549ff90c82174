//! Apps on a shared in-memory store, reading it back, and many writers.

use std::time::Duration;

use es_core::readside::Selection;
use es_core::store::{Direction, EventStore, RecordedEvent};
use es_core::{Aggregate, Es, EventId, GlobalPosition, ReadSide, StreamId, StreamVersion};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use tokio::task::JoinSet;

use crate::domain::{Deposit, Ledger, Note, Open};

pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn app(store: &InMemoryEventStore) -> Es {
    Es::builder().event_store(store.clone()).build().await.unwrap()
}

/// An `Es` on `store` running the named subscribers of this file.
pub(crate) async fn app_with(
    store: &InMemoryEventStore,
    documents: &InMemoryProjectionStore,
    names: &[&str],
) -> Es {
    Es::builder()
        .event_store(store.clone())
        .projection_store(documents.clone())
        .read_side(ReadSide::builder().select(Selection::names(names.iter().copied())))
        .build()
        .await
        .unwrap()
}

pub(crate) fn read_side(es: &Es) -> &ReadSide {
    es.read_side().expect("the app runs a read side")
}

pub(crate) async fn whole_stream(store: &InMemoryEventStore, id: &str) -> Vec<RecordedEvent> {
    let stream = StreamId::for_aggregate(Ledger::NAME, id);
    store.read_stream(&stream, StreamVersion(1), Direction::Forward, usize::MAX).await.unwrap()
}

pub(crate) async fn whole_log(store: &InMemoryEventStore) -> Vec<RecordedEvent> {
    store.read_all(GlobalPosition(0), usize::MAX).await.unwrap()
}

/// Many writers on two nodes: eight tasks, each writing 40 commands to its
/// own ledger and, every third command, to one shared ledger. Returns how
/// many events they appended.
pub(crate) async fn many_writers(one: &Es, two: &Es, prefix: &str) -> usize {
    for id in std::iter::once("shared".to_owned()).chain((0..8).map(|w| format!("w{w}"))) {
        one.execute(Open { id: format!("{prefix}{id}"), owner: id }).await.unwrap();
    }
    let mut writers = JoinSet::new();
    for writer in 0..8u64 {
        let node = if writer % 2 == 0 { one.clone() } else { two.clone() };
        let prefix = prefix.to_owned();
        writers.spawn(async move {
            for i in 1..=40u64 {
                let id = if i % 3 == 0 { format!("{prefix}shared") } else { format!("{prefix}w{writer}") };
                if i % 5 == 0 {
                    node.execute(Note { id, text: format!("{writer}/{i}") }).await.unwrap();
                } else {
                    node.execute(Deposit { id, amount: i }).await.unwrap();
                }
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    9 + 8 * 40
}

/// Every (position, event id) of the store, in position order.
pub(crate) async fn positions_and_ids(store: &InMemoryEventStore) -> Vec<(u64, EventId)> {
    whole_log(store).await.iter().map(|e| (e.global_position.get(), e.event_id)).collect()
}
