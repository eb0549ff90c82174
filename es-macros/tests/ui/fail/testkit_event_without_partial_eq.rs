use es_core::testkit::AggregateTest;
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
struct Opened {}

// Enough for es, not for comparing events in a test.
#[event]
#[derive(Debug)]
struct Renamed {
    name: String,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Rename {
    #[id]
    account_id: String,
    name: String,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = AccountError, events(Opened, Renamed), commands(Rename))]
struct Account {}

impl Handle<Rename> for Account {
    fn handle(&self, command: Rename) -> Result<Events<Self>, AccountError> {
        Ok(Events::one(Renamed { name: command.name }))
    }
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {}
}

impl Apply<Renamed> for Account {
    fn apply(&mut self, _event: &Renamed) {}
}

fn main() {
    AggregateTest::<Account>::given(vec![Opened {}.into()])
        .when(Rename { account_id: "1".into(), name: "ada".into() })
        .then_expect_events(vec![Renamed { name: "ada".into() }.into()]);
}
