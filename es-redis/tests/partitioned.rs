//! The nodes cut off from the server again and again, without their
//! connections closing (a network partition that comes and goes): their
//! calls fail at their call timeout, and what they sent reaches the server
//! late, after the partition heals, when they have given up on it.
//! [`es_core::conformance::faults`] checks that no command is lost or
//! stored twice and that the document projection equals the fold.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::nodes::node;
use common::proxy::Proxy;
use es_core::conformance::faults;
use es_core::runtime::CommandPath;

/// The call timeout of the nodes' stores.
const CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// How long each partition lasts: past the call timeout, so calls give up.
const PARTITIONED_FOR: Duration = Duration::from_millis(300);
/// How long the network works between two partitions.
const HEALED_FOR: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_lose_no_command_store_none_twice_and_the_projection_equals_the_fold() {
    let stores = common::fresh_stores().await;
    let proxy = Arc::new(Proxy::start().await);
    // Node a keeps actors; node b reads each stream before each command.
    let (a, read_a) = node(&proxy, &stores.namespace, ("a", CommandPath::Actors), CALL_TIMEOUT).await;
    let (b, read_b) = node(&proxy, &stores.namespace, ("b", CommandPath::Reload), CALL_TIMEOUT).await;

    let running = Arc::new(AtomicBool::new(true));
    let partitioner = tokio::spawn({
        let (proxy, running) = (Arc::clone(&proxy), Arc::clone(&running));
        async move {
            let mut partitions = 0u64;
            while running.load(Ordering::SeqCst) {
                proxy.partition();
                partitions += 1;
                tokio::time::sleep(PARTITIONED_FOR).await;
                proxy.heal();
                tokio::time::sleep(HEALED_FOR).await;
            }
            partitions
        }
    });
    let report = faults::commands_ride_through_faults(&stores.events, &[a.clone(), b.clone()], 4, 50).await;
    running.store(false, Ordering::SeqCst);
    let partitions = tokio::time::timeout(Duration::from_secs(10), partitioner).await.unwrap().unwrap();
    eprintln!(
        "{partitions} partitions; {} unknown outcomes, {} failures that stored nothing",
        report.unknown, report.nothing_stored
    );
    assert!(partitions >= 2, "the test partitioned the nodes only {partitions} times");
    assert!(report.unknown > 0, "no command met a partition mid-append: {report:?}");
    faults::totals_equal_the_fold(&[&read_a, &read_b], &stores.events, &stores.documents, &report).await;

    for read_side in [read_a, read_b] {
        read_side.shutdown().await;
    }
    a.shutdown().await;
    b.shutdown().await;
}
