//! The Postgres schema the stores live in, and SQL rendered for it.
//!
//! Every table, function and trigger of es-postgres sits in one schema
//! (default `es`), so the stores can share a database and a pool with the
//! application's own tables. The name is spliced into SQL text, so it is
//! validated first: only plain lowercase identifiers pass.

use std::fmt;
use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// A validated Postgres schema name for the es tables.
///
/// Rules: 1 to [`PgSchema::MAX_LEN`] bytes of lowercase ASCII letters,
/// digits and `_`, starting with a letter or `_`, and not starting with
/// `pg_` (reserved by Postgres). The length limit leaves room for the
/// `LISTEN` channel `<schema>_events` within Postgres' 63-byte names.
///
/// ```
/// use es_postgres::PgSchema;
///
/// assert_eq!(PgSchema::default().as_str(), "es");
/// assert!(PgSchema::new("billing_events").is_ok());
/// assert!(PgSchema::new("Billing").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PgSchema {
    name: Arc<str>,
}

/// Why a schema name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSchemaName {
    /// The name is empty.
    #[error("schema name is empty")]
    Empty,
    /// The name is longer than [`PgSchema::MAX_LEN`] bytes.
    #[error("schema name `{name}` is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The refused name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character other than `a-z`, `0-9` and `_`, or starts
    /// with a digit.
    #[error("schema name `{name}` has `{found}` at byte {at}; use lowercase letters, digits and `_`, starting with a letter or `_`")]
    BadCharacter {
        /// The refused name.
        name: String,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// The name starts with `pg_`, which Postgres reserves.
    #[error("schema name `{name}` starts with `pg_`, which Postgres reserves")]
    Reserved {
        /// The refused name.
        name: String,
    },
}

impl PgSchema {
    /// The schema used unless another is chosen.
    pub const DEFAULT: &'static str = "es";

    /// The longest accepted name, in bytes.
    pub const MAX_LEN: usize = 56;

    /// Validates `name`.
    ///
    /// # Errors
    /// [`InvalidSchemaName`] naming the rule the name breaks.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidSchemaName> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidSchemaName::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(InvalidSchemaName::TooLong { len: name.len(), name, max: Self::MAX_LEN });
        }
        for (at, c) in name.char_indices() {
            let allowed = c.is_ascii_lowercase() || c == '_' || (at > 0 && c.is_ascii_digit());
            if !allowed {
                return Err(InvalidSchemaName::BadCharacter { name, found: c, at });
            }
        }
        if name.starts_with("pg_") {
            return Err(InvalidSchemaName::Reserved { name });
        }
        Ok(Self { name: name.into() })
    }

    /// The schema name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The `LISTEN`/`NOTIFY` channel appends signal on: `<schema>_events`.
    pub fn channel(&self) -> String {
        format!("{}_events", self.name)
    }

    /// Renders a SQL template: `{schema}` becomes the quoted schema name and
    /// `{channel}` the notification channel.
    pub(crate) fn render(&self, template: &str) -> SqlStr {
        let sql =
            template.replace("{schema}", &format!("\"{}\"", self.name)).replace("{channel}", &self.channel());
        // The schema name was validated in `new` to hold only [a-z0-9_], so
        // splicing it (quoted) into SQL text cannot inject anything.
        AssertSqlSafe(sql).into_sql_str()
    }
}

impl Default for PgSchema {
    fn default() -> Self {
        Self { name: Self::DEFAULT.into() }
    }
}

impl fmt::Debug for PgSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgSchema").field(&&*self.name).finish()
    }
}

impl fmt::Display for PgSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl TryFrom<&str> for PgSchema {
    type Error = InvalidSchemaName;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lowercase_identifiers_pass() {
        for ok in ["es", "_x", "es_test_0123abc", &"a".repeat(PgSchema::MAX_LEN)] {
            assert_eq!(PgSchema::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn each_rule_has_its_own_error() {
        assert_eq!(PgSchema::new(""), Err(InvalidSchemaName::Empty));
        assert!(matches!(
            PgSchema::new("a".repeat(57)),
            Err(InvalidSchemaName::TooLong { len: 57, max: 56, .. })
        ));
        assert!(matches!(
            PgSchema::new("1es"),
            Err(InvalidSchemaName::BadCharacter { found: '1', at: 0, .. })
        ));
        assert!(matches!(PgSchema::new("Es"), Err(InvalidSchemaName::BadCharacter { found: 'E', .. })));
        assert!(matches!(
            PgSchema::new("es\"; drop table x; --"),
            Err(InvalidSchemaName::BadCharacter { found: '"', at: 2, .. })
        ));
        assert!(matches!(PgSchema::new("pg_es"), Err(InvalidSchemaName::Reserved { .. })));
    }

    #[test]
    fn templates_get_the_quoted_schema_and_channel() {
        let schema = PgSchema::new("billing").unwrap();
        let sql = schema.render("SELECT pg_notify('{channel}', '') FROM {schema}.events");
        assert_eq!(sql.as_str(), "SELECT pg_notify('billing_events', '') FROM \"billing\".events");
    }
}
