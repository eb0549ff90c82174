//! SQLite-specific behaviour of the event store: the gap-free global order
//! under concurrent writers (in one process and across handles, as other
//! processes would be), exact retries, append-only enforcement, bad rows,
//! locked, corrupt and unusable files, migrations and wake-ups.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{fresh_database, fresh_event_store, TempDir};
use es_core::error::{AppendError, StoreError};
use es_core::store::{Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_sqlite::{MigrateFailure, SqliteDatabase, SqliteError, SqliteEventStore, SqliteOptions};
use serde_json::json;
use sqlx::{Connection, SqliteConnection};

/// Bounds every wait of these tests: a store that never wakes a waiter
/// fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(60);

fn event(n: u64) -> NewEvent {
    NewEvent::new("test", "Tested", 1, json!({ "n": n }))
}

/// A connection of its own on the store's file, behind the store's back.
async fn raw(db: &SqliteDatabase) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", db.path().display())).await.unwrap()
}

/// Reads the whole global stream, in pages.
async fn read_everything(store: &SqliteEventStore) -> Vec<RecordedEvent> {
    let mut seen: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = seen.last().map_or(GlobalPosition::START, |e| e.global_position);
        let page = store.read_all(after, 1000).await.unwrap();
        if page.is_empty() {
            return seen;
        }
        seen.extend(page);
    }
}

/// `writers` tasks, each appending `appends` single events to its own
/// stream through `stores[w % stores.len()]`, and a reader tailing the
/// global stream through `reader` until it has seen them all: every event
/// once, positions exactly 1, 2, 3, ... in order.
async fn writers_and_a_tailing_reader(
    stores: &[SqliteEventStore],
    reader: &SqliteEventStore,
    writers: u64,
    appends: u64,
) {
    let total = writers * appends;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = stores[w as usize % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::new(format!("writer-{w}"));
            let mut expected = ExpectedVersion::NoStream;
            for i in 0..appends {
                let outcome = store.append(&stream, expected, vec![event(w * appends + i)]).await.unwrap();
                expected = ExpectedVersion::Exact(outcome.stream_version.unwrap());
            }
        }));
    }
    let tail = {
        let store = reader.clone();
        tokio::spawn(async move {
            let mut after = GlobalPosition::START;
            let mut seen = HashSet::new();
            while (seen.len() as u64) < total {
                let page = store.read_all(after, 500).await.unwrap();
                for e in &page {
                    assert_eq!(
                        e.global_position.get(),
                        after.get() + 1,
                        "positions are gap-free and in order"
                    );
                    assert!(seen.insert(e.event_id), "event {} delivered twice", e.event_id);
                    after = e.global_position;
                }
                if page.is_empty() {
                    store.wait_for_events(after, Duration::from_millis(20)).await;
                }
            }
            seen.len() as u64
        })
    };
    tokio::time::timeout(DEADLINE, async {
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(tail.await.unwrap(), total);
    })
    .await
    .expect("writers or the tailing reader did not finish");
    let all = read_everything(reader).await;
    assert_eq!(all.len() as u64, total, "nothing beyond what was appended");
    assert_eq!(reader.head_position().await.unwrap(), GlobalPosition(total));
    for w in 0..writers {
        let stream = StreamId::new(format!("writer-{w}"));
        assert_eq!(reader.stream_version(&stream).await.unwrap(), Some(StreamVersion(appends)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tailing_reader_sees_every_event_of_concurrent_writers_once_in_order() {
    let store = fresh_event_store().await;
    writers_and_a_tailing_reader(std::slice::from_ref(&store), &store, 16, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_separate_handles_share_one_gap_free_order() {
    // Each handle has its own writer connection and takes the file's write
    // lock like another process would; the reader on a third handle hears
    // of their appends only by polling.
    let dir = TempDir::new();
    let path = dir.file("shared.db");
    let options = SqliteOptions::new().poll_interval(Duration::from_millis(5));
    let a = SqliteDatabase::open_with(&path, options.clone()).await.unwrap();
    a.migrate().await.unwrap();
    let b = SqliteDatabase::open_with(&path, options.clone()).await.unwrap();
    let reader = SqliteDatabase::open_with(&path, options).await.unwrap();
    let stores = [SqliteEventStore::new(a), SqliteEventStore::new(b)];
    writers_and_a_tailing_reader(&stores, &SqliteEventStore::new(reader), 8, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_another_handle_is_woken_by_polling() {
    let dir = TempDir::new();
    let path = dir.file("poll.db");
    let options = SqliteOptions::new().poll_interval(Duration::from_millis(10));
    let writer = SqliteEventStore::new(SqliteDatabase::open_with(&path, options.clone()).await.unwrap());
    writer.migrate().await.unwrap();
    let reader = SqliteEventStore::new(SqliteDatabase::open_with(&path, options).await.unwrap());
    let waiter = tokio::spawn({
        let reader = reader.clone();
        // Far longer than the test may take: only seeing the event ends it.
        async move { reader.wait_for_events(GlobalPosition::START, Duration::from_secs(3600)).await }
    });
    writer.append(&StreamId::new("s"), ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the waiter never saw the other handle's append")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_with_every_reader_busy_still_ends_at_max_wait() {
    let db = common::fresh_database_with(SqliteOptions::new().readers(1)).await;
    let store = SqliteEventStore::new(db.clone());
    let held = db.readers().acquire().await.unwrap();
    tokio::time::timeout(DEADLINE, store.wait_for_events(GlobalPosition::START, Duration::from_millis(50)))
        .await
        .expect("wait_for_events waited for a reader connection past its max_wait");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_zero_means_no_stream() {
    let store = fresh_event_store().await;
    let stream = StreamId::new("zero");
    let first =
        store.append(&stream, ExpectedVersion::Exact(StreamVersion(0)), vec![event(1)]).await.unwrap();
    assert_eq!(first.stream_version, Some(StreamVersion(1)));
    let again = store.append(&stream, ExpectedVersion::Exact(StreamVersion(0)), vec![event(2)]).await;
    match again {
        Err(AppendError::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, Some(StreamVersion(1))),
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_retry_returns_the_original_placement_and_any_other_reuse_is_refused() {
    let store = fresh_event_store().await;
    let stream = StreamId::new("retry");
    let batch = vec![event(1), event(2)];
    let first = store.append(&stream, ExpectedVersion::NoStream, batch.clone()).await.unwrap();
    store.append(&stream, ExpectedVersion::Exact(StreamVersion(2)), vec![event(3)]).await.unwrap();
    // The stream moved on: the retry's expectation no longer holds, but it
    // admitted the original placement.
    let again = store.append(&stream, ExpectedVersion::NoStream, batch.clone()).await.unwrap();
    assert_eq!(again.committed, first.committed);
    assert_eq!(again.stream_version, Some(StreamVersion(3)));
    // With Any the expectation holds and the unique index finds the ids.
    let any = store.append(&stream, ExpectedVersion::Any, batch.clone()).await.unwrap();
    assert_eq!(any.committed, first.committed);

    let mut changed = batch.clone();
    changed[1].payload = json!({ "n": 99 }).into();
    let refused = store.append(&stream, ExpectedVersion::Any, changed).await;
    match refused {
        Err(AppendError::DuplicateEventId { event_id, stream: s }) => {
            assert_eq!(event_id, batch[0].event_id, "names the batch's first stored id");
            assert_eq!(s, stream);
        }
        other => panic!("expected DuplicateEventId, got {other:?}"),
    }
    let elsewhere = store.append(&StreamId::new("other"), ExpectedVersion::Any, vec![batch[1].clone()]).await;
    assert!(matches!(elsewhere, Err(AppendError::DuplicateEventId { .. })), "{elsewhere:?}");
    // A batch whose second event reuses an id stores nothing of the first.
    let mixed = store.append(&stream, ExpectedVersion::Any, vec![event(4), batch[0].clone()]).await;
    assert!(matches!(mixed, Err(AppendError::DuplicateEventId { .. })), "{mixed:?}");
    assert_eq!(store.stream_version(&stream).await.unwrap(), Some(StreamVersion(3)));
    assert_eq!(store.stream_version(&StreamId::new("other")).await.unwrap(), None);
    assert_eq!(read_everything(&store).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_update_and_delete_unless_the_switch_is_on() {
    let store = fresh_event_store().await;
    let stream = StreamId::new("immutable");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
    let mut conn = raw(store.database()).await;
    for sql in [
        "UPDATE es_events SET payload = '{}'",
        "DELETE FROM es_events",
        "DELETE FROM es_events WHERE stream_version = 2",
    ] {
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap_err();
        let message = err.as_database_error().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::raw_sql("UPDATE es_settings SET allow_deletion = 1").execute(&mut *tx).await.unwrap();
    let deleted =
        sqlx::raw_sql("DELETE FROM es_events WHERE stream_version = 2").execute(&mut *tx).await.unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    sqlx::raw_sql("UPDATE es_settings SET allow_deletion = 0").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.stream_version(&stream).await.unwrap(), Some(StreamVersion(1)));

    // The switch is off again; a deleted position is never handed out twice.
    let refused = sqlx::raw_sql("DELETE FROM es_events").execute(&mut conn).await;
    assert!(refused.is_err());
    let next = store.append(&StreamId::new("next"), ExpectedVersion::NoStream, vec![event(3)]).await.unwrap();
    assert_eq!(next.last_position(), Some(GlobalPosition(3)));
    conn.close().await.unwrap();
}

/// Inserts a row by hand, bypassing the table's checks.
async fn insert_raw(
    conn: &mut SqliteConnection,
    stream: &str,
    version: i64,
    schema_version: i64,
    payload: &str,
    metadata: &str,
) {
    sqlx::query(
        "INSERT INTO es_events (event_id, stream_id, stream_version, aggregate_type, event_type, schema_version,
                                payload, metadata, recorded_at)
         VALUES (randomblob(16), ?1, ?2, 'test', 'Tested', ?3, ?4, ?5, 0)",
    )
    .bind(stream)
    .bind(version)
    .bind(schema_version)
    .bind(payload)
    .bind(metadata)
    .execute(&mut *conn)
    .await
    .unwrap();
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, at: u64, names: &[&str]) {
    match result {
        Err(StoreError::Corrupt { location, position, detail }) => {
            for name in names {
                assert!(location.contains(name), "location `{location}` should name {name}");
            }
            assert_eq!(position, Some(GlobalPosition(at)), "{location}");
            assert!(!detail.is_empty());
        }
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_give_typed_errors_naming_the_row_and_stay_stored() {
    let store = fresh_event_store().await;
    let good = store.append(&StreamId::new("good"), ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    let mut conn = raw(store.database()).await;
    sqlx::raw_sql("PRAGMA ignore_check_constraints = ON").execute(&mut conn).await.unwrap();
    insert_raw(&mut conn, "zero", 0, 1, r#"{"n": 1}"#, "{}").await;
    insert_raw(&mut conn, "text", 1, 1, "not json", "{}").await;
    insert_raw(&mut conn, "meta", 1, 1, r#"{"n": 1}"#, r#"{"correlation_id": "not-a-uuid"}"#).await;
    insert_raw(&mut conn, "schema", 1, 1 << 40, r#"{"n": 1}"#, "{}").await;

    let zero =
        store.read_stream(&StreamId::new("zero"), StreamVersion(u64::MAX), Direction::Backward, 10).await;
    assert_corrupt(zero, 2, &["zero", "version 0", "global position 2"]);
    let text = store.read_stream(&StreamId::new("text"), StreamVersion(1), Direction::Forward, 10).await;
    assert_corrupt(text, 3, &["text", "version 1", "global position 3"]);
    let replay = store.read_replay(&StreamId::new("text"), StreamVersion(1), 10).await;
    assert_corrupt(replay, 3, &["text", "version 1", "global position 3"]);
    let meta = store.read_stream(&StreamId::new("meta"), StreamVersion(1), Direction::Forward, 10).await;
    assert_corrupt(meta, 4, &["meta", "version 1", "global position 4"]);
    let schema = store.read_stream(&StreamId::new("schema"), StreamVersion(1), Direction::Forward, 10).await;
    assert_corrupt(schema, 5, &["schema", "version 1", "global position 5"]);

    // The global stream delivers the events before a bad row, then fails
    // on a read that starts at it, naming its position: a reader can stop
    // there, or skip it deliberately.
    let before = store.read_all(GlobalPosition::START, 10).await.unwrap();
    assert_eq!(
        before.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        vec![good.last_position().unwrap()]
    );
    assert_corrupt(store.read_all(GlobalPosition(1), 10).await, 2, &["zero", "global position 2"]);
    assert_corrupt(store.read_all(GlobalPosition(2), 10).await, 3, &["text", "global position 3"]);

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM es_events").fetch_one(&mut conn).await.unwrap();
    assert_eq!(count, 5, "nothing was dropped");
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_cannot_get_the_lock_is_a_typed_error_and_writes_nothing() {
    let db = common::fresh_database_with(SqliteOptions::new().busy_timeout(Duration::from_millis(100))).await;
    let store = SqliteEventStore::new(db.clone());
    // Another process (here: a connection of its own) holds the write lock.
    let mut other = raw(&db).await;
    let held = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let stream = StreamId::new("locked");
    let refused = store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await;
    match &refused {
        Err(AppendError::Backend { stream: s, source }) => {
            assert_eq!(s, &stream);
            let error = source.downcast_ref::<SqliteError>().expect("a SqliteError source");
            assert!(matches!(error, SqliteError::Locked { .. }), "{error:?}");
            assert_eq!(error.path(), db.path());
            let message = error.to_string();
            assert!(message.contains(&db.path().display().to_string()), "{message}");
            assert!(message.contains("nothing was written"), "{message}");
        }
        other => panic!("expected a Locked backend error, got {other:?}"),
    }
    held.rollback().await.unwrap();
    assert_eq!(store.stream_version(&stream).await.unwrap(), None, "nothing was written");
    store.append(&stream, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_no_database_is_a_typed_error_naming_it() {
    let dir = TempDir::new();
    let path = dir.file("garbage.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    match SqliteDatabase::open(&path).await {
        Err(error @ SqliteError::Corrupt { .. }) => {
            assert_eq!(error.path(), path);
            assert!(error.to_string().contains("garbage.db"), "{error}");
        }
        other => panic!("expected SqliteError::Corrupt, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5a_u8; 8192], "the file was left as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_cannot_be_opened_is_a_typed_error_naming_it() {
    let dir = TempDir::new();
    for path in [dir.path().to_owned(), dir.file("missing-directory").join("app.db")] {
        match SqliteDatabase::open(&path).await {
            Err(error @ SqliteError::Unusable { .. }) => {
                assert_eq!(error.path(), path);
                assert!(error.to_string().contains(&path.display().to_string()), "{error}");
            }
            other => panic!("{}: expected SqliteError::Unusable, got {other:?}", path.display()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_damaged_while_open_gives_typed_errors_not_panics() {
    let db = fresh_database().await;
    let store = SqliteEventStore::new(db.clone());
    let stream = StreamId::new("s");
    store.append(&stream, ExpectedVersion::NoStream, (0..200).map(event).collect()).await.unwrap();
    db.close().await;
    // Closing checkpointed the WAL into the file. Overwrite every page
    // after the first with garbage.
    let mut bytes = std::fs::read(db.path()).unwrap();
    for byte in bytes.iter_mut().skip(4096) {
        *byte = 0xa5;
    }
    std::fs::write(db.path(), &bytes).unwrap();
    // The first page (the header) is intact, so the file opens.
    let reopened = SqliteDatabase::open(db.path()).await.unwrap();
    let store = SqliteEventStore::new(reopened.clone());
    let read = store.read_stream(&stream, StreamVersion(1), Direction::Forward, 1000).await;
    match read {
        Err(StoreError::Backend(source)) => {
            let error = source.downcast_ref::<SqliteError>().expect("a SqliteError source");
            assert!(matches!(error, SqliteError::Corrupt { .. }), "{error:?}");
            assert_eq!(error.path(), db.path());
        }
        other => panic!("expected a Corrupt backend error, got {other:?}"),
    }
    reopened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_from_two_handles_at_once_is_safe_and_idempotent() {
    let dir = TempDir::new();
    let path = dir.file("migrate.db");
    // Two processes start at once on a file that does not exist yet: both
    // create it, switch it to WAL and migrate it.
    let (a, b) = tokio::join!(SqliteDatabase::open(&path), SqliteDatabase::open(&path));
    let (a, b) = (a.unwrap(), b.unwrap());
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    a.migrate().await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM es_schema_migrations").fetch_one(a.readers()).await.unwrap();
    assert_eq!(applied, 1);
    let store = SqliteEventStore::new(b);
    store.append(&StreamId::new("s"), ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_migrated_by_a_newer_version_is_refused_by_name() {
    let db = fresh_database().await;
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query(
        "INSERT INTO es_schema_migrations (version, description, applied_at) VALUES (99, 'future', 0)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let error = db.migrate().await.unwrap_err();
    assert_eq!(error.path, db.path());
    assert!(matches!(error.source, MigrateFailure::NewerFile { found: 99, known: 1 }), "{error:?}");
}
