//! Group commit against a real server: each append of a group is decided
//! on its own stream, and a group that another writer's conflict refuses
//! falls back to single appends instead of failing its members.
//!
//! To make a group form on cue, one store runs with one group slot and a
//! long wait, and a first append holds that slot, blocked on a row another
//! transaction inserted and has not committed; the appends under test queue
//! behind it and run as one group once that transaction ends.

use std::time::Duration;

use es_core::error::AppendError;
use es_core::store::{Direction, EventStore, ExpectedVersion, NewEvent};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, Postgres, Transaction};
use tokio::task::JoinHandle;

use super::*;
use crate::PgSchema;

const DEADLINE: Duration = Duration::from_secs(30);

fn event(n: u64) -> NewEvent {
    NewEvent::new("t", "T", 1, serde_json::json!({ "n": n }))
}

async fn fresh_store() -> PgEventStore {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pool = PgPoolOptions::new().max_connections(6).connect(&url).await.unwrap_or_else(|error| {
        panic!("cannot reach Postgres at {url} ({error}): set DATABASE_URL or run scripts/test.sh")
    });
    let schema = PgSchema::new(format!("es_test_{}", uuid::Uuid::now_v7().simple())).unwrap();
    crate::migrate(&pool, &schema).await.unwrap();
    let store = PgEventStore::with_schema(pool, schema);
    store.set_group_commit(GroupCommit::default().max_in_flight(1).max_wait(DEADLINE));
    store
}

async fn drop_store(store: PgEventStore) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", store.schema());
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
}

/// Another writer's transaction holding version 1 of `stream`, uncommitted.
async fn hold(store: &PgEventStore, stream: &str) -> Transaction<'static, Postgres> {
    let mut tx = store.pool().begin().await.unwrap();
    let conn: &mut PgConnection = &mut tx;
    store
        .append_in_tx(conn, &StreamId::new(stream), ExpectedVersion::NoStream, vec![event(0)])
        .await
        .unwrap();
    tx
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

type Pending = JoinHandle<Result<es_core::store::AppendOutcome, AppendError>>;

fn spawn_append(
    store: &PgEventStore,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Pending {
    let (store, stream) = (store.clone(), StreamId::new(stream));
    tokio::spawn(async move { store.append(&stream, expected, events).await })
}

/// Takes the store's one group slot with an append to `gate` that waits on
/// `held`'s uncommitted row.
async fn occupy_slot(store: &PgEventStore) -> Pending {
    let gate = spawn_append(store, "gate", ExpectedVersion::NoStream, vec![event(100)]);
    let groups = &store.inner.groups;
    until("the gate append taking the slot", || {
        groups.in_flight.load(Ordering::Acquire) == 1 && groups.queued() == 0
    })
    .await;
    gate
}

/// Queues `appends` behind the busy slot, in this order.
async fn queue(store: &PgEventStore, appends: Vec<(&str, ExpectedVersion, Vec<NewEvent>)>) -> Vec<Pending> {
    let mut pending = Vec::new();
    for (n, (stream, expected, events)) in appends.into_iter().enumerate() {
        pending.push(spawn_append(store, stream, expected, events));
        until("the append queueing", || store.inner.groups.queued() == n + 1).await;
    }
    pending
}

async fn outcomes(pending: Vec<Pending>) -> Vec<Result<es_core::store::AppendOutcome, AppendError>> {
    let mut outcomes = Vec::new();
    for p in pending {
        outcomes.push(tokio::time::timeout(DEADLINE, p).await.expect("an append never returned").unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_append_of_a_group_is_decided_on_its_own_stream() {
    decided_each_on_its_own_stream(fresh_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_pools_connections_each_append_of_a_group_is_decided_on_its_own_stream() {
    let store = fresh_store().await;
    let settings = GroupCommit::default().max_in_flight(1).max_wait(DEADLINE).own_connections(false);
    store.set_group_commit(settings);
    decided_each_on_its_own_stream(store).await;
}

async fn decided_each_on_its_own_stream(store: PgEventStore) {
    store.append(&StreamId::new("a"), ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let gate_row = hold(&store, "gate").await;
    let gate = occupy_slot(&store).await;
    let pending = queue(
        &store,
        vec![
            ("b", ExpectedVersion::NoStream, vec![event(2)]),
            ("c", ExpectedVersion::Exact(StreamVersion(3)), vec![event(3)]),
            ("a", ExpectedVersion::Exact(StreamVersion(1)), vec![event(4), event(5)]),
            ("a", ExpectedVersion::Exact(StreamVersion(3)), vec![event(6)]),
        ],
    )
    .await;
    gate_row.rollback().await.unwrap();
    assert!(gate.await.unwrap().is_ok(), "the gate's blocker rolled back");
    let outcomes = outcomes(pending).await;

    let placed = |n: usize| outcomes[n].as_ref().unwrap().committed.clone();
    assert_eq!(placed(0)[0].stream_version, StreamVersion(1));
    assert!(
        matches!(&outcomes[1], Err(AppendError::WrongExpectedVersion { actual: None, .. })),
        "only the append whose expectation failed is refused: {:?}",
        outcomes[1]
    );
    let a: Vec<StreamVersion> = placed(2).iter().map(|c| c.stream_version).collect();
    assert_eq!(a, [StreamVersion(2), StreamVersion(3)]);
    // One transaction: the group's events are consecutive positions.
    let first = placed(0)[0].global_position.get();
    assert_eq!(placed(2)[0].global_position, GlobalPosition(first + 1));
    assert_eq!(placed(2)[1].global_position, GlobalPosition(first + 2));
    // The second append to `a` waited for the next group, so it saw the first.
    assert_eq!(placed(3)[0].stream_version, StreamVersion(4));

    let a = store.read_stream(&StreamId::new("a"), StreamVersion(1), Direction::Forward, 10).await.unwrap();
    assert_eq!(a.len(), 4);
    assert_eq!(store.stream_version(&StreamId::new("c")).await.unwrap(), None);
    drop_store(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writers_conflict_fails_only_its_stream() {
    let store = fresh_store().await;
    let gate_row = hold(&store, "gate").await;
    // Another node's writer, about to commit version 1 of `x`.
    let other_node = hold(&store, "x").await;
    let gate = occupy_slot(&store).await;
    let pending = queue(
        &store,
        vec![
            ("y", ExpectedVersion::NoStream, vec![event(1)]),
            ("x", ExpectedVersion::NoStream, vec![event(2)]),
            ("z", ExpectedVersion::NoStream, vec![event(3)]),
        ],
    )
    .await;
    gate_row.rollback().await.unwrap();
    assert!(gate.await.unwrap().is_ok());
    // The group's statement now waits on the other writer's row of `x`.
    let waiting_sql = "SELECT count(*) FROM pg_stat_activity
                       WHERE wait_event_type = 'Lock' AND query LIKE '%Appends the batches of several streams%'";
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let waiting: i64 = sqlx::query_scalar(waiting_sql).fetch_one(store.pool()).await.unwrap();
        if waiting > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the group never waited on the other writer");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    other_node.commit().await.unwrap();
    let outcomes = outcomes(pending).await;

    assert!(outcomes[0].is_ok(), "y: {:?}", outcomes[0]);
    assert!(
        matches!(&outcomes[1], Err(AppendError::WrongExpectedVersion { actual: Some(StreamVersion(1)), .. })),
        "x lost to the other writer: {:?}",
        outcomes[1]
    );
    assert!(outcomes[2].is_ok(), "z: {:?}", outcomes[2]);
    for stream in ["x", "y", "z"] {
        let version = store.stream_version(&StreamId::new(stream)).await.unwrap();
        assert_eq!(version, Some(StreamVersion(1)), "{stream}");
    }
    drop_store(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_retries_and_reused_ids_in_a_group_are_told_apart() {
    let store = fresh_store().await;
    let original = event(1);
    let first =
        store.append(&StreamId::new("a"), ExpectedVersion::NoStream, vec![original.clone()]).await.unwrap();
    let mut other_content = original.clone();
    other_content.payload = serde_json::json!({ "n": 99 }).into();
    let gate_row = hold(&store, "gate").await;
    let gate = occupy_slot(&store).await;
    let pending = queue(
        &store,
        vec![
            ("a", ExpectedVersion::NoStream, vec![original.clone()]),
            ("d", ExpectedVersion::Any, vec![other_content]),
            ("e", ExpectedVersion::NoStream, vec![event(2)]),
        ],
    )
    .await;
    gate_row.rollback().await.unwrap();
    assert!(gate.await.unwrap().is_ok());
    let outcomes = outcomes(pending).await;

    assert_eq!(outcomes[0].as_ref().unwrap().committed, first.committed, "an exact retry");
    assert!(
        matches!(&outcomes[1], Err(AppendError::DuplicateEventId { event_id, .. }) if *event_id == original.event_id),
        "{:?}",
        outcomes[1]
    );
    assert!(outcomes[2].is_ok(), "e: {:?}", outcomes[2]);
    assert_eq!(store.stream_version(&StreamId::new("d")).await.unwrap(), None);
    drop_store(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_kept_connection_broke_while_idle_runs_again_on_a_new_one() {
    let store = fresh_store().await;
    // A lone append opens the store's own connection, kept after it.
    store.append(&StreamId::new("first"), ExpectedVersion::NoStream, vec![event(0)]).await.unwrap();
    // The server ends that connection while it is idle: the one whose last
    // statement was this schema's one-event append.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE state = 'idle' AND strpos(query, 'current_stream') > 0 AND strpos(query, $1) > 0",
    )
    .bind(store.schema().as_str())
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(ended, vec![true], "the kept connection was found and ended");

    let requests: Vec<Request> = ["a", "b"]
        .into_iter()
        .zip(1..)
        .map(|(stream, n)| Request {
            stream: StreamId::new(stream),
            expected: ExpectedVersion::NoStream,
            events: vec![event(n)],
        })
        .collect();
    let decided = tokio::time::timeout(DEADLINE, store.append_group(&requests)).await.unwrap();
    for (request, decided) in requests.iter().zip(&decided) {
        let outcome = decided.as_ref().expect("decided by the group");
        assert_eq!(outcome.as_ref().unwrap().stream_version, Some(StreamVersion(1)), "{:?}", request.stream);
    }
    for stream in ["a", "b"] {
        let stream = StreamId::new(stream);
        let stored = store.read_stream(&stream, StreamVersion::FIRST, Direction::Forward, 10).await.unwrap();
        assert_eq!(stored.len(), 1, "{stream:?} stored once");
    }
    drop_store(store).await;
}
