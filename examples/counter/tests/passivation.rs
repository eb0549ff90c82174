//! The Erlang experiment's scenario: idle counters passivate, and their
//! next command brings them back from the store (a snapshot and the events
//! after it) with their state intact.

// Test helpers outside #[test] fns: a failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use counter::passivation::{self, SNAPSHOT_EVERY};
use counter::store::{Backend, StoreKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_counters_passivate_and_come_back_from_the_store() {
    for kind in [StoreKind::Memory, StoreKind::Sqlite] {
        let backend = Backend::open(kind, None).await.unwrap();
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|id| (*id).to_owned()).collect();
        let report = passivation::run(&backend, &ids).await.unwrap();
        assert_eq!(report.live_busy, 3, "{kind}: one live actor per busy counter");
        assert_eq!(report.live_idle, 0, "{kind}: idle counters passivate");
        // At least one per counter: a stall longer than the idle timeout
        // mid-run passivates a counter early too.
        assert!(report.passivations >= 3, "{kind}: {report:?}");
        assert_eq!(
            report.snapshots,
            vec![Some(SNAPSHOT_EVERY); 3],
            "{kind}: a snapshot every {SNAPSHOT_EVERY} events"
        );
        assert_eq!(report.rehydrations, 3, "{kind}: each counter came back from the store");
        assert_eq!(report.live_again, 3, "{kind}");
        assert_eq!(report.values, vec![7; 3], "{kind}: the state came back: 6 increments before, 1 after");
        backend.close().await;
    }
}
