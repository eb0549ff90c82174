use es_core::event;

#[event(nmae = "Deposited")]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    amount: u64,
}

fn main() {}
