//! The counter of the Elixir OTP post, on es, and the passivating
//! aggregates of the Erlang experiment, runnable on every store.
//!
//! - The domain ([`Counter`]): [`Create`], [`Increment`] and
//!   [`IncrementTwice`], a chained double increment decided in one call
//!   that yields two [`Incremented`] events.
//! - One live actor per counter however many callers race: the runtime
//!   routes every command of a counter to its one actor, which handles them
//!   one at a time, so a burst of concurrent increments is counted exactly
//!   with no conflict ([`race`]).
//! - The `counters` read model ([`counters`]): a table written with the
//!   application's own SQL on SQLite and Postgres, documents on the
//!   in-memory and Redis stores; idempotent by stream version, so an event
//!   delivered again changes nothing.
//! - The cost of a command against its history ([`cost`]): with actors a
//!   hot counter costs the same at 10 and at 100,000 events of history;
//!   reloading the history for every command costs O(N).
//! - Passivation ([`passivation`]): idle counters stop, and come back from
//!   the store (a snapshot plus later events) on their next command.
//! - The store is chosen by one flag ([`store::StoreKind`]).

pub mod cost;
pub mod counters;
pub mod passivation;
pub mod race;
pub mod store;

use es_core::{command, event, Aggregate, Apply, Events, Handle};
use serde::{Deserialize, Serialize};

/// A counter came to be, at 0.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct Created;

/// A counter went up by `by`.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct Incremented {
    /// How much it went up.
    pub by: u64,
}

/// Creates a counter; creating one that exists changes nothing.
#[command(aggregate = Counter)]
#[derive(Debug, Clone)]
pub struct Create {
    /// The counter.
    #[id]
    pub counter_id: String,
}

/// Adds `by` to a counter.
#[command(aggregate = Counter)]
#[derive(Debug, Clone)]
pub struct Increment {
    /// The counter.
    #[id]
    pub counter_id: String,
    /// How much to add (at least 1).
    #[validate(min = 1)]
    pub by: u64,
}

/// Adds `by` to a counter twice, decided in one call: two events, stored
/// together or not at all.
#[command(aggregate = Counter)]
#[derive(Debug, Clone)]
pub struct IncrementTwice {
    /// The counter.
    #[id]
    pub counter_id: String,
    /// How much to add, each time (at least 1).
    #[validate(min = 1)]
    pub by: u64,
}

/// Why a counter refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    /// Only a created counter counts.
    #[error("the counter was not created")]
    NotCreated,
}

/// A counter: whether it was created, and its value.
#[derive(Aggregate, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[aggregate(
    name = "counter",
    error = CounterError,
    events(Created, Incremented),
    commands(Create, Increment, IncrementTwice)
)]
pub struct Counter {
    /// Whether it was created.
    pub created: bool,
    /// Its value.
    pub value: u64,
}

impl Handle<Create> for Counter {
    fn handle(&self, _: Create) -> Result<Events<Self>, CounterError> {
        Ok(if self.created { Events::none() } else { Events::one(Created) })
    }
}

impl Handle<Increment> for Counter {
    fn handle(&self, cmd: Increment) -> Result<Events<Self>, CounterError> {
        if !self.created {
            return Err(CounterError::NotCreated);
        }
        Ok(Events::one(Incremented { by: cmd.by }))
    }
}

impl Handle<IncrementTwice> for Counter {
    fn handle(&self, cmd: IncrementTwice) -> Result<Events<Self>, CounterError> {
        if !self.created {
            return Err(CounterError::NotCreated);
        }
        Ok(Events::one(Incremented { by: cmd.by }).and(Incremented { by: cmd.by }))
    }
}

impl Apply<Created> for Counter {
    fn apply(&mut self, _: &Created) {
        self.created = true;
    }
}

impl Apply<Incremented> for Counter {
    fn apply(&mut self, e: &Incremented) {
        self.value += e.by;
    }
}

#[cfg(test)]
mod tests {
    use es_core::testkit::AggregateTest;

    use super::*;

    #[test]
    fn a_double_increment_is_two_events_decided_in_one_call() {
        AggregateTest::<Counter>::given(vec![Created.into()])
            .when(IncrementTwice { counter_id: "c".into(), by: 3 })
            .then_expect_events(vec![Incremented { by: 3 }.into(), Incremented { by: 3 }.into()])
            .then_state(|counter| assert_eq!(counter.value, 6));
    }

    #[test]
    fn only_a_created_counter_counts_and_creating_twice_changes_nothing() {
        AggregateTest::<Counter>::given_no_events()
            .when(Increment { counter_id: "c".into(), by: 1 })
            .then_expect_error(CounterError::NotCreated);
        AggregateTest::<Counter>::given(vec![Created.into()])
            .when(Create { counter_id: "c".into() })
            .then_expect_no_events();
    }
}
