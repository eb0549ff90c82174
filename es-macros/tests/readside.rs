//! Link-time registration on our own toolchain: handlers and a projection
//! registered by `#[event_handler]` and `#[projection]` are found by
//! `Registry::from_inventory`, run by a read side on the in-memory stores,
//! and a `replay = "skip"` handler is not run again on replay.

// Helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::Duration;

use es_core::readside::{Consistency, Registry, Replay, Selection, SubscriptionKind};
use es_core::store::{EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::{
    event, event_handler, projection, Event, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, Project,
    ProjectionTx, ReadSide, Recorded, StreamId,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Pinged {
    by: String,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Ponged {
    by: String,
}

/// Who `greet` greeted, in order: it must never see a replayed event.
static GREETED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What `Audit` saw: (event type, by, replayed).
static AUDITED: Mutex<Vec<(&str, String, bool)>> = Mutex::new(Vec::new());

#[event_handler(name = "greeter", replay = "skip", group = "macros")]
async fn greet(e: &Recorded<Pinged>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    if ctx.is_replay() {
        return Err(HandlerError::msg("a replay = \"skip\" handler was run for a replayed event"));
    }
    GREETED.lock().unwrap().push(e.by.clone());
    Ok(())
}

#[event_handler(name = "audit", events(Pinged, Ponged), group = "macros", consistency = "strong")]
#[derive(Default)]
struct Audit;

impl HandleEvent<Pinged> for Audit {
    async fn handle(&self, e: &Recorded<Pinged>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        AUDITED.lock().unwrap().push((Pinged::TYPE, e.by.clone(), ctx.is_replay()));
        Ok(())
    }
}

impl HandleEvent<Ponged> for Audit {
    async fn handle(&self, e: &Recorded<Ponged>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        AUDITED.lock().unwrap().push((Ponged::TYPE, e.by.clone(), ctx.is_replay()));
        Ok(())
    }
}

/// Pings and pongs per person.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Tally {
    pings: u64,
    pongs: u64,
}

#[projection(name = "tallies", events(Pinged, Ponged), group = "macros")]
#[derive(Default)]
struct Tallies;

impl Project<Pinged> for Tallies {
    async fn project(&self, e: &Recorded<Pinged>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let mut tally: Tally = tx.get(&e.by).await?.unwrap_or_default();
        tally.pings += 1;
        Ok(tx.put(e.by.clone(), &tally)?)
    }
}

impl Project<Ponged> for Tallies {
    async fn project(&self, e: &Recorded<Ponged>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let mut tally: Tally = tx.get(&e.by).await?.unwrap_or_default();
        tally.pongs += 1;
        Ok(tx.put(e.by.clone(), &tally)?)
    }
}

#[test]
fn the_macros_register_at_link_time() {
    let registry = Registry::from_inventory().unwrap();
    assert_eq!(registry.names().collect::<Vec<_>>(), [Audit::NAME, "greeter", Tallies::NAME]);

    let greeter = registry.get("greeter").unwrap();
    assert_eq!(greeter.kind(), SubscriptionKind::Handler);
    assert_eq!(greeter.event_types(), ["Pinged"]);
    assert_eq!(greeter.replay_mode(), Replay::Skip);
    assert_eq!(greeter.consistency_level(), Consistency::Eventual);
    assert_eq!(greeter.group(), Some("macros"));

    let audit = registry.get(Audit::NAME).unwrap();
    assert_eq!(audit.kind(), SubscriptionKind::Handler);
    assert_eq!(audit.event_types(), ["Pinged", "Ponged"]);
    assert_eq!(audit.replay_mode(), Replay::Run);
    assert_eq!(audit.consistency_level(), Consistency::Strong);

    let tallies = registry.get(Tallies::NAME).unwrap();
    assert_eq!(tallies.kind(), SubscriptionKind::Projection);
    assert_eq!(tallies.event_types(), ["Pinged", "Ponged"]);
    assert_eq!(tallies.consistency_level(), Consistency::Eventual);
    assert_eq!(tallies.group(), Some("macros"));
}

const WAIT: Duration = Duration::from_secs(60);

async fn wait_for_all(read_side: &ReadSide, head: GlobalPosition) {
    for name in [Audit::NAME, "greeter", Tallies::NAME] {
        read_side.wait_for(name, head, WAIT).await.unwrap();
    }
}

#[tokio::test]
async fn registered_subscribers_run_and_a_skipping_handler_is_not_replayed() {
    let events = InMemoryEventStore::new();
    let documents = InMemoryProjectionStore::new();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(documents.clone())
        .select(Selection::group("macros"))
        .start()
        .unwrap();
    let ping = |by: &str| NewEvent::new("player", Pinged::TYPE, Pinged::VERSION, json!({ "by": by }));
    let pong = |by: &str| NewEvent::new("player", Ponged::TYPE, Ponged::VERSION, json!({ "by": by }));
    let appended = events
        .append(
            &StreamId::new("player-1"),
            ExpectedVersion::Any,
            vec![ping("ada"), pong("bob"), ping("ada"), ping("bob")],
        )
        .await
        .unwrap();
    let head = appended.last_position().unwrap();
    wait_for_all(&read_side, head).await;

    let tally = |by: &'static str| {
        let documents = documents.clone();
        async move {
            let json = documents.get(Tallies::NAME, by).await.unwrap().expect("a tally document");
            serde_json::from_value::<Tally>(json).unwrap()
        }
    };
    assert_eq!(tally("ada").await, Tally { pings: 2, pongs: 0 });
    assert_eq!(tally("bob").await, Tally { pings: 1, pongs: 1 });
    assert_eq!(*GREETED.lock().unwrap(), ["ada", "ada", "bob"]);
    let live: Vec<_> = AUDITED.lock().unwrap().clone();
    assert_eq!(
        live,
        [
            ("Pinged", "ada".to_owned(), false),
            ("Ponged", "bob".to_owned(), false),
            ("Pinged", "ada".to_owned(), false),
            ("Pinged", "bob".to_owned(), false),
        ]
    );

    // Replay history through every subscriber.
    for name in [Audit::NAME, "greeter", Tallies::NAME] {
        read_side.rebuild(name).await.unwrap();
    }
    wait_for_all(&read_side, head).await;
    assert_eq!(*GREETED.lock().unwrap(), ["ada", "ada", "bob"], "a skipping handler ran on replay");
    let audited: Vec<_> = AUDITED.lock().unwrap().clone();
    assert_eq!(audited.len(), 8, "a running handler sees history again: {audited:?}");
    assert!(audited[4..].iter().all(|(_, _, replayed)| *replayed), "{audited:?}");
    assert_eq!(tally("ada").await, Tally { pings: 2, pongs: 0 }, "a rebuild does not double count");
    assert_eq!(tally("bob").await, Tally { pings: 1, pongs: 1 });

    // News after the replay is news again.
    let more =
        events.append(&StreamId::new("player-2"), ExpectedVersion::Any, vec![ping("cy")]).await.unwrap();
    wait_for_all(&read_side, more.last_position().unwrap()).await;
    assert_eq!(*GREETED.lock().unwrap(), ["ada", "ada", "bob", "cy"]);
    assert_eq!(AUDITED.lock().unwrap().last(), Some(&("Pinged", "cy".to_owned(), false)));
    assert_eq!(tally("cy").await, Tally { pings: 1, pongs: 0 });
    read_side.shutdown().await;
}
