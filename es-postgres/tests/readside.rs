//! The read side on Postgres: projections that survive a crash, failed
//! commits, rebuilds, failures, strong consistency and LISTEN/NOTIFY
//! wake-ups. Several nodes, the bank's transfer and a transaction holding
//! readers back are in `readside_nodes.rs`.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::error::ConsistencyError;
use es_core::readside::{Consistency, ReadSideConfig, Replay, Subscriber, SubscriptionState};
use es_core::store::{Direction, EventStore, ProjectionStore};
use es_core::testkit::{StoreCall, TestStore};
use es_core::{
    Aggregate, Es, GlobalPosition, HandleEvent, HandlerCtx, HandlerError, ReadSide, Recorded, StreamId,
    StreamVersion,
};

use common::readside::*;

// ---- projections: crash, failed commit, rebuild, failure ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_batch_resumes_and_applies_every_event_once() {
    let db = Db::new().await;
    let added = forty();
    let head = add_all(&db, &added).await;

    // Node "a" stops for good inside a batch (at amount 13), with the
    // batch's earlier events applied in its open unit of work.
    let crashing = Totals { hang_at: Some(13), ..Totals::default() };
    let hung = Arc::clone(&crashing.hung);
    let a = db.read_side("a", registry(vec![("totals", crashing.subscriber())]), config()).start().unwrap();
    tokio::time::timeout(DEADLINE, hung.notified()).await.expect("the projection reached amount 13");
    // The batch before the hung one commits on its own task (pipelined),
    // so it may land just after the hang began.
    let committed = async {
        while db.documents.checkpoint("totals").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(DEADLINE, committed).await.expect("earlier batches were committed");
    // Killed: dropped without shutdown. Its task hangs mid-batch, so the
    // drop aborts it later with the unit of work uncommitted; the release
    // the drop then sends names the killed run's token, which by then no
    // longer holds the lease (the restarted node took it under a new one).
    drop(a);

    // The node restarts under the same name, takes its own lease again (under
    // a new token, which fences off anything the killed run still commits) and
    // resumes from the stored checkpoint.
    let b = db
        .read_side("a", registry(vec![("totals", Totals::default().subscriber())]), config())
        .start()
        .unwrap();
    b.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(db.totals("totals").await, fold(&added));
    assert_eq!(db.documents.checkpoint("totals").await.unwrap().map(|c| c.position), Some(head));
    b.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commits_are_waited_out_and_every_event_is_applied_once() {
    let db = Db::new().await;
    let added = forty();
    let head = add_all(&db, &added).await;
    // The connection drops during the first three commits: the outcome of
    // each is unknown, and the runner commits the same batch again.
    let documents = TestStore::new(db.documents.clone());
    documents.fail_next(StoreCall::Commit, 3);
    let subscriber = Totals::default().subscriber().retry(retry(1));
    let read_side = ReadSide::builder()
        .event_store(db.events.clone())
        .projection_store(documents.clone())
        .lease_store(db.leases.clone())
        .registry(registry(vec![("totals", subscriber)]))
        .config(config())
        .start()
        .unwrap();
    read_side.wait_for("totals", head, DEADLINE).await.unwrap();
    assert_eq!(db.totals("totals").await, fold(&added));
    assert!(documents.calls(StoreCall::Commit) > 3);
    read_side.shutdown().await;
    db.drop().await;
}

/// Counts the events a handler ran for, and the replays among them.
#[derive(Default, Clone)]
struct Mailer {
    sent: Arc<AtomicUsize>,
    replayed: Arc<AtomicUsize>,
}

impl HandleEvent<Added> for Mailer {
    async fn handle(&self, _: &Recorded<Added>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        if ctx.is_replay() {
            self.replayed.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_replays_projections_but_never_runs_skip_on_replay_handlers() {
    let db = Db::new().await;
    let added = forty();
    let head = add_all(&db, &added).await;
    let totals = Totals::default();
    let skipping = Mailer::default();
    let replaying = Mailer::default();
    let read_side = db
        .read_side(
            "a",
            registry(vec![
                ("totals", totals.subscriber()),
                ("mailer", Subscriber::handler(skipping.clone()).on::<Added>().replay(Replay::Skip).build()),
                ("auditor", Subscriber::handler(replaying.clone()).on::<Added>().build()),
            ]),
            config(),
        )
        .start()
        .unwrap();
    for name in ["totals", "mailer", "auditor"] {
        read_side.wait_for(name, head, DEADLINE).await.unwrap();
    }
    assert_eq!(skipping.sent.load(Ordering::SeqCst), 40);
    assert_eq!(replaying.sent.load(Ordering::SeqCst), 40);
    assert_eq!(totals.runs.load(Ordering::SeqCst), 40);

    read_side.rebuild("totals").await.unwrap();
    read_side.rebuild("mailer").await.unwrap();
    read_side.rebuild("auditor").await.unwrap();
    for name in ["totals", "mailer", "auditor"] {
        read_side.wait_for(name, head, DEADLINE).await.unwrap();
    }
    assert_eq!(totals.runs.load(Ordering::SeqCst), 80, "the rebuild projected every event again");
    assert_eq!(db.totals("totals").await, fold(&added), "into a fresh state");
    assert_eq!(skipping.sent.load(Ordering::SeqCst), 40, "the skip-on-replay handler did not run");
    assert_eq!(replaying.sent.load(Ordering::SeqCst), 80);
    assert_eq!(replaying.replayed.load(Ordering::SeqCst), 40, "the replay was flagged as one");

    // After the replay, new events are news again.
    let later = db.add("a", [100]).await;
    read_side.wait_for("mailer", later, DEADLINE).await.unwrap();
    assert_eq!(skipping.sent.load(Ordering::SeqCst), 41);
    assert_eq!(skipping.replayed.load(Ordering::SeqCst), 0);
    read_side.shutdown().await;
    db.drop().await;
}

/// Fails on one amount, every time.
#[derive(Clone)]
struct Refuser(i64);

impl HandleEvent<Added> for Refuser {
    async fn handle(&self, e: &Recorded<Added>, _: &HandlerCtx) -> Result<(), HandlerError> {
        if e.amount == self.0 {
            return Err(HandlerError::msg(format!("cannot handle amount {}", e.amount)));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscriber_stops_at_its_event_and_reports_it() {
    let db = Db::new().await;
    let added = forty();
    let head = add_all(&db, &added).await;
    let stream = StreamId::for_aggregate(Tally::NAME, "b");
    let failing = db
        .events
        .read_stream(&stream, StreamVersion::FIRST, Direction::Forward, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.payload == serde_json::json!({"amount": 13}))
        .unwrap();
    let before = db
        .events
        .read_all(GlobalPosition::START, 1000)
        .await
        .unwrap()
        .into_iter()
        .take_while(|e| e.global_position < failing.global_position)
        .last()
        .unwrap()
        .global_position;
    let read_side = db
        .read_side(
            "a",
            registry(vec![
                ("refuser", Subscriber::handler(Refuser(13)).on::<Added>().build().retry(retry(3))),
                ("totals", Totals { fail_at: Some(13), ..Totals::default() }.subscriber().retry(retry(2))),
            ]),
            config(),
        )
        .start()
        .unwrap();
    for (name, namespace, attempts) in [("refuser", "refuser", 3), ("totals", "totals", 2)] {
        match read_side.wait_for(name, head, DEADLINE).await {
            Err(ConsistencyError::Failed { failure, .. }) => {
                assert_eq!(failure.position, failing.global_position)
            }
            other => panic!("`{name}`: expected a failure, got {other:?}"),
        }
        let status = read_side.status(name).unwrap();
        let SubscriptionState::Failed(failure) = status.state else { panic!("`{name}`: {status:?}") };
        assert_eq!(failure.position, failing.global_position, "`{name}`");
        assert_eq!(failure.event_id, Some(failing.event_id), "`{name}`");
        assert_eq!(failure.event_type.as_deref(), Some("Added"), "`{name}`");
        assert_eq!(failure.attempts, attempts, "`{name}`");
        assert!(failure.error.contains("amount 13"), "`{name}`: {}", failure.error);
        assert_eq!(status.position, before, "`{name}` reached the event before");
        let stored = db.documents.checkpoint(namespace).await.unwrap().map(|c| c.position).unwrap();
        assert!(stored < failing.global_position, "`{name}`: checkpoint {stored} is below the failing event");
        assert_eq!(stored, before, "`{name}`: what came before is kept");
    }
    // The projection holds exactly the events before the failing one.
    let mut expected = forty();
    expected.truncate(2);
    expected[1].1.retain(|a| *a < 13);
    assert_eq!(db.totals("totals").await, fold(&expected));
    read_side.shutdown().await;
    db.drop().await;
}

// ---- consistency and wake-ups ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strong_projection_is_visible_right_after_execute() {
    let db = Db::new().await;
    let strong = Totals::default().subscriber().consistency(Consistency::Strong);
    let es = Es::builder()
        .event_store(db.events.clone())
        .projection_store(db.documents.clone())
        .read_side(
            ReadSide::builder()
                .lease_store(db.leases.clone())
                .registry(registry(vec![("totals", strong)]))
                .config(config()),
        )
        .consistency_timeout(DEADLINE)
        .build()
        .await
        .unwrap();
    let id = StreamId::for_aggregate(Tally::NAME, "a").as_str().to_owned();
    let mut expected = Total::default();
    for amount in 1..=15 {
        es.execute(Add { tally: "a".into(), amount }).await.unwrap();
        expected.total += amount;
        expected.events += 1;
        let doc = db.documents.get("totals", &id).await.unwrap().map(|d| serde_json::from_value(d).unwrap());
        assert_eq!(doc, Some(expected.clone()), "right after adding {amount}");
    }
    assert_eq!(es.load::<Tally>("a").await.unwrap().total, expected.total);
    es.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_subscriber_is_woken_by_notify_for_an_event_appended_later() {
    let db = Db::new().await;
    let head = db.add("a", [1, 2]).await;
    // No polling could deliver the late event in time: the subscriber waits
    // an hour between reads unless a notification wakes it.
    let config = ReadSideConfig {
        idle_wait: Duration::from_secs(3600),
        lease_ttl: Duration::from_secs(3 * 3600),
        ..config()
    };
    let read_side = db
        .read_side("a", registry(vec![("totals", Totals::default().subscriber())]), config)
        .start()
        .unwrap();
    read_side.wait_for("totals", head, DEADLINE).await.unwrap();
    // Caught up, it is waiting for events now.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while read_side.status("totals").unwrap().state != SubscriptionState::CaughtUp {
        assert!(tokio::time::Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Another node appends (its own pool and connections).
    let other = db.other_node().await;
    let later = other.add("a", [3]).await;
    read_side.wait_for("totals", later, DEADLINE).await.unwrap();
    assert_eq!(db.totals("totals").await, fold(&[("a", vec![1, 2, 3])]));
    read_side.shutdown().await;
    db.drop().await;
}
