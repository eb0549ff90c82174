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

// `#[event_handler(..)]` and `#[projection(..)]` (also use NAME and EVENTS)
pub(crate) const GROUP: Symbol = Symbol("group");
pub(crate) const CONSISTENCY: Symbol = Symbol("consistency");
pub(crate) const REPLAY: Symbol = Symbol("replay");
pub(crate) const USES: Symbol = Symbol("uses");
// `#[projection(table)]`: a projection into the application's own tables
pub(crate) const TABLE: Symbol = Symbol("table");
// `#[projection(prefetch(A))]`: events whose documents are read a batch at a time
pub(crate) const PREFETCH: Symbol = Symbol("prefetch");

// Their values: `replay = "skip"`, `consistency = "strong"`
pub(crate) const RUN: Symbol = Symbol("run");
pub(crate) const SKIP: Symbol = Symbol("skip");
pub(crate) const EVENTUAL: Symbol = Symbol("eventual");
pub(crate) const STRONG: Symbol = Symbol("strong");

impl Symbol {
    /// The key as written.
    pub(crate) fn as_str(self) -> &'static str {
        self.0
    }
}

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

/// Whether `written` is a typo of `key`: at most two edits apart (one
/// for keys of four letters or fewer, which two edits turn into too much).
pub(crate) fn is_near_miss(written: &str, key: &str) -> bool {
    let allowed = if key.len() <= 4 { 1 } else { 2 };
    edit_distance(written, key) <= allowed
}

/// Edits (insert, delete, replace, swap two neighbours) from `a` to `b`:
/// the optimal string alignment distance, over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: edits from the first i chars of a to the first j of b.
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let replace = d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = replace.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
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

    #[test]
    fn near_misses_are_typos_of_one_key() {
        assert!(is_near_miss("evnts", "events"));
        assert!(is_near_miss("comands", "commands"));
        assert!(is_near_miss("nmae", "name"));
        assert!(is_near_miss("snapshot_verison", "snapshot_version"));
        assert!(!is_near_miss("colour", "error"));
        assert!(!is_near_miss("id", "name"));
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("nmae", "name"), 1);
    }
}
