//! Faults on every port at once: two nodes on one in-memory store, each
//! with a read side, while appends fail before reaching the store, panic
//! after it stored them (a lost reply) or answer late, reads and waits
//! fail, projection commits fail or panic after landing, and lease calls
//! fail ([`es_core::conformance::faults`] checks what must hold).
//!
//! The clock is tokio's paused one, so the schedule of faults (by call
//! number) and every backoff run the same way each time.

use std::time::Duration;

use es_core::conformance::faults;
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy};
use es_core::runtime::CommandPath;
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{Es, ReadSide};
use es_memory::{InMemoryEventStore, InMemoryLeaseStore, InMemoryProjectionStore};

/// Injects `fault` into every `every`th call of kind `call`, from the
/// `first`th on (up to call 100,000).
fn every<S>(store: &TestStore<S>, call: StoreCall, fault: Fault, first: u64, every: usize) {
    for n in (first..100_000).step_by(every) {
        store.inject(call, fault, n..=n);
    }
}

/// One node on the shared stores on the command path `path`, each port
/// behind its own schedule of faults (`offset` shifts it, so the nodes do
/// not fail in step).
async fn node(
    events: &InMemoryEventStore,
    documents: &InMemoryProjectionStore,
    leases: &InMemoryLeaseStore,
    (owner, path): (&str, CommandPath),
    offset: u64,
) -> Result<(Es, ReadSide), Box<dyn std::error::Error>> {
    let faulty_events = TestStore::new(events.clone());
    every(&faulty_events, StoreCall::Append, Fault::Backend, 3 + offset, 7);
    every(&faulty_events, StoreCall::Append, Fault::PanicAfter, 5 + offset, 11);
    every(&faulty_events, StoreCall::Append, Fault::SlowReply(Duration::from_millis(30)), 2 + offset, 5);
    every(&faulty_events, StoreCall::Append, Fault::Conflict, 6 + offset, 13);
    every(&faulty_events, StoreCall::ReadStream, Fault::Backend, 2 + offset, 9);
    every(&faulty_events, StoreCall::ReadStream, Fault::PanicAfter, 4 + offset, 17);
    every(&faulty_events, StoreCall::ReadAll, Fault::SlowReply(Duration::from_millis(15)), 3 + offset, 4);
    every(&faulty_events, StoreCall::StreamVersion, Fault::Backend, 1 + offset, 4);
    every(&faulty_events, StoreCall::ReadAll, Fault::Backend, 2 + offset, 6);
    every(&faulty_events, StoreCall::WaitForEvents, Fault::Backend, 1 + offset, 4);
    let faulty_documents = TestStore::new(documents.clone());
    every(&faulty_documents, StoreCall::Commit, Fault::Backend, 2 + offset, 5);
    every(&faulty_documents, StoreCall::Commit, Fault::PanicAfter, 4 + offset, 7);
    every(&faulty_documents, StoreCall::Get, Fault::Backend, 1 + offset, 8);
    every(&faulty_documents, StoreCall::Checkpoint, Fault::Backend, 1 + offset, 3);
    every(&faulty_documents, StoreCall::Commit, Fault::SlowReply(Duration::from_millis(20)), 3 + offset, 3);
    let faulty_leases = TestStore::new(leases.clone());
    every(&faulty_leases, StoreCall::Renew, Fault::Backend, 2 + offset, 4);
    // A renewal acknowledged and lost: the lease runs out under a node that
    // believes it holds it, and its fence must stop its late commits.
    every(&faulty_leases, StoreCall::Renew, Fault::Dropped, 3 + offset, 5);
    every(&faulty_leases, StoreCall::Acquire, Fault::Backend, 1 + offset, 3);

    let mut registry = Registry::new();
    registry.register(faults::TOTALS, faults::totals())?;
    let read_side = ReadSide::builder()
        .event_store(faulty_events.clone())
        .projection_store(faulty_documents)
        .lease_store(faulty_leases)
        .owner(owner)
        .registry(registry)
        .config(ReadSideConfig {
            batch_size: 8,
            catch_up_batch_size: 32,
            idle_wait: Duration::from_millis(100),
            lease_ttl: Duration::from_millis(900),
            lease_retry: Duration::from_millis(50),
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
            ..ReadSideConfig::default()
        })
        .start()?;
    let es = Es::builder().event_store(faulty_events).command_path(path).build().await?;
    Ok((es, read_side))
}

#[tokio::test(start_paused = true)]
async fn commands_and_a_projection_ride_through_faults_on_every_port(
) -> Result<(), Box<dyn std::error::Error>> {
    let (events, documents, leases) =
        (InMemoryEventStore::new(), InMemoryProjectionStore::new(), InMemoryLeaseStore::new());
    let (a, read_a) = node(&events, &documents, &leases, ("a", CommandPath::Actors), 0).await?;
    let (b, read_b) = node(&events, &documents, &leases, ("b", CommandPath::Reload), 1).await?;

    // Which node runs the projection, sampled while the commands run.
    let (watched_a, watched_b) = (read_a.clone(), read_b.clone());
    let watcher = tokio::spawn(async move {
        let mut ran = [false, false];
        loop {
            for (node, read_side) in [&watched_a, &watched_b].into_iter().enumerate() {
                ran[node] |= read_side.status(faults::TOTALS).is_ok_and(|s| s.state.is_active());
            }
            if ran == [true, true] {
                return ran;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let report = faults::commands_ride_through_faults(&events, &[a.clone(), b.clone()], 3, 60).await;
    assert_eq!(report.commands, 360);
    assert!(report.unknown > 0 && report.nothing_stored > 0, "faults of both kinds met: {report:?}");
    faults::totals_equal_the_fold(&[&read_a, &read_b], &events, &documents, &report).await;
    let ran = tokio::time::timeout(Duration::from_secs(60), watcher).await;
    assert!(matches!(ran, Ok(Ok([true, true]))), "the lease never changed hands");

    for read_side in [read_a, read_b] {
        read_side.shutdown().await;
    }
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
