//! Every attribute key the macros accept, spelled once.

use std::fmt;

use syn::{Ident, Path};

/// An attribute key, compared against the user's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Symbol(&'static str);

// `#[event(..)]`
pub(crate) const NAME: Symbol = Symbol("name");
pub(crate) const VERSION: Symbol = Symbol("version");
pub(crate) const UPCAST: Symbol = Symbol("upcast");

// `#[command(..)]` and its field attributes
pub(crate) const AGGREGATE: Symbol = Symbol("aggregate");
pub(crate) const VALIDATE: Symbol = Symbol("validate");
pub(crate) const ID: Symbol = Symbol("id");
pub(crate) const NON_EMPTY: Symbol = Symbol("non_empty");
pub(crate) const MIN: Symbol = Symbol("min");
pub(crate) const MAX: Symbol = Symbol("max");

// `#[aggregate(..)]` (also uses NAME)
pub(crate) const ERROR: Symbol = Symbol("error");
pub(crate) const EVENTS: Symbol = Symbol("events");
pub(crate) const COMMANDS: Symbol = Symbol("commands");
pub(crate) const SNAPSHOT_VERSION: Symbol = Symbol("snapshot_version");

impl PartialEq<Symbol> for Path {
    fn eq(&self, key: &Symbol) -> bool {
        self.is_ident(key.0)
    }
}

impl PartialEq<Symbol> for Ident {
    fn eq(&self, key: &Symbol) -> bool {
        self == key.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `` `a`, `b` or `c` ``: the keys a position accepts, for error messages.
pub(crate) fn one_of(keys: &[Symbol]) -> String {
    let quoted: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_lists_keys_in_prose() {
        assert_eq!(one_of(&[NAME]), "`name`");
        assert_eq!(one_of(&[NAME, VERSION]), "`name` or `version`");
        assert_eq!(one_of(&[NAME, VERSION, UPCAST]), "`name`, `version` or `upcast`");
    }
}
