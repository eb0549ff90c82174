//! Runs the bank demo binary and checks what it reports.

// Helpers shared by the tests: a failure must fail the test at once.
#![allow(clippy::expect_used)]

use std::process::Command;

/// The store a demo run uses.
enum Store<'a> {
    Memory,
    Sqlite(&'a std::path::Path),
    Postgres { url: &'a str, schema: &'a str },
}

fn run_demo(store: Store<'_>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bank"));
    command.env_remove("DATABASE_URL").env_remove("BANK_STORE").env_remove("BANK_DB");
    match store {
        Store::Memory => command.arg("--memory"),
        Store::Sqlite(path) => command.arg("--db").arg(path),
        Store::Postgres { url, schema } => command.env("DATABASE_URL", url).env("BANK_SCHEMA", schema),
    };
    let output = command.output().expect("the bank binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    stdout
}

// One run stores 7 account events, 11 for the two transfers and 3 from the
// two nodes, on two
// accounts (the transfer to a missing account opens none).
const ONE_RUN: &str = "21 events and 2 accounts stored by earlier runs";

#[test]
fn on_postgres_the_state_survives_a_restart() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("bank_test_{}", uuid::Uuid::new_v4().simple());
    let first = run_demo(Store::Postgres { url: &url, schema: &schema });
    let opening = format!("bank demo on Postgres (schema `{schema}`): ");
    assert!(first.starts_with(&format!("{opening}0 events and 0 accounts")), "{first}");
    let second = run_demo(Store::Postgres { url: &url, schema: &schema });
    assert!(second.starts_with(&format!("{opening}{ONE_RUN}")), "{second}");
    assert!(second.contains("balance $25.00, verified true, closed false, 9 transactions"), "{second}");
    drop_schema(&url, &schema);
}

#[test]
fn by_default_the_demo_keeps_its_data_in_an_sqlite_file_that_a_second_run_finds() {
    let dir = std::env::temp_dir().join(format!("bank-demo-{}", uuid::Uuid::new_v4().simple()));
    let path = dir.join("nested").join("bank.db");
    let first = run_demo(Store::Sqlite(&path));
    let opening = format!("bank demo on SQLite file {}: ", path.display());
    assert!(first.starts_with(&format!("{opening}0 events and 0 accounts")), "{first}");
    let second = run_demo(Store::Sqlite(&path));
    assert!(second.starts_with(&format!("{opening}{ONE_RUN}")), "{second}");
    assert!(second.contains("balance $25.00, verified true, closed false, 9 transactions"), "{second}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes the test's schema with psql, when the machine has it.
fn drop_schema(url: &str, schema: &str) {
    let _ = Command::new("psql")
        .arg(url)
        .args(["-q", "-c", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
        .output();
}

#[test]
fn the_demo_reports_balances_refusals_and_time_travel() {
    let stdout = run_demo(Store::Memory);
    assert!(stdout.starts_with("bank demo on the in-memory store"), "{stdout}");
    let has = |needle: &str| stdout.lines().any(|line| line.contains(needle));
    // Ada: 100 + 250 - 75; Bob: 10, never verified.
    assert!(has("balance $275.00, verified true, closed false"), "final state of Ada missing:\n{stdout}");
    assert!(has("balance $10.00, verified false, closed false"), "final state of Bob missing:\n{stdout}");
    assert!(
        has("refused: insufficient funds: balance 27500, requested 100000"),
        "refusal missing:\n{stdout}"
    );
    assert!(has("refused: account is not verified yet"), "unverified refusal missing:\n{stdout}");
    assert!(has("invalid: command `Deposit` is invalid"), "validation refusal missing:\n{stdout}");
    // Before the withdrawal Ada had 350.
    assert!(has("balance $350.00"), "time travel missing:\n{stdout}");
    // Transfers run as a process manager: one completes, one is refunded.
    assert!(stdout.lines().any(|l| l.starts_with("transfer t1-") && l.ends_with("-> Completed")), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("transfer t2-") && l.ends_with("-> Refunded: account does not exist")),
        "{stdout}"
    );
    // The projections saw it all: 275 - 50 (transfer) - 10 + 10 (refunded),
    // then the two nodes' + 0.01 + 50 - 250.01.
    assert!(has("balance $25.00, verified true, closed false, 9 transactions"), "summary of Ada:\n{stdout}");
    assert!(has("balance $60.00, verified false, closed false, 2 transactions"), "summary of Bob:\n{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("mail-outbox: ")).count(), 2, "{stdout}");
    // The event log lists every event of both accounts: 5 for Ada, 2 for Bob.
    let logged = stdout.lines().filter(|l| l.starts_with('#')).count();
    assert_eq!(logged, 7, "event log:\n{stdout}");
}
