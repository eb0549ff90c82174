//! The SQLite projection store and snapshot store: units of work that carry
//! the application's SQL, fencing against the lease table of the same file,
//! containment queries over many pages, snapshot upserts and bad rows.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{fresh_database, TempDir};
use es_core::error::{LeaseError, ProjectionError, StoreError};
use es_core::store::{
    Checkpoint, DocumentQuery, Fence, Lease, LeaseStore, ProjectionStore, Snapshot, SnapshotStore, Timestamp,
    UnitOfWork,
};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_sqlite::{
    SqliteDatabase, SqliteError, SqliteEventStore, SqliteLeaseStore, SqliteOptions, SqliteProjectionStore,
};
use serde_json::json;

async fn report_total(db: &SqliteDatabase) -> Option<i64> {
    sqlx::query_scalar("SELECT total FROM report").fetch_optional(db.readers()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_sql_commits_with_documents_and_checkpoint_or_not_at_all() {
    let db = fresh_database().await;
    let store = SqliteProjectionStore::new(db.clone());
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("CREATE TABLE report (total INTEGER NOT NULL)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let mut work = UnitOfWork::new();
    work.put("acc-1", json!({"balance": 70})).checkpoint(Checkpoint::at(GlobalPosition(3)));
    store
        .commit_with("balances", work, |tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO report (total) VALUES (70)").execute(&mut *tx).await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    assert_eq!(report_total(&db).await, Some(70));
    assert_eq!(store.checkpoint("balances").await.unwrap(), Some(Checkpoint::at(GlobalPosition(3))));

    // The user's SQL fails: documents, checkpoint and its own writes roll back.
    let mut work = UnitOfWork::new();
    work.put("acc-1", json!({"balance": 99}))
        .delete("acc-1")
        .put("acc-2", json!({}))
        .checkpoint(Checkpoint::at(GlobalPosition(4)));
    let failed = store
        .commit_with("balances", work, |tx| {
            Box::pin(async move {
                sqlx::query("UPDATE report SET total = 99").execute(&mut *tx).await?;
                sqlx::query("INSERT INTO no_such_table VALUES (1)").execute(&mut *tx).await?;
                Ok(())
            })
        })
        .await;
    assert!(matches!(failed, Err(ProjectionError::Backend(_))), "{failed:?}");
    assert_eq!(report_total(&db).await, Some(70));
    assert_eq!(store.checkpoint("balances").await.unwrap(), Some(Checkpoint::at(GlobalPosition(3))));
    assert_eq!(store.get("balances", "acc-1").await.unwrap(), Some(json!({"balance": 70})));
    assert_eq!(store.get("balances", "acc-2").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_change_per_document_wins_within_a_unit_of_work() {
    let store = SqliteProjectionStore::new(fresh_database().await);
    let mut work = UnitOfWork::new();
    work.put("a", json!(1)).delete("a").put("b", json!(1)).put("b", json!(2)).delete("c").put("a", json!(3));
    store.commit("p", work).await.unwrap();
    let all = store.query("p", &DocumentQuery::all()).await.unwrap();
    assert_eq!(all, vec![("a".to_owned(), json!(3)), ("b".to_owned(), json!(2))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containment_queries_filter_page_by_page_and_page_by_id() {
    let store = SqliteProjectionStore::new(fresh_database().await);
    // More documents than one page of the containment scan (500).
    let mut work = UnitOfWork::new();
    for n in 0..1_234u32 {
        work.put(
            format!("doc-{n:05}"),
            json!({"n": n, "third": n % 3 == 0, "tags": ["x", format!("t{}", n % 7)]}),
        );
    }
    store.commit("docs", work).await.unwrap();
    let thirds = store.query("docs", &DocumentQuery::containing(json!({"third": true}))).await.unwrap();
    assert_eq!(thirds.len(), 412);
    assert!(thirds.windows(2).all(|w| w[0].0 < w[1].0), "ordered by id");
    let page = store
        .query("docs", &DocumentQuery::containing(json!({"third": true})).offset(200).limit(250))
        .await
        .unwrap();
    assert_eq!(page, thirds[200..412].to_vec());
    let tagged =
        store.query("docs", &DocumentQuery::containing(json!({"tags": ["t3"]})).limit(3)).await.unwrap();
    let ids: Vec<&str> = tagged.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["doc-00003", "doc-00010", "doc-00017"]);
    let none = store.query("docs", &DocumentQuery::containing(json!({"n": -1}))).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_is_no_json_is_a_typed_error_naming_it() {
    let db = fresh_database().await;
    let store = SqliteProjectionStore::new(db.clone());
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("INSERT INTO es_documents (projection, id, doc, updated_at) VALUES ('p', 'bad', 'nope', 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for result in [
        store.get("p", "bad").await.map(|_| ()),
        store.query("p", &DocumentQuery::all()).await.map(|_| ()),
        store.query("p", &DocumentQuery::containing(json!({}))).await.map(|_| ()),
    ] {
        match result {
            Err(ProjectionError::Serde { projection, id, .. }) => {
                assert_eq!((projection.as_str(), id.as_str()), ("p", "bad"))
            }
            other => panic!("expected ProjectionError::Serde, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_the_newest_and_bad_ones_are_typed_errors() {
    let db = fresh_database().await;
    let store = SqliteEventStore::new(db.clone());
    let stream = StreamId::new("acc-1");
    let snapshot = |version: u64, balance: u64| Snapshot {
        stream_id: stream.clone(),
        aggregate_type: "account".to_owned(),
        stream_version: StreamVersion(version),
        schema_version: 1,
        state: json!({"balance": balance}),
        taken_at: Timestamp::now(),
    };
    store.save_snapshot(snapshot(5, 50)).await.unwrap();
    store.save_snapshot(snapshot(3, 30)).await.unwrap();
    assert_eq!(store.load_snapshot(&stream).await.unwrap().unwrap().state, json!({"balance": 50}));
    let newest = snapshot(8, 80);
    store.save_snapshot(newest.clone()).await.unwrap();
    assert_eq!(store.load_snapshot(&stream).await.unwrap(), Some(newest), "every field round-trips");

    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("UPDATE es_snapshots SET state = 'not json'").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    match store.load_snapshot(&stream).await {
        Err(StoreError::Corrupt { location, .. }) => assert!(location.contains("acc-1"), "{location}"),
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    }
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
    let db = fresh_database().await;
    let store = SqliteProjectionStore::new(db.clone());
    let leases = SqliteLeaseStore::new(db);
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_other_process_can_take_a_lease_over_during_a_fenced_commit() {
    let dir = TempDir::new();
    let path = dir.file("fence.db");
    let db = SqliteDatabase::open(&path).await.unwrap();
    db.migrate().await.unwrap();
    let store = SqliteProjectionStore::new(db.clone());
    let leases = SqliteLeaseStore::new(db);
    // Another process on the file, impatient for the write lock.
    let other =
        SqliteDatabase::open_with(&path, SqliteOptions::new().busy_timeout(Duration::from_millis(50)))
            .await
            .unwrap();
    let other_leases = SqliteLeaseStore::new(other);
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

    // The other process cannot release A's lease nor take it: the commit
    // holds the file's write lock.
    for attempt in [
        other_leases.release(&a).await.map(|()| None),
        other_leases.try_acquire("balances", "node-b", Duration::ZERO).await,
    ] {
        match attempt {
            Err(LeaseError::Backend(source)) => {
                let error = source.downcast_ref::<SqliteError>().expect("a SqliteError source");
                assert!(matches!(error, SqliteError::Locked { .. }), "{error:?}");
            }
            other => panic!("expected a Locked error during the fenced commit, got {other:?}"),
        }
    }
    gate_tx.send(()).unwrap();
    committing.await.unwrap().unwrap();
    assert_eq!(store.checkpoint("balances").await.unwrap(), Some(Checkpoint::at(GlobalPosition(10))));

    // Afterwards the other process releases it and B takes over; A's next
    // commit is refused.
    other_leases.release(&a).await.unwrap();
    let b = other_leases
        .try_acquire("balances", "node-b", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("released");
    assert!(b.token > a.token);
    let stale = store.commit("balances", fenced_work(&a, 20, 20)).await;
    assert!(matches!(stale, Err(ProjectionError::Fenced { .. })), "{stale:?}");
    assert_eq!(store.checkpoint("balances").await.unwrap(), Some(Checkpoint::at(GlobalPosition(10))));
}
