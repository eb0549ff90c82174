//! The counter the runtime benchmarks drive, declared with the es macros
//! as users write an aggregate.

use es_core::{command, event, Aggregate, Apply, Events, Handle};
use serde::{Deserialize, Serialize};

/// The counter went up.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct Incremented {
    /// By how much.
    pub by: u64,
}

/// Adds to a counter.
#[command(aggregate = Counter)]
#[derive(Debug, Clone)]
pub struct Increment {
    /// The counter.
    #[id]
    pub id: String,
    /// By how much.
    pub by: u64,
}

/// Decides nothing: starts (and keeps) an actor without appending.
#[command(aggregate = Counter)]
#[derive(Debug, Clone)]
pub struct Touch {
    /// The counter.
    #[id]
    pub id: String,
}

/// Asks to take from a counter: refused when it holds less than `by`,
/// otherwise decides nothing (the refusal path is what it measures).
#[command(aggregate = Counter)]
#[derive(Debug, Clone)]
pub struct Take {
    /// The counter.
    #[id]
    pub id: String,
    /// How much.
    pub by: u64,
}

/// The refusal of [`Take`].
#[derive(Debug, thiserror::Error)]
#[error("the counter holds {total}, cannot take {wanted}")]
pub struct CounterError {
    /// What the counter holds.
    pub total: u64,
    /// What was asked for.
    pub wanted: u64,
}

/// A counter: the sum of its increments.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(name = "counter", error = CounterError, events(Incremented), commands(Increment, Touch, Take))]
pub struct Counter {
    /// The sum.
    pub total: u64,
    /// How many increments.
    pub count: u64,
}

impl Handle<Increment> for Counter {
    fn handle(&self, command: Increment) -> Result<Events<Self>, CounterError> {
        Ok(Events::one(Incremented { by: command.by }))
    }
}

impl Handle<Touch> for Counter {
    fn handle(&self, _: Touch) -> Result<Events<Self>, CounterError> {
        Ok(Events::none())
    }
}

impl Handle<Take> for Counter {
    fn handle(&self, command: Take) -> Result<Events<Self>, CounterError> {
        if command.by > self.total {
            return Err(CounterError { total: self.total, wanted: command.by });
        }
        Ok(Events::none())
    }
}

impl Apply<Incremented> for Counter {
    fn apply(&mut self, e: &Incremented) {
        self.total += e.by;
        self.count += 1;
    }
}

/// `Increment { id, by: 1 }`.
pub fn increment(id: &str) -> Increment {
    Increment { id: id.to_owned(), by: 1 }
}
