//! Helpers for code that es-macros generates. Reached through
//! `es_core::__private`; not public API.
//!
//! Each helper exists so that one mistake in a user's declarations makes one
//! compile error, at the user's token, naming what the user wrote: the
//! generated code asks each question of the compiler once, through a trait
//! whose `#[diagnostic::on_unimplemented]` message speaks of the attribute
//! the user wrote, and reads the answer from plain values afterwards.

use crate::aggregate::{Aggregate, Command};
use crate::envelope::Payload;
use crate::error::DecodeErrorKind;
use crate::event::{decode_event, Event};

/// Whether two strings are equal, usable in a `const` item.
///
/// `#[derive(Aggregate)]` compares the stored type names of every pair of
/// listed events at compile time, so two events stored under one name fail
/// the build instead of being mixed up on read. `PartialEq for str` is not
/// `const`, hence this byte loop.
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Asked of every type in an aggregate's `events(..)`: that it is an
/// [`Event`]. Implemented for every event; the message names the aggregate
/// that lists a type which is not one.
#[diagnostic::on_unimplemented(
    message = "`{A}` lists `{Self}` in `events(..)`, but `{Self}` is not an event",
    label = "not an `#[event]`",
    note = "put `#[es_core::event]` on the declaration of `{Self}`"
)]
pub trait EventListedBy<A>: Event {}

impl<A, E: Event> EventListedBy<A> for E {}

/// How an aggregate's generated event enum holds one of its events: the
/// derive implements it per listed event, with no bound on the event.
pub trait Holds<E>: From<E> {
    /// The event, if this is its variant.
    fn get(&self) -> Option<&E>;
}

/// One event of `events(..)`, as the generated [`EventSet`](crate::EventSet)
/// impl of the aggregate's event enum `S` uses it: its stored name and
/// version, and how to encode and decode it.
///
/// The derive builds a table of these with [`ListedEvent::of`], the one
/// place where the generated code asks that a listed type is an event. A
/// type that is not gives one error there, at its name in the list; the
/// rest of the generated code reads the table and asks nothing more of it.
pub struct ListedEvent<S> {
    /// The stored type name ([`Event::TYPE`]).
    pub type_name: &'static str,
    /// The current schema version ([`Event::VERSION`]).
    pub version: u32,
    /// Encodes the variant that holds this event.
    pub encode: fn(&S) -> Result<Payload, serde_json::Error>,
    /// Decodes a stored payload of this event, upcasting older versions.
    pub decode: fn(u32, &Payload) -> Result<S, DecodeErrorKind>,
}

impl<S> ListedEvent<S> {
    /// The entry for event `E` of aggregate `A`, whose event enum `S` holds
    /// it.
    pub const fn of<A, E>() -> Self
    where
        E: EventListedBy<A>,
        S: Holds<E>,
    {
        Self { type_name: E::TYPE, version: E::VERSION, encode: encode::<S, E>, decode: decode::<S, E> }
    }
}

fn encode<S: Holds<E>, E: Event>(event: &S) -> Result<Payload, serde_json::Error> {
    match event.get() {
        Some(event) => Payload::encode(event),
        // The generated `to_payload` picks the entry by the variant it
        // matched, so this means a bug in the generated code, reported as
        // an encoding error rather than a panic.
        None => {
            Err(serde::ser::Error::custom(format_args!("the event enum does not hold a `{}` here", E::TYPE)))
        }
    }
}

fn decode<S: Holds<E>, E: Event>(schema_version: u32, payload: &Payload) -> Result<S, DecodeErrorKind> {
    decode_event::<E>(schema_version, payload).map(S::from)
}

/// Decodes a stored event with the table of listed events: what generated
/// `EventSet::from_stored` impls call.
///
/// # Errors
/// [`DecodeErrorKind::UnknownType`] if no listed event is stored under
/// `event_type`; otherwise as [`decode_event`].
pub fn decode_listed<S>(
    listed: &[ListedEvent<S>],
    event_type: &str,
    schema_version: u32,
    payload: &Payload,
) -> Result<S, DecodeErrorKind> {
    match listed.iter().find(|entry| entry.type_name == event_type) {
        Some(entry) => (entry.decode)(schema_version, payload),
        None => Err(DecodeErrorKind::UnknownType),
    }
}

/// The tie from a command to its aggregate: `#[derive(Aggregate)]`
/// implements it for each command in `commands(..)`, and the
/// `#[command(aggregate = A)]` of a command converts through it, so a
/// command whose aggregate does not list it is reported at the `A` the
/// user wrote.
#[diagnostic::on_unimplemented(
    message = "`{C}` says `aggregate = {Self}` but `{Self}` does not list it in `commands(..)`",
    label = "`{Self}` does not list `{C}`",
    note = "add `{C}` to `commands(..)` in the `#[aggregate(..)]` of `{Self}`, or name the aggregate that lists it"
)]
pub trait ListsCommand<C>: Aggregate {
    /// The command as a variant of the aggregate's command enum.
    fn wrap(command: C) -> Self::Command;
}

/// The tie the other way: `#[command(aggregate = A)]` implements
/// `CommandOf<A>` for its struct, and the derive asks it of each type in
/// `commands(..)` (through [`command_of`]), so a listed type that is
/// another aggregate's command, or no command, is reported at its name in
/// the list.
///
/// An impl per command rather than a blanket one over
/// [`Command::Aggregate`]: the compiler reports a blanket impl's mismatch
/// as a type mismatch, without this message.
#[diagnostic::on_unimplemented(
    message = "`{A}` lists `{Self}` in `commands(..)`, but `{Self}` is not a command of `{A}`",
    label = "not a command of `{A}`",
    note = "`#[es_core::command(aggregate = {A})]` on `{Self}` makes it one; a command belongs to one aggregate"
)]
pub trait CommandOf<A>: Command {}

/// A copy of a listed command: what the generated command enum's `Clone`
/// calls per variant, spanned on the command's name in `commands(..)`.
///
/// It asks `C: CommandOf<A>`, the one place the generated code asks that a
/// listed type is a command of `A`; its `Clone` then comes with
/// [`Command`], so a command that lacks `Clone` is reported once, at its
/// `#[command]`, and not again here.
pub fn command_of<A, C: CommandOf<A>>(command: &C) -> C {
    command.clone()
}

#[cfg(test)]
mod tests {
    use super::str_eq;

    #[test]
    fn compares_in_const_context() {
        const { assert!(str_eq("MoneyDeposited", "MoneyDeposited")) };
        const { assert!(!str_eq("MoneyDeposited", "MoneyWithdrawn")) };
    }

    #[test]
    fn length_and_content_both_count() {
        assert!(!str_eq("a", "ab"));
        assert!(!str_eq("ab", "a"));
        assert!(str_eq("", ""));
        assert!(!str_eq("ab", "ba"));
    }
}
