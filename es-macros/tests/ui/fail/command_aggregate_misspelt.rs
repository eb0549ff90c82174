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
struct Opened {}

#[command(aggregate = Acount)]
#[derive(Debug, Clone)]
struct Open {
    #[id]
    account_id: String,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = AccountError, events(Opened), commands(Open))]
struct Account {}

impl Handle<Open> for Account {
    fn handle(&self, _command: Open) -> Result<Events<Self>, AccountError> {
        Ok(Events::one(Opened {}))
    }
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {}
}

fn main() {}
