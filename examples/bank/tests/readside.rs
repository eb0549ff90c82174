//! The bank's read side on the in-memory stores: projections, the welcome
//! mail and the transfer process manager, registered at link time.

// Helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bank::{
    settle, Account, AccountEvent, AccountSummaries, AccountSummary, CloseAccount, Deposit, HistoryEntry,
    OpenAccount, Outbox, StartTransfer, Transaction, TransactionHistories, TransactionHistory,
    TransactionKind, Transfer, TransferProcess, TransferStatus, VerifyAccount, Withdraw, ACCOUNT_SUMMARY,
    TRANSACTION_HISTORY, TRANSFER_REFERENCE,
};
use es_core::readside::{Documents, Registry, SubscriptionKind};
use es_core::store::{Checkpoint, Direction, EventStore, ProjectionStore, RecordedEvent, UnitOfWork};
use es_core::testkit::{Fault, StoreCall, TestStore};
use es_core::{Aggregate, Es, GlobalPosition, Metadata, ReadSide, StreamId, StreamVersion};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

const WAIT: Duration = Duration::from_secs(60);

/// An application with its read side running every bank subscriber.
struct Bank {
    es: Es,
    read_side: ReadSide,
    /// Counts appends, and makes chosen ones fail.
    events: TestStore<InMemoryEventStore>,
    /// The projection store, counting calls: the outbox is the only thing
    /// written with `put` (projections commit), so the puts are the mails
    /// written; a mail written twice with the same id would not show in
    /// the documents.
    documents: Arc<TestStore<InMemoryProjectionStore>>,
    outbox: Outbox,
}

impl Bank {
    async fn start() -> Self {
        let bank = Self::stopped().await;
        bank.read_side.start().unwrap();
        bank
    }

    /// The application with its read side built but not started.
    async fn stopped() -> Self {
        let events = TestStore::new(InMemoryEventStore::new());
        let documents = Arc::new(TestStore::new(InMemoryProjectionStore::new()));
        let es = Es::builder()
            .event_store(events.clone())
            .projection_store(Arc::clone(&documents))
            .build()
            .await
            .unwrap();
        let outbox = Outbox::new(Arc::clone(es.projection_store().unwrap()));
        let read_side = ReadSide::builder().es(&es).state(outbox.clone()).build().unwrap();
        Self { es, read_side, events, documents, outbox }
    }

    /// Opens a verified account holding `balance`.
    async fn open(&self, id: &str, owner: &str, balance: u64) {
        let opened =
            self.es.execute(OpenAccount { account_id: id.into(), owner: owner.into() }).await.unwrap();
        let code = match &opened.events[..] {
            [AccountEvent::AccountOpened(opened)] => opened.verification_code.clone(),
            other => panic!("unexpected events {other:?}"),
        };
        self.es.execute(VerifyAccount { account_id: id.into(), code }).await.unwrap();
        if balance > 0 {
            self.es.execute(Deposit { account_id: id.into(), amount: balance }).await.unwrap();
        }
    }

    async fn settle(&self) {
        settle(&self.read_side, WAIT).await.unwrap();
    }

    async fn summary(&self, id: &str) -> AccountSummary {
        self.summaries().await.get(id).await.unwrap().expect("a summary")
    }

    async fn summaries(&self) -> Documents<AccountSummary> {
        self.read_side.documents(ACCOUNT_SUMMARY)
    }

    async fn history(&self, id: &str) -> Vec<Transaction> {
        let entries = self.read_side.documents::<HistoryEntry>(TRANSACTION_HISTORY);
        TransactionHistory::load(&entries, id).await.unwrap().transactions
    }

    fn mails_written(&self) -> u64 {
        self.documents.calls(StoreCall::Put)
    }

    async fn balance(&self, id: &str) -> u64 {
        self.es.load::<Account>(id).await.unwrap().balance
    }

    async fn stream<A: Aggregate>(&self, id: &str) -> Vec<RecordedEvent> {
        let stream = StreamId::for_aggregate(A::NAME, id);
        self.events.read_stream(&stream, StreamVersion::FIRST, Direction::Forward, 1000).await.unwrap()
    }

    async fn stop(self) {
        self.read_side.shutdown().await;
        self.es.shutdown().await;
    }
}

#[test]
fn every_bank_subscriber_registers_at_link_time() {
    let registry = Registry::from_inventory().unwrap();
    let names: Vec<_> = registry.names().collect();
    assert_eq!(
        names,
        [AccountSummaries::NAME, TransactionHistories::NAME, TransferProcess::NAME, "welcome-mail"]
    );
    assert_eq!(registry.get(AccountSummaries::NAME).unwrap().kind(), SubscriptionKind::Projection);
    assert_eq!(registry.get("welcome-mail").unwrap().replay_mode(), es_core::readside::Replay::Skip);
    assert_eq!(registry.get(TransferProcess::NAME).unwrap().replay_mode(), es_core::readside::Replay::Skip);
}

#[tokio::test]
async fn summaries_and_histories_follow_the_commands() {
    let bank = Bank::start().await;
    bank.open("ada", "Ada Lovelace", 10_000).await;
    bank.es.execute(Deposit { account_id: "ada".into(), amount: 2_500 }).await.unwrap();
    bank.es
        .execute(Withdraw { account_id: "ada".into(), amount: 4_000, reference: Some("rent".into()) })
        .await
        .unwrap();
    bank.es.execute(OpenAccount { account_id: "bob".into(), owner: "Bob".into() }).await.unwrap();
    bank.open("cy", "Cy", 0).await;
    bank.es.execute(CloseAccount { account_id: "cy".into() }).await.unwrap();
    bank.settle().await;

    let ada = bank.summary("ada").await;
    let opened = bank.es.load::<Account>("ada").await.unwrap();
    assert_eq!(
        ada,
        AccountSummary {
            account_id: "ada".into(),
            owner: "Ada Lovelace".into(),
            account_number: opened.account_number,
            balance: 8_500,
            verified: true,
            closed: false,
            transactions: 3,
        }
    );
    let bob = bank.summary("bob").await;
    assert_eq!((bob.owner.as_str(), bob.balance, bob.verified, bob.transactions), ("Bob", 0, false, 0));
    let cy = bank.summary("cy").await;
    assert!(cy.verified && cy.closed, "{cy:?}");
    assert_eq!(bank.summaries().await.count().await.unwrap(), 3);

    let ada_events = bank.stream::<Account>("ada").await;
    let position_of = |version: u64| ada_events[usize::try_from(version).unwrap() - 1].global_position.get();
    let history = bank.history("ada").await;
    assert_eq!(
        history,
        [
            Transaction {
                position: position_of(3),
                kind: TransactionKind::Deposit,
                amount: 10_000,
                reference: None
            },
            Transaction {
                position: position_of(4),
                kind: TransactionKind::Deposit,
                amount: 2_500,
                reference: None
            },
            Transaction {
                position: position_of(5),
                kind: TransactionKind::Withdrawal,
                amount: 4_000,
                reference: Some("rent".into()),
            },
        ]
    );
    assert!(bank.history("bob").await.is_empty());
    bank.stop().await;
}

#[tokio::test]
async fn a_completed_transfer_moves_the_money() {
    let bank = Bank::start().await;
    bank.open("ada", "Ada", 10_000).await;
    bank.open("bob", "Bob", 500).await;
    let transfer =
        StartTransfer { transfer_id: "t-1".into(), from: "ada".into(), to: "bob".into(), amount: 4_000 };
    bank.es.execute(transfer).await.unwrap();
    bank.settle().await;

    let state = bank.es.load::<Transfer>("t-1").await.unwrap();
    assert_eq!((state.status, state.reason), (TransferStatus::Completed, None));
    assert_eq!((bank.balance("ada").await, bank.balance("bob").await), (6_000, 4_500));
    assert_eq!((bank.summary("ada").await.balance, bank.summary("bob").await.balance), (6_000, 4_500));
    let ada_last = bank.history("ada").await.pop().unwrap();
    assert_eq!((ada_last.kind, ada_last.amount), (TransactionKind::Withdrawal, 4_000));
    assert_eq!(ada_last.reference.as_deref(), Some("t-1"));
    let bob_last = bank.history("bob").await.pop().unwrap();
    assert_eq!((bob_last.kind, bob_last.amount), (TransactionKind::Deposit, 4_000));
    assert_eq!(bob_last.reference.as_deref(), Some("t-1"));
    bank.stop().await;
}

#[tokio::test]
async fn a_transfer_to_a_closed_or_missing_account_is_refunded() {
    let bank = Bank::start().await;
    bank.open("ada", "Ada", 10_000).await;
    bank.open("bob", "Bob", 0).await;
    bank.es.execute(CloseAccount { account_id: "bob".into() }).await.unwrap();
    for (id, to) in [("t-closed", "bob"), ("t-missing", "nobody")] {
        let transfer =
            StartTransfer { transfer_id: id.into(), from: "ada".into(), to: to.into(), amount: 3_000 };
        bank.es.execute(transfer).await.unwrap();
    }
    bank.settle().await;

    let closed = bank.es.load::<Transfer>("t-closed").await.unwrap();
    assert_eq!(closed.status, TransferStatus::Refunded);
    assert_eq!(closed.reason.as_deref(), Some("account is closed"));
    let missing = bank.es.load::<Transfer>("t-missing").await.unwrap();
    assert_eq!(missing.status, TransferStatus::Refunded);
    assert_eq!(missing.reason.as_deref(), Some("account does not exist"));

    // The money left and came back, twice: balances are unchanged overall.
    assert_eq!(bank.balance("ada").await, 10_000);
    assert_eq!(bank.balance("bob").await, 0);
    let ada = bank.summary("ada").await;
    assert_eq!((ada.balance, ada.transactions), (10_000, 5));
    let moves: Vec<_> =
        bank.history("ada").await.into_iter().skip(1).map(|t| (t.kind, t.reference)).collect();
    let (out, back) = (TransactionKind::Withdrawal, TransactionKind::Deposit);
    let refs = |id: &str| Some(id.to_owned());
    assert_eq!(
        moves,
        [
            (out, refs("t-closed")),
            (back, refs("t-closed")),
            (out, refs("t-missing")),
            (back, refs("t-missing"))
        ]
    );
    assert!(bank.stream::<Account>("nobody").await.is_empty(), "a refused credit opens nothing");
    bank.stop().await;
}

#[tokio::test]
async fn a_transfer_without_funds_fails_and_moves_nothing() {
    let bank = Bank::start().await;
    bank.open("ada", "Ada", 1_000).await;
    bank.open("bob", "Bob", 0).await;
    let transfer =
        StartTransfer { transfer_id: "t-1".into(), from: "ada".into(), to: "bob".into(), amount: 5_000 };
    bank.es.execute(transfer).await.unwrap();
    bank.settle().await;

    let state = bank.es.load::<Transfer>("t-1").await.unwrap();
    assert_eq!(state.status, TransferStatus::Failed);
    assert_eq!(state.reason.as_deref(), Some("insufficient funds: balance 1000, requested 5000"));
    assert_eq!((bank.balance("ada").await, bank.balance("bob").await), (1_000, 0));
    assert_eq!(bank.summary("ada").await.transactions, 1);
    bank.stop().await;
}

#[tokio::test]
async fn the_transfer_events_are_caused_by_and_correlated_with_its_start() {
    let bank = Bank::start().await;
    bank.open("ada", "Ada", 10_000).await;
    bank.open("bob", "Bob", 0).await;
    let correlation = uuid::Uuid::now_v7();
    let transfer =
        StartTransfer { transfer_id: "t-1".into(), from: "ada".into(), to: "bob".into(), amount: 1_000 };
    let started =
        bank.es.execute_with(transfer, Metadata::new().with_correlation_id(correlation)).await.unwrap();
    bank.settle().await;

    let started_id = started.committed[0].event_id.as_uuid();
    let transfer_events = bank.stream::<Transfer>("t-1").await;
    let types: Vec<_> = transfer_events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["TransferStarted", "TransferDebited", "TransferCompleted"]);
    let caused: Vec<RecordedEvent> = transfer_events
        .into_iter()
        .skip(1)
        .chain(bank.stream::<Account>("ada").await.pop())
        .chain(bank.stream::<Account>("bob").await.pop())
        .collect();
    assert_eq!(caused.len(), 4);
    for event in caused {
        assert_eq!(
            event.metadata.causation_id,
            Some(started_id),
            "{} of {}",
            event.event_type,
            event.stream_id
        );
        assert_eq!(
            event.metadata.correlation_id,
            Some(correlation),
            "{} of {}",
            event.event_type,
            event.stream_id
        );
    }
    let deposit = bank.stream::<Account>("bob").await.pop().unwrap();
    assert_eq!(deposit.metadata.fields.get(TRANSFER_REFERENCE), Some(&serde_json::json!("t-1")));
    bank.stop().await;
}

/// The types of the events of `stream`, oldest first.
fn event_types(stream: Vec<RecordedEvent>) -> Vec<String> {
    stream.into_iter().map(|e| e.event_type).collect()
}

#[tokio::test]
async fn a_transfer_that_crashes_after_any_of_its_commands_moves_the_money_once() {
    // The process's commands, in the order it appends them: Withdraw,
    // MarkDebited, Deposit, MarkCompleted. The append of the n-th stores
    // its events and then dies, so the process never hears the outcome:
    // the runner delivers `TransferStarted` again, and the process resumes
    // where the transfer stands, resending what it had not seen answered.
    for crash_at in 1..=4 {
        let bank = Bank::stopped().await;
        bank.open("ada", "Ada", 10_000).await;
        bank.open("bob", "Bob", 0).await;
        let transfer =
            StartTransfer { transfer_id: "t-1".into(), from: "ada".into(), to: "bob".into(), amount: 4_000 };
        bank.es.execute(transfer).await.unwrap();
        let crash = bank.events.calls(StoreCall::Append) + crash_at;
        bank.events.inject(StoreCall::Append, Fault::PanicAfter, crash..=crash);

        bank.read_side.start().unwrap();
        bank.settle().await;
        let transfer = bank.es.load::<Transfer>("t-1").await.unwrap();
        assert_eq!(transfer.status, TransferStatus::Completed, "crash at command {crash_at}");
        assert_eq!(
            (bank.balance("ada").await, bank.balance("bob").await),
            (6_000, 4_000),
            "crash at command {crash_at}"
        );
        let ada = event_types(bank.stream::<Account>("ada").await);
        assert_eq!(ada, ["AccountOpened", "AccountVerified", "MoneyDeposited", "MoneyWithdrawn"]);
        let bob = event_types(bank.stream::<Account>("bob").await);
        assert_eq!(bob, ["AccountOpened", "AccountVerified", "MoneyDeposited"]);
        bank.stop().await;
    }
}

#[tokio::test]
async fn a_transfer_delivered_again_moves_no_money_again() {
    let bank = Bank::start().await;
    bank.open("ada", "Ada", 10_000).await;
    bank.open("bob", "Bob", 0).await;
    let transfer =
        StartTransfer { transfer_id: "t-1".into(), from: "ada".into(), to: "bob".into(), amount: 4_000 };
    let started = bank.es.execute(transfer).await.unwrap();
    bank.settle().await;
    let appends = bank.events.calls(StoreCall::Append);
    let head = bank.es.event_store().head_position().await.unwrap();

    // Rewind the process's checkpoint to just before `TransferStarted`, as
    // a node that crashed before committing it would find it, and run it
    // again: the event is delivered a second time (as news, not replay).
    let process = TransferProcess::NAME;
    bank.read_side.stop(process).await.unwrap();
    let before = GlobalPosition(started.committed[0].global_position.get() - 1);
    let mut rewind = UnitOfWork::new();
    rewind.checkpoint(Checkpoint::at(before));
    bank.documents.commit(process, rewind).await.unwrap();
    bank.read_side.start().unwrap();
    bank.settle().await;

    assert_eq!(bank.documents.checkpoint(process).await.unwrap().map(|c| c.position), Some(head));
    assert_eq!(bank.es.load::<Transfer>("t-1").await.unwrap().status, TransferStatus::Completed);
    assert_eq!((bank.balance("ada").await, bank.balance("bob").await), (6_000, 4_000));
    assert_eq!(bank.events.calls(StoreCall::Append), appends, "nothing was stored again");
    assert_eq!(bank.stream::<Account>("ada").await.len(), 4, "one withdrawal");
    assert_eq!(bank.stream::<Account>("bob").await.len(), 3, "one deposit");
    assert_eq!(bank.stream::<Transfer>("t-1").await.len(), 3);
    bank.stop().await;
}

#[tokio::test]
async fn the_welcome_mail_is_written_once_per_account_and_never_on_replay() {
    let bank = Bank::start().await;
    bank.open("ada", "Ada Lovelace", 10_000).await;
    bank.open("bob", "Bob", 0).await;
    let transfer =
        StartTransfer { transfer_id: "t-1".into(), from: "ada".into(), to: "bob".into(), amount: 2_000 };
    bank.es.execute(transfer).await.unwrap();
    bank.settle().await;

    let mails = bank.outbox.mails().await.unwrap();
    assert_eq!(bank.mails_written(), 2);
    // The outbox is listed in mail id (event id) order, which is not the
    // order the accounts were opened in when both opened in one millisecond.
    let mut recipients: Vec<_> = mails.iter().map(|m| (m.to.as_str(), m.account_id.as_str())).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, [("Ada Lovelace", "ada"), ("Bob", "bob")]);
    let ada = bank.es.load::<Account>("ada").await.unwrap();
    let ada_mail = mails.iter().find(|m| m.account_id == "ada").unwrap();
    assert!(ada_mail.body.contains(&ada.verification_code), "{}", ada_mail.body);
    let summaries = bank.summaries().await.list().await.unwrap();
    let histories = (bank.history("ada").await, bank.history("bob").await);

    // Replay every handler and rebuild every projection.
    for name in ["welcome-mail", TransferProcess::NAME] {
        bank.read_side.rebuild(name).await.unwrap();
    }
    for name in [AccountSummaries::NAME, TransactionHistories::NAME] {
        bank.read_side.rebuild(name).await.unwrap();
    }
    bank.settle().await;
    assert_eq!(bank.outbox.mails().await.unwrap(), mails);
    assert_eq!(bank.mails_written(), 2, "no mail is written again");
    assert_eq!(bank.summaries().await.list().await.unwrap(), summaries, "rebuilt, not doubled");
    assert_eq!((bank.history("ada").await, bank.history("bob").await), histories);
    assert_eq!(
        (bank.balance("ada").await, bank.balance("bob").await),
        (8_000, 2_000),
        "no money moved again"
    );
    let transfer_events = bank.stream::<Transfer>("t-1").await;
    assert_eq!(transfer_events.len(), 3, "the process did not run again");

    // What happens after the replay is news: the next account gets its mail.
    bank.es.execute(OpenAccount { account_id: "cy".into(), owner: "Cy".into() }).await.unwrap();
    bank.settle().await;
    let mails = bank.outbox.mails().await.unwrap();
    let mut accounts: Vec<_> = mails.iter().map(|m| m.account_id.as_str()).collect();
    accounts.sort_unstable();
    assert_eq!(accounts, ["ada", "bob", "cy"]);
    assert_eq!(bank.mails_written(), 3);
    bank.stop().await;
}
