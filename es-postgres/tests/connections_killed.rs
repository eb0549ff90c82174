//! Connections killed under load: two nodes, each with a read side, on one
//! schema, while the server terminates every connection they hold, again
//! and again ([`es_core::conformance::faults`] checks what must hold of the
//! commands and of a document projection); then again during a rebuild.
//! A table projection with incremental SQL beside the documents must also
//! count every event once.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::tallies::{create_tally_table, read_models_equal, start_read_side, TallyRows};
use common::{database_url, drop_schema, fresh_schema, pool};
use es_core::conformance::faults;
use es_core::runtime::CommandPath;
use es_core::Es;
use es_postgres::{PgEventStore, DEFAULT_CALL_TIMEOUT};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// How long any bounded wait here may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(90);
/// The pause between two rounds of killing.
const KILL_EVERY: Duration = Duration::from_millis(40);
/// How long connections are killed for during the rebuild.
const REBUILD_CHAOS: Duration = Duration::from_millis(1500);

/// A pool whose connections carry `application_name`, so the killer finds
/// them (and only them).
async fn tagged_pool(application_name: &str, max: u32) -> PgPool {
    let options: PgConnectOptions = database_url().parse().unwrap();
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.application_name(application_name))
        .await
        .unwrap()
}

/// Terminates every backend of `application_name` every [`KILL_EVERY`]
/// while `running`; returns how many it terminated.
async fn kill_while(admin: PgPool, application_name: String, running: Arc<AtomicBool>) -> u64 {
    let mut killed = 0;
    while running.load(Ordering::SeqCst) {
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&application_name)
        .fetch_all(&admin)
        .await
        .unwrap();
        killed += ended.into_iter().filter(|ended| *ended).count() as u64;
        tokio::time::sleep(KILL_EVERY).await;
    }
    killed
}

/// Kills connections tagged `tag` until `running` is cleared; the handle
/// answers how many.
fn killer(admin: &PgPool, tag: &str) -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let running = Arc::new(AtomicBool::new(true));
    (Arc::clone(&running), tokio::spawn(kill_while(admin.clone(), tag.to_owned(), running)))
}

async fn stop(killer: (Arc<AtomicBool>, tokio::task::JoinHandle<u64>)) -> u64 {
    killer.0.store(false, Ordering::SeqCst);
    tokio::time::timeout(DEADLINE, killer.1).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_lose_no_command_store_none_twice_and_the_read_models_equal_the_fold() {
    let admin = pool(4).await;
    let schema = fresh_schema(&admin).await;
    create_tally_table(&admin, &schema).await;
    let tag = format!("es-chaos-{}", uuid::Uuid::now_v7().simple());
    let (pool_a, pool_b) = (tagged_pool(&tag, 8).await, tagged_pool(&tag, 8).await);
    // Node a keeps actors; node b reads each stream before each command.
    let node = |pool: &PgPool, path: CommandPath| {
        Es::builder()
            .event_store(PgEventStore::with_schema(pool.clone(), schema.clone()))
            .command_path(path)
            .build()
    };
    let (a, b) = (
        node(&pool_a, CommandPath::Actors).await.unwrap(),
        node(&pool_b, CommandPath::Reload).await.unwrap(),
    );
    let rows = TallyRows::default();
    let read_side = start_read_side(&pool_a, &schema, "a", rows.clone(), DEFAULT_CALL_TIMEOUT);
    // A second node's read side competes for the same leases while the
    // connections die (and with them, renewals): a batch committed under a
    // lease that moved on is refused by its fence.
    let other_read_side = start_read_side(&pool_b, &schema, "b", rows.clone(), DEFAULT_CALL_TIMEOUT);

    // Four tallies, a writer on each node for each, 50 commands per writer.
    let chaos = killer(&admin, &tag);
    let clean = PgEventStore::with_schema(admin.clone(), schema.clone());
    let report = faults::commands_ride_through_faults(&clean, &[a.clone(), b.clone()], 4, 50).await;
    let killed = stop(chaos).await;
    eprintln!(
        "killed {killed} connections; {} unknown outcomes, {} failures that stored nothing",
        report.unknown, report.nothing_stored
    );
    assert!(killed >= 10, "the test killed only {killed} connections");
    read_models_equal(&[&read_side, &other_read_side], &admin, &schema, &report).await;
    other_read_side.shutdown().await;

    // Rebuilt while connections are killed again: the pipelined catch-up
    // (a commit in flight, the next page read ahead) loses and repeats
    // nothing either.
    let resets = rows.0.load(Ordering::SeqCst);
    let chaos = killer(&admin, &tag);
    read_side.rebuild(faults::TOTALS).await.unwrap();
    read_side.rebuild("tally-rows").await.unwrap();
    tokio::time::sleep(REBUILD_CHAOS).await;
    let killed = stop(chaos).await;
    assert!(killed >= 5, "the rebuild's killer killed only {killed} connections");
    read_models_equal(&[&read_side], &admin, &schema, &report).await;
    assert!(rows.0.load(Ordering::SeqCst) > resets, "the table was reset and refilled");

    read_side.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    pool_a.close().await;
    pool_b.close().await;
    drop_schema(&admin, &schema).await;
}
