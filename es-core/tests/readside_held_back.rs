//! A caught-up subscription asks the event store what keeps committed
//! events hidden, warns past `ReadSideConfig::held_back_warning` and
//! reports the blocker in its status; it asks rarely, and the report clears
//! when the blocker is gone.
//!
//! Runs on tokio's paused clock: time moves only when every task is idle.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, StoreError};
use es_core::readside::{ReadSideConfig, Registry, Subscriber, SubscriptionState};
use es_core::store::{
    AppendOutcome, Direction, EventStore, ExpectedVersion, NewEvent, ReadBlocker, RecordedEvent,
};
use es_core::{
    event, GlobalPosition, HandlerError, Project, ProjectionTx, ReadSide, Recorded, StreamId, StreamVersion,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use tokio::time::Instant;

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

/// The in-memory store, with a blocker the test switches on and off.
#[derive(Clone, Default)]
struct Blocked {
    inner: InMemoryEventStore,
    since: Arc<Mutex<Option<Instant>>>,
    asked: Arc<AtomicUsize>,
}

#[async_trait]
impl EventStore for Blocked {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, direction, limit).await
    }
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<es_core::store::StreamSummary>, StoreError> {
        self.inner.streams(prefix, after, limit).await
    }
    async fn events_by_id(
        &self,
        ids: &[es_core::EventId],
    ) -> Result<Vec<es_core::store::RecordedEvent>, StoreError> {
        self.inner.events_by_id(ids).await
    }
    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head_position().await
    }
    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        self.inner.wait_for_events(after, max_wait).await;
    }
    async fn read_blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let since = *self.since.lock().unwrap();
        Ok(since.map(|since| {
            let hiding = since.elapsed();
            ReadBlocker::new("transaction 7 (pid 42, idle in transaction)", hiding, hiding)
        }))
    }
}

#[tokio::test(start_paused = true)]
async fn a_blocker_is_reported_past_the_threshold_and_cleared_when_it_ends() {
    let events = Blocked::default();
    let mut registry = Registry::new();
    registry.register("pings", Subscriber::projection(Pings).on::<Pinged>().build()).unwrap();
    let config = ReadSideConfig {
        idle_wait: Duration::from_secs(1),
        held_back_warning: Duration::from_secs(10),
        ..ReadSideConfig::default()
    };
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(InMemoryProjectionStore::new())
        .registry(registry)
        .config(config)
        .start()
        .unwrap();
    let event = NewEvent::new("ping", <Pinged as es_core::Event>::TYPE, 1, serde_json::json!(null));
    let first = events.append(&StreamId::new("p"), ExpectedVersion::Any, vec![event]).await.unwrap();
    read_side.wait_for("pings", first.last_position().unwrap(), Duration::from_secs(60)).await.unwrap();

    *events.since.lock().unwrap() = Some(Instant::now());
    let asked_before = events.asked.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status = read_side.status("pings").unwrap();
    assert_eq!(status.state, SubscriptionState::CaughtUp);
    assert_eq!(status.held_back_by, None, "hidden for 6 s, below the 10 s threshold");

    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = read_side.status("pings").unwrap();
    assert_eq!(status.held_back_by.as_deref(), Some("transaction 7 (pid 42, idle in transaction)"));
    let asked = events.asked.load(Ordering::SeqCst) - asked_before;
    assert!((2..=5).contains(&asked), "asked {asked} times in 16 s: at most every 5 s");

    *events.since.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(read_side.status("pings").unwrap().held_back_by, None, "cleared once it ended");
    read_side.shutdown().await;
}
