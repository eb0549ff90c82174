//! Link-time registration: subscribers declared with `#[event_handler]` and
//! `#[projection]` are found by `Registry::from_inventory` and run by a read
//! side built without an explicit registry.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use es_core::readside::{Registry, Replay, Selection, SubscriptionKind};
use es_core::store::{EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::{
    event, event_handler, projection, Event, HandleEvent, HandlerCtx, HandlerError, Project, ProjectionTx,
    ReadSide, Recorded, StreamId,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Pinged {
    by: String,
}

#[projection(name = "pings", events(Pinged), group = "ops")]
#[derive(Default)]
struct Pings;

impl Project<Pinged> for Pings {
    async fn project(&self, e: &Recorded<Pinged>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let count: u64 = tx.get(&e.by).await?.unwrap_or(0);
        tx.put(e.by.clone(), &(count + 1))?;
        Ok(())
    }
}

#[event_handler(name = "pager", replay = "skip", events(Pinged))]
#[derive(Default)]
struct Pager;

impl HandleEvent<Pinged> for Pager {
    async fn handle(&self, _: &Recorded<Pinged>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// On an async fn, the macro registers a handler that calls it.
#[event_handler(name = "greeter", group = "ops", consistency = "strong")]
async fn greet(e: &Recorded<Pinged>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    if e.by.is_empty() || ctx.name() != "greeter" {
        return Err(HandlerError::msg("unexpected event or name"));
    }
    Ok(())
}

#[test]
fn link_time_registrations_are_found_in_name_order() {
    let registry = Registry::from_inventory().unwrap();
    assert_eq!(registry.names().collect::<Vec<_>>(), ["greeter", "pager", "pings"]);
    let pager = registry.get("pager").unwrap();
    assert_eq!(pager.kind(), SubscriptionKind::Handler);
    assert_eq!(pager.replay_mode(), Replay::Skip);
    assert_eq!(pager.event_types(), ["Pinged"]);
    let pings = registry.get("pings").unwrap();
    assert_eq!(pings.kind(), SubscriptionKind::Projection);
    assert_eq!(pings.group(), Some("ops"));
}

#[tokio::test(start_paused = true)]
async fn a_read_side_without_a_registry_runs_the_link_time_registrations() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .select(Selection::group("ops"))
        .start()
        .unwrap();
    assert_eq!(read_side.names().collect::<Vec<_>>(), ["greeter", "pings"]);
    let ping = |by: &str| NewEvent::new("pinger", Pinged::TYPE, 1, serde_json::json!({ "by": by }));
    let outcome = events
        .append(&StreamId::new("pinger-1"), ExpectedVersion::Any, vec![ping("ada"), ping("bob"), ping("ada")])
        .await
        .unwrap();
    let head = outcome.last_position().unwrap();
    read_side.wait_for("pings", head, Duration::from_secs(60)).await.unwrap();
    read_side.wait_for_strong(head, Duration::from_secs(60)).await.unwrap();
    assert!(read_side.status("greeter").unwrap().state.is_active());
    assert_eq!(documents.get("pings", "ada").await.unwrap(), Some(serde_json::json!(2)));
    assert_eq!(documents.get("pings", "bob").await.unwrap(), Some(serde_json::json!(1)));
    read_side.shutdown().await;
}
