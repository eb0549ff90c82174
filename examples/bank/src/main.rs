//! The bank demo: a narrated scenario on the in-memory store (or on
//! Postgres when `DATABASE_URL` is set).
//!
//! Run it with `cargo run -p bank`.

use anyhow::Context;
use bank::{
    Account, AccountError, AccountOpened, CloseAccount, Deposit, OpenAccount, VerifyAccount, Withdraw,
};
use es_core::{Es, EventSet, ExecuteError, GlobalPosition, StreamVersion};
use es_memory::InMemoryEventStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let es = Es::builder().event_store(store.clone()).snapshot_store(store).build().await?;
    println!("bank demo on the in-memory store\n");
    run(&es).await
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
    Ok(())
}

fn cents(amount: u64) -> String {
    format!("${}.{:02}", amount / 100, amount % 100)
}
