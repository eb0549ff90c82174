//! Aggregates and commands: the write side a user defines.
//!
//! An aggregate decides (`Handle<C>`: state + command -> events) and evolves
//! (`Apply<E>`: state + event -> state). `#[derive(Aggregate)]` generates the
//! [`Aggregate`] impl that ties the listed events and commands together.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ValidationError;
use crate::event::EventSet;

/// A consistency boundary whose state is the fold of its events.
///
/// Implemented by `#[derive(Aggregate)]`; the methods here are the dispatch
/// it generates. Users implement [`Handle`] and [`Apply`] instead.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "not a `#[derive(Aggregate)]`",
    note = "an aggregate is a struct with `#[derive(es_core::Aggregate)]` and `#[aggregate(..)]`"
)]
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The aggregate type name (such as `account`); streams are named
    /// `{NAME}-{id}`.
    const NAME: &'static str;
    /// The schema version of the aggregate's snapshots. A stored snapshot of
    /// another version is ignored and the state is replayed from events.
    const SNAPSHOT_VERSION: u32 = 1;
    /// The aggregate's events (generated enum).
    type Event: EventSet;
    /// The aggregate's commands (generated enum). `Clone` so that a command
    /// can be decided again after a concurrency conflict.
    type Command: Clone + Send + 'static;
    /// The error a refused command returns.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Evolves the state by one event (dispatches to [`Apply`]).
    fn apply_event(&mut self, event: &Self::Event);

    /// Decides which events a command produces (dispatches to [`Handle`]).
    ///
    /// # Errors
    /// The aggregate's error when it refuses the command.
    fn handle_command(&self, command: Self::Command) -> Result<Events<Self>, Self::Error>;
}

/// Decides: given the current state and a command, the events to record.
///
/// Must be deterministic in what it returns given the state and command;
/// generate ids, codes and times here and carry them in the events, so
/// replaying the events rebuilds the same state.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists `{C}` in `commands(..)` but does not handle it",
    label = "missing `impl Handle<{C}> for {Self}`",
    note = "add `impl es_core::Handle<{C}> for {Self} {{ fn handle(&self, command: {C}) -> Result<es_core::Events<Self>, Self::Error> {{ .. }} }}`"
)]
pub trait Handle<C>: Aggregate {
    /// Handles one command.
    ///
    /// # Errors
    /// The aggregate's error when it refuses the command.
    fn handle(&self, command: C) -> Result<Events<Self>, Self::Error>;
}

/// Evolves: applies one event to the state. Must not fail: the event is a
/// fact that already happened.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists `{E}` in `events(..)` but does not apply it",
    label = "missing `impl Apply<{E}> for {Self}`",
    note = "add `impl es_core::Apply<{E}> for {Self} {{ fn apply(&mut self, event: &{E}) {{ .. }} }}`"
)]
pub trait Apply<E> {
    /// Applies one event.
    fn apply(&mut self, event: &E);
}

/// A request to change one aggregate, routed by its `#[id]` field.
///
/// Derive it with `#[command(aggregate = T)]`.
pub trait Command: Debug + Clone + Send + 'static {
    /// The aggregate that handles it.
    type Aggregate: Aggregate;
    /// The command's type name, used in errors.
    const NAME: &'static str;

    /// The id of the target aggregate instance.
    fn aggregate_id(&self) -> String;

    /// Checks the command on its own, before its aggregate is loaded.
    ///
    /// # Errors
    /// Every rule the command breaks.
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }

    /// Wraps the command in its aggregate's command enum.
    fn into_aggregate_command(self) -> <Self::Aggregate as Aggregate>::Command;
}

/// The events a command produced, in order.
pub struct Events<A: Aggregate>(Vec<A::Event>);

impl<A: Aggregate> Events<A> {
    /// No events: the command changes nothing.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// One event.
    pub fn one(event: impl Into<A::Event>) -> Self {
        Self(vec![event.into()])
    }

    /// Appends another event.
    #[must_use]
    pub fn and(mut self, event: impl Into<A::Event>) -> Self {
        self.0.push(event.into());
        self
    }

    /// Appends another event in place.
    pub fn push(&mut self, event: impl Into<A::Event>) {
        self.0.push(event.into());
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The events as a slice.
    pub fn as_slice(&self) -> &[A::Event] {
        &self.0
    }

    /// The events as a vector.
    pub fn into_vec(self) -> Vec<A::Event> {
        self.0
    }
}

impl<A: Aggregate> Default for Events<A> {
    fn default() -> Self {
        Self::none()
    }
}

impl<A: Aggregate> Debug for Events<A>
where
    A::Event: Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl<A: Aggregate> Clone for Events<A>
where
    A::Event: Clone,
{
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<A: Aggregate> PartialEq for Events<A>
where
    A::Event: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<A: Aggregate> From<Vec<A::Event>> for Events<A> {
    fn from(events: Vec<A::Event>) -> Self {
        Self(events)
    }
}

impl<A: Aggregate> FromIterator<A::Event> for Events<A> {
    fn from_iter<I: IntoIterator<Item = A::Event>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<A: Aggregate> IntoIterator for Events<A> {
    type Item = A::Event;
    type IntoIter = std::vec::IntoIter<A::Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
