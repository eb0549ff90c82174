use es_core::event;

#[event]
#[derive(Clone, Copy)]
union Deposited {
    cents: u64,
    whole: f64,
}

fn main() {}
