//! What an append says when the connection fails: "nothing was written"
//! only when that is true, "the outcome is unknown" when the script may
//! have run. Faults come from a TCP proxy between the store and Redis
//! (`common::proxy`) that drops a reply after the server acted, or stops
//! answering altogether; a retry with the same event ids (or the same
//! command id) then stores nothing twice.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use es_core::error::{AppendError, ExecuteError, StoreError, Unknown};
use es_core::runtime::CommandPath;
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{
    command, event, Aggregate, Apply, CommandId, Es, Events, GlobalPosition, Handle, StreamId, StreamVersion,
};
use es_redis::{RedisConnection, RedisEventStore, RedisNamespace};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The bound on any wait in these tests; passing it fails the test.
const DEADLINE: Duration = Duration::from_secs(30);

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

/// A store on `namespace` whose every call goes through `proxy`, bounded
/// by `call_timeout`.
async fn store_through(proxy: &Proxy, namespace: &RedisNamespace, call_timeout: Duration) -> RedisEventStore {
    let client = redis::Client::open(proxy.url()).unwrap();
    // No reply timeout on the connection itself: only the store's bound.
    let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(None);
    let manager = redis::aio::ConnectionManager::new_with_config(client.clone(), config).await.unwrap();
    RedisEventStore::new(
        RedisConnection::new(client, manager).with_call_timeout(call_timeout),
        namespace.clone(),
    )
}

#[track_caller]
fn assert_unknown(result: &Result<es_core::store::AppendOutcome, AppendError>, stream: &StreamId) {
    match result {
        Err(error @ AppendError::OutcomeUnknown { stream: s, .. }) => {
            assert_eq!(s, stream);
            assert!(error.to_string().contains("may or may not be stored"), "{error}");
        }
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lost_after_the_script_ran_is_an_unknown_outcome_and_a_retry_is_exact() {
    let stores = common::fresh_stores().await;
    let proxy = Proxy::start().await;
    let proxied = store_through(&proxy, &stores.namespace, DEADLINE).await;
    let stream = StreamId::new("account-1");
    // Load the script on the server first, so the lost reply is the
    // append's own (EVALSHA), not SCRIPT LOAD's.
    proxied.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    proxy.arm();
    let lost = event(2);
    let result = proxied.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![lost.clone()]).await;
    proxy.until_cut(DEADLINE).await;
    assert_unknown(&result, &stream);

    // The script ran: the event is stored. A retry with the same event,
    // through the same (reconnected) store, is exact and stores nothing.
    assert_eq!(
        stores.events.stream_version(&stream).await.unwrap(),
        Some(StreamVersion(2)),
        "the append ran"
    );
    let retried =
        proxied.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![lost.clone()]).await.unwrap();
    assert_eq!(retried.committed[0].event_id, lost.event_id);
    assert_eq!(retried.committed[0].stream_version, StreamVersion(2));
    let all = stores.events.read_all(GlobalPosition::START, 10).await.unwrap();
    assert_eq!(all.len(), 2, "stored once: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_fails_a_call_within_its_bound_as_an_unknown_outcome() {
    let stores = common::fresh_stores().await;
    let proxy = Proxy::start().await;
    let proxied = store_through(&proxy, &stores.namespace, Duration::from_millis(300)).await;
    let stream = StreamId::new("order-1");
    proxied.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    proxy.mute();
    let unanswered = event(2);
    let appended = tokio::time::timeout(
        DEADLINE,
        proxied.append(&stream, ExpectedVersion::Any, vec![unanswered.clone()]),
    )
    .await
    .expect("an append to a server that stopped answering must fail, not hang");
    assert_unknown(&appended, &stream);
    if let Err(AppendError::OutcomeUnknown { source, .. }) = &appended {
        assert!(source.to_string().contains("no reply from Redis within"), "{source}");
    }
    let read = tokio::time::timeout(DEADLINE, proxied.read_all(GlobalPosition::START, 10))
        .await
        .expect("a read from a server that stopped answering must fail, not hang");
    assert!(matches!(read, Err(StoreError::Backend(_))), "{read:?}");

    // The server did run it (only the replies were swallowed); the retry
    // on a working connection is exact.
    let retried =
        stores.events.append(&stream, ExpectedVersion::Any, vec![unanswered.clone()]).await.unwrap();
    assert_eq!(retried.committed[0].stream_version, StreamVersion(2));
    assert_eq!(stores.events.read_all(GlobalPosition::START, 10).await.unwrap().len(), 2, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_reply_from_the_script_wrote_nothing() {
    let stores = common::fresh_stores().await;
    let stream = StreamId::new("order-1");
    stores.events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    // A hand edit: the set of stream ids is now a string. The script reads
    // it before its first write, so the append of a new stream fails whole.
    let ns = stores.namespace.as_str();
    let _: () = redis::cmd("SET")
        .arg(format!("{{{ns}}}:streams"))
        .arg("oops")
        .query_async(&mut stores.redis.manager())
        .await
        .unwrap();
    let fresh = StreamId::new("order-2");
    let result = stores.events.append(&fresh, ExpectedVersion::NoStream, vec![event(2)]).await;
    match &result {
        Err(AppendError::Backend { stream, source }) => {
            assert_eq!(stream, &fresh);
            assert!(source.to_string().contains("WRONGTYPE"), "{source}");
        }
        other => panic!("expected Backend (nothing written), got {other:?}"),
    }
    assert_eq!(
        stores.events.stream_version(&fresh).await.unwrap(),
        None,
        "nothing of the append was written"
    );
    let all = stores.events.read_all(GlobalPosition::START, 10).await.unwrap();
    assert_eq!(all.len(), 1, "no event reached the global log: {all:?}");
    assert_eq!(stores.events.head_position().await.unwrap(), GlobalPosition(1), "the counter did not move");
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Added {
    amount: u64,
}

#[command(aggregate = Tally)]
#[derive(Debug, Clone)]
struct Add {
    #[id]
    id: String,
    amount: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("never refused")]
struct Never;

#[derive(Aggregate, Debug, Default, Serialize, Deserialize)]
#[aggregate(name = "tally", error = Never, events(Added), commands(Add))]
struct Tally {
    total: u64,
}

impl Handle<Add> for Tally {
    fn handle(&self, cmd: Add) -> Result<Events<Self>, Never> {
        Ok(Events::one(Added { amount: cmd.amount }))
    }
}

impl Apply<Added> for Tally {
    fn apply(&mut self, e: &Added) {
        self.total += e.amount;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_reply_was_lost_is_stored_once_when_executed_again_with_its_id() {
    for path in [CommandPath::Actors, CommandPath::Reload] {
        let stores = common::fresh_stores().await;
        let proxy = Proxy::start().await;
        let proxied = store_through(&proxy, &stores.namespace, DEADLINE).await;
        let es = Es::builder().event_store(proxied).command_path(path).build().await.unwrap();
        let add = |amount| Add { id: "t-1".into(), amount };
        es.execute(add(1)).await.unwrap();

        // Cut the reply to the append (the request carrying the event's
        // payload), not to the reads before it.
        proxy.arm_after(br#"{"amount":10}"#);
        let id = CommandId::new();
        let lost = es.execute(add(10)).id(id).await;
        proxy.until_cut(DEADLINE).await;
        match &lost {
            Err(ExecuteError::OutcomeUnknown { command_id, cause: Unknown::Store(error), .. }) => {
                assert_eq!(*command_id, id, "{path:?}");
                assert!(matches!(**error, AppendError::OutcomeUnknown { .. }), "{path:?}: {error:?}");
            }
            other => panic!("{path:?}: expected OutcomeUnknown from the store, got {other:?}"),
        }

        let again = es.execute(add(10)).id(id).await.unwrap();
        assert_eq!(again.command_id, id);
        assert_eq!(again.version, Some(StreamVersion(2)), "{path:?}: the original outcome");
        let stream = StreamId::for_aggregate("tally", "t-1");
        let stored = stores.events.read_all(GlobalPosition::START, 10).await.unwrap();
        assert_eq!(stored.len(), 2, "{path:?}: the command is stored once: {stored:?}");
        assert_eq!(stored[1].event_id, again.committed[0].event_id, "{path:?}");
        assert_eq!(stores.events.stream_version(&stream).await.unwrap(), Some(StreamVersion(2)));
        let tally: Tally = es.load("t-1").await.unwrap();
        assert_eq!(tally.total, 11, "{path:?}");
    }
}
