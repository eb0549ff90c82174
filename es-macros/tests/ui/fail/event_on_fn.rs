use es_core::event;

#[event]
fn deposited() {}

fn main() {}
