use es_core::{event, Aggregate, Apply};
use serde::{Deserialize, Serialize};

mod v1 {
    use es_core::event;

    #[event(name = "OpenedV1")]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Opened {
        pub owner: String,
    }
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Opened {
    owner: String,
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(name = "account", error = std::convert::Infallible, events(v1::Opened, Opened), commands())]
struct Account {
    open: bool,
}

impl Apply<v1::Opened> for Account {
    fn apply(&mut self, _event: &v1::Opened) {
        self.open = true;
    }
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _event: &Opened) {
        self.open = true;
    }
}

fn main() {}
