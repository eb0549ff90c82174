//! `Es::execute` with a read side: strong subscribers have run when it
//! returns, and one that cannot catch up gives a typed error while the
//! events stay stored.

mod support;

use std::sync::Arc;
use std::time::Duration;

use es_core::error::BuildError;
use es_core::error::ExecuteError;
use es_core::readside::{Consistency, Registry, Subscriber};
use es_core::store::ProjectionStore;
use es_core::{Es, HandleEvent, HandlerCtx, HandlerError, Project, ProjectionTx, ReadSide, Recorded};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use support::{Account, AccountOpened, Deposit, MoneyDeposited, OpenAccount};
use tokio::sync::Notify;

/// Sums deposits per account.
#[derive(Default)]
struct Totals;

impl Project<MoneyDeposited> for Totals {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = e.stream_id.as_str().to_owned();
        let total: u64 = tx.get(&id).await?.unwrap_or(0);
        tx.put(&id, &(total + e.amount))?;
        Ok(())
    }
}

async fn app(registry: Registry, timeout: Duration) -> Result<(Es, InMemoryProjectionStore), BuildError> {
    let documents = InMemoryProjectionStore::new();
    let es = Es::builder()
        .event_store(InMemoryEventStore::new())
        .projection_store(documents.clone())
        .read_side(ReadSide::builder().registry(registry))
        .consistency_timeout(timeout)
        .build()
        .await?;
    Ok((es, documents))
}

#[tokio::test]
async fn a_strong_projection_is_up_to_date_when_execute_returns() {
    let mut registry = Registry::new();
    registry
        .register(
            "totals",
            Subscriber::projection(Totals).on::<MoneyDeposited>().build().consistency(Consistency::Strong),
        )
        .unwrap();
    let (es, documents) = app(registry, Duration::from_secs(30)).await.unwrap();
    es.execute(OpenAccount { account_id: "ada".into(), owner: "Ada".into() }).await.unwrap();
    let mut expected = 0;
    for amount in 1..=20 {
        es.execute(Deposit { account_id: "ada".into(), amount }).await.unwrap();
        expected += amount;
        let total = documents.get("totals", "account-ada").await.unwrap();
        assert_eq!(total, Some(serde_json::json!(expected)), "after depositing {amount}");
    }
    assert!(es.read_side().is_some());
    es.shutdown().await;
}

/// A strong handler that waits for a signal that never comes.
struct Stuck(Arc<Notify>);

impl HandleEvent<MoneyDeposited> for Stuck {
    async fn handle(&self, _: &Recorded<MoneyDeposited>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.0.notified().await;
        Ok(())
    }
}

#[tokio::test]
async fn a_strong_handler_that_does_not_catch_up_times_out_with_events_stored() {
    let release = Arc::new(Notify::new());
    let mut registry = Registry::new();
    registry
        .register(
            "stuck",
            Subscriber::handler(Stuck(Arc::clone(&release)))
                .on::<MoneyDeposited>()
                .build()
                .consistency(Consistency::Strong),
        )
        .unwrap();
    let (es, _) = app(registry, Duration::from_millis(200)).await.unwrap();
    es.execute(OpenAccount { account_id: "bob".into(), owner: "Bob".into() }).await.unwrap();
    let error = es.execute(Deposit { account_id: "bob".into(), amount: 7 }).await.unwrap_err();
    match &error {
        ExecuteError::ConsistencyTimeout { waiting_for, .. } => assert_eq!(waiting_for, "stuck"),
        other => panic!("expected a consistency timeout, got {other:?}"),
    }
    assert!(error.to_string().contains("events stored up to position"), "{error}");
    // The deposit is stored and counted.
    let account: Account = es.load("bob").await.unwrap();
    assert_eq!(account.balance, 7);
    // A command whose events the stuck handler does not consume has nothing
    // of its own to wait for: it answers, though the handler is still stuck
    // before its position.
    let opened = es.execute(OpenAccount { account_id: "cat".into(), owner: "Cat".into() }).await.unwrap();
    assert!(opened.position.is_some());
    // One whose events it does consume still waits, and times out.
    let error = es.execute(Deposit { account_id: "cat".into(), amount: 1 }).await.unwrap_err();
    assert!(matches!(&error, ExecuteError::ConsistencyTimeout { waiting_for, .. } if waiting_for == "stuck"));
    release.notify_one();
    es.shutdown().await;
}

/// A strong handler that opens each new account with a first deposit,
/// dispatched from a task of its own and awaited.
struct Welcome;

impl HandleEvent<AccountOpened> for Welcome {
    async fn handle(&self, e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        let ctx = ctx.clone();
        let account_id = e.stream_id.as_str().trim_start_matches("account-").to_owned();
        tokio::spawn(async move { ctx.execute(Deposit { account_id, amount: 1 }).await.map(|_| ()) })
            .await
            .map_err(HandlerError::other)?
    }
}

#[tokio::test]
async fn a_command_a_strong_handler_dispatches_from_its_own_task_does_not_wait_for_that_handler() {
    let mut registry = Registry::new();
    registry
        .register(
            "welcome",
            Subscriber::handler(Welcome).on::<AccountOpened>().build().consistency(Consistency::Strong),
        )
        .unwrap();
    // Waiting for the handler from inside it could only end by this timeout
    // (and then `execute` would fail with it).
    let (es, _) = app(registry, Duration::from_secs(20)).await.unwrap();
    es.execute(OpenAccount { account_id: "cyd".into(), owner: "Cyd".into() }).await.unwrap();
    let account: Account = es.load("cyd").await.unwrap();
    assert_eq!(account.balance, 1, "the welcome deposit ran before execute returned");
    es.shutdown().await;
}

/// As [`Welcome`], through the handle `ctx.es()` with the typed error.
struct WelcomeTyped;

impl HandleEvent<AccountOpened> for WelcomeTyped {
    async fn handle(&self, e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
        let es = ctx.es().ok_or(HandlerError::NoDispatcher)?.clone();
        let metadata = ctx.command_metadata();
        let account_id = e.stream_id.as_str().trim_start_matches("account-").to_owned();
        let deposit =
            tokio::spawn(async move { es.execute_with(Deposit { account_id, amount: 2 }, metadata).await });
        match deposit.await.map_err(HandlerError::other)? {
            Ok(_) => Ok(()),
            Err(error) => Err(HandlerError::msg(format!("welcome deposit failed: {error}"))),
        }
    }
}

#[tokio::test]
async fn the_es_handle_a_handler_gets_does_not_wait_for_that_handler_either() {
    let mut registry = Registry::new();
    registry
        .register(
            "welcome",
            Subscriber::handler(WelcomeTyped).on::<AccountOpened>().build().consistency(Consistency::Strong),
        )
        .unwrap();
    let (es, _) = app(registry, Duration::from_secs(20)).await.unwrap();
    es.execute(OpenAccount { account_id: "dee".into(), owner: "Dee".into() }).await.unwrap();
    assert_eq!(es.load::<Account>("dee").await.unwrap().balance, 2);
    es.shutdown().await;
}
