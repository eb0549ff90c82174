//! An event needs only `#[event]`: es serializes it and sends it across
//! threads, nothing more. `Debug`, `Clone` and `PartialEq` are the user's
//! choice; the test kit's checks that print or compare events ask for them,
//! the others do not.

use es_core::testkit::AggregateTest;
use es_core::{command, event, Aggregate, Apply, Es, Events, Handle};
use es_memory::InMemoryEventStore;
use serde::{Deserialize, Serialize};

#[derive(Debug)]
struct AccountError;

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for AccountError {}

#[event]
struct Deposited {
    amount: u64,
}

#[event(version = 2)]
enum Flagged {
    Frozen,
    Noted { why: String },
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Deposit {
    #[id]
    account_id: String,
    amount: u64,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = AccountError, events(Deposited, Flagged), commands(Deposit))]
struct Account {
    balance: u64,
    frozen: bool,
}

impl Handle<Deposit> for Account {
    fn handle(&self, command: Deposit) -> Result<Events<Self>, AccountError> {
        let deposited = Events::one(Deposited { amount: command.amount });
        Ok(if command.amount > 100 { deposited.and(Flagged::Noted { why: "large".into() }) } else { deposited })
    }
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

impl Apply<Flagged> for Account {
    fn apply(&mut self, event: &Flagged) {
        self.frozen = matches!(event, Flagged::Frozen);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let es = Es::builder().event_store(InMemoryEventStore::new()).build().await.unwrap();
    let outcome = es.execute(Deposit { account_id: "1".into(), amount: 150 }).await.unwrap();
    assert_eq!(outcome.events.len(), 2);
    es.execute(Deposit { account_id: "1".into(), amount: 5 }).await.unwrap();
    let account = es.load::<Account>("1").await.unwrap();
    assert_eq!((account.balance, account.frozen), (155, false));

    let then = AggregateTest::<Account>::given(vec![Flagged::Frozen.into()])
        .when(Deposit { account_id: "1".into(), amount: 7 })
        .then_state(|account| assert!(account.frozen && account.balance == 7));
    let events = then.into_result().unwrap();
    assert!(matches!(events[..], [AccountEvent::Deposited(Deposited { amount: 7 })]));
}
