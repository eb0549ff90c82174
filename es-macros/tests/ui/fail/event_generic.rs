use es_core::event;

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Deposited<T> {
    amount: T,
}

fn main() {}
