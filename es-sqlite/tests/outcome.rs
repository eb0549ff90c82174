//! What an append says when its commit fails: SQLite runs in the process,
//! so the commit is the one place an outcome can be in doubt. A real I/O
//! error at the commit is made by running the append in a child process
//! whose file size limit (`ulimit -f`) stops the write-ahead log from
//! growing: the commit's writes fail with `EFBIG`, which SQLite reports as
//! an I/O error of the commit. The append must then say its outcome is
//! unknown, never that nothing was written, and the same events appended
//! again (same ids) must end up stored once.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::TempDir;
use es_core::error::AppendError;
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{EventId, GlobalPosition, StreamId, StreamVersion};
use es_sqlite::{SqliteDatabase, SqliteEventStore};
use serde_json::json;

/// Set in the child process: the database file to append to.
const CHILD_FILE: &str = "ES_SQLITE_OUTCOME_CHILD_FILE";
/// How the child reports its append's result on stdout.
const RESULT: &str = "append result: ";

/// The batch the child appends and the parent appends again: the same ids
/// and content every time. 40 events of 20 KB (800 KB of pages in all)
/// fit SQLite's page cache (2 MB by default), so nothing is written before
/// the commit, and overflow the child's 400 KB file size limit there.
fn batch() -> Vec<NewEvent> {
    let filler = "x".repeat(20_000);
    (0..40u128)
        .map(|i| {
            let mut event = NewEvent::new("test", "Tested", 1, json!({ "n": i, "filler": filler }));
            event.event_id = EventId(uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + i));
            event
        })
        .collect()
}

fn stream() -> StreamId {
    StreamId::new("ledger-1")
}

/// The child's part: append the batch to the file and report the result.
async fn child(path: &str) {
    let store = SqliteEventStore::new(SqliteDatabase::open(path).await.unwrap());
    let result = store.append(&stream(), ExpectedVersion::NoStream, batch()).await;
    let shown = match &result {
        Ok(_) => "Ok".to_owned(),
        Err(AppendError::OutcomeUnknown { .. }) => format!("OutcomeUnknown: {}", source_chain(&result)),
        Err(AppendError::Backend { .. }) => format!("Backend: {}", source_chain(&result)),
        Err(other) => format!("{other:?}"),
    };
    println!("{RESULT}{shown}");
}

fn source_chain<T>(result: &Result<T, AppendError>) -> String {
    let mut text = String::new();
    let mut next: Option<&dyn std::error::Error> = result.as_ref().err().map(|e| e as _);
    while let Some(error) = next {
        text.push_str(&error.to_string());
        text.push_str(" / ");
        next = error.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_error_at_the_commit_is_an_unknown_outcome_and_the_retry_stores_once() {
    if let Ok(path) = std::env::var(CHILD_FILE) {
        return child(&path).await;
    }
    let dir = TempDir::new();
    let path = dir.file("ledger.db");
    let db = SqliteDatabase::open(&path).await.unwrap();
    db.migrate().await.unwrap();
    db.close().await;

    // The child: this test binary, running only this test, with SIGXFSZ
    // ignored (so a write past the limit fails instead of killing it) and
    // files limited to 400 KB (`ulimit -f` counts 1024-byte blocks).
    let output = Command::new("bash")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 400; exec "$@""#)
        .arg("child")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "an_io_error_at_the_commit_is_an_unknown_outcome_and_the_retry_stores_once"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_FILE, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reported =
        stdout.lines().find_map(|line| line.split_once(RESULT).map(|(_, result)| result)).unwrap_or_else(
            || panic!("the child reported no result: {stdout} {}", String::from_utf8_lossy(&output.stderr)),
        );
    assert!(
        reported.starts_with("OutcomeUnknown"),
        "an I/O error at the commit must be an unknown outcome: {reported}"
    );
    assert!(reported.contains("ledger.db"), "the error names the file: {reported}");

    // Without the limit, the same events appended again are stored once,
    // whatever the failed commit left in the write-ahead log.
    let store = SqliteEventStore::new(SqliteDatabase::open(&path).await.unwrap());
    let events = batch();
    let retried = store.append(&stream(), ExpectedVersion::NoStream, events.clone()).await.unwrap();
    assert_eq!(retried.stream_version, Some(StreamVersion(40)));
    let stored = store.read_all(GlobalPosition::START, 100).await.unwrap();
    assert_eq!(stored.len(), 40, "stored once");
    assert!(stored.iter().zip(&events).all(|(s, e)| s.event_id == e.event_id));
    store.database().close().await;
}
