//! The Postgres projection store and snapshot store: units of work that
//! carry the application's SQL, containment queries, snapshot upserts.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{drop_schema, fresh_schema, pool};
use std::time::Duration;

use es_core::error::{ProjectionError, StoreError};
use es_core::store::{
    Checkpoint, DocumentQuery, Fence, Lease, LeaseStore, ProjectionStore, Snapshot, SnapshotStore, Timestamp,
    UnitOfWork,
};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore};
use serde_json::json;
use sqlx::PgPool;

async fn store() -> (PgProjectionStore, PgPool) {
    let pool = pool(3).await;
    let schema = fresh_schema(&pool).await;
    (PgProjectionStore::with_schema(pool.clone(), schema), pool)
}

async fn report_total(pool: &PgPool, table: &str) -> Option<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT total FROM {table}")))
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_sql_commits_with_documents_and_checkpoint_or_not_at_all() {
    let (store, pool) = store().await;
    let table = format!("{}.report", store.schema());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE TABLE {table} (total bigint NOT NULL)")))
        .execute(&pool)
        .await
        .unwrap();

    let mut work = UnitOfWork::new();
    work.put("acc-1", json!({"balance": 70})).checkpoint(Checkpoint::at(GlobalPosition(42)));
    let insert = format!("INSERT INTO {table} VALUES (70)");
    store
        .commit_with("balances", work, |tx| {
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(insert)).execute(&mut *tx).await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    assert_eq!(report_total(&pool, &table).await, Some(70));
    assert_eq!(store.checkpoint("balances").await.unwrap().map(|c| c.position), Some(GlobalPosition(42)));

    // The user's SQL fails: documents, checkpoint and user rows all stay.
    let mut work = UnitOfWork::new();
    work.put("acc-1", json!({"balance": 0})).delete("acc-2").checkpoint(Checkpoint::at(GlobalPosition(50)));
    let update = format!("UPDATE {table} SET total = NULL");
    let failed = store
        .commit_with("balances", work, |tx| {
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(update)).execute(&mut *tx).await?;
                Ok(())
            })
        })
        .await;
    assert!(matches!(failed, Err(es_core::error::ProjectionError::Backend(_))), "{failed:?}");
    assert_eq!(report_total(&pool, &table).await, Some(70));
    assert_eq!(store.checkpoint("balances").await.unwrap().map(|c| c.position), Some(GlobalPosition(42)));
    assert_eq!(store.get("balances", "acc-1").await.unwrap(), Some(json!({"balance": 70})));
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_change_per_document_wins_within_a_unit_of_work() {
    let (store, pool) = store().await;
    store.put("p", "b", json!({"v": 0})).await.unwrap();
    let mut work = UnitOfWork::new();
    work.put("a", json!({"v": 1}))
        .put("a", json!({"v": 2}))
        .delete("b")
        .put("c", json!({"v": 3}))
        .delete("c");
    store.commit("p", work).await.unwrap();
    let all = store.query("p", &DocumentQuery::all()).await.unwrap();
    assert_eq!(all, vec![("a".to_owned(), json!({"v": 2}))]);
    assert_eq!(store.checkpoint("p").await.unwrap().map(|c| c.position), None);
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_filter_by_containment_and_page_by_id() {
    let (store, pool) = store().await;
    for (id, owner) in [("b", "ada"), ("a", "ada"), ("C", "bob"), ("d", "ada")] {
        store.put("accounts", id, json!({"owner": owner, "tags": ["x", id]})).await.unwrap();
    }
    store.put("other", "a", json!({"owner": "ada"})).await.unwrap();
    let ids = |docs: Vec<(String, serde_json::Value)>| docs.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    let all = store.query("accounts", &DocumentQuery::all()).await.unwrap();
    assert_eq!(ids(all), ["C", "a", "b", "d"], "ids sort bytewise");
    let ada = store.query("accounts", &DocumentQuery::containing(json!({"owner": "ada"}))).await.unwrap();
    assert_eq!(ids(ada), ["a", "b", "d"]);
    let page = DocumentQuery::containing(json!({"owner": "ada"})).offset(1).limit(1);
    assert_eq!(ids(store.query("accounts", &page).await.unwrap()), ["b"]);
    let tagged = store.query("accounts", &DocumentQuery::containing(json!({"tags": ["d"]}))).await.unwrap();
    assert_eq!(ids(tagged), ["d"]);
    store.reset("accounts").await.unwrap();
    assert!(store.query("accounts", &DocumentQuery::all()).await.unwrap().is_empty());
    assert_eq!(store.get("other", "a").await.unwrap(), Some(json!({"owner": "ada"})));
    drop_schema(&pool, store.schema()).await;
}

fn snapshot(version: u64, state: serde_json::Value) -> Snapshot {
    Snapshot {
        stream_id: StreamId::new("account-1"),
        aggregate_type: "account".to_owned(),
        stream_version: StreamVersion(version),
        schema_version: 2,
        state,
        taken_at: Timestamp(1_700_000_000_123_456),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_the_newest_and_bad_ones_are_typed_errors() {
    let pool = pool(3).await;
    let schema = fresh_schema(&pool).await;
    let store = PgEventStore::with_schema(pool.clone(), schema.clone());
    let stream = StreamId::new("account-1");
    assert_eq!(store.load_snapshot(&stream).await.unwrap(), None);
    store.save_snapshot(snapshot(5, json!({"balance": 5}))).await.unwrap();
    store.save_snapshot(snapshot(3, json!({"balance": 3}))).await.unwrap();
    assert_eq!(store.load_snapshot(&stream).await.unwrap(), Some(snapshot(5, json!({"balance": 5}))));
    store.save_snapshot(snapshot(8, json!({"balance": 8}))).await.unwrap();
    assert_eq!(store.load_snapshot(&stream).await.unwrap(), Some(snapshot(8, json!({"balance": 8}))));

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE {schema}.snapshots SET stream_version = -1 WHERE stream_id = 'account-1'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    match store.load_snapshot(&stream).await {
        Err(StoreError::Corrupt { location, .. }) => assert!(location.contains("account-1"), "{location}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop_schema(&pool, &schema).await;
}

fn fenced_work(lease: &Lease, balance: i64, position: u64) -> UnitOfWork {
    let mut work = UnitOfWork::new();
    work.put("acc-1", json!({"balance": balance}))
        .delete("acc-2")
        .checkpoint(Checkpoint::at(GlobalPosition(position)))
        .fence(Fence::new(lease.name.clone(), lease.token));
    work
}

/// `commit_with` checks the fence as `commit` does: a commit fenced with a
/// lease taken over is refused and stores nothing. (Fencing `commit` itself
/// is the conformance suite's, `lease_fencing_conformance!`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_with_refuses_a_commit_fenced_with_a_lease_taken_over() {
    let (store, pool) = store().await;
    let leases = PgLeaseStore::with_schema(pool.clone(), store.schema().clone());
    let long = Duration::from_secs(30);
    let a = leases.try_acquire("balances", "node-a", long).await.unwrap().expect("a free lease");
    store.commit("balances", fenced_work(&a, 10, 10)).await.unwrap();
    leases.release(&a).await.unwrap();
    let b = leases.try_acquire("balances", "node-b", long).await.unwrap().expect("released, so free");
    assert!(b.token > a.token);
    let refused =
        store.commit_with("balances", fenced_work(&a, 30, 30), |_| Box::pin(async { Ok(()) })).await;
    assert!(matches!(refused, Err(ProjectionError::Fenced { .. })), "{refused:?}");
    assert_eq!(store.checkpoint("balances").await.unwrap().map(|c| c.position), Some(GlobalPosition(10)));
    assert_eq!(store.get("balances", "acc-1").await.unwrap(), Some(json!({"balance": 10})));
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_waits_for_a_fenced_commit_in_flight_and_a_renewal_does_not() {
    let (store, pool) = store().await;
    let leases = PgLeaseStore::with_schema(common::pool(2).await, store.schema().clone());
    let a = leases.try_acquire("balances", "node-a", Duration::from_secs(30)).await.unwrap().expect("free");

    // A's fenced commit checks its lease, then holds in the middle.
    let (checked_tx, checked_rx) = tokio::sync::oneshot::channel::<()>();
    let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
    let committing = tokio::spawn({
        let store = store.clone();
        let work = fenced_work(&a, 10, 10);
        async move {
            store
                .commit_with("balances", work, move |_| {
                    Box::pin(async move {
                        checked_tx.send(()).map_err(|()| "the test went away")?;
                        gate_rx.await?;
                        Ok(())
                    })
                })
                .await
        }
    });
    checked_rx.await.unwrap();

    // A renews its lease meanwhile (a long batch keeps it), and gives it up.
    let renewed =
        tokio::time::timeout(Duration::from_secs(10), leases.renew(&a, Duration::from_secs(30))).await;
    assert!(renewed.expect("the renewal waited for the commit").unwrap(), "renewed");
    tokio::time::timeout(Duration::from_secs(10), leases.release(&a))
        .await
        .expect("the release waited for the commit")
        .unwrap();

    // B's takeover must wait for that commit.
    let taking = tokio::spawn({
        let leases = leases.clone();
        async move { leases.try_acquire("balances", "node-b", Duration::from_secs(30)).await }
    });
    let waiting = format!("%\"{}\".leases%", store.schema());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let blocked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
        )
        .bind(&waiting)
        .fetch_one(&pool)
        .await
        .unwrap();
        if blocked > 0 {
            break;
        }
        assert!(!taking.is_finished(), "the takeover did not wait for the fenced commit");
        assert!(tokio::time::Instant::now() < deadline, "the takeover never blocked");
        tokio::task::yield_now().await;
    }
    gate_tx.send(()).unwrap();
    committing.await.unwrap().unwrap();
    let b = taking.await.unwrap().unwrap().expect("released, so B takes it");
    assert!(b.token > a.token);
    assert_eq!(store.checkpoint("balances").await.unwrap().map(|c| c.position), Some(GlobalPosition(10)));

    // A's next commit is refused.
    let stale = store.commit("balances", fenced_work(&a, 20, 20)).await;
    assert!(matches!(stale, Err(ProjectionError::Fenced { .. })), "{stale:?}");
    assert_eq!(store.checkpoint("balances").await.unwrap().map(|c| c.position), Some(GlobalPosition(10)));

    drop_schema(&pool, store.schema()).await;
}
