use es_core::event;

// Every mistake is reported in one build, each at its own token.
#[event(name = "", version = 0, colour = "red")]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    amount: u64,
}

fn main() {}
