//! A process manager: a handler that reacts to one aggregate's event by
//! dispatching a command to another, with causation and correlation ids.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::readside::{Consistency, ReadSideConfig, Registry, Subscriber};
use es_core::store::{Direction, EventStore};
use es_core::{
    command, event, Aggregate, Apply, Es, Event, Events, Handle, HandleEvent, HandlerCtx, HandlerError,
    Metadata, ReadSide, Recorded, StreamId, StreamVersion,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

// --- order ---------------------------------------------------------------

#[event]
#[derive(Debug, Clone, PartialEq)]
struct OrderPlaced {
    order_id: String,
}

#[command(aggregate = Order)]
#[derive(Debug, Clone)]
struct PlaceOrder {
    #[id]
    order_id: String,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "order", error = Refused, events(OrderPlaced), commands(PlaceOrder))]
struct Order {
    placed: bool,
}

impl Handle<PlaceOrder> for Order {
    fn handle(&self, command: PlaceOrder) -> Result<Events<Self>, Refused> {
        if self.placed {
            return Err(Refused);
        }
        Ok(Events::one(OrderPlaced { order_id: command.order_id }))
    }
}

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {
        self.placed = true;
    }
}

// --- shipment ------------------------------------------------------------

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Shipped {
    order_id: String,
}

#[command(aggregate = Shipment)]
#[derive(Debug, Clone)]
struct Ship {
    #[id]
    order_id: String,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "shipment", error = Refused, events(Shipped), commands(Ship))]
struct Shipment {
    shipped: bool,
}

/// Shipping twice changes nothing: the saga may see an event again.
impl Handle<Ship> for Shipment {
    fn handle(&self, command: Ship) -> Result<Events<Self>, Refused> {
        if self.shipped {
            return Ok(Events::none());
        }
        Ok(Events::one(Shipped { order_id: command.order_id }))
    }
}

impl Apply<Shipped> for Shipment {
    fn apply(&mut self, _: &Shipped) {
        self.shipped = true;
    }
}

// --- the saga ------------------------------------------------------------

/// Ships every placed order. It is strongly consistent: the commands it
/// dispatches through its context must not wait for it.
struct ShippingSaga {
    attempts: Arc<AtomicU32>,
}

impl HandleEvent<OrderPlaced> for ShippingSaga {
    async fn handle(&self, e: &Recorded<OrderPlaced>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        ctx.execute(Ship { order_id: e.order_id.clone() }).await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_saga_dispatches_commands_caused_by_and_correlated_with_its_event() {
    let events = InMemoryEventStore::new();
    let es = Es::builder()
        .event_store(Arc::new(events.clone()))
        .projection_store(InMemoryProjectionStore::new())
        .build()
        .await
        .unwrap();
    let mut registry = Registry::new();
    let attempts = Arc::new(AtomicU32::new(0));
    let saga = ShippingSaga { attempts: Arc::clone(&attempts) };
    registry
        .register(
            "shipping",
            Subscriber::handler(saga).on::<OrderPlaced>().build().consistency(Consistency::Strong),
        )
        .unwrap();
    let read_side = ReadSide::builder()
        .es(&es)
        .registry(registry)
        .config(ReadSideConfig { lease_ttl: Duration::from_secs(10), ..ReadSideConfig::default() })
        .start()
        .unwrap();

    let correlation = Uuid::now_v7();
    let placed = es
        .execute_with(PlaceOrder { order_id: "o-1".into() }, Metadata::new().with_correlation_id(correlation))
        .await
        .unwrap();
    let uncorrelated = es.execute(PlaceOrder { order_id: "o-2".into() }).await.unwrap();
    read_side.wait_for_strong(uncorrelated.position.unwrap(), Duration::from_secs(60)).await.unwrap();

    let shipment = |id: &str| {
        let events = events.clone();
        let stream = StreamId::for_aggregate(Shipment::NAME, id);
        async move { events.read_stream(&stream, StreamVersion::FIRST, Direction::Forward, 10).await.unwrap() }
    };
    let first = shipment("o-1").await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event_type, "Shipped");
    assert_eq!(first[0].metadata.causation_id, Some(placed.committed[0].event_id.as_uuid()));
    assert_eq!(first[0].metadata.correlation_id, Some(correlation));

    let second = shipment("o-2").await;
    let placed_id = uncorrelated.committed[0].event_id.as_uuid();
    assert_eq!(second[0].metadata.causation_id, Some(placed_id));
    assert_eq!(
        second[0].metadata.correlation_id,
        Some(uncorrelated.command_id.as_uuid()),
        "no correlation given: the first command's id starts the chain"
    );

    assert!(es.load::<Shipment>("o-1").await.unwrap().shipped);
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "each order handled once: no wait on itself, no retry");
    let status = read_side.status("shipping").unwrap();
    assert!(status.state.is_active(), "{:?}", status.state);
    read_side.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_handler_without_a_dispatcher_reports_it() {
    let events = InMemoryEventStore::new();
    let mut registry = Registry::new();
    let saga = ShippingSaga { attempts: Arc::default() };
    let retry = es_core::readside::RetryPolicy::new(1, Duration::from_millis(1));
    registry
        .register("shipping", Subscriber::handler(saga).on::<OrderPlaced>().build().retry(retry))
        .unwrap();
    let read_side = ReadSide::builder()
        .event_store(events.clone())
        .projection_store(InMemoryProjectionStore::new())
        .registry(registry)
        .start()
        .unwrap();
    let new =
        es_core::store::NewEvent::new("order", OrderPlaced::TYPE, 1, serde_json::json!({"order_id": "o-1"}));
    let outcome = events
        .append(&StreamId::new("order-o-1"), es_core::store::ExpectedVersion::Any, vec![new])
        .await
        .unwrap();
    let error =
        read_side.wait_for("shipping", outcome.last_position().unwrap(), Duration::from_secs(60)).await;
    let Err(es_core::error::ConsistencyError::Failed { failure, .. }) = error else {
        panic!("expected a failure: {error:?}")
    };
    assert!(failure.error.contains("no command dispatcher"), "{}", failure.error);
    read_side.shutdown().await;
}

/// Ships two orders per placed order: the placed one, then a gift (with a
/// metadata field of its own). Delivered again (a replay), it resumes at
/// the gift, its second step, and records the command ids it got.
struct TwoStepSaga {
    ids: Arc<std::sync::Mutex<Vec<(bool, es_core::CommandId)>>>,
}

impl HandleEvent<OrderPlaced> for TwoStepSaga {
    async fn handle(&self, e: &Recorded<OrderPlaced>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        if ctx.is_replay() {
            ctx.resume_at(1);
        } else {
            let first = ctx.execute(Ship { order_id: e.order_id.clone() }).await?;
            self.ids.lock().unwrap().push((false, first.command_id));
        }
        let gift = Ship { order_id: format!("{}-gift", e.order_id) };
        let outcome = ctx.execute_with(gift, ctx.command_metadata().with_field("note", "gift")).await?;
        self.ids.lock().unwrap().push((ctx.is_replay(), outcome.command_id));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_resumed_at_a_step_resends_that_step_with_the_id_it_had() {
    let events = InMemoryEventStore::new();
    let es = Es::builder()
        .event_store(events.clone())
        .projection_store(InMemoryProjectionStore::new())
        .build()
        .await
        .unwrap();
    let ids = Arc::default();
    let mut registry = Registry::new();
    registry
        .register(
            "gifts",
            Subscriber::handler(TwoStepSaga { ids: Arc::clone(&ids) }).on::<OrderPlaced>().build(),
        )
        .unwrap();
    let read_side = ReadSide::builder().es(&es).registry(registry).start().unwrap();
    let placed = es.execute(PlaceOrder { order_id: "o-1".into() }).await.unwrap();
    let head = placed.position.unwrap();
    read_side.wait_for("gifts", head, Duration::from_secs(60)).await.unwrap();
    read_side.rebuild("gifts").await.unwrap();
    read_side.wait_for("gifts", head, Duration::from_secs(60)).await.unwrap();

    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 3, "two commands, then the gift again: {ids:?}");
    let [(false, ship), (false, gift), (true, resent)] = ids[..] else { panic!("{ids:?}") };
    assert_ne!(ship, gift, "each step has its own id");
    assert_eq!(resent, gift, "the resumed step has the id it had the first time");
    let stream = StreamId::for_aggregate(Shipment::NAME, "o-1-gift");
    let gifts = events.read_stream(&stream, StreamVersion::FIRST, Direction::Forward, 10).await.unwrap();
    assert_eq!(gifts.len(), 1, "shipped once");
    assert_eq!(gifts[0].metadata.fields.get("note"), Some(&serde_json::json!("gift")));
    assert_eq!(gifts[0].metadata.causation_id, Some(placed.committed[0].event_id.as_uuid()));
    read_side.shutdown().await;
}
