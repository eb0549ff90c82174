//! Link-time registration: subscribers submitted with `inventory::submit!`
//! exactly the way `#[event_handler]` and `#[projection]` emit it are found
//! by `Registry::from_inventory` and run by a read side built without an
//! explicit registry.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use es_core::{
    Event, EventStore, ExpectedVersion, HandleEvent, HandlerCtx, HandlerError, NewEvent, Project,
    ProjectionStore, ProjectionTx, ReadSide, Recorded, Registry, Replay, Selection, StreamId,
    SubscriptionKind,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pinged {
    by: String,
}

impl Event for Pinged {
    const TYPE: &'static str = "Pinged";
}

struct Pings;

impl Project<Pinged> for Pings {
    async fn project(&self, e: &Recorded<Pinged>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let count: u64 = tx.get(&e.by).await?.unwrap_or(0);
        tx.put(e.by.clone(), &(count + 1))?;
        Ok(())
    }
}

struct Pager;

impl HandleEvent<Pinged> for Pager {
    async fn handle(&self, _: &Recorded<Pinged>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Ok(())
    }
}

// What the macros emit: a factory fn and a `submit!` at item level, through
// the hidden re-export only.
const _: () = {
    fn factory() -> es_core::Subscriber {
        es_core::Subscriber::projection(Pings).on::<Pinged>().build().in_group("ops")
    }
    es_core::__private::inventory::submit! {
        es_core::__private::Registration::new("pings", factory)
    }
};

const _: () = {
    fn factory() -> es_core::Subscriber {
        es_core::Subscriber::handler(Pager).on::<Pinged>().replay(es_core::Replay::Skip).build()
    }
    es_core::__private::inventory::submit! {
        es_core::__private::Registration::new("pager", factory)
    }
};

/// An `#[event_handler]` on an async fn: the macro wraps the fn in a unit
/// struct that implements `HandleEvent` by calling it.
async fn greet(e: &Recorded<Pinged>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    if e.by.is_empty() || ctx.name() != "greeter" {
        return Err(HandlerError::msg("unexpected event or name"));
    }
    Ok(())
}

const _: () = {
    struct Greet;
    #[automatically_derived]
    impl es_core::HandleEvent<Pinged> for Greet {
        fn handle(
            &self,
            event: &es_core::Recorded<Pinged>,
            ctx: &es_core::HandlerCtx,
        ) -> impl ::std::future::Future<Output = ::std::result::Result<(), es_core::HandlerError>> + Send
        {
            greet(event, ctx)
        }
    }
    fn factory() -> es_core::Subscriber {
        es_core::Subscriber::handler(Greet)
            .on::<Pinged>()
            .build()
            .in_group("ops")
            .consistency(es_core::Consistency::Strong)
    }
    es_core::__private::inventory::submit! {
        es_core::__private::Registration::new("greeter", factory)
    }
};

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
    assert!(read_side.status("greeter").await.unwrap().state.is_active());
    assert_eq!(documents.get("pings", "ada").await.unwrap(), Some(serde_json::json!(2)));
    assert_eq!(documents.get("pings", "bob").await.unwrap(), Some(serde_json::json!(1)));
    read_side.shutdown().await;
}
