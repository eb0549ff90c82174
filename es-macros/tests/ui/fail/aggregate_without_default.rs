use es_core::{event, Aggregate, Apply};
use serde::{Deserialize, Serialize};

#[event]
struct Opened {}

// Forgot `Default`: a new aggregate starts from it.
#[derive(Aggregate, Serialize, Deserialize)]
#[aggregate(name = "account", error = std::convert::Infallible, events(Opened), commands())]
struct Account {}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {}
}

fn main() {}
