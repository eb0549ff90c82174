//! Appends that hold a group slot run on connections the store keeps
//! between appends (not taken from the pool, so not pinged before each
//! use): they do not wait for the pool, a kept connection the server ended
//! while it was idle costs no append, and a closed pool stops them too.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{database_url, drop_schema, fresh_schema, pool};
use es_core::error::AppendError;
use es_core::store::{Direction, EventStore, ExpectedVersion, NewEvent};
use es_core::{StreamId, StreamVersion};
use es_postgres::{GroupCommit, PgEventStore, PgSchema};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

/// A store on a pool of at most `max` connections tagged with a name of
/// their own, each opened with the server settings `settings`.
async fn tagged_store(max: u32, settings: &[(&str, &str)]) -> (PgEventStore, PgSchema, String) {
    let admin = pool(2).await;
    let schema = fresh_schema(&admin).await;
    let tag = format!("es-kept-{}", uuid::Uuid::now_v7().simple());
    let options: PgConnectOptions = database_url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(options.application_name(&tag).options(settings.iter().copied()))
        .await
        .unwrap();
    let store = PgEventStore::with_schema(pool, schema.clone());
    store.set_call_timeout(Duration::from_secs(10));
    (store, schema, tag)
}

async fn stream_versions(store: &PgEventStore, stream: &StreamId) -> Vec<u64> {
    let events = store.read_stream(stream, StreamVersion::FIRST, Direction::Forward, 100).await.unwrap();
    events.iter().map(|e| e.stream_version.get()).collect()
}

async fn cleanup(store: PgEventStore, schema: &PgSchema) {
    store.pool().close().await;
    drop_schema(&pool(2).await, schema).await;
}

#[tokio::test]
async fn a_lone_append_does_not_wait_for_the_pool() {
    let (store, schema, _) = tagged_store(1, &[]).await;
    let stream = StreamId::new("s");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    // The pool's one connection is taken (say, by a long transaction of
    // the application's): appends still go through, on the store's own.
    let held = store.pool().acquire().await.unwrap();
    for n in 2..=4 {
        let appended = tokio::time::timeout(
            Duration::from_secs(5),
            store.append(&stream, ExpectedVersion::Exact(StreamVersion(n - 1)), vec![event(n)]),
        )
        .await
        .expect("an append waited for the pool's only connection");
        assert_eq!(appended.unwrap().stream_version, Some(StreamVersion(n)));
    }
    drop(held);
    assert_eq!(stream_versions(&store, &stream).await, vec![1, 2, 3, 4]);
    cleanup(store, &schema).await;
}

#[tokio::test]
async fn an_append_after_the_server_ended_the_kept_connection_goes_through() {
    let (store, schema, tag) = tagged_store(2, &[]).await;
    let stream = StreamId::new("s");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    // The server ends every connection of the store (as a restart would).
    let admin = pool(1).await;
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&tag)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(
        ended.iter().filter(|e| **e).count() >= 2,
        "the pool's connection and the store's own: {ended:?}"
    );
    admin.close().await;

    // The kept connection is found broken and the append made again on a
    // new one, stored once.
    let appended = store.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![event(2)]).await;
    assert_eq!(appended.unwrap().stream_version, Some(StreamVersion(2)));
    assert_eq!(stream_versions(&store, &stream).await, vec![1, 2]);
    cleanup(store, &schema).await;
}

#[tokio::test]
async fn an_append_after_the_server_timed_out_the_idle_session_goes_through() {
    // The server ends a session idle for 300 ms (sessions of the pool too;
    // sqlx checks those before handing them out).
    let (store, schema, _) = tagged_store(2, &[("idle_session_timeout", "300")]).await;
    let stream = StreamId::new("s");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let appended = store.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![event(2)]).await;
    assert_eq!(appended.unwrap().stream_version, Some(StreamVersion(2)));
    assert_eq!(stream_versions(&store, &stream).await, vec![1, 2]);
    cleanup(store, &schema).await;
}

#[tokio::test]
async fn a_closed_pool_stops_the_stores_own_connections_too() {
    let (store, schema, _) = tagged_store(2, &[]).await;
    let stream = StreamId::new("s");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    store.pool().close().await;
    match store.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![event(2)]).await {
        Err(AppendError::Backend { source, .. }) => {
            assert!(
                matches!(source.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::PoolClosed)),
                "{source}"
            );
        }
        other => panic!("an append on a closed pool stored nothing and says so, got {other:?}"),
    }
    let reader = PgEventStore::with_schema(pool(1).await, schema.clone());
    assert_eq!(stream_versions(&reader, &stream).await, vec![1]);
    cleanup(reader, &schema).await;
}

#[tokio::test]
async fn when_the_server_refuses_the_store_a_connection_appends_go_through_the_pool() {
    // A role the server lets open one connection: the pool's.
    let admin = pool(2).await;
    let schema = fresh_schema(&admin).await;
    let role = format!("es_one_{}", uuid::Uuid::now_v7().simple());
    for statement in [
        format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1"),
        format!("GRANT ALL ON SCHEMA \"{schema}\" TO {role}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA \"{schema}\" TO {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&admin).await.unwrap();
    }
    let options: PgConnectOptions = database_url().parse().unwrap();
    let limited = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.username(&role))
        .await
        .unwrap();
    let store = PgEventStore::with_schema(limited, schema.clone());

    // The store cannot open a connection of its own; every append (alone,
    // or several at once) is made on the pool's.
    let stream = StreamId::new("s");
    for n in 1..=3 {
        let expected =
            if n == 1 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(StreamVersion(n - 1)) };
        let appended = store.append(&stream, expected, vec![event(n)]).await;
        assert_eq!(appended.unwrap().stream_version, Some(StreamVersion(n)), "append {n}");
    }
    let together = (1..=4).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store.append(&StreamId::new(format!("t{n}")), ExpectedVersion::NoStream, vec![event(n)]).await
        })
    });
    for appended in futures_util::future::join_all(together).await {
        assert_eq!(appended.unwrap().unwrap().stream_version, Some(StreamVersion(1)));
    }
    assert_eq!(stream_versions(&store, &stream).await, vec![1, 2, 3]);

    store.pool().close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE; DROP ROLE {role}")))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn turning_group_commit_off_closes_the_stores_own_connections() {
    let (store, schema, tag) = tagged_store(2, &[]).await;
    let stream = StreamId::new("s");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let admin = pool(1).await;
    // The store's own connection for appends: the one whose last
    // statement was the one-event append.
    let kept = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND strpos(query, 'current_stream') > 0",
        )
        .bind(&tag)
        .fetch_one(&admin)
        .await
        .unwrap()
    };
    assert_eq!(kept().await, 1);

    store.set_group_commit(GroupCommit::off());
    tokio::time::timeout(Duration::from_secs(10), async {
        while kept().await != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the store's own connection was not closed");
    let appended = store.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![event(2)]).await;
    assert_eq!(appended.unwrap().stream_version, Some(StreamVersion(2)));
    admin.close().await;
    cleanup(store, &schema).await;
}

#[tokio::test]
async fn without_own_connections_appends_take_the_pools() {
    let (store, schema, _) = tagged_store(1, &[]).await;
    store.set_group_commit(GroupCommit::default().own_connections(false));
    store.set_call_timeout(Duration::from_millis(300));
    let stream = StreamId::new("s");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    // With the pool's one connection held, an append has none to run on:
    // it fails within the call timeout, having written nothing.
    let held = store.pool().acquire().await.unwrap();
    let appended = store.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![event(2)]).await;
    assert!(matches!(appended, Err(AppendError::Backend { .. })), "{appended:?}");
    drop(held);
    assert_eq!(stream_versions(&store, &stream).await, vec![1]);
    cleanup(store, &schema).await;
}
