//! Waking waiters: `wait_for_events` and a subscription going live return as soon as an event lands, never only after their whole wait.

use super::*;

/// `wait_for_events` returns once an event after the given position lands,
/// and at once when one is already there. Each wait is told to wait up to
/// 30 s and must return within 15 s of the append that should wake it: a
/// store that never wakes its waiters (one that sleeps its whole
/// `max_wait`) fails the case.
pub async fn wait_for_events_wakes_when_an_event_lands<S: EventStore + Clone>(store: S) {
    assert_fresh(&store).await;
    let stream = StreamId::new("order-1");
    let start = head(&store).await;

    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_events(start, WAKE_WAIT).await })
    };
    tokio::time::sleep(WAITER_SETTLES).await;
    let first = append_ok(&store, &stream, ExpectedVersion::NoStream, batch(1, 1), "waking the waiter").await;
    woken(join(waiter), "a waiter after the head, when an event lands").await;
    let log = read_whole_log(&store, last_position(&[&first])).await;
    assert_eq!(recorded_ids(&log), committed_ids(&first), "read_all must see the event that woke the waiter");

    // An event after `start` is already there: no need to wait.
    woken(store.wait_for_events(start, WAKE_WAIT), "a wait after a position the head is already past").await;

    // Waiting after the new head wakes on the next event.
    let seen = head(&store).await;
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_events(seen, WAKE_WAIT).await })
    };
    tokio::time::sleep(WAITER_SETTLES).await;
    let second =
        append_ok(&store, &stream, ExpectedVersion::Exact(StreamVersion(1)), batch(2, 1), "waking again")
            .await;
    woken(join(waiter), "a second waiter, when the next event lands").await;
    let log = read_whole_log(&store, last_position(&[&first, &second])).await;
    assert_eq!(log.len(), 2, "read_all must see both events");
}

/// Awaits `wait`, failing the case (naming `what`) unless it finishes within
/// [`WOKEN_WITHIN`]: the wait was told to wait [`WAKE_WAIT`], so only a
/// wake-up by the store ends it that soon.
async fn woken<T>(wait: impl std::future::Future<Output = T>, what: &str) -> T {
    match tokio::time::timeout(WOKEN_WITHIN, wait).await {
        Ok(done) => done,
        Err(_) => panic!(
            "{what}: the store did not wake the waiter within {WOKEN_WITHIN:?} (its max_wait is \
             {WAKE_WAIT:?}); a store must end wait_for_events as soon as an event after the position \
             is readable"
        ),
    }
}

/// An [`EventSubscription`] delivers the stored events after its start in
/// position order, then waits for and delivers new ones as they commit,
/// each once; a subscription started at a delivered position goes on from
/// there. The subscription's idle wait is 30 s and the live events must
/// arrive within 15 s, so it relies on `wait_for_events` waking it: a store
/// that never wakes its waiters fails the case.
pub async fn subscription_catches_up_then_goes_live<S: EventStore + Clone>(store: S) {
    assert_fresh(&store).await;
    let (a, b) = (StreamId::new("order-1"), StreamId::new("order-2"));
    let first = append_ok(&store, &a, ExpectedVersion::NoStream, batch(1, 3), "history of order-1").await;
    let second = append_ok(&store, &b, ExpectedVersion::NoStream, batch(1, 2), "history of order-2").await;
    let mut history: Vec<Committed> = first.committed.iter().chain(&second.committed).copied().collect();
    history.sort_by_key(|c| c.global_position);

    let mut subscription =
        EventSubscription::new(store.clone(), GlobalPosition::START).page_size(2).idle_wait(WAKE_WAIT);
    for (n, want) in history.iter().enumerate() {
        let got = woken(subscription.next(), "reading history")
            .await
            .unwrap_or_else(|e| panic!("subscription, event {n}: {e:?}"));
        assert_eq!(
            (got.event_id, got.global_position),
            (want.event_id, want.global_position),
            "the subscription must deliver history in position order"
        );
        assert_eq!(subscription.position(), want.global_position, "position follows each delivered event");
    }
    let caught_up = subscription.next_batch().await.expect("next_batch when caught up");
    assert!(caught_up.is_empty(), "nothing more is stored, yet next_batch returned {caught_up:?}");

    let writer = {
        let store = store.clone();
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            tokio::time::sleep(WAITER_SETTLES).await;
            let later = store.append(&a, ExpectedVersion::Exact(StreamVersion(3)), batch(4, 2)).await;
            let last = store.append(&b, ExpectedVersion::Exact(StreamVersion(2)), batch(3, 1)).await;
            (later, last)
        })
    };
    let live = woken(
        async {
            let mut live = Vec::new();
            while live.len() < 3 {
                let got =
                    subscription.next().await.unwrap_or_else(|e| panic!("live event {}: {e:?}", live.len()));
                live.push((got.event_id, got.global_position));
            }
            live
        },
        "a caught-up subscription, when events land",
    )
    .await;
    let (later, last) = join(writer).await;
    let (later, last) = (later.expect("live append to order-1"), last.expect("live append to order-2"));
    let expected: Vec<(EventId, GlobalPosition)> =
        later.committed.iter().chain(&last.committed).map(|c| (c.event_id, c.global_position)).collect();
    assert_eq!(live, expected, "live events must come once each, in position order");

    let resume_at = history[history.len() - 1].global_position;
    let mut resumed = EventSubscription::new(store.clone(), resume_at).idle_wait(WAKE_WAIT);
    let rest = resumed.next_batch().await.expect("resumed next_batch");
    let rest: Vec<(EventId, GlobalPosition)> = rest.iter().map(|e| (e.event_id, e.global_position)).collect();
    assert_eq!(rest, expected, "a subscription started at a position delivers only what came after it");
}
