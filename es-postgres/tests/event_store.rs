//! Postgres-specific behaviour of the event store: the global order under
//! concurrent transactions (an earlier one committing last, rolled-back
//! holes; a reader tailing many writers is the conformance suite's),
//! conflicts, append-only enforcement, lost connections and waking readers
//! (rows the store did not write: bad_rows.rs).

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{drop_schema, fresh_schema, pool};
use es_core::error::{AppendError, StoreError};
use es_core::store::{Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_postgres::PgEventStore;
use serde_json::json;
use sqlx::PgPool;

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

async fn store(connections: u32) -> (PgEventStore, PgPool) {
    let pool = pool(connections).await;
    let schema = fresh_schema(&pool).await;
    (PgEventStore::with_schema(pool.clone(), schema), pool)
}

/// Reads the whole global stream (in pages) until at least `want` events are
/// visible. Other tests' transactions can hold the visibility horizon back
/// for a moment, so this waits for events (through the store) between reads.
async fn read_until(store: &PgEventStore, want: usize) -> Vec<RecordedEvent> {
    let mut seen: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = seen.last().map_or(GlobalPosition::START, |e| e.global_position);
        let page = store.read_all(after, 1000).await.unwrap();
        if page.is_empty() {
            if seen.len() >= want {
                return seen;
            }
            store.wait_for_events(after, Duration::from_millis(50)).await;
        }
        seen.extend(page);
    }
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await.unwrap()
}

/// Waits until the backend `blocker` blocks another backend on a lock.
async fn until_someone_waits_on(pool: &PgPool, blocker: i32) {
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))")
                .bind(blocker)
                .fetch_one(pool)
                .await
                .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_transaction_committing_last_is_never_skipped() {
    let (store, pool) = store(4).await;
    store.set_visibility_wait(Duration::ZERO);
    let mut tx_a = pool.begin().await.unwrap();
    let a = store
        .append_in_tx(&mut tx_a, &StreamId::new("a"), ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    let b = store.append(&StreamId::new("b"), ExpectedVersion::NoStream, vec![event(2)]).await.unwrap();
    let (pos_a, pos_b) = (a.last_position().unwrap(), b.last_position().unwrap());
    assert!(pos_a < pos_b, "A took its position first: {pos_a} < {pos_b}");

    // B committed, but A (lower position) is still open: B must stay hidden.
    assert_eq!(store.read_all(GlobalPosition::START, 100).await.unwrap(), vec![]);
    assert_eq!(store.head_position().await.unwrap(), GlobalPosition::START);
    let holder = store.oldest_in_flight().await.unwrap().expect("A is in flight");
    let a_pid = backend_pid(&mut tx_a).await;
    // Another test's transaction may be older still; A is then not the oldest.
    if holder.pid == a_pid {
        assert!(holder.query.is_some());
    }

    tx_a.commit().await.unwrap();
    let seen = read_until(&store, 2).await;
    let positions: Vec<_> = seen.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, vec![pos_a, pos_b]);
    assert_eq!(seen[0].stream_id.as_str(), "a");
    assert_eq!(seen[1].stream_id.as_str(), "b");
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_append_leaves_a_hole_readers_pass_over() {
    let (store, pool) = store(3).await;
    let mut tx = pool.begin().await.unwrap();
    let rolled = store
        .append_in_tx(&mut tx, &StreamId::new("gone"), ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let kept = store.append(&StreamId::new("kept"), ExpectedVersion::NoStream, vec![event(2)]).await.unwrap();
    assert!(rolled.last_position() < kept.last_position());
    let seen = read_until(&store, 1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(Some(seen[0].global_position), kept.last_position());
    assert_eq!(store.stream_version(&StreamId::new("gone")).await.unwrap(), None);
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_in_one_transaction_continue_its_position_range() {
    let (store, pool) = store(3).await;
    let mut tx = pool.begin().await.unwrap();
    let first = store
        .append_in_tx(&mut tx, &StreamId::new("x"), ExpectedVersion::NoStream, vec![event(1), event(2)])
        .await
        .unwrap();
    // A refused append inside the transaction leaves it usable.
    let refused = store
        .append_in_tx(&mut tx, &StreamId::new("x"), ExpectedVersion::NoStream, vec![event(3)])
        .await
        .unwrap_err();
    assert!(matches!(refused, AppendError::WrongExpectedVersion { actual: Some(StreamVersion(2)), .. }));
    let second = store
        .append_in_tx(&mut tx, &StreamId::new("y"), ExpectedVersion::NoStream, vec![event(4)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let positions: Vec<u64> =
        first.committed.iter().chain(&second.committed).map(|c| c.global_position.get()).collect();
    let base = positions[0];
    assert_eq!(positions, vec![base, base + 1, base + 2]);
    let seen = read_until(&store, 3).await;
    assert_eq!(seen.iter().map(|e| e.global_position.get()).collect::<Vec<_>>(), positions);
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_writer_gets_the_actual_version_or_retries_when_it_may() {
    let (store, pool) = store(4).await;
    let stream = StreamId::new("contended");
    let mut tx_a = pool.begin().await.unwrap();
    store.append_in_tx(&mut tx_a, &stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let a_pid = backend_pid(&mut tx_a).await;

    // B and C read version 0 (A is uncommitted), insert version 1 and wait on A.
    let b = tokio::spawn({
        let (store, stream) = (store.clone(), stream.clone());
        async move { store.append(&stream, ExpectedVersion::NoStream, vec![event(2)]).await }
    });
    until_someone_waits_on(&pool, a_pid).await;
    tx_a.commit().await.unwrap();
    match b.await.unwrap() {
        Err(AppendError::WrongExpectedVersion { expected, actual, .. }) => {
            assert_eq!(expected, ExpectedVersion::NoStream);
            assert_eq!(actual, Some(StreamVersion(1)));
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }

    let mut tx_a = pool.begin().await.unwrap();
    store
        .append_in_tx(&mut tx_a, &stream, ExpectedVersion::Exact(StreamVersion(1)), vec![event(3)])
        .await
        .unwrap();
    let a_pid = backend_pid(&mut tx_a).await;
    let c = tokio::spawn({
        let (store, stream) = (store.clone(), stream.clone());
        async move { store.append(&stream, ExpectedVersion::Any, vec![event(4)]).await }
    });
    until_someone_waits_on(&pool, a_pid).await;
    tx_a.commit().await.unwrap();
    let c = c.await.unwrap().unwrap();
    assert_eq!(c.stream_version, Some(StreamVersion(3)), "Any retries after losing the race");
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_retry_returns_the_original_placement_and_other_reuse_is_refused() {
    let (store, pool) = store(3).await;
    let stream = StreamId::new("retry");
    let batch = vec![event(1), event(2)];
    let first = store.append(&stream, ExpectedVersion::NoStream, batch.clone()).await.unwrap();
    store.append(&stream, ExpectedVersion::Exact(StreamVersion(2)), vec![event(3)]).await.unwrap();
    let again = store.append(&stream, ExpectedVersion::NoStream, batch.clone()).await.unwrap();
    assert_eq!(again.committed, first.committed);
    assert_eq!(again.stream_version, Some(StreamVersion(3)));

    let reused = store.append(&StreamId::new("other"), ExpectedVersion::Any, vec![batch[1].clone()]).await;
    match reused {
        Err(AppendError::DuplicateEventId { event_id, stream }) => {
            assert_eq!(event_id, batch[1].event_id);
            assert_eq!(stream.as_str(), "other");
        }
        other => panic!("expected DuplicateEventId, got {other:?}"),
    }
    let twice = event(9);
    let in_batch = store.append(&stream, ExpectedVersion::Any, vec![twice.clone(), twice]).await;
    assert!(matches!(in_batch, Err(AppendError::DuplicateInBatch { .. })));
    assert_eq!(store.stream_version(&stream).await.unwrap(), Some(StreamVersion(3)));
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_update_and_delete_unless_opted_in() {
    let (store, pool) = store(3).await;
    let stream = StreamId::new("immutable");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
    let schema = store.schema().as_str();
    for sql in [
        format!("UPDATE {schema}.events SET payload = '{{}}'"),
        format!("DELETE FROM {schema}.events"),
        format!("TRUNCATE {schema}.events"),
    ] {
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&pool).await.unwrap_err();
        let message = err.as_database_error().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql("SET LOCAL es.allow_deletion = on").execute(&mut *tx).await.unwrap();
    let deleted =
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DELETE FROM {schema}.events WHERE stream_version = 2")))
            .execute(&mut *tx)
            .await
            .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    tx.commit().await.unwrap();
    assert_eq!(store.stream_version(&stream).await.unwrap(), Some(StreamVersion(1)));
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_read_is_a_backend_error() {
    let (store, pool) = store(2).await;
    let schema = store.schema().clone();
    let admin = common::pool(2).await;
    // Hold the events table so that the read blocks inside the server.
    let mut locker = admin.begin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("LOCK TABLE {schema}.events IN ACCESS EXCLUSIVE MODE")))
        .execute(&mut *locker)
        .await
        .unwrap();
    let locker_pid = backend_pid(&mut locker).await;
    let read = tokio::spawn({
        let store = store.clone();
        async move { store.read_stream(&StreamId::new("s"), StreamVersion(1), Direction::Forward, 10).await }
    });
    until_someone_waits_on(&admin, locker_pid).await;
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
    )
    .bind(locker_pid)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(terminated, vec![true]);
    let read = read.await.unwrap();
    assert!(matches!(read, Err(StoreError::Backend(_))), "{read:?}");
    locker.rollback().await.unwrap();
    drop_schema(&admin, &schema).await;
    drop(pool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_reader_on_another_node_wakes_on_notify() {
    let (store, pool) = store(3).await;
    // Another node's store on the same schema: it learns of the appends
    // only through the NOTIFY.
    let other = PgEventStore::with_schema(pool.clone(), store.schema().clone());
    let head = store.head_position().await.unwrap();
    let waiter = tokio::spawn({
        // Far longer than the test may take: only a notification ends it.
        async move { other.wait_for_events(head, Duration::from_secs(3600)).await }
    });
    // Append until the waiter returns (the first NOTIFY after it subscribed
    // wakes it); a hang guard fails the test if none ever does.
    let appended = tokio::time::timeout(Duration::from_secs(60), async {
        let mut n = 0;
        while !waiter.is_finished() {
            store.append(&StreamId::new("wake"), ExpectedVersion::Any, vec![event(n)]).await.unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n
    })
    .await
    .expect("wait_for_events did not wake on NOTIFY");
    assert!(appended > 0);
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_given_a_wakeup_mark_ends_on_a_commit_after_the_mark_and_only_then() {
    let (store, pool) = store(3).await;
    // Another node's store on the same schema: it learns of appends only
    // through the NOTIFY.
    let other = PgEventStore::with_schema(pool.clone(), store.schema().clone());
    assert_eq!(other.wakeup_mark(), None, "no listener runs before the first wait");
    let head = store.head_position().await.unwrap();
    let mark = common::listening_mark(&other, head, None).await;

    // A commit after the mark moves it; a wait given the old mark ends at
    // once, though it starts after the notification came.
    store.append(&StreamId::new("marked"), ExpectedVersion::Any, vec![event(1)]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while other.wakeup_mark() == Some(mark) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the append's NOTIFY never moved the mark");
    tokio::time::timeout(
        Duration::from_secs(10),
        other.wait_for_events_since(head, Some(mark), Duration::from_secs(3600)),
    )
    .await
    .expect("a wait given a mark older than a commit did not end at once");

    // Given the current mark, the same wait ends only with a new wake-up or
    // its max_wait, though the head has moved past `head`: the mark says
    // the reader already read what came before it (a wait without one
    // returns at once).
    let current = other.wakeup_mark();
    let waited = std::time::Instant::now();
    other.wait_for_events_since(head, current, Duration::from_millis(300)).await;
    assert!(waited.elapsed() >= Duration::from_millis(300), "the wait ended with no wake-up after the mark");
    tokio::time::timeout(Duration::from_secs(10), other.wait_for_events(head, Duration::from_secs(3600)))
        .await
        .expect("a wait without a mark did not see the head past `after`");

    // A store's own append moves its mark at once, before any NOTIFY: a
    // reader on the node that appended reads again instead of waiting.
    let before = other.wakeup_mark();
    other.append(&StreamId::new("marked"), ExpectedVersion::Any, vec![event(2)]).await.unwrap();
    assert_ne!(other.wakeup_mark(), before, "the store's own append did not move its mark");
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_twice_at_once_is_safe() {
    let pool = pool(4).await;
    let schema = es_postgres::PgSchema::new(format!("es_test_{}", uuid::Uuid::now_v7().simple())).unwrap();
    let (a, b) = tokio::join!(es_postgres::migrate(&pool, &schema), es_postgres::migrate(&pool, &schema));
    a.unwrap();
    b.unwrap();
    es_postgres::migrate(&pool, &schema).await.unwrap();
    let store = Arc::new(PgEventStore::with_schema(pool.clone(), schema.clone()));
    store.append(&StreamId::new("s"), ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    drop_schema(&pool, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_events_leaves_the_pool_to_the_application() {
    // One pooled connection, and acquiring waits (nearly) forever: a
    // listener that kept a pooled connection would starve every query.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3600))
        .connect(&common::database_url())
        .await
        .unwrap();
    let schema = fresh_schema(&pool).await;
    let store = PgEventStore::with_schema(pool.clone(), schema);
    let used = tokio::time::timeout(Duration::from_secs(60), async {
        let head = store.head_position().await.unwrap();
        store.wait_for_events(head, Duration::from_millis(10)).await;
        store.append(&StreamId::new("starved"), ExpectedVersion::Any, vec![event(1)]).await.unwrap();
        store.read_all(head, 10).await.unwrap().len()
    })
    .await
    .expect("the store's listener holds the pool's only connection");
    assert_eq!(used, 1);
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_events_on_an_exhausted_pool_returns_after_max_wait() {
    // A subscription renews its lease between waits, so a wait must end by
    // its max_wait even while the application holds every pooled connection.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3600))
        .connect(&common::database_url())
        .await
        .unwrap();
    let schema = fresh_schema(&pool).await;
    let store = PgEventStore::with_schema(pool.clone(), schema);
    let head = store.head_position().await.unwrap();
    let held = pool.acquire().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), store.wait_for_events(head, Duration::from_millis(50)))
        .await
        .expect("wait_for_events waited for a pooled connection past its max_wait");
    drop(held);
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_read_as_transaction_and_index() {
    let pool = pool(2).await;
    let schema = fresh_schema(&pool).await;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    let events = (0..2).map(|n| NewEvent::new("tally", "Added", 1, json!({ "n": n }))).collect();
    let stored = store.append(&StreamId::new("tally-1"), ExpectedVersion::NoStream, events).await.unwrap();
    let labels: Vec<String> = store
        .read_all(GlobalPosition::START, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| store.describe_position(e.global_position))
        .collect();
    let transaction = labels[0].split(':').next().unwrap().to_owned();
    assert!(transaction.parse::<u64>().is_ok_and(|xid| xid > 0), "{labels:?}");
    assert_eq!(labels, [format!("{transaction}:0"), format!("{transaction}:1")]);
    assert_eq!(stored.last_position().map(|p| store.describe_position(p)), Some(labels[1].clone()));
    drop_schema(&pool, &schema).await;
}
