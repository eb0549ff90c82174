//! Typed state for handlers and projections, typed documents, and the
//! read-side test kit, on the in-memory stores.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use es_core::error::{BuildError, ProjectionError, ReadSideError};
use es_core::readside::{RetryPolicy, Selection, Subscriber};
use es_core::store::Direction;
use es_core::testkit::ReadSideTest;
use es_core::{
    command, event, event_handler, projection, Aggregate, Apply, Es, Events, Handle, HandleEvent, HandlerCtx,
    HandlerError, Project, ProjectionTx, ReadSide, Recorded, StreamId, StreamVersion,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MemberJoined {
    name: String,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Greeted {
    name: String,
}

#[command(aggregate = Club)]
#[derive(Debug, Clone, PartialEq)]
struct Greet {
    #[id]
    club: String,
    name: String,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "club", error = Refused, events(MemberJoined, Greeted), commands(Greet))]
struct Club;

impl Handle<Greet> for Club {
    fn handle(&self, command: Greet) -> Result<Events<Self>, Refused> {
        Ok(Events::one(Greeted { name: command.name }))
    }
}

impl Apply<MemberJoined> for Club {
    fn apply(&mut self, _: &MemberJoined) {}
}

impl Apply<Greeted> for Club {
    fn apply(&mut self, _: &Greeted) {}
}

/// What the application gives its handlers: where letters go.
#[derive(Default)]
struct Letterbox(Mutex<Vec<String>>);

/// Writes a letter per new member into the letterbox it is given.
#[event_handler(name = "letters", uses(Arc<Letterbox>))]
async fn letters(e: &Recorded<MemberJoined>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let letterbox = ctx.state::<Arc<Letterbox>>()?;
    letterbox.0.lock().unwrap().push(format!("dear {}", e.name));
    Ok(())
}

/// A member list, one document per member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Member {
    name: String,
    club: String,
}

#[projection(name = "members", events(MemberJoined))]
#[derive(Default)]
struct Members;

impl Project<MemberJoined> for Members {
    async fn project(&self, e: &Recorded<MemberJoined>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let member = Member { name: e.name.clone(), club: e.stream_id.to_string() };
        Ok(tx.put(e.name.clone(), &member)?)
    }
}

/// Greets every new member: a process manager.
struct Greeter;

impl HandleEvent<MemberJoined> for Greeter {
    async fn handle(&self, e: &Recorded<MemberJoined>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        let club = e.stream_id.as_str().trim_start_matches("club-").to_owned();
        ctx.execute(Greet { club, name: e.name.clone() }).await?;
        Ok(())
    }
}

/// Asks for state it never declared.
struct Sneaky;

impl HandleEvent<MemberJoined> for Sneaky {
    async fn handle(&self, _: &Recorded<MemberJoined>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        ctx.state::<Arc<Letterbox>>()?;
        Ok(())
    }
}

fn joined(name: &str) -> ClubEvent {
    MemberJoined { name: name.into() }.into()
}

#[tokio::test]
async fn a_handler_reads_the_state_it_declared() {
    let letterbox = Arc::new(Letterbox::default());
    let mut test = ReadSideTest::new(InMemoryEventStore::new(), InMemoryProjectionStore::new())
        .registered("letters")
        .state(Arc::clone(&letterbox));
    test.given::<Club>("chess", [joined("ada"), joined("alan")]).await;
    test.settle().await;
    assert_eq!(*letterbox.0.lock().unwrap(), ["dear ada", "dear alan"]);
    test.finish().await;
}

#[tokio::test]
async fn state_a_handler_uses_must_be_given_when_the_application_is_built() {
    let built = Es::builder()
        .event_store(InMemoryEventStore::new())
        .projection_store(InMemoryProjectionStore::new())
        .read_side(ReadSide::builder().select(Selection::names(["letters"])))
        .build()
        .await;
    match built {
        Err(BuildError::ReadSide(error @ ReadSideError::MissingState { .. })) => {
            let message = error.to_string();
            assert!(message.contains("`letters`") && message.contains("Letterbox"), "{message}");
        }
        other => panic!("expected a missing-state error, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn undeclared_state_fails_the_event_with_a_typed_error_naming_the_type() {
    let mut test = ReadSideTest::new(InMemoryEventStore::new(), InMemoryProjectionStore::new())
        .subscriber(
            "sneaky",
            Subscriber::handler(Sneaky)
                .on::<MemberJoined>()
                .build()
                .retry(RetryPolicy::new(1, std::time::Duration::from_millis(1))),
        )
        .state(Arc::new(Letterbox::default()))
        .timeout(std::time::Duration::from_secs(5));
    test.given::<Club>("chess", [joined("ada")]).await;
    let settled = tokio::spawn(async move { test.settle().await });
    let panic = settled.await.expect_err("settling reports the failed subscription").into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("was not declared") && message.contains("Letterbox"), "{message}");
}

#[tokio::test]
async fn typed_documents_get_list_query_and_count() {
    let mut test =
        ReadSideTest::new(InMemoryEventStore::new(), InMemoryProjectionStore::new()).registered("members");
    test.given::<Club>("chess", [joined("ada"), joined("alan")]).await;
    test.given::<Club>("go", [joined("grace")]).await;
    test.settle().await;
    let members = test.documents::<Member>("members");
    assert_eq!(
        members.get("ada").await.unwrap(),
        Some(Member { name: "ada".into(), club: "club-chess".into() })
    );
    assert_eq!(members.get("nobody").await.unwrap(), None);
    let names: Vec<String> = members.list().await.unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(names, ["ada", "alan", "grace"], "in id order");
    let chess = members.containing(&serde_json::json!({ "club": "club-chess" })).await.unwrap();
    assert_eq!(chess.len(), 2);
    assert_eq!(members.count().await.unwrap(), 3);

    // A document of another shape is a typed error naming it.
    let wrong = test.documents::<u64>("members");
    assert!(matches!(wrong.get("ada").await, Err(ProjectionError::Serde { id, .. }) if id == "ada"));
    test.finish().await;
}

#[tokio::test]
async fn the_kit_shows_the_commands_a_process_manager_dispatched() {
    let events = InMemoryEventStore::new();
    let es = Es::builder().event_store(events.clone()).build().await.unwrap();
    let mut test = ReadSideTest::new(events, InMemoryProjectionStore::new())
        .subscriber("greeter", Subscriber::handler(Greeter).on::<MemberJoined>().build())
        .dispatch_to(es.clone());
    test.given::<Club>("chess", [joined("ada")]).await;
    test.settle().await;
    assert_eq!(test.dispatched::<Greet>(), [Greet { club: "chess".into(), name: "ada".into() }]);
    assert_eq!(test.dispatched_count(), 1);
    let stream = StreamId::for_aggregate("club", "chess");
    let club =
        es.event_store().read_stream(&stream, StreamVersion::FIRST, Direction::Forward, 10).await.unwrap();
    assert_eq!(club.iter().filter(|e| e.event_type == "Greeted").count(), 1, "the command ran");
    test.finish().await;
}

#[tokio::test]
#[should_panic(expected = "`state` comes before the first `settle`")]
async fn state_given_to_the_kit_after_it_started_is_refused_not_ignored() {
    let mut test =
        ReadSideTest::new(InMemoryEventStore::new(), InMemoryProjectionStore::new()).registered("members");
    test.settle().await;
    let _late = test.state(Arc::new(Letterbox::default()));
}
