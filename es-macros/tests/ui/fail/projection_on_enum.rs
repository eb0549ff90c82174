use es_core::{event, projection};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyDeposited {
    amount: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyWithdrawn {
    amount: u64,
}

#[projection(name = "balances", events(MoneyDeposited))]
enum Balances {
    Empty,
}

fn main() {}
