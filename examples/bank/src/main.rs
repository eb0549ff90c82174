//! The bank demo: a narrated scenario on the in-memory store (or on
//! Postgres when `DATABASE_URL` is set).
//!
//! Run it with `cargo run -p bank`.

use std::time::Duration;

use anyhow::Context;
use bank::{
    outbox, settle, Account, AccountError, AccountOpened, AccountSummary, CloseAccount, Deposit, OpenAccount,
    StartTransfer, Transfer, VerifyAccount, Withdraw,
};
use es_core::error::ExecuteError;
use es_core::store::EventStore;
use es_core::{Es, EventSet, GlobalPosition, ReadSide, StreamVersion};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use es_postgres::{PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema};
use sqlx::postgres::PgPoolOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let es = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => on_postgres(&url).await?,
        _ => {
            let store = InMemoryEventStore::new();
            println!("bank demo on the in-memory store\n");
            Es::builder()
                .event_store(store.clone())
                .snapshot_store(store)
                .projection_store(InMemoryProjectionStore::new())
                .read_side(ReadSide::builder())
                .build()
                .await?
        }
    };
    let result = run(&es).await;
    es.shutdown().await;
    result
}

/// The same application on Postgres, in schema `bank` (or `BANK_SCHEMA`):
/// what earlier runs stored is still there.
async fn on_postgres(url: &str) -> anyhow::Result<Es> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to DATABASE_URL {url}"))?;
    let schema = PgSchema::new(std::env::var("BANK_SCHEMA").unwrap_or_else(|_| "bank".to_owned()))?;
    let events = PgEventStore::with_schema(pool.clone(), schema.clone());
    events.migrate().await?;
    let documents = PgProjectionStore::with_schema(pool.clone(), schema.clone());
    // Leases in Postgres: when several nodes run this binary, each
    // subscription runs on one of them at a time.
    let leases = PgLeaseStore::with_schema(pool, schema.clone());
    leases.migrate().await?;
    let mut stored = 0;
    let mut after = GlobalPosition::START;
    loop {
        let page = events.read_all(after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        stored += page.len();
    }
    println!(
        "bank demo on Postgres (schema `{}`): {stored} events stored by earlier runs\n",
        schema.as_str()
    );
    let es = Es::builder()
        .event_store(events.clone())
        .snapshot_store(events)
        .projection_store(documents)
        .read_side(ReadSide::builder().lease_store(leases))
        .build()
        .await?;
    Ok(es)
}

async fn run(es: &Es) -> anyhow::Result<()> {
    // Fresh ids per run, so that runs on a persistent store do not collide.
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (ada, bob) = (format!("ada-{run}"), format!("bob-{run}"));

    println!("== commands");
    let opened = es.execute(OpenAccount { account_id: ada.clone(), owner: "Ada Lovelace".into() }).await?;
    let code = opened
        .events
        .iter()
        .find_map(|e| match e {
            bank::AccountEvent::AccountOpened(AccountOpened { verification_code, .. }) => {
                Some(verification_code.clone())
            }
            _ => None,
        })
        .context("OpenAccount produced no AccountOpened event")?;
    println!(
        "open account {ada} for Ada -> version {:?}, code {code}",
        opened.version.map(StreamVersion::get)
    );
    es.execute(VerifyAccount { account_id: ada.clone(), code }).await?;
    println!("verify {ada}");
    for amount in [10_000, 25_000] {
        let outcome = es.execute(Deposit { account_id: ada.clone(), amount }).await?;
        println!(
            "deposit {} into {ada} -> version {:?}",
            cents(amount),
            outcome.version.map(StreamVersion::get)
        );
    }
    let before_withdrawal =
        es.load_versioned::<Account>(&ada, None).await?.version.context("ada has events")?;
    es.execute(Withdraw { account_id: ada.clone(), amount: 7_500, reference: Some("rent".into()) }).await?;
    println!("withdraw {} from {ada} (reference: rent)", cents(7_500));

    es.execute(OpenAccount { account_id: bob.clone(), owner: "Bob".into() }).await?;
    es.execute(Deposit { account_id: bob.clone(), amount: 1_000 }).await?;
    println!("open account {bob} for Bob and deposit {}", cents(1_000));

    println!("\n== refused commands");
    match es.execute(Withdraw { account_id: ada.clone(), amount: 100_000, reference: None }).await {
        Err(ExecuteError::Rejected(error @ AccountError::InsufficientFunds { .. })) => {
            println!("withdraw {} from {ada}: refused: {error}", cents(100_000));
        }
        other => anyhow::bail!("expected insufficient funds, got {other:?}"),
    }
    match es.execute(Withdraw { account_id: bob.clone(), amount: 500, reference: None }).await {
        Err(ExecuteError::Rejected(error @ AccountError::NotVerified)) => {
            println!("withdraw {} from {bob}: refused: {error}", cents(500));
        }
        other => anyhow::bail!("expected not verified, got {other:?}"),
    }
    match es.execute(Deposit { account_id: ada.clone(), amount: 0 }).await {
        Err(ExecuteError::Validation(error)) => println!("deposit 0 into {ada}: invalid: {error}"),
        other => anyhow::bail!("expected a validation error, got {other:?}"),
    }
    match es.execute(CloseAccount { account_id: ada.clone() }).await {
        Err(ExecuteError::Rejected(error)) => println!("close {ada}: refused: {error}"),
        other => anyhow::bail!("expected a refusal to close, got {other:?}"),
    }

    println!("\n== event log");
    let mut after = GlobalPosition::START;
    loop {
        let page = es.event_store().read_all(after, 100).await?;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        for e in &page {
            if e.stream_id.as_str().ends_with(&ada) || e.stream_id.as_str().ends_with(&bob) {
                println!(
                    "#{:<6} {:<40} v{:<3} {:<16} {}",
                    e.global_position, e.stream_id, e.stream_version, e.event_type, e.payload
                );
            }
        }
    }

    println!("\n== final state");
    let now = es.load::<Account>(&ada).await?;
    println!("{ada}: balance {}, verified {}, closed {}", cents(now.balance), now.verified, now.closed);
    let bob_now = es.load::<Account>(&bob).await?;
    println!(
        "{bob}: balance {}, verified {}, closed {}",
        cents(bob_now.balance),
        bob_now.verified,
        bob_now.closed
    );

    println!("\n== time travel");
    let then = es.load_at::<Account>(&ada, before_withdrawal).await?;
    println!("{ada} at version {before_withdrawal}: balance {}", cents(then.balance));
    println!("event types of an account: {}", bank::AccountEvent::event_types().join(", "));

    println!("\n== transfers (a process manager on the read side)");
    let read_side = es.read_side().context("the demo runs a read side")?;
    let transfers =
        [(format!("t1-{run}"), bob.clone(), 5_000), (format!("t2-{run}"), format!("nobody-{run}"), 1_000)];
    for (id, to, amount) in transfers {
        es.execute(StartTransfer { transfer_id: id.clone(), from: ada.clone(), to: to.clone(), amount })
            .await?;
        // Waits for the read side, including the commands the process dispatched.
        settle(read_side, Duration::from_secs(30)).await?;
        let transfer = es.load::<Transfer>(&id).await?;
        let reason = transfer.reason.map(|r| format!(": {r}")).unwrap_or_default();
        println!("transfer {id}: {} from {ada} to {to} -> {:?}{reason}", cents(amount), transfer.status);
    }

    println!("\n== read side");
    let documents = es.projection_store().context("the demo has a projection store")?;
    for s in AccountSummary::all(documents.as_ref()).await? {
        if s.account_id == ada || s.account_id == bob {
            println!(
                "account-summary {}: {} ({}), balance {}, verified {}, closed {}, {} transactions",
                s.account_id,
                s.owner,
                s.account_number,
                cents(s.balance),
                s.verified,
                s.closed,
                s.transactions
            );
        }
    }
    for mail in outbox(documents.as_ref()).await? {
        if mail.account_id == ada || mail.account_id == bob {
            println!("mail-outbox: to {} about {}: {}", mail.to, mail.account_id, mail.subject);
        }
    }
    for status in read_side.statuses() {
        println!(
            "subscription {}: {:?} at position {}, behind {:?}",
            status.name, status.state, status.position, status.behind
        );
    }
    Ok(())
}

fn cents(amount: u64) -> String {
    format!("${}.{:02}", amount / 100, amount % 100)
}
