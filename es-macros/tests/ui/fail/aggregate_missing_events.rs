use es_core::Aggregate;
use serde::{Deserialize, Serialize};

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = std::convert::Infallible, commands())]
struct Account {
    open: bool,
}

fn main() {}
