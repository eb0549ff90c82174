//! Generated code keeps working when the user's scope shadows the std and
//! es-core names it uses. (`str` is left alone: serde's own derives, which
//! `#[event]` applies, do not survive a shadowed `str`.)
#![allow(dead_code, non_camel_case_types)]

use ::es_core::{command, event, Aggregate, Apply, Events, Handle};

struct Result;
struct Option;
struct String;
struct Vec;
struct From;
struct Clone;
struct Debug;
struct PartialEq;
struct ToString;
struct u32;
mod es_core {}
mod serde {}
mod serde_json {}

#[derive(std::fmt::Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

#[event(version = 2)]
#[derive(std::fmt::Debug, std::clone::Clone, std::cmp::PartialEq)]
struct Rang {
    times: u64,
}

#[command(aggregate = Bell)]
#[derive(std::fmt::Debug, std::clone::Clone)]
struct Ring {
    #[id]
    bell: u64,
    #[validate(min = 1)]
    times: u64,
    #[validate(non_empty)]
    tune: std::string::String,
}

#[derive(Aggregate, Default, ::serde::Serialize, ::serde::Deserialize)]
#[aggregate(name = "bell", error = Refused, events(Rang), commands(Ring))]
struct Bell {
    rung: u64,
}

impl Handle<Ring> for Bell {
    fn handle(&self, command: Ring) -> std::result::Result<Events<Self>, Refused> {
        std::result::Result::Ok(Events::one(Rang { times: command.times }))
    }
}

impl Apply<Rang> for Bell {
    fn apply(&mut self, event: &Rang) {
        self.rung += event.times;
    }
}

fn main() {}
