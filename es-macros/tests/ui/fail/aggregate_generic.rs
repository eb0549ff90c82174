use es_core::{event, Aggregate};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Opened {
    owner: String,
}

#[derive(Aggregate)]
#[aggregate(name = "account", error = std::convert::Infallible, events(Opened), commands())]
struct Account<T> {
    balance: T,
}

fn main() {}
