use es_core::{event, Aggregate, Apply};
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Opened {
    owner: String,
}

#[event(name = "Opened")]
#[derive(Debug, Clone, PartialEq)]
struct Reopened {
    owner: String,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = std::convert::Infallible, events(Opened, Reopened), commands())]
struct Account {
    open: bool,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {
        self.open = true;
    }
}

impl Apply<Reopened> for Account {
    fn apply(&mut self, _event: &Reopened) {
        self.open = true;
    }
}

fn main() {}
