//! The narrated demo: commands, refusals, the event log, time travel,
//! transfers and the read models, on whichever store the bank runs on.

use std::time::Duration;

use anyhow::Context;
use bank::store::{contents, BankApp, StoreChoice};
use bank::{
    settle, Account, AccountError, AccountOpened, CloseAccount, Deposit, OpenAccount, StartTransfer,
    Transfer, VerifyAccount, Withdraw,
};
use es_core::error::ExecuteError;
use es_core::store::EventStore;
use es_core::{Es, EventSet, GlobalPosition, StreamVersion};

/// Runs the demo on `choice`, saying first what earlier runs left there.
pub(crate) async fn demo(choice: &StoreChoice) -> anyhow::Result<()> {
    let app = bank::store::open(choice, |read_side| read_side).await?;
    let found = contents(app.es.event_store().as_ref()).await?;
    println!(
        "bank demo on {}: {} events and {} accounts stored by earlier runs\n",
        choice.describe(),
        found.events,
        found.accounts
    );
    let result = run(&app).await;
    app.es.shutdown().await;
    result
}

async fn run(app: &BankApp) -> anyhow::Result<()> {
    let es = &app.es;
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

    println!("\n== two nodes on one store");
    // A second application on the same store, as a second process would be.
    let other = Es::builder().event_store(std::sync::Arc::clone(es.event_store())).build().await?;
    let warm = other.execute(Deposit { account_id: ada.clone(), amount: 1 }).await?;
    let seen = other.load::<bank::Account>(&ada).await?.balance;
    println!("node B deposits {} into {ada}; its actor now holds {}", cents(1), cents(seen));
    es.execute(Deposit { account_id: ada.clone(), amount: 5_000 }).await?;
    println!("node A deposits {} into {ada}; node B's actor has not seen it", cents(5_000));
    let asked = seen + 2_500;
    let withdrawn =
        other.execute(Withdraw { account_id: ada.clone(), amount: asked, reference: None }).await?;
    println!(
        "node B withdraws {} -> version {}: more than its actor held, so before refusing it read the \
         stream's head, caught up from version {} and decided again",
        cents(asked),
        withdrawn.version.map_or(0, StreamVersion::get),
        warm.version.map_or(0, StreamVersion::get)
    );
    other.shutdown().await;
    settle(read_side, Duration::from_secs(30)).await?;

    println!("\n== read side");
    for s in app.summaries.all().await? {
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
    let outbox = app.outbox().context("the demo has a projection store")?;
    for mail in outbox.mails().await? {
        if mail.account_id == ada || mail.account_id == bob {
            println!("mail-outbox: to {} about {}: {}", mail.to, mail.account_id, mail.subject);
        }
    }
    for status in read_side.statuses() {
        println!(
            "subscription {}: {:?} at position {}, behind {:?}",
            status.name,
            status.state,
            es.event_store().describe_position(status.position),
            status.behind
        );
    }
    Ok(())
}

fn cents(amount: u64) -> String {
    format!("${}.{:02}", amount / 100, amount % 100)
}
