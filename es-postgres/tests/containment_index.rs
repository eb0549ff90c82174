//! Containment indexes per projection: documents carry no content index
//! unless their projection asks for one, and a containment query answers
//! the same either way (and uses the index once it is there).

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{drop_schema, fresh_schema, pool};
use es_core::error::ProjectionError;
use es_core::store::{DocumentQuery, ProjectionStore, UnitOfWork};
use es_postgres::PgProjectionStore;
use serde_json::json;
use sqlx::PgPool;

/// The definitions of the indexes over the schema's documents table.
async fn document_indexes(pool: &PgPool, store: &PgProjectionStore) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'documents' ORDER BY indexname",
    )
    .bind(store.schema().as_str())
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn fill(store: &PgProjectionStore, projection: &str) {
    let mut work = UnitOfWork::new();
    for i in 0..200 {
        work.put(format!("acc-{i:03}"), json!({ "closed": i % 50 == 0, "n": i }));
    }
    store.commit(projection, work).await.unwrap();
}

async fn closed(store: &PgProjectionStore, projection: &str) -> Vec<String> {
    let query = DocumentQuery::containing(json!({ "closed": true }));
    store.query(projection, &query).await.unwrap().into_iter().map(|(id, _)| id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_that_asks_gets_a_partial_index_and_the_same_answers() {
    let pool = pool(4).await;
    let schema = fresh_schema(&pool).await;
    let store = PgProjectionStore::with_schema(pool.clone(), schema.clone());
    store.migrate().await.unwrap();
    // Only the primary key: writes do not maintain a content index.
    let before = document_indexes(&pool, &store).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].contains("UNIQUE") && !before[0].contains("gin"), "{before:?}");

    let name = "o'brien \"accounts\"; DROP TABLE x";
    fill(&store, name).await;
    fill(&store, "other").await;
    let unindexed = closed(&store, name).await;
    assert_eq!(unindexed, ["acc-000", "acc-050", "acc-100", "acc-150"]);

    // Several nodes asking at once, and again later: one index.
    let (a, b) = tokio::join!(store.index_containment(name), store.index_containment(name));
    a.unwrap();
    b.unwrap();
    store.index_containment(name).await.unwrap();
    let after = document_indexes(&pool, &store).await;
    assert_eq!(after.len(), 2, "{after:?}");
    let partial = after.iter().find(|def| def.contains("gin")).unwrap();
    assert!(partial.contains("jsonb_path_ops") && partial.contains("o''brien"), "{partial}");

    assert_eq!(closed(&store, name).await, unindexed);
    assert_eq!(store.count(name, Some(&json!({ "closed": true }))).await.unwrap(), 4);
    assert_eq!(store.count("other", Some(&json!({ "closed": true }))).await.unwrap(), 4);

    // The query is planned for the projection's name: the index serves it.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE \"{}\".documents", schema.as_str())))
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.unwrap();
    sqlx::query("SET LOCAL enable_indexscan = off").execute(&mut *tx).await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN SELECT id FROM \"{}\".documents WHERE projection = $1 AND doc @> $2::jsonb",
        schema.as_str()
    )))
    .bind(name)
    .bind(json!({ "closed": true }))
    .persistent(false)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    drop(tx);
    assert!(plan.iter().any(|line| line.contains("documents_contains_")), "{plan:#?}");
    drop_schema(&pool, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_postgres_cannot_store_is_refused_and_changes_nothing() {
    let pool = pool(2).await;
    let schema = fresh_schema(&pool).await;
    let store = PgProjectionStore::with_schema(pool.clone(), schema.clone());
    store.migrate().await.unwrap();
    let error = store.index_containment("bad\0name").await.unwrap_err();
    assert!(matches!(&error, ProjectionError::Backend(e) if e.to_string().contains("NUL")), "{error}");
    assert_eq!(document_indexes(&pool, &store).await.len(), 1);
    drop_schema(&pool, &schema).await;
}
