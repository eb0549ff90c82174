use es_core::event;

#[event(name = "")]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    amount: u64,
}

fn main() {}
