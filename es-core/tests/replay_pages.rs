//! The default `EventStore::replay`, which adapters without a streamed read
//! keep: it pages through `read_replay`, crosses page boundaries, and asks
//! the last page for no more than the version a load stops at.

// clippy.toml allows unwrap only inside #[test] fns; in this test crate's
// helpers too, a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use es_core::{Es, StreamVersion};
use es_memory::InMemoryEventStore;
use support::{deposit, open, Account, CountingStore};

#[tokio::test]
async fn a_load_longer_than_a_page_reads_every_event_in_pages() {
    const DEPOSITS: u64 = 2_500;
    let store = InMemoryEventStore::new();
    let es = Es::builder().event_store(store.clone()).build().await.unwrap();
    es.execute(open("a")).await.unwrap();
    for amount in 1..=DEPOSITS {
        es.execute(deposit("a", amount)).await.unwrap();
    }
    es.shutdown().await;

    let counting = CountingStore::over(store);
    let node = Es::builder().event_store(counting.clone()).build().await.unwrap();
    let account = node.load::<Account>("a").await.unwrap();
    assert_eq!(account.balance, (1..=DEPOSITS).sum::<u64>(), "every deposit was applied");
    assert_eq!(counting.events_read(), DEPOSITS + 1, "each event read once");
    assert_eq!(counting.reads(), 3, "2,501 events in pages of 1,024");

    // Version 2,049 is the first event of the third page: that page asks
    // for one event only.
    let (events_before, reads_before) = (counting.events_read(), counting.reads());
    let past = node.load_at::<Account>("a", StreamVersion(2_049)).await.unwrap();
    assert_eq!(past.balance, (1..=2_048).sum::<u64>(), "the open and 2,048 deposits");
    assert_eq!(counting.events_read() - events_before, 2_049, "no event past version 2,049 was read");
    assert_eq!(counting.reads() - reads_before, 3, "two full pages and one of a single event");
    node.shutdown().await;
}
