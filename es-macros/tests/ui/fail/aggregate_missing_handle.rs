use es_core::{command, event, Aggregate, Apply, Events, Handle};
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
#[derive(Debug, Clone, PartialEq)]
struct Opened {
    owner: String,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    amount: u64,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Open {
    #[id]
    account_id: String,
    owner: String,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Deposit {
    #[id]
    account_id: String,
    amount: u64,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = AccountError, events(Opened, Deposited), commands(Open, Deposit))]
struct Account {
    open: bool,
    balance: u64,
}

impl Handle<Open> for Account {
    fn handle(&self, command: Open) -> Result<Events<Self>, AccountError> {
        Ok(Events::one(Opened { owner: command.owner }))
    }
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {
        self.open = true;
    }
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}
fn main() {}
