//! Rows the store did not write (hand edits, old bugs): typed errors naming
//! the row, nothing dropped or rewritten, and readers of the global stream
//! stopped at the row, never before it.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{drop_schema, fresh_schema, pool};
use es_core::error::StoreError;
use es_core::store::{Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent};
use es_core::{EventId, GlobalPosition, StreamId, StreamVersion};
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

/// Inserts a row by hand, with a valid position for its transaction.
async fn insert_raw(pool: &PgPool, schema: &str, stream: &str, version: i64, payload: &str, metadata: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.events (global_position, event_id, stream_id, stream_version, aggregate_type,
             event_type, schema_version, payload, metadata)
         VALUES (pg_current_xact_id()::text::bigint << 20, $1, $2, $3, 'test', 'Tested', 1,
                 $4::jsonb, $5::jsonb)"
    )))
    .bind(EventId::new().as_uuid())
    .bind(stream)
    .bind(version)
    .bind(payload)
    .bind(metadata)
    .execute(pool)
    .await
    .unwrap();
}

async fn stored_count(pool: &PgPool, schema: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {schema}.events")))
        .fetch_one(pool)
        .await
        .unwrap()
}

fn assert_corrupt(result: Result<Vec<RecordedEvent>, StoreError>, names: &[&str]) {
    match result {
        Err(StoreError::Corrupt { location, detail, .. }) => {
            for name in names {
                assert!(location.contains(name), "location `{location}` should name {name}");
            }
            assert!(!detail.is_empty());
        }
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_give_typed_errors_naming_the_row_and_stay_stored() {
    let (store, pool) = store(3).await;
    let schema = store.schema().as_str().to_owned();
    insert_raw(&pool, &schema, "negative", -3, r#"{"n": 1}"#, "{}").await;
    insert_raw(&pool, &schema, "huge", 1, r#"{"n": 1e400}"#, "{}").await;
    insert_raw(&pool, &schema, "meta", 1, r#"{"n": 1}"#, r#"{"correlation_id": "not-a-uuid"}"#).await;

    let negative =
        store.read_stream(&StreamId::new("negative"), StreamVersion(u64::MAX), Direction::Backward, 10).await;
    assert_corrupt(negative, &["negative", "-3"]);
    // A payload is handed back as stored text; one that does not fit what
    // reads it is that reader's typed error, and the row is kept as it is.
    let huge =
        store.read_stream(&StreamId::new("huge"), StreamVersion(1), Direction::Forward, 10).await.unwrap();
    let number_out_of_range = huge[0].payload.to_value().unwrap_err();
    assert!(number_out_of_range.to_string().contains("number out of range"), "{number_out_of_range}");
    let meta = store.read_stream(&StreamId::new("meta"), StreamVersion(1), Direction::Forward, 10).await;
    assert_corrupt(meta, &["meta", "version 1"]);
    let all = store.read_all(GlobalPosition::START, 10).await;
    assert!(matches!(all, Err(StoreError::Corrupt { .. })), "{all:?}");
    assert_eq!(stored_count(&pool, &schema).await, 3, "nothing was dropped");
    drop_schema(&pool, store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_poison_row_stops_read_all_at_the_row() {
    // (what, stream version, schema version, metadata): rows the table
    // accepts but no envelope can be made of.
    let kinds = [
        ("stream version 0", 0, 1, "{}"),
        ("a negative stream version", -3, 1, "{}"),
        ("schema version 2^40", 1, 1_i64 << 40, "{}"),
        ("metadata that is no Metadata", 1, 1, r#"{"correlation_id": "not-a-uuid"}"#),
    ];
    for (what, version, schema_version, metadata) in kinds {
        let (store, pool) = store(3).await;
        let schema = store.schema().as_str().to_owned();
        let before =
            store.append(&StreamId::new("a"), ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
        let position: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.events (global_position, event_id, stream_id, stream_version, aggregate_type,
                 event_type, schema_version, payload, metadata)
             VALUES (pg_current_xact_id()::text::bigint << 20, $1, 'poison', $2, 'test', 'Tested', $3,
                     '{{}}', $4::jsonb)
             RETURNING global_position"
        )))
        .bind(EventId::new().as_uuid())
        .bind(version)
        .bind(schema_version)
        .bind(metadata)
        .fetch_one(&pool)
        .await
        .unwrap();
        let position = GlobalPosition(u64::try_from(position).unwrap());
        let after = store.append(&StreamId::new("a"), ExpectedVersion::Any, vec![event(2)]).await.unwrap();
        read_until_head(&store, after.last_position().unwrap()).await;

        let first = store.read_all(GlobalPosition::START, 10).await.unwrap();
        assert_eq!(
            first.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            vec![before.committed[0].event_id],
            "{what}"
        );
        match store.read_all(before.last_position().unwrap(), 10).await {
            Err(StoreError::Corrupt { position: at, location, .. }) => {
                assert_eq!(at, Some(position), "{what}");
                assert!(
                    location.contains("`poison`") && location.contains(&position.to_string()),
                    "{what}: {location}"
                );
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        let rest = store.read_all(position, 10).await.unwrap();
        assert_eq!(
            rest.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            vec![after.committed[0].event_id],
            "{what}"
        );
        assert_eq!(stored_count(&pool, &schema).await, 3, "{what}: nothing was dropped");
        drop_schema(&pool, store.schema()).await;
    }
}

/// Waits until the visible head reaches `position`.
async fn read_until_head(store: &PgEventStore, position: GlobalPosition) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let head = store.head_position().await.unwrap();
            if head >= position {
                return;
            }
            store.wait_for_events(head, Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the head never reached the appended events");
}
