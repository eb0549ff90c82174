//! A node cut off from the server again and again, without its connections
//! closing (a network partition that comes and goes): its calls fail at
//! its call timeout, and what it sent reaches the server late, after the
//! partition heals, when the node has given up on it. Two nodes with a
//! read side each; [`es_core::conformance::faults`] checks that no command
//! is lost or stored twice and that the document projection equals the
//! fold; a table projection with incremental SQL must count each event
//! once (a late commit of a lease that moved on is refused by its fence).

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::proxy::Proxy;
use common::tallies::{create_tally_table, read_models_equal, start_read_side, TallyRows};
use common::{drop_schema, fresh_schema, pool};
use es_core::conformance::faults::{self, Add};
use es_core::error::ExecuteError;
use es_core::readside::SubscriptionState;
use es_core::runtime::CommandPath;
use es_core::Es;
use es_postgres::{PgEventStore, DEFAULT_CALL_TIMEOUT};

/// The call timeout of the partitioned node's stores.
const CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// How long each partition lasts: past the call timeout, so calls give up.
const PARTITIONED_FOR: Duration = Duration::from_millis(300);
/// How long the network works between two partitions.
const HEALED_FOR: Duration = Duration::from_millis(100);

/// Partitions `proxy` and heals it, again and again, while `running`;
/// returns how many partitions it made.
async fn partition_while(proxy: Arc<Proxy>, running: Arc<AtomicBool>) -> u64 {
    let mut partitions = 0;
    while running.load(Ordering::SeqCst) {
        proxy.partition();
        partitions += 1;
        tokio::time::sleep(PARTITIONED_FOR).await;
        proxy.heal();
        tokio::time::sleep(HEALED_FOR).await;
    }
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_partitioned_again_and_again_loses_no_command_stores_none_twice_and_the_read_models_equal_the_fold(
) {
    let admin = pool(4).await;
    let schema = fresh_schema(&admin).await;
    create_tally_table(&admin, &schema).await;
    let proxy = Arc::new(Proxy::to_test_server().await);
    // Node a reaches the server through the proxy; node b directly.
    let (pool_a, pool_b) = (proxy.pool(8, Duration::from_secs(10)).await, pool(8).await);
    let events_a = PgEventStore::with_schema(pool_a.clone(), schema.clone());
    events_a.set_call_timeout(CALL_TIMEOUT);
    let a = Es::builder().event_store(events_a).build().await.unwrap();
    let b = Es::builder()
        .event_store(PgEventStore::with_schema(pool_b.clone(), schema.clone()))
        .command_path(CommandPath::Reload)
        .build()
        .await
        .unwrap();
    let rows = TallyRows::default();
    let read_side_a = start_read_side(&pool_a, &schema, "a", rows.clone(), CALL_TIMEOUT);
    let read_side_b = start_read_side(&pool_b, &schema, "b", rows.clone(), DEFAULT_CALL_TIMEOUT);

    let running = Arc::new(AtomicBool::new(true));
    let partitioner = tokio::spawn(partition_while(Arc::clone(&proxy), Arc::clone(&running)));
    let clean = PgEventStore::with_schema(admin.clone(), schema.clone());
    let report = faults::commands_ride_through_faults(&clean, &[a.clone(), b.clone()], 4, 200).await;
    running.store(false, Ordering::SeqCst);
    let partitions = tokio::time::timeout(Duration::from_secs(10), partitioner).await.unwrap().unwrap();
    eprintln!(
        "{partitions} partitions; {} unknown outcomes, {} failures that stored nothing",
        report.unknown, report.nothing_stored
    );
    assert!(partitions >= 2, "the test partitioned node a only {partitions} times");
    assert!(report.unknown + report.nothing_stored > 0, "no command of node a met the partition");
    read_models_equal(&[&read_side_a, &read_side_b], &admin, &schema, &report).await;

    // A partition that does not heal: node a's callers are answered, and
    // its read side stops saying it runs (node b runs it).
    proxy.partition();
    let cut_off = a.execute(Add { id: "tally-0".to_owned(), by: 1 });
    let answer =
        tokio::time::timeout(Duration::from_secs(20), cut_off).await.expect("a command on node a hung");
    let error = answer.expect_err("node a cannot reach the server");
    assert!(
        matches!(
            error,
            ExecuteError::OutcomeUnknown { .. } | ExecuteError::Load(_) | ExecuteError::Append(_)
        ),
        "a command cut off from the server: {error:?}"
    );
    // Only the document projection: the table projection's own SQL is not
    // bounded by the store (see the crate docs), so a partition in the
    // middle of it holds that runner until the connection breaks.
    let says_it_runs = || {
        let status = read_side_a.status(faults::TOTALS).unwrap();
        matches!(status.state, SubscriptionState::Running | SubscriptionState::CaughtUp)
    };
    let gave_up = async {
        while says_it_runs() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), gave_up)
        .await
        .unwrap_or_else(|_| panic!("node a still says it runs: {:?}", read_side_a.status(faults::TOTALS)));
    let moved = b.execute(Add { id: "tally-0".to_owned(), by: 1 }).await.unwrap();
    // Both read models move on at node b, the table projection too: a
    // batch node a was in the middle of no longer holds its lease's row
    // (the server ended its idle transaction).
    for name in [faults::TOTALS, "tally-rows"] {
        read_side_b.wait_for(name, moved.position.unwrap(), Duration::from_secs(20)).await.unwrap();
    }
    proxy.heal();

    read_side_a.shutdown().await;
    read_side_b.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    pool_a.close().await;
    pool_b.close().await;
    drop_schema(&admin, &schema).await;
}
