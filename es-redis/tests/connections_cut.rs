//! Connections cut under load: two nodes, each with a read side, on one
//! namespace, every call of theirs going through a proxy that cuts a
//! connection at a server reply (after the server acted, so the reply is
//! lost), one cut at a time, 20 ms apart. [`es_core::conformance::faults`] checks what must
//! hold of the commands and of a document projection.

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

/// Each call of the nodes is bounded: a cut reply is a lost one, not a wait.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The pause after each cut before the proxy is told to cut again.
const CUT_EVERY: Duration = Duration::from_millis(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_connections_lose_no_command_store_none_twice_and_the_projection_equals_the_fold() {
    let stores = common::fresh_stores().await;
    let proxy = Arc::new(Proxy::start().await);
    // Node a keeps actors; node b reads each stream before each command.
    let (a, read_a) = node(&proxy, &stores.namespace, ("a", CommandPath::Actors), CALL_TIMEOUT).await;
    let (b, read_b) = node(&proxy, &stores.namespace, ("b", CommandPath::Reload), CALL_TIMEOUT).await;

    let running = Arc::new(AtomicBool::new(true));
    let cutter = tokio::spawn({
        let (proxy, running) = (Arc::clone(&proxy), Arc::clone(&running));
        async move {
            let mut armed = 0u64;
            while running.load(Ordering::SeqCst) {
                // One cut at a time, then a pause, so a connection being
                // made again is not cut at every try of its handshake.
                proxy.arm();
                armed += 1;
                proxy.cut_within(Duration::from_secs(1)).await;
                tokio::time::sleep(CUT_EVERY).await;
            }
            armed
        }
    });
    let report = faults::commands_ride_through_faults(&stores.events, &[a.clone(), b.clone()], 4, 50).await;
    running.store(false, Ordering::SeqCst);
    let armed = cutter.await.unwrap();
    eprintln!(
        "armed {armed} cuts; {} unknown outcomes, {} failures that stored nothing",
        report.unknown, report.nothing_stored
    );
    assert!(report.unknown > 0, "no reply was lost: {report:?}");
    faults::totals_equal_the_fold(&[&read_a, &read_b], &stores.events, &stores.documents, &report).await;

    for read_side in [read_a, read_b] {
        read_side.shutdown().await;
    }
    a.shutdown().await;
    b.shutdown().await;
}
