use es_core::command;

/// Not an aggregate: it has no `#[derive(Aggregate)]`.
struct Account;

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Open {
    #[id]
    account_id: String,
}

fn main() {
    let _ = Account;
}
