//! A server that stops answering without closing the connection (a network
//! partition, a stalled middlebox): every call of the stores fails within
//! the store's call timeout, saying truthfully whether it may have written,
//! and the stalled connection leaves the pool, so the next call works on a
//! fresh one (the pool's, or for appends with group commit, one of the
//! store's own). A small TCP proxy between sqlx and Postgres stalls the
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
    Direction, EventStore, ExpectedVersion, Fence, LeaseStore, NewEvent, ProjectionStore, RecordedEvent,
    SnapshotStore, UnitOfWork,
};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_postgres::{GroupCommit, PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
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

/// The stores of one test in a fresh schema, on a one-connection pool
/// through a proxy (a call can only take the connection the test stalls,
/// and the next call works only if the stalled one left the pool), with
/// the call timeout [`CALL_TIMEOUT`]; and a direct pool to look with.
struct Stalled {
    direct: PgPool,
    schema: PgSchema,
    proxy: Proxy,
    through: PgPool,
    events: PgEventStore,
    documents: PgProjectionStore,
    leases: PgLeaseStore,
}

impl Stalled {
    async fn new() -> Self {
        let direct = pool(2).await;
        let schema = fresh_schema(&direct).await;
        let proxy = Proxy::to_test_server().await;
        let through = proxy.pool(1, Duration::from_secs(10)).await;
        let events = PgEventStore::with_schema(through.clone(), schema.clone());
        let documents = PgProjectionStore::with_schema(through.clone(), schema.clone());
        let leases = PgLeaseStore::with_schema(through.clone(), schema.clone());
        events.set_call_timeout(CALL_TIMEOUT);
        documents.set_call_timeout(CALL_TIMEOUT);
        leases.set_call_timeout(CALL_TIMEOUT);
        Self { direct, schema, proxy, through, events, documents, leases }
    }

    /// Stalls the pool's idle connection, then makes `call` (which takes
    /// it) and returns its answer, which must come.
    async fn on_a_stalled_connection<T>(&self, call: impl Future<Output = T>) -> T {
        // A stalled connection that left the pool leaves room for a fresh
        // one (else this waits out the pool's 10 s and fails).
        drop(self.through.acquire().await.expect("a connection in place of the stalled one"));
        until_idle(&self.through).await;
        self.proxy.stall();
        tokio::time::timeout(HUNG_AFTER, call).await.expect("a call on a stalled connection never answered")
    }

    /// The events of `stream`, read directly.
    async fn stored(&self, stream: &StreamId) -> Vec<RecordedEvent> {
        PgEventStore::with_schema(self.direct.clone(), self.schema.clone())
            .read_stream(stream, StreamVersion(0), Direction::Forward, 10)
            .await
            .unwrap()
    }

    async fn drop(self) {
        drop_schema(&self.direct, &self.schema).await;
    }
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
    let db = Stalled::new().await;
    let (events, documents, leases) = (&db.events, &db.documents, &db.leases);
    // Appends through the pool, as the calls below go (group commit runs
    // them on connections of the store's own: see the next test).
    events.set_group_commit(GroupCommit::off());
    let stream = StreamId::new("account-1");
    events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    // An append: it may have been sent, so its outcome is unknown.
    let appended =
        db.on_a_stalled_connection(events.append(&stream, ExpectedVersion::Any, vec![event(2)])).await;
    match &appended {
        Err(error @ AppendError::OutcomeUnknown { .. }) => assert!(says_timed_out(error), "{error}"),
        other => panic!("an append on a stalled connection answered {other:?}"),
    }
    // The next append takes a fresh connection.
    events.append(&StreamId::new("account-2"), ExpectedVersion::NoStream, vec![event(3)]).await.unwrap();

    let read = db
        .on_a_stalled_connection(events.read_stream(&stream, StreamVersion(0), Direction::Forward, 10))
        .await;
    assert!(matches!(&read, Err(error @ StoreError::Backend(_)) if says_timed_out(error)), "{read:?}");
    let head = db.on_a_stalled_connection(events.read_all(GlobalPosition::START, 10)).await;
    assert!(matches!(&head, Err(error @ StoreError::Backend(_)) if says_timed_out(error)), "{head:?}");
    let snapshot = db.on_a_stalled_connection(events.load_snapshot(&stream)).await;
    assert!(
        matches!(&snapshot, Err(error @ StoreError::Backend(_)) if says_timed_out(error)),
        "{snapshot:?}"
    );

    let mut work = UnitOfWork::new();
    work.put("a", json!({ "n": 1 }));
    let committed = db.on_a_stalled_connection(documents.commit("docs", work)).await;
    assert!(
        matches!(&committed, Err(error @ ProjectionError::Backend(_)) if says_timed_out(error)),
        "{committed:?}"
    );
    let got = db.on_a_stalled_connection(documents.get("docs", "a")).await;
    assert!(matches!(&got, Err(error @ ProjectionError::Backend(_)) if says_timed_out(error)), "{got:?}");

    let lease = leases.try_acquire("docs", "node-a", Duration::from_secs(30)).await.unwrap().unwrap();
    let renewed = db.on_a_stalled_connection(leases.renew(&lease, Duration::from_secs(30))).await;
    assert!(matches!(&renewed, Err(error @ LeaseError::Backend(_)) if says_timed_out(error)), "{renewed:?}");
    assert!(leases.renew(&lease, Duration::from_secs(30)).await.unwrap(), "a fresh connection renews");
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_on_a_stalled_kept_connection_fails_in_time_and_the_next_gets_a_fresh_one() {
    let db = Stalled::new().await;
    let events = &db.events;
    let stream = StreamId::new("account-1");
    // Opens the store's own connection for appends, kept after this one.
    events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    db.proxy.stall();
    let stalled = tokio::time::timeout(
        HUNG_AFTER,
        events.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![event(2)]),
    )
    .await
    .expect("an append on a stalled kept connection never answered");
    match &stalled {
        Err(error @ AppendError::OutcomeUnknown { .. }) => assert!(says_timed_out(error), "{error}"),
        other => panic!("an append on a stalled kept connection answered {other:?}"),
    }
    // The stalled connection is not kept: the next append opens another.
    let next = StreamId::new("account-2");
    let appended =
        tokio::time::timeout(HUNG_AFTER, events.append(&next, ExpectedVersion::NoStream, vec![event(3)]))
            .await
            .expect("the append after a stalled one never answered");
    assert_eq!(appended.unwrap().stream_version, Some(StreamVersion(1)));
    assert_eq!(db.stored(&next).await.len(), 1);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_call_timed_out_is_stored_once_when_retried_after_the_partition_heals() {
    let db = Stalled::new().await;
    let events = &db.events;
    let stream = StreamId::new("account-1");
    events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();

    let lost = event(2);
    let first = db
        .on_a_stalled_connection(events.append(
            &stream,
            ExpectedVersion::Exact(StreamVersion(1)),
            vec![lost.clone()],
        ))
        .await;
    assert!(matches!(first, Err(AppendError::OutcomeUnknown { .. })), "{first:?}");
    // What the stalled connection sent reaches the server after the heal,
    // where the append may commit at any moment.
    db.proxy.heal();
    let retry = events.append(&stream, ExpectedVersion::Exact(StreamVersion(1)), vec![lost.clone()]).await;
    let outcome = retry.expect("the same events appended again are stored, or found stored");
    assert_eq!(outcome.stream_version, Some(StreamVersion(2)));
    let stored = db.stored(&stream).await;
    assert_eq!(stored.len(), 2, "stored once: {stored:?}");
    assert_eq!(stored[1].event_id, lost.event_id);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_begin_overran_leaves_no_open_transaction_for_the_next_append() {
    let db = Stalled::new().await;
    let events = &db.events;
    // Appends through the pool, whose connection the begin left behind.
    events.set_group_commit(GroupCommit::off());
    events.append(&StreamId::new("warm"), ExpectedVersion::NoStream, vec![event(0)]).await.unwrap();

    let begun = db
        .on_a_stalled_connection(es_core::store::ProjectionTransactions::begin(&db.documents, "rows", None))
        .await;
    assert!(matches!(&begun, Err(error @ ProjectionError::Backend(_)) if says_timed_out(error)), "{begun:?}");
    // The BEGIN reaches the server now, and is answered.
    db.proxy.heal();

    // The pool's one connection, whichever it is now, commits this append.
    let stream = StreamId::new("account-1");
    events.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let seen = db.stored(&stream).await;
    assert_eq!(seen.len(), 1, "an acknowledged append is committed, not left in a transaction nobody ends");
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_transaction_cut_off_from_the_server_does_not_keep_another_node_from_the_lease() {
    let db = Stalled::new().await;
    let lease = db.leases.try_acquire("rows", "a", Duration::from_millis(500)).await.unwrap().unwrap();
    // Node a's batch: begun, its fence checked (which locks the lease's
    // row until the transaction ends), then cut off from the server.
    let fence = Fence::new("rows", lease.token);
    let tx =
        es_core::store::ProjectionTransactions::begin(&db.documents, "rows", Some(&fence)).await.unwrap();
    db.proxy.stall();

    // Node b takes the lease once it expired: the server ended the idle
    // transaction of node a (after its call timeout), and with it the lock.
    let direct = PgLeaseStore::with_schema(db.direct.clone(), db.schema.clone());
    let taken = async {
        loop {
            if let Some(lease) = direct.try_acquire("rows", "b", Duration::from_secs(30)).await.unwrap() {
                return lease;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let taken = tokio::time::timeout(HUNG_AFTER, taken).await.expect("node b never got the lease");
    assert!(taken.token > lease.token);
    drop(tx);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_reader_whose_listen_connection_stalled_is_woken_and_listens_again() {
    let db = Stalled::new().await;
    let events = &db.events;
    let head = events.head_position().await.unwrap();
    // The first wait starts the listener, through the proxy.
    let mark = common::listening_mark(events, head, None).await;

    // Its connection stops passing anything; another node appends, whose
    // NOTIFY cannot arrive. The listener finds its connection silent and
    // unanswered (within twice the call timeout) and wakes its waiters,
    // where before they slept their whole wait.
    db.proxy.stall();
    let direct = PgEventStore::with_schema(db.direct.clone(), db.schema.clone());
    direct.append(&StreamId::new("elsewhere"), ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    tokio::time::timeout(
        HUNG_AFTER,
        events.wait_for_events_since(head, Some(mark), Duration::from_secs(3600)),
    )
    .await
    .expect("a waiter on a stalled LISTEN connection was never woken");

    // The next wait listens on a new connection, and hears the next append.
    let mark = common::listening_mark(events, head, Some(mark)).await;
    direct
        .append(&StreamId::new("elsewhere"), ExpectedVersion::Exact(StreamVersion(1)), vec![event(2)])
        .await
        .unwrap();
    tokio::time::timeout(
        HUNG_AFTER,
        events.wait_for_events_since(head, Some(mark), Duration::from_secs(3600)),
    )
    .await
    .expect("the new listener did not hear the append");
    db.drop().await;
}
