//! Subscriptions ride through a database outage on Postgres: a TCP proxy
//! between the read side and the server cuts every connection and refuses
//! new ones for a while; the projection, a handler and a plain
//! `EventSubscription` go on by themselves when it is back (no restart),
//! and the projection's documents equal the fold. Pool pressure (a pool of
//! two with a tiny acquire timeout, both connections held elsewhere) is an
//! outage too, and fails nothing.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::proxy::Proxy;
use common::{drop_schema, fresh_schema, pool};
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber, SubscriptionState};
use es_core::store::{DocumentQuery, EventStore, ExpectedVersion, NewEvent, ProjectionStore};
use es_core::{
    event, Event, EventSubscription, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, Project,
    ProjectionTx, ReadSide, Recorded, StreamId,
};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
use sqlx::PgPool;

const DEADLINE: Duration = Duration::from_secs(60);

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Added {
    key: String,
    amount: i64,
}

/// Per key, the sum of the amounts added.
struct Totals;

impl Project<Added> for Totals {
    async fn project(&self, e: &Recorded<Added>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let total: i64 = tx.get(&e.key).await?.unwrap_or(0);
        tx.put(e.key.clone(), &(total + e.amount))?;
        Ok(())
    }
}

/// Counts what it handled.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU32>);

impl HandleEvent<Added> for Counter {
    async fn handle(&self, _: &Recorded<Added>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The read side's stores on `pool`, in `schema`.
fn read_side(pool: &PgPool, schema: &PgSchema, counter: &Counter) -> ReadSide {
    // One attempt per event: an outage counted against an event would stop
    // the subscription at once.
    let once = RetryPolicy::new(1, Duration::from_millis(10));
    let mut registry = Registry::new();
    registry.register("totals", Subscriber::projection(Totals).on::<Added>().build().retry(once)).unwrap();
    registry
        .register("counter", Subscriber::handler(counter.clone()).on::<Added>().build().retry(once))
        .unwrap();
    ReadSide::builder()
        .event_store(PgEventStore::with_schema(pool.clone(), schema.clone()))
        .projection_store(PgProjectionStore::with_schema(pool.clone(), schema.clone()))
        .lease_store(PgLeaseStore::with_schema(pool.clone(), schema.clone()))
        .registry(registry)
        .config(ReadSideConfig {
            batch_size: 16,
            catch_up_batch_size: 16,
            idle_wait: Duration::from_millis(200),
            store_retry: RetryPolicy {
                max_attempts: u32::MAX,
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(500),
            },
            ..ReadSideConfig::default()
        })
        .start()
        .unwrap()
}

async fn add(events: &PgEventStore, n: i64) -> GlobalPosition {
    let key = ["a", "b", "c"][usize::try_from(n).unwrap() % 3];
    let event = Added { key: key.to_owned(), amount: n };
    let new = NewEvent::new("tally", Added::TYPE, 1, serde_json::to_value(event).unwrap());
    let stream = StreamId::new(format!("tally-{key}"));
    events.append(&stream, ExpectedVersion::Any, vec![new]).await.unwrap().last_position().unwrap()
}

fn fold(amounts: impl IntoIterator<Item = i64>) -> BTreeMap<String, i64> {
    let mut totals = BTreeMap::new();
    for n in amounts {
        *totals.entry(["a", "b", "c"][usize::try_from(n).unwrap() % 3].to_owned()).or_insert(0) += n;
    }
    totals
}

async fn totals(documents: &PgProjectionStore) -> BTreeMap<String, i64> {
    let all = documents.query("totals", &DocumentQuery::all()).await.unwrap();
    all.into_iter().map(|(id, doc)| (id, serde_json::from_value(doc).unwrap())).collect()
}

/// Waits (bounded) until both subscriptions say they wait for the store.
async fn both_waiting_for_the_store(read_side: &ReadSide) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let statuses = read_side.statuses();
        if statuses.iter().all(|s| matches!(s.state, SubscriptionState::WaitingForStore(_))) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not both waiting for the store: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_a_handler_and_a_plain_subscription_ride_through_an_outage() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let writer = PgEventStore::with_schema(direct.clone(), schema.clone());
    let documents = PgProjectionStore::with_schema(direct.clone(), schema.clone());
    let proxy = Proxy::to_test_server().await;
    let through = proxy.pool(4, Duration::from_millis(500)).await;
    let counter = Counter::default();
    let read_side = read_side(&through, &schema, &counter);

    // A plain subscription through the proxy, read by a task that, as a
    // caller should, calls again after an error.
    let subscribed = PgEventStore::with_schema(through.clone(), schema.clone());
    let reader = tokio::spawn(async move {
        let mut subscription =
            EventSubscription::new(subscribed, GlobalPosition::START).idle_wait(Duration::from_millis(100));
        let (mut seen, mut errors) = (Vec::new(), 0u32);
        while seen.len() < 40 {
            match tokio::time::timeout(DEADLINE, subscription.next()).await.expect("an event or an error") {
                Ok(event) => seen.push(event.global_position),
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        (seen, errors)
    });

    for n in 1..=20 {
        add(&writer, n).await;
    }
    let head = writer.head_position().await.unwrap();
    read_side.wait_for("totals", head, DEADLINE).await.unwrap();

    proxy.outage(true);
    for n in 21..=40 {
        add(&writer, n).await;
    }
    both_waiting_for_the_store(&read_side).await;
    // Far longer than a one-attempt retry policy would have allowed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    both_waiting_for_the_store(&read_side).await;
    proxy.outage(false);

    let head = writer.head_position().await.unwrap();
    for name in ["totals", "counter"] {
        read_side.wait_for(name, head, DEADLINE).await.unwrap();
        assert!(read_side.status(name).unwrap().state.is_active(), "`{name}` goes on by itself");
    }
    assert_eq!(totals(&documents).await, fold(1..=40));
    assert_eq!(counter.0.load(Ordering::SeqCst), 40, "every event handled once");

    let (seen, errors) = tokio::time::timeout(DEADLINE, reader).await.unwrap().unwrap();
    assert!(errors > 0, "the plain subscription saw the outage");
    assert_eq!(seen.len(), 40);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "every event once, in position order");

    read_side.shutdown().await;
    drop_schema(&direct, &schema).await;
}

/// A connection of `pool`, taken (bounded) while the read side uses it too.
async fn hold(pool: &PgPool) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    for _ in 0..1000 {
        if let Ok(connection) = pool.acquire().await {
            return connection;
        }
    }
    panic!("no connection of the pool came free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_pressure_fails_no_subscription() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let writer = PgEventStore::with_schema(direct.clone(), schema.clone());
    let documents = PgProjectionStore::with_schema(direct.clone(), schema.clone());
    let url: sqlx::postgres::PgConnectOptions = common::database_url().parse().unwrap();
    // Lazy: connecting eagerly would have to succeed within the 20 ms
    // acquire timeout too, which a busy machine does not always do.
    let tiny = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(20))
        .connect_lazy_with(url);
    let counter = Counter::default();
    let read_side = read_side(&tiny, &schema, &counter);

    for n in 1..=10 {
        add(&writer, n).await;
    }
    read_side.wait_for("totals", writer.head_position().await.unwrap(), DEADLINE).await.unwrap();
    // Someone else holds both connections of the pool for a while.
    let held = (hold(&tiny).await, hold(&tiny).await);
    for n in 11..=40 {
        add(&writer, n).await;
    }
    both_waiting_for_the_store(&read_side).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(held);

    let head = writer.head_position().await.unwrap();
    for name in ["totals", "counter"] {
        read_side.wait_for(name, head, DEADLINE).await.unwrap();
    }
    assert_eq!(totals(&documents).await, fold(1..=40));
    assert_eq!(counter.0.load(Ordering::SeqCst), 40);
    read_side.shutdown().await;
    drop_schema(&direct, &schema).await;
}
