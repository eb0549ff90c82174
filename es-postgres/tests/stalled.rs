//! A server that stops answering without closing the connection (a network
//! partition, a stalled middlebox): every call of the stores fails within
//! the store's call timeout, saying truthfully whether it may have written,
//! and the stalled connection leaves the pool, so the next call works on a
//! fresh one. A small TCP proxy between sqlx and Postgres stalls the
//! connections open at a given moment ([`Proxy::stall`]).

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::time::Duration;

use common::proxy::Proxy;
use common::{drop_schema, fresh_schema, pool, until_idle};
use es_core::error::{AppendError, LeaseError, ProjectionError, StoreError};
use es_core::store::{
    Direction, EventStore, ExpectedVersion, LeaseStore, NewEvent, ProjectionStore, SnapshotStore, UnitOfWork,
};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore};
use serde_json::json;
use sqlx::PgPool;

/// The call timeout of the stores under test.
const CALL_TIMEOUT: Duration = Duration::from_millis(300);

/// How long a stalled call may take before the test says it hung: far
/// above the call timeout, so that a slow machine does not fail the test.
const HUNG_AFTER: Duration = Duration::from_secs(20);

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

/// Stalls the pool's idle connection, then makes `call` (which takes it)
/// and returns its answer, which must come.
async fn on_a_stalled_connection<T>(proxy: &Proxy, pool: &PgPool, call: impl Future<Output = T>) -> T {
    // A stalled connection that left the pool leaves room for a fresh one
    // (else this waits out the pool's 10 s and fails).
    drop(pool.acquire().await.expect("a connection in place of the stalled one"));
    until_idle(pool).await;
    proxy.stall();
    tokio::time::timeout(HUNG_AFTER, call).await.expect("a call on a stalled connection never answered")
}

fn says_timed_out(error: &dyn std::error::Error) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.to_string().contains("did not answer within the call timeout") {
            return true;
        }
        source = error.source();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_on_a_stalled_connection_fails_in_time_and_the_next_call_gets_a_fresh_one() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let proxy = Proxy::to_test_server().await;
    // One connection: a call can only take the stalled one, and the next
    // call works only if the stalled one left the pool.
    let through = proxy.pool(1, Duration::from_secs(10)).await;
    let events = PgEventStore::with_schema(through.clone(), schema.clone());
    let documents = PgProjectionStore::with_schema(through.clone(), schema.clone());
    let leases = PgLeaseStore::with_schema(through.clone(), schema.clone());
    events.set_call_timeout(CALL_TIMEOUT);
    documents.set_call_timeout(CALL_TIMEOUT);
    leases.set_call_timeout(CALL_TIMEOUT);
    let stream = StreamId::new("account-1");
    events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    // An append: it may have been sent, so its outcome is unknown.
    let appended = on_a_stalled_connection(
        &proxy,
        &through,
        events.append(&stream, ExpectedVersion::Any, vec![event(2)]),
    )
    .await;
    match &appended {
        Err(error @ AppendError::OutcomeUnknown { .. }) => assert!(says_timed_out(error), "{error}"),
        other => panic!("an append on a stalled connection answered {other:?}"),
    }
    // The next append takes a fresh connection.
    events.append(&StreamId::new("account-2"), ExpectedVersion::NoStream, vec![event(3)]).await.unwrap();

    let read = on_a_stalled_connection(
        &proxy,
        &through,
        events.read_stream(&stream, StreamVersion(0), Direction::Forward, 10),
    )
    .await;
    assert!(matches!(&read, Err(error @ StoreError::Backend(_)) if says_timed_out(error)), "{read:?}");
    let head = on_a_stalled_connection(&proxy, &through, events.read_all(GlobalPosition::START, 10)).await;
    assert!(matches!(&head, Err(error @ StoreError::Backend(_)) if says_timed_out(error)), "{head:?}");
    let snapshot = on_a_stalled_connection(&proxy, &through, events.load_snapshot(&stream)).await;
    assert!(
        matches!(&snapshot, Err(error @ StoreError::Backend(_)) if says_timed_out(error)),
        "{snapshot:?}"
    );

    let mut work = UnitOfWork::new();
    work.put("a", json!({ "n": 1 }));
    let committed = on_a_stalled_connection(&proxy, &through, documents.commit("docs", work)).await;
    assert!(
        matches!(&committed, Err(error @ ProjectionError::Backend(_)) if says_timed_out(error)),
        "{committed:?}"
    );
    let got = on_a_stalled_connection(&proxy, &through, documents.get("docs", "a")).await;
    assert!(matches!(&got, Err(error @ ProjectionError::Backend(_)) if says_timed_out(error)), "{got:?}");

    let lease = leases.try_acquire("docs", "node-a", Duration::from_secs(30)).await.unwrap().unwrap();
    let renewed =
        on_a_stalled_connection(&proxy, &through, leases.renew(&lease, Duration::from_secs(30))).await;
    assert!(matches!(&renewed, Err(error @ LeaseError::Backend(_)) if says_timed_out(error)), "{renewed:?}");
    assert!(leases.renew(&lease, Duration::from_secs(30)).await.unwrap(), "a fresh connection renews");

    drop_schema(&direct, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_call_timed_out_is_stored_once_when_retried_after_the_partition_heals() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let proxy = Proxy::to_test_server().await;
    let through = proxy.pool(1, Duration::from_secs(10)).await;
    let events = PgEventStore::with_schema(through.clone(), schema.clone());
    events.set_call_timeout(CALL_TIMEOUT);
    let stream = StreamId::new("account-1");
    events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    let lost = event(2);
    let first = on_a_stalled_connection(
        &proxy,
        &through,
        events.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![lost.clone()]),
    )
    .await;
    assert!(matches!(first, Err(AppendError::OutcomeUnknown { .. })), "{first:?}");
    // What the stalled connection sent reaches the server after the heal,
    // where the append may commit at any moment.
    proxy.heal();
    let retry = events.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![lost.clone()]).await;
    let outcome = retry.expect("the same events appended again are stored, or found stored");
    assert_eq!(outcome.stream_version, Some(StreamVersion(2)));
    let stored = PgEventStore::with_schema(direct.clone(), schema.clone())
        .read_stream(&stream, StreamVersion(0), Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "stored once: {stored:?}");
    assert_eq!(stored[1].event_id, lost.event_id);
    drop_schema(&direct, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_begin_overran_leaves_no_open_transaction_for_the_next_append() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let proxy = Proxy::to_test_server().await;
    let through = proxy.pool(1, Duration::from_secs(10)).await;
    let events = PgEventStore::with_schema(through.clone(), schema.clone());
    let documents = PgProjectionStore::with_schema(through.clone(), schema.clone());
    events.set_call_timeout(CALL_TIMEOUT);
    documents.set_call_timeout(CALL_TIMEOUT);
    events.append(&StreamId::new("warm"), ExpectedVersion::NoStream, vec![event(0)]).await.unwrap();

    let begun = on_a_stalled_connection(
        &proxy,
        &through,
        es_core::store::ProjectionTransactions::begin(&documents, "rows", None),
    )
    .await;
    assert!(matches!(&begun, Err(error @ ProjectionError::Backend(_)) if says_timed_out(error)), "{begun:?}");
    // The BEGIN reaches the server now, and is answered.
    proxy.heal();

    // The pool's one connection, whichever it is now, commits this append.
    let stream = StreamId::new("account-1");
    events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let seen = PgEventStore::with_schema(direct.clone(), schema.clone())
        .read_stream(&stream, StreamVersion(0), Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(seen.len(), 1, "an acknowledged append is committed, not left in a transaction nobody ends");
    drop_schema(&direct, &schema).await;
}
