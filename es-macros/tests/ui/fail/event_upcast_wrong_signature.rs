use es_core::event;

fn upcast_deposited(from_version: u32) -> u32 {
    from_version
}

#[event(version = 2, upcast = upcast_deposited)]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    amount: u64,
}

fn main() {}
