//! What an append says when the connection fails: "nothing was written"
//! only when that is true, "the outcome is unknown" when the statement may
//! have committed. Faults are made by a small TCP proxy between sqlx and
//! Postgres that can drop a connection the moment the server replies.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::{drop_schema, fresh_schema, pool, until_idle};
use es_core::error::AppendError;
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{StreamId, StreamVersion};
use es_postgres::{GroupCommit, PgEventStore, PgSchema};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

/// A one-connection pool to the test server through `proxy`.
async fn pool_through(proxy: &Proxy) -> PgPool {
    proxy.pool(1, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lost_after_the_commit_is_an_unknown_outcome_and_a_retry_is_exact() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let proxy = Proxy::to_test_server().await;
    let store = PgEventStore::with_schema(pool_through(&proxy).await, schema.clone());
    // Through the pool: with group commit the store makes the append again
    // on a new connection and settles the outcome (next test).
    store.set_group_commit(GroupCommit::off());
    let stream = StreamId::new("account-1");

    // Prepare the append statement on the proxied connection with an append
    // the store refuses (nothing stored, no notification sent), so that the
    // real append goes out as one Bind/Execute/Sync whose reply comes after
    // the commit.
    let refused = store.append(&stream, ExpectedVersion::Exact(StreamVersion(5)), vec![event(0)]).await;
    assert!(matches!(refused, Err(AppendError::WrongExpectedVersion { .. })), "{refused:?}");
    // sqlx pings a connection as it returns to the pool: let that reply
    // pass before arming the proxy.
    until_idle(store.pool()).await;

    proxy.arm();
    let lost = event(1);
    let result = store.append(&stream, ExpectedVersion::NoStream, vec![lost.clone()]).await;
    tokio::time::timeout(Duration::from_secs(10), proxy.cut.notified()).await.expect("the proxy cut a reply");
    match &result {
        Err(AppendError::OutcomeUnknown { stream: s, source }) => {
            assert_eq!(s, &stream);
            let message = result.as_ref().unwrap_err().to_string();
            assert!(message.contains("may or may not be stored"), "{message}");
            assert!(!source.to_string().is_empty());
        }
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }

    // The event is in fact stored; a retry with the same event is exact.
    let checker = PgEventStore::with_schema(direct.clone(), schema.clone());
    assert_eq!(
        checker.stream_version(&stream).await.unwrap(),
        Some(StreamVersion(1)),
        "the append committed"
    );
    let retried = checker.append(&stream, ExpectedVersion::NoStream, vec![lost.clone()]).await.unwrap();
    assert_eq!(retried.committed[0].event_id, lost.event_id);
    assert_eq!(retried.committed[0].stream_version, StreamVersion(1));
    assert_eq!(checker.stream_version(&stream).await.unwrap(), Some(StreamVersion(1)), "stored once");
    drop_schema(&direct, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lost_on_a_kept_connection_is_settled_by_appending_again() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let proxy = Proxy::to_test_server().await;
    let store = PgEventStore::with_schema(pool_through(&proxy).await, schema.clone());
    let stream = StreamId::new("account-1");

    // A refused append opens the store's own connection and prepares the
    // statement there (nothing stored, no notification sent).
    let refused = store.append(&stream, ExpectedVersion::Exact(StreamVersion(5)), vec![event(0)]).await;
    assert!(matches!(refused, Err(AppendError::WrongExpectedVersion { .. })), "{refused:?}");

    // The reply to the commit is lost with its connection; the store
    // appends the same events again on a new connection, finds them
    // stored, and answers with their positions.
    proxy.arm();
    let lost = event(1);
    let result = store.append(&stream, ExpectedVersion::NoStream, vec![lost.clone()]).await;
    tokio::time::timeout(Duration::from_secs(10), proxy.cut.notified()).await.expect("the proxy cut a reply");
    let outcome = result.expect("the outcome settled by the exact retry");
    assert_eq!(outcome.committed[0].event_id, lost.event_id);
    assert_eq!(outcome.stream_version, Some(StreamVersion(1)));
    let checker = PgEventStore::with_schema(direct.clone(), schema.clone());
    assert_eq!(checker.stream_version(&stream).await.unwrap(), Some(StreamVersion(1)), "stored once");
    drop_schema(&direct, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_inside_the_callers_transaction_wrote_nothing() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let proxy = Proxy::to_test_server().await;
    let proxied = pool_through(&proxy).await;
    let store = PgEventStore::with_schema(proxied.clone(), schema.clone());
    let stream = StreamId::new("account-1");

    let mut tx = proxied.begin().await.unwrap();
    proxy.arm();
    let result = store.append_in_tx(&mut tx, &stream, ExpectedVersion::NoStream, vec![event(1)]).await;
    assert!(matches!(result, Err(AppendError::Backend { .. })), "{result:?}");
    drop(tx);

    let checker = PgEventStore::with_schema(direct.clone(), schema.clone());
    assert_eq!(checker.stream_version(&stream).await.unwrap(), None, "the transaction never committed");
    drop_schema(&direct, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_to_connect_to_is_a_backend_error() {
    // A port nothing listens on: bind one, then let it go.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let options: PgConnectOptions = common::database_url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options.host("127.0.0.1").port(port));
    let store = PgEventStore::with_schema(pool, PgSchema::new("es_unreachable").unwrap());
    let result = store.append(&StreamId::new("s"), ExpectedVersion::Any, vec![event(1)]).await;
    assert!(matches!(result, Err(AppendError::Backend { .. })), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_the_server_refuses_is_a_backend_error() {
    let direct = pool(2).await;
    let schema = fresh_schema(&direct).await;
    let store = PgEventStore::with_schema(direct.clone(), schema.clone());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE \"{schema}\".events CASCADE")))
        .execute(&direct)
        .await
        .unwrap();
    let result = store.append(&StreamId::new("s"), ExpectedVersion::Any, vec![event(1)]).await;
    match result {
        Err(AppendError::Backend { source, .. }) => {
            let db = source.downcast_ref::<sqlx::Error>().and_then(sqlx::Error::as_database_error);
            assert_eq!(db.and_then(|d| d.code()).as_deref(), Some("42P01"), "undefined table");
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    drop_schema(&direct, &schema).await;
}
