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

#[event]
struct Locked {}

// The two ends of the tie disagree: `Lock` names `Vault`, which does not
// list it, and `Account` lists it. Either end may be the one to fix, so
// each is reported where it is written.
#[command(aggregate = Vault)]
#[derive(Debug, Clone)]
struct Lock {
    #[id]
    id: String,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "vault", error = AccountError, events(Locked), commands())]
struct Vault {}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = AccountError, events(Opened), commands(Lock))]
struct Account {}

impl Handle<Lock> for Account {
    fn handle(&self, _command: Lock) -> Result<Events<Self>, AccountError> {
        Ok(Events::none())
    }
}

impl Apply<Locked> for Vault {
    fn apply(&mut self, _event: &Locked) {}
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {}
}

fn main() {}
