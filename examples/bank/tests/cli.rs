//! `bank inspect` on the SQLite file a demo run left: readable tables, and
//! a rebuild that runs to its end.

// A failure must fail the test at once.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use bank::{AccountSummaries, TransactionHistories, TransferProcess};

fn bank(db: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bank"))
        .env_remove("DATABASE_URL")
        .env_remove("BANK_STORE")
        .env("RUST_BACKTRACE", "0")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("the bank binary runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[test]
fn inspect_lists_streams_events_and_subscriptions_and_rebuilds_a_projection() {
    let dir = std::env::temp_dir().join(format!("bank-cli-{}", uuid::Uuid::new_v4().simple()));
    let db = dir.join("bank.db");
    let (ok, demo, stderr) = bank(&db, &[]);
    assert!(ok, "{demo}{stderr}");

    let (ok, streams, stderr) = bank(&db, &["inspect", "streams", "account-"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = streams.lines().collect();
    assert!(lines[0].starts_with("stream") && lines[0].ends_with("version"), "{streams}");
    assert!(lines[1].starts_with("---"), "{streams}");
    assert_eq!(lines.len(), 4, "two accounts:\n{streams}");
    let ada = lines[2].split_whitespace().next().expect("a stream");
    assert!(ada.starts_with("account-ada-") && lines[2].ends_with(" 11"), "{streams}");

    let (ok, events, stderr) = bank(&db, &["inspect", "events", ada]);
    assert!(ok, "{stderr}");
    assert_eq!(events.lines().filter(|l| l.contains("MoneyDeposited")).count(), 5, "{events}");
    assert!(events.contains("\"reference\":\"rent\"") && events.contains("causation_id"), "{events}");

    let (ok, subscriptions, stderr) = bank(&db, &["inspect", "subscriptions"]);
    assert!(ok, "{stderr}");
    for name in [AccountSummaries::NAME, TransactionHistories::NAME, TransferProcess::NAME, "welcome-mail"] {
        let line = subscriptions.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        assert!(line.contains("CaughtUp") && line.contains("21 of 21"), "{name}:\n{subscriptions}");
    }

    let (ok, rebuilt, stderr) = bank(&db, &["inspect", "rebuild", AccountSummaries::NAME]);
    assert!(ok, "{stderr}");
    assert_eq!(rebuilt.trim(), "rebuilt account-summary: replayed the global stream up to position 21");
    let (ok, _, stderr) = bank(&db, &["inspect", "rebuild", "nope"]);
    assert!(!ok && stderr.contains("no subscription `nope`"), "{stderr}");
    let (ok, _, stderr) = bank(&db, &["inspect", "events", "account-nobody"]);
    assert!(!ok && stderr.contains("no stream `account-nobody`"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
