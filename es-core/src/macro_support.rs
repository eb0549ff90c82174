//! Helpers for code that es-macros generates. Reached through
//! `es_core::__private`; not public API.

use crate::envelope::Payload;
use crate::event::Event;

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

/// An event's payload: what generated `EventSet::to_payload` impls call per
/// variant.
///
/// Bounded by [`Event`] rather than serde's `Serialize` so that a listed type
/// that is not an event is reported as such, not as a serde problem.
///
/// # Errors
/// serde's error if the event does not serialize.
pub fn event_payload<E: Event>(event: &E) -> Result<Payload, serde_json::Error> {
    Payload::encode(event)
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
