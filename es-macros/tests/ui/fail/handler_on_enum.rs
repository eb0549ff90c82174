use es_core::{event, event_handler};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {
    owner: String,
}

#[event_handler(name = "audit")]
enum Audit {
    Loud,
}

fn main() {}
