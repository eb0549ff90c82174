use es_core::Aggregate;

#[derive(Aggregate)]
#[aggregate(name = "account")]
enum Account {
    Open { balance: u64 },
    Closed,
}

fn main() {}
