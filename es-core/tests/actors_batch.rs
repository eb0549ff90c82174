//! Commands that queue behind a busy actor are decided one after the other
//! and appended in one write: each still gets its own answer, refusals
//! included, and a shared write the store refuses falls back to running
//! the commands one by one.

// clippy.toml allows unwrap only inside #[test] fns; in this test crate's
// helpers too, a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use es_core::error::ExecuteError;
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::CommandOutcome;
use es_core::{CommandId, Es, StreamVersion};
use es_memory::InMemoryEventStore;
use support::{deposit, open, Account, AccountError, Withdraw};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

type Answer = Result<CommandOutcome<Account>, ExecuteError<AccountError>>;

/// An application on `store` whose account `a` is open, with the store's
/// append number `held` waiting for a permit of the returned gate.
async fn held_app(store: &TestStore<InMemoryEventStore>, batch: usize, held: u64) -> (Es, Arc<Semaphore>) {
    let es = Es::builder().event_store(store.clone()).command_batch(batch).build().await.unwrap();
    es.execute(open("a")).await.unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let hold = Arc::clone(&gate);
    store.before(StoreCall::Append, move |n| {
        let hold = Arc::clone(&hold);
        async move {
            if n == held {
                hold.acquire().await.expect("the gate stays open").forget();
            }
        }
    });
    (es, gate)
}

/// Sends a deposit, waits until its append is held, then queues `queued`
/// (all sent before the held append goes on), and returns every answer.
async fn queue_behind_held_append<F>(
    es: &Es,
    store: &TestStore<InMemoryEventStore>,
    gate: &Semaphore,
    queued: Vec<F>,
) -> Vec<Answer>
where
    F: std::future::Future<Output = Answer> + Send + 'static,
{
    let first = tokio::spawn({
        let es = es.clone();
        async move { es.execute(deposit("a", 1)).await }
    });
    tokio::time::timeout(Duration::from_secs(5), store.reached(StoreCall::Append, 2)).await.unwrap();
    let tasks: Vec<JoinHandle<Answer>> = queued.into_iter().map(tokio::spawn).collect();
    // On this one-threaded runtime each task runs until its command sits
    // in the actor's mailbox.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    let mut answers = vec![first.await.unwrap()];
    for task in tasks {
        answers.push(tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap());
    }
    answers
}

fn deposits(
    es: &Es,
    amounts: impl IntoIterator<Item = u64>,
) -> Vec<impl std::future::Future<Output = Answer>> {
    amounts
        .into_iter()
        .map(|amount| {
            let es = es.clone();
            async move { es.execute(deposit("a", amount)).await }
        })
        .collect()
}

#[tokio::test]
async fn queued_commands_share_one_append_and_each_gets_its_own_placement() {
    let store = TestStore::new(InMemoryEventStore::new());
    let (es, gate) = held_app(&store, 64, 2).await;
    let answers = queue_behind_held_append(&es, &store, &gate, deposits(&es, 2..=11)).await;

    // open, the held deposit, then one append for the ten queued ones.
    assert_eq!(store.calls(StoreCall::Append), 3);
    let mut last_position = None;
    for (n, answer) in answers.into_iter().enumerate() {
        let outcome = answer.unwrap();
        let version = n as u64 + 2;
        assert_eq!(outcome.version, Some(StreamVersion(version)), "command {n}");
        assert_eq!(outcome.committed.len(), 1);
        assert_eq!(outcome.committed[0].stream_version, StreamVersion(version));
        assert!(outcome.position > last_position, "positions grow with the commands");
        last_position = outcome.position;
        assert_eq!(outcome.events.len(), 1);
    }
    let account = es.load::<Account>("a").await.unwrap();
    assert_eq!(account.balance, (1..=11).sum::<u64>());
    assert_eq!(account.deposits, 11);
    let stats = es.stats();
    assert_eq!((stats.batches, stats.batched_commands, stats.batch_fallbacks), (1, 10, 0));
}

#[tokio::test]
async fn a_refusal_in_a_batch_is_decided_on_the_state_its_predecessors_left() {
    let store = TestStore::new(InMemoryEventStore::new());
    let (es, gate) = held_app(&store, 64, 2).await;
    let withdraw = |amount: u64| {
        let es = es.clone();
        async move { es.execute(Withdraw { account_id: "a".into(), amount }).await }
    };
    // Balance after the held deposit: 1. Then +5 (6), -4 (2), -3 refused, -2 (0).
    let mut queued: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>> = Vec::new();
    queued.extend(deposits(&es, [5]).into_iter().map(|f| Box::pin(f) as _));
    for amount in [4, 3, 2] {
        queued.push(Box::pin(withdraw(amount)));
    }
    let answers = queue_behind_held_append(&es, &store, &gate, queued).await;

    assert_eq!(store.calls(StoreCall::Append), 3, "the queued commands share one append");
    let versions: Vec<_> = answers.iter().map(|a| a.as_ref().ok().map(|o| o.version)).collect();
    assert_eq!(
        versions,
        [
            Some(Some(StreamVersion(2))),
            Some(Some(StreamVersion(3))),
            Some(Some(StreamVersion(4))),
            None,
            Some(Some(StreamVersion(5)))
        ]
    );
    assert!(matches!(
        answers[3],
        Err(ExecuteError::Rejected(AccountError::Insufficient { balance: 2, wanted: 3 }))
    ));
    assert_eq!(es.load::<Account>("a").await.unwrap().balance, 0);
}

#[tokio::test]
async fn a_batch_the_store_refuses_runs_its_commands_one_by_one() {
    for fault in [Fault::Conflict, Fault::Backend] {
        let store = TestStore::new(InMemoryEventStore::new());
        let (es, gate) = held_app(&store, 64, 2).await;
        // The batch's append (the third) is refused; nothing was written.
        store.inject(StoreCall::Append, fault, 3..=3);
        let answers = queue_behind_held_append(&es, &store, &gate, deposits(&es, 2..=6)).await;

        for (n, answer) in answers.into_iter().enumerate() {
            let outcome = answer.unwrap_or_else(|e| panic!("{fault:?}: command {n} failed: {e}"));
            assert_eq!(outcome.version, Some(StreamVersion(n as u64 + 2)), "{fault:?}");
        }
        // open, held, the refused batch, then the five one by one.
        assert_eq!(store.calls(StoreCall::Append), 8, "{fault:?}");
        let stats = es.stats();
        assert_eq!((stats.batches, stats.batch_fallbacks), (0, 1), "{fault:?}: one batch fell back");
        assert_eq!(es.load::<Account>("a").await.unwrap().balance, (1..=6).sum::<u64>(), "{fault:?}");
    }
}

#[tokio::test]
async fn a_command_with_a_given_id_runs_on_its_own_and_its_retry_stores_nothing() {
    let store = TestStore::new(InMemoryEventStore::new());
    let (es, gate) = held_app(&store, 64, 2).await;
    let id = CommandId::new();
    let with_id = {
        let es = es.clone();
        async move { es.execute(deposit("a", 100)).id(id).await }
    };
    let mut queued: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>> =
        deposits(&es, [2, 3]).into_iter().map(|f| Box::pin(f) as _).collect();
    queued.push(Box::pin(with_id));
    queued.extend(deposits(&es, [4]).into_iter().map(|f| Box::pin(f) as _));
    let answers = queue_behind_held_append(&es, &store, &gate, queued).await;

    // open, held, the batch of 2 and 3, the command with an id alone, then 4.
    assert_eq!(store.calls(StoreCall::Append), 5);
    let versions: Vec<_> = answers.iter().map(|a| a.as_ref().unwrap().version.unwrap().get()).collect();
    assert_eq!(versions, [2, 3, 4, 5, 6]);
    let retried = es.execute(deposit("a", 100)).id(id).await.unwrap();
    assert_eq!(retried.version, Some(StreamVersion(5)), "the retry answers with what the id stored");
    assert_eq!(es.load::<Account>("a").await.unwrap().balance, 1 + 2 + 3 + 100 + 4);
}

#[tokio::test]
async fn with_batching_off_every_command_appends_alone() {
    let store = TestStore::new(InMemoryEventStore::new());
    let (es, gate) = held_app(&store, 1, 2).await;
    let answers = queue_behind_held_append(&es, &store, &gate, deposits(&es, 2..=5)).await;
    assert!(answers.iter().all(Result::is_ok));
    assert_eq!(store.calls(StoreCall::Append), 6);
    assert_eq!(es.stats().batches, 0);
}

#[tokio::test]
async fn a_panic_in_a_batch_fails_only_its_command_and_the_commands_behind_it_run_on_a_fresh_actor() {
    for in_apply in [false, true] {
        let store = TestStore::new(InMemoryEventStore::new());
        let (es, gate) = held_app(&store, 64, 2).await;
        support::ARMED.store(in_apply, std::sync::atomic::Ordering::SeqCst);
        let explode = {
            let es = es.clone();
            async move { es.execute(support::Explode { account_id: "a".into(), in_apply }).await }
        };
        let mut queued: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>> =
            deposits(&es, [2]).into_iter().map(|f| Box::pin(f) as _).collect();
        queued.push(Box::pin(explode));
        queued.extend(deposits(&es, [3]).into_iter().map(|f| Box::pin(f) as _));
        let answers = queue_behind_held_append(&es, &store, &gate, queued).await;

        assert!(
            answers[0].is_ok() && answers[1].is_ok() && answers[3].is_ok(),
            "in_apply {in_apply}: {answers:?}"
        );
        assert!(
            matches!(answers[2], Err(ExecuteError::Panicked { appended, .. }) if appended == in_apply),
            "in_apply {in_apply}: {:?}",
            answers[2]
        );
        let account = es.load::<Account>("a").await.unwrap();
        assert_eq!(account.balance, 1 + 2 + 3, "in_apply {in_apply}");
        assert_eq!(es.stats().actors_started, 2, "the actor that panicked was replaced");
    }
}

#[tokio::test]
async fn commands_with_deadlines_that_a_refused_batch_hands_on_after_a_panic_still_run() {
    let store = TestStore::new(InMemoryEventStore::new());
    let es = Es::builder().event_store(store.clone()).build().await.unwrap();
    es.execute(open("a")).await.unwrap();
    support::ARMED.store(false, std::sync::atomic::Ordering::SeqCst);
    let gate = Arc::new(Semaphore::new(0));
    let hold = Arc::clone(&gate);
    store.before(StoreCall::Append, move |n| {
        let hold = Arc::clone(&hold);
        async move {
            match n {
                // The first deposit's append waits while the others queue.
                2 => hold.acquire().await.expect("the gate stays open").forget(),
                // The batch's append: from now on applying `Exploded` panics.
                3 => support::ARMED.store(true, std::sync::atomic::Ordering::SeqCst),
                _ => {}
            }
        }
    });
    // ...and the batch's append is refused, so its commands run one by one;
    // the explosion kills that actor with the last deposit still in line.
    store.inject(StoreCall::Append, Fault::Conflict, 3..=3);
    let deadline = Duration::from_secs(5);
    let explode = {
        let es = es.clone();
        async move {
            es.execute(support::Explode { account_id: "a".into(), in_apply: true }).timeout(deadline).await
        }
    };
    let deposit_by = |amount: u64| {
        let es = es.clone();
        async move { es.execute(deposit("a", amount)).timeout(deadline).await }
    };
    let queued: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>> =
        vec![Box::pin(deposit_by(2)), Box::pin(explode), Box::pin(deposit_by(3))];
    let answers = queue_behind_held_append(&es, &store, &gate, queued).await;

    assert!(answers[0].is_ok() && answers[1].is_ok(), "{answers:?}");
    assert!(matches!(answers[2], Err(ExecuteError::Panicked { appended: true, .. })), "{:?}", answers[2]);
    assert!(answers[3].is_ok(), "the command handed on runs on a fresh actor: {:?}", answers[3]);
    assert_eq!(es.load::<Account>("a").await.unwrap().balance, 1 + 2 + 3);
}
