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
struct Opened {
    owner: String,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Open {
    #[id]
    account_id: String,
}

// Says it is a command of `Account`, which does not list it.
#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Withdraw {
    #[id]
    account_id: String,
    amount: u64,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = AccountError, events(Opened), commands(Open))]
struct Account {
    open: bool,
}

impl Handle<Open> for Account {
    fn handle(&self, _command: Open) -> Result<Events<Self>, AccountError> {
        Ok(Events::none())
    }
}

impl Handle<Withdraw> for Account {
    fn handle(&self, _command: Withdraw) -> Result<Events<Self>, AccountError> {
        Ok(Events::none())
    }
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {
        self.open = true;
    }
}

fn main() {}
