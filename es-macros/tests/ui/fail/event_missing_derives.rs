use es_core::event;

// The user derives Debug, Clone and PartialEq; the Event trait needs them.
#[event]
struct Deposited {
    amount: u64,
}

fn main() {}
