//! Within one node, commands to one aggregate are serialized by its actor.

use es_core::StreamVersion;
use es_memory::InMemoryEventStore;
use tokio::task::JoinSet;

use crate::domain::{Deposit, Ledger, Open};
use crate::helpers::app;

/// Within one node, commands to one aggregate are serialized by its
/// actor: no conflicts, no lost updates, however many arrive at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_deposits_on_one_node_never_conflict_nor_get_lost() {
    let store = InMemoryEventStore::new();
    let es = app(&store).await;
    es.execute(Open { id: "hot".into(), owner: "ada".into() }).await.unwrap();

    let mut deposits = JoinSet::new();
    for amount in 1..=500u64 {
        let es = es.clone();
        deposits.spawn(async move { es.execute(Deposit { id: "hot".into(), amount }).await });
    }
    let mut versions = Vec::new();
    while let Some(done) = deposits.join_next().await {
        versions.push(done.unwrap().unwrap().version.unwrap().get());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=501).collect::<Vec<_>>(), "each deposit got its own version");

    let loaded = es.load_versioned::<Ledger>("hot", None).await.unwrap();
    assert_eq!(loaded.state.balance, (1..=500).sum::<u64>());
    assert_eq!(loaded.version, Some(StreamVersion(501)));
    assert_eq!(es.stats().conflicts, 0);
    assert_eq!(es.stats().actors_started, 1);
}
