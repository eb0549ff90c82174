use es_core::command;

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Deposit {
    #[id]
    account_id: String,
    #[validate(min = 1)]
    #[validate(max = 100, min = 2)]
    amount: u64,
}

fn main() {}
