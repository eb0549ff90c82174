//! The user's derives may come before or after the es attribute.

use es_core::{command, event, Aggregate, Apply, Events, Handle};

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

#[derive(Debug, Clone, PartialEq)]
#[event]
struct Rang {
    times: u64,
}

#[derive(Debug, Clone)]
#[command(aggregate = Bell)]
struct Ring {
    #[id]
    bell: u64,
    #[validate(min = 1)]
    times: u64,
}

#[derive(Aggregate, Default, serde::Serialize, serde::Deserialize)]
#[aggregate(name = "bell", error = Refused, events(Rang), commands(Ring))]
struct Bell {
    rung: u64,
}

impl Handle<Ring> for Bell {
    fn handle(&self, command: Ring) -> Result<Events<Self>, Refused> {
        Ok(Events::one(Rang { times: command.times }))
    }
}

impl Apply<Rang> for Bell {
    fn apply(&mut self, event: &Rang) {
        self.rung += event.times;
    }
}

fn main() {}
