use es_core::event;

#[event(version = "2")]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    amount: u64,
}

fn main() {}
