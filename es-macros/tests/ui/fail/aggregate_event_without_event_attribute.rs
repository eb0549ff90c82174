use es_core::{event, Aggregate, Apply};
use serde::{Deserialize, Serialize};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Opened {
    owner: String,
}

// Forgot `#[event]`.
#[derive(Debug, Clone, PartialEq)]
struct Closed;

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = std::convert::Infallible, events(Opened, Closed), commands())]
struct Account {
    open: bool,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {
        self.open = true;
    }
}

// The user's own code naming `Closed` adds no error of its own.
impl Apply<Closed> for Account {
    fn apply(&mut self, _event: &Closed) {
        self.open = false;
    }
}

fn main() {}
