//! The Redis event store beyond the shared suite: wake-ups across
//! connections, the store rules of the multi-node issue (`Exact(0)`, exact
//! retries compare content), corrupt entries, and the documented keys.
//!
//! Each test runs in its own namespace, deleted at the end. Nothing waits
//! on a fixed sleep; every wait has a bound and fails the test when it
//! passes.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use es_core::error::{AppendError, StoreError};
use es_core::store::{Direction, EventStore, ExpectedVersion, NewEvent, Payload, RecordedEvent};
use es_core::{GlobalPosition, Metadata, StreamId, StreamVersion};
use es_redis::RedisEventStore;
use serde_json::json;

/// The bound on any wait in these tests; passing it fails the test.
const DEADLINE: Duration = Duration::from_secs(30);

fn event(n: u64) -> NewEvent {
    NewEvent::new("order", "Placed", 1, json!({ "n": n, "items": ["a", "b"] }))
}

async fn redis_cmd<T: redis::FromRedisValue>(stores: &common::Stores, cmd: &mut redis::Cmd) -> T {
    cmd.query_async(&mut stores.redis.manager()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_wakes_on_appends_made_through_another_connection() {
    let stores = common::fresh_stores().await;
    // Another process, as far as the waiter can tell: its own connection and
    // its own store, so no in-process wake-up reaches the waiter.
    let other = RedisEventStore::new(common::connection().await, stores.namespace.clone());
    let stream = StreamId::new("order-1");
    for round in 0..5u64 {
        let seen = stores.events.head_position().await.unwrap();
        let waiter = {
            let events = stores.events.clone();
            tokio::spawn(async move { events.wait_for_events(seen, Duration::from_secs(3600)).await })
        };
        let expected =
            if round == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(StreamVersion(round)) };
        other.append(&stream, expected, vec![event(round)]).await.unwrap();
        tokio::time::timeout(DEADLINE, waiter)
            .await
            .unwrap_or_else(|_| {
                panic!("round {round}: the waiter was not woken by an append on another connection")
            })
            .unwrap();
        let after = stores.events.read_all(seen, 10).await.unwrap();
        assert_eq!(after.len(), 1, "round {round}: the event that woke the waiter is readable");
    }
    // With nothing arriving, a wait ends after its max_wait.
    let head = stores.events.head_position().await.unwrap();
    tokio::time::timeout(DEADLINE, stores.events.wait_for_events(head, Duration::from_millis(20)))
        .await
        .expect("a wait with nothing to wake it must end after its max_wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_zero_means_no_stream() {
    let stores = common::fresh_stores().await;
    let stream = StreamId::new("order-1");
    let zero = ExpectedVersion::Exact(StreamVersion(0));
    let outcome = stores.events.append(&stream, zero, vec![event(1)]).await.unwrap();
    assert_eq!(outcome.stream_version, Some(StreamVersion(1)), "Exact(0) on a missing stream appends at 1");
    match stores.events.append(&stream, zero, vec![event(2)]).await {
        Err(AppendError::WrongExpectedVersion { expected, actual, .. }) => {
            assert_eq!(expected, zero);
            assert_eq!(actual, Some(StreamVersion(1)));
        }
        other => panic!("Exact(0) on an existing stream must be refused, got {other:?}"),
    }
    // A retry of the first append under Exact(0) is an exact retry.
    let first = stores.events.read_stream(&stream, StreamVersion(1), Direction::Forward, 1).await.unwrap();
    let again = event(1).with_event_id(first[0].event_id);
    let retried = stores.events.append(&stream, zero, vec![again]).await.unwrap();
    assert_eq!(retried.committed, outcome.committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_retry_compares_content_as_json_values() {
    let stores = common::fresh_stores().await;
    let stream = StreamId::new("order-1");
    let original =
        NewEvent::new("order", "Placed", 1, Payload::from_json(r#"{"a": 1, "b": [1, 2]}"#).unwrap())
            .with_metadata(Metadata::new().with_field("user", "ada"));
    let outcome =
        stores.events.append(&stream, ExpectedVersion::NoStream, vec![original.clone()]).await.unwrap();

    // Other key order and spacing: the same JSON value, so the same event.
    let reordered =
        NewEvent { payload: Payload::from_json(r#"{ "b":[1,2], "a":1 }"#).unwrap(), ..original.clone() };
    let retried = stores.events.append(&stream, ExpectedVersion::NoStream, vec![reordered]).await.unwrap();
    assert_eq!(retried.committed, outcome.committed, "a reordered payload is an exact retry");

    let changes: Vec<(&str, NewEvent)> = vec![
        (
            "another payload",
            NewEvent { payload: Payload::from(json!({"a": 2, "b": [1, 2]})), ..original.clone() },
        ),
        ("other metadata", original.clone().with_metadata(Metadata::new().with_field("user", "bob"))),
        ("another event type", NewEvent { event_type: "Cancelled".to_owned(), ..original.clone() }),
        ("another schema version", NewEvent { schema_version: 2, ..original.clone() }),
        ("another aggregate type", NewEvent { aggregate_type: "invoice".to_owned(), ..original.clone() }),
    ];
    for (what, changed) in changes {
        match stores.events.append(&stream, ExpectedVersion::NoStream, vec![changed]).await {
            Err(AppendError::DuplicateEventId { event_id, stream: s }) => {
                assert_eq!((event_id, &s), (original.event_id, &stream), "{what}: names the id and stream");
            }
            other => panic!("{what}: the same id with other content must be a duplicate, got {other:?}"),
        }
    }
    assert_eq!(stores.events.stream_version(&stream).await.unwrap(), Some(StreamVersion(1)));
    let stored = stores.events.read_all(GlobalPosition::START, 10).await.unwrap();
    assert_eq!(stored.len(), 1, "nothing but the original is stored");
    assert_eq!(stored[0].payload, json!({"a": 1, "b": [1, 2]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_documented_layout() {
    let stores = common::fresh_stores().await;
    let stream = StreamId::new("order-1");
    let outcome =
        stores.events.append(&stream, ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
    let ns = stores.namespace.as_str();
    let key_type = |key: String| {
        let stores = &stores;
        async move { redis_cmd::<String>(stores, redis::cmd("TYPE").arg(key)).await }
    };
    assert_eq!(key_type(format!("{{{ns}}}:events")).await, "stream");
    assert_eq!(key_type(format!("{{{ns}}}:position")).await, "string");
    assert_eq!(key_type(format!("{{{ns}}}:ids")).await, "hash");
    assert_eq!(key_type(format!("{{{ns}}}:stream:order-1")).await, "list");
    assert_eq!(key_type(format!("{{{ns}}}:streams")).await, "zset");
    let positions: Vec<u64> =
        redis_cmd(&stores, redis::cmd("LRANGE").arg(format!("{{{ns}}}:stream:order-1")).arg(0).arg(-1)).await;
    let reported: Vec<u64> = outcome.committed.iter().map(|c| c.global_position.get()).collect();
    assert_eq!(positions, reported, "the stream's list holds its events' positions in version order");
    let head: u64 = redis_cmd(&stores, redis::cmd("GET").arg(format!("{{{ns}}}:position"))).await;
    assert_eq!(head, reported[1]);
    let id_position: u64 = redis_cmd(
        &stores,
        redis::cmd("HGET").arg(format!("{{{ns}}}:ids")).arg(outcome.committed[0].event_id.to_string()),
    )
    .await;
    assert_eq!(id_position, reported[0]);
    let deleted = es_redis::delete_namespace(&stores.redis, &stores.namespace).await.unwrap();
    assert_eq!(deleted, 5, "delete_namespace removes every key of the namespace");
    assert_eq!(stores.events.head_position().await.unwrap(), GlobalPosition::START);
}

/// Writes a log entry behind the store's back at the next position, and
/// indexes it in `stream`'s list.
async fn write_raw(stores: &common::Stores, stream: &str, fields: &[(&str, &str)]) -> u64 {
    let ns = stores.namespace.as_str();
    let position: u64 = redis_cmd(stores, redis::cmd("INCR").arg(format!("{{{ns}}}:position"))).await;
    let mut xadd = redis::cmd("XADD");
    xadd.arg(format!("{{{ns}}}:events")).arg(format!("{position}-0"));
    for (k, v) in fields {
        xadd.arg(*k).arg(*v);
    }
    let _: String = redis_cmd(stores, &mut xadd).await;
    let _: u64 =
        redis_cmd(stores, redis::cmd("RPUSH").arg(format!("{{{ns}}}:stream:{stream}")).arg(position)).await;
    position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_is_no_envelope_is_corrupt_naming_stream_version_and_position() {
    let stores = common::fresh_stores().await;
    let stream = StreamId::new("order-1");
    stores.events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let bad = write_raw(
        &stores,
        "order-1",
        &[
            ("id", &id),
            ("stream", "order-1"),
            ("version", "2"),
            ("aggregate", "order"),
            ("type", "Placed"),
            ("schema", "1099511627776"),
            ("payload", "{}"),
            ("metadata", "{}"),
            ("at", "0"),
        ],
    )
    .await;
    let check = |result: Result<Vec<RecordedEvent>, StoreError>, what: &str| match result {
        Err(StoreError::Corrupt { location, position, detail }) => {
            assert!(location.contains("stream `order-1` version 2"), "{what}: {location}");
            assert!(location.contains(&format!("global position {bad}")), "{what}: {location}");
            assert!(detail.contains("schema"), "{what}: {detail}");
            assert_eq!(position, Some(GlobalPosition(bad)), "{what}: the error carries the position");
        }
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    };
    check(stores.events.read_stream(&stream, StreamVersion(1), Direction::Forward, 10).await, "read_stream");
    // The global stream delivers the good event before it, then stops at it.
    let before = stores.events.read_all(GlobalPosition::START, 10).await.unwrap();
    assert_eq!(before.len(), 1, "read_all returns the event before the corrupt entry, and stops there");
    check(stores.events.read_all(before[0].global_position, 10).await, "read_all");
    // The good event before it still reads on its own.
    let first = stores.events.read_stream(&stream, StreamVersion(1), Direction::Forward, 1).await.unwrap();
    assert_eq!(first.len(), 1);

    // An index entry pointing at no log entry.
    let ns = stores.namespace.as_str();
    let _: u64 =
        redis_cmd(&stores, redis::cmd("RPUSH").arg(format!("{{{ns}}}:stream:order-1")).arg(999)).await;
    match stores.events.read_stream(&stream, StreamVersion(3), Direction::Forward, 10).await {
        Err(StoreError::Corrupt { location, position, detail }) => {
            assert!(location.contains("stream `order-1` version 3 (global position 999)"), "{location}");
            assert!(detail.contains("no event"), "{detail}");
            assert_eq!(position, Some(GlobalPosition(999)));
        }
        other => panic!("an index entry pointing nowhere: expected Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_ahead_of_its_counter_fails_the_append_and_writes_nothing() {
    let stores = common::fresh_stores().await;
    let stream = StreamId::new("order-1");
    stores.events.append(&stream, ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
    let ns = stores.namespace.as_str();
    // Someone reset the counter by hand: position 1 would be handed out again.
    let () = redis_cmd(&stores, redis::cmd("SET").arg(format!("{{{ns}}}:position")).arg(0)).await;
    let refused = event(3);
    match stores.events.append(&stream, ExpectedVersion::Any, vec![refused.clone(), event(4)]).await {
        Err(AppendError::Backend { stream: s, source }) => {
            assert_eq!(s, stream);
            assert!(source.to_string().contains("cannot add position"), "{source}");
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    assert_eq!(
        stores.events.stream_version(&stream).await.unwrap(),
        Some(StreamVersion(2)),
        "nothing was written"
    );
    let taken: bool = redis_cmd(
        &stores,
        redis::cmd("HEXISTS").arg(format!("{{{ns}}}:ids")).arg(refused.event_id.to_string()),
    )
    .await;
    assert!(!taken, "the refused event's id stays free");
    assert_eq!(stores.events.read_all(GlobalPosition::START, 10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_lands_in_one_piece() {
    let stores = common::fresh_stores().await;
    let stream = StreamId::new("bulk-1");
    let events: Vec<NewEvent> = (0..2_000).map(event).collect();
    let outcome = stores.events.append(&stream, ExpectedVersion::NoStream, events).await.unwrap();
    assert_eq!(outcome.stream_version, Some(StreamVersion(2_000)));
    let positions: Vec<u64> = outcome.committed.iter().map(|c| c.global_position.get()).collect();
    assert_eq!(positions, (1..=2_000).collect::<Vec<_>>(), "one batch gets consecutive positions");
    let back = stores
        .events
        .read_stream(&stream, StreamVersion(u64::MAX), Direction::Backward, usize::MAX)
        .await
        .unwrap();
    let versions: Vec<u64> = back.iter().map(|e| e.stream_version.get()).collect();
    assert_eq!(versions, (1..=2_000).rev().collect::<Vec<_>>(), "every event, newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_listed_by_prefix_in_byte_order_page_by_page() {
    let stores = common::fresh_stores().await;
    for name in ["order-2", "order-10", "invoice-1", "order-1", "orders", "order-3"] {
        let stream = StreamId::new(name);
        stores.events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    }
    stores
        .events
        .append(&StreamId::new("order-3"), ExpectedVersion::Exact(StreamVersion(1)), vec![event(2), event(3)])
        .await
        .unwrap();
    let list = |prefix: &'static str, after: Option<&'static str>, limit: usize| {
        let events = stores.events.clone();
        async move {
            let after = after.map(StreamId::new);
            events
                .streams(prefix, after.as_ref(), limit)
                .await
                .unwrap()
                .into_iter()
                .map(|s| (s.stream_id.as_str().to_owned(), s.version.get()))
                .collect::<Vec<_>>()
        }
    };
    let owned = |items: &[(&str, u64)]| items.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect::<Vec<_>>();
    assert_eq!(
        list("order-", None, 10).await,
        owned(&[("order-1", 1), ("order-10", 1), ("order-2", 1), ("order-3", 3)]),
        "every stream with the prefix, in byte order, with its version"
    );
    assert_eq!(list("order-", None, 2).await, owned(&[("order-1", 1), ("order-10", 1)]), "a page");
    assert_eq!(
        list("order-", Some("order-10"), 2).await,
        owned(&[("order-2", 1), ("order-3", 3)]),
        "the next page"
    );
    assert_eq!(list("order-", Some("order-3"), 2).await, owned(&[]), "past the last");
    assert_eq!(list("order-", Some("a"), 1).await, owned(&[("order-1", 1)]), "after an id before the prefix");
    assert_eq!(list("", None, 100).await.len(), 6, "the empty prefix lists every stream");
    assert_eq!(list("order-", None, 0).await, owned(&[]), "a limit of 0 lists nothing");
    assert_eq!(list("zzz", None, 10).await, owned(&[]));
}
