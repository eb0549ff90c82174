use es_core::{command, event, Aggregate, Apply, Events, Handle};
use serde::{Deserialize, Serialize};

#[event]
struct Opened {}

// Forgot `Clone`: a command is decided again after a conflict.
#[command(aggregate = Account)]
#[derive(Debug)]
struct Open {
    #[id]
    account_id: String,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = std::convert::Infallible, events(Opened), commands(Open))]
struct Account {}

impl Handle<Open> for Account {
    fn handle(&self, _command: Open) -> Result<Events<Self>, std::convert::Infallible> {
        Ok(Events::one(Opened {}))
    }
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {}
}

fn main() {}
