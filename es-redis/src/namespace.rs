//! The namespace a set of stores keeps its keys under, and the key names.
//!
//! Every key of es-redis starts with `{<namespace>}:`, so applications and
//! tests can share one Redis, and all keys of one namespace carry the same
//! hash tag (a Redis Cluster would put them in one slot, which the scripts
//! need since each touches several keys at once). The namespace is spliced
//! into key names and `SCAN` patterns, so it is validated first.

use std::fmt;
use std::sync::Arc;

use redis::RedisResult;

use crate::connection::RedisConnection;

/// A validated namespace for the keys of es-redis.
///
/// Rules: 1 to [`RedisNamespace::MAX_LEN`] bytes of ASCII letters, digits,
/// `_`, `-` and `.`. That keeps out the characters that mean something in
/// a key's hash tag (`{`, `}`), in the `:`-separated layout, or in a `SCAN`
/// pattern (`*`, `?`, `[`, `]`, `\`).
///
/// ```
/// use es_redis::RedisNamespace;
///
/// assert_eq!(RedisNamespace::default().as_str(), "es");
/// assert!(RedisNamespace::new("bank-prod.v2").is_ok());
/// assert!(RedisNamespace::new("a:b").is_err());
/// assert!(RedisNamespace::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisNamespace {
    name: Arc<str>,
}

/// Why a namespace was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidNamespace {
    /// The name is empty.
    #[error("namespace is empty")]
    Empty,
    /// The name is longer than [`RedisNamespace::MAX_LEN`] bytes.
    #[error("namespace is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character other than ASCII letters, digits, `_`,
    /// `-` and `.`.
    #[error("namespace `{name}` has `{found}` at byte {at}; use ASCII letters, digits, `_`, `-` and `.`")]
    BadCharacter {
        /// The refused name.
        name: String,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
}

impl RedisNamespace {
    /// The namespace used unless another is chosen.
    pub const DEFAULT: &'static str = "es";

    /// The longest accepted name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `name`.
    ///
    /// # Errors
    /// [`InvalidNamespace`] naming the rule the name breaks.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidNamespace> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidNamespace::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(InvalidNamespace::TooLong { len: name.len(), max: Self::MAX_LEN });
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if let Some((at, found)) = name.char_indices().find(|(_, c)| !allowed(*c)) {
            return Err(InvalidNamespace::BadCharacter { name, found, at });
        }
        Ok(Self { name: name.into() })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The `SCAN` pattern matching every key of this namespace.
    pub fn pattern(&self) -> String {
        format!("{{{}}}:*", self.name)
    }

    fn key(&self, kind: &str) -> String {
        format!("{{{}}}:{kind}", self.name)
    }

    fn keyed(&self, kind: &str, name: &str) -> String {
        let mut key = String::with_capacity(self.name.len() + kind.len() + name.len() + 4);
        key.push('{');
        key.push_str(&self.name);
        key.push_str("}:");
        key.push_str(kind);
        key.push(':');
        key.push_str(name);
        key
    }

    /// The last global position handed out (a string counter).
    pub(crate) fn position(&self) -> String {
        self.key("position")
    }

    /// The global log: a Redis stream whose entry ids are `<position>-0`.
    pub(crate) fn events(&self) -> String {
        self.key("events")
    }

    /// Event id → global position (a hash).
    pub(crate) fn ids(&self) -> String {
        self.key("ids")
    }

    /// The global positions of one stream's events, in version order (a list).
    pub(crate) fn stream(&self, stream: &str) -> String {
        self.keyed("stream", stream)
    }

    /// Every stream's id (a sorted set, all scores 0, so ordered by id
    /// bytes).
    pub(crate) fn streams(&self) -> String {
        self.key("streams")
    }

    /// One stream's newest snapshot (a hash).
    pub(crate) fn snapshot(&self, stream: &str) -> String {
        self.keyed("snapshot", stream)
    }

    /// One projection's documents, id → JSON text (a hash).
    pub(crate) fn documents(&self, projection: &str) -> String {
        self.keyed("docs", projection)
    }

    /// One projection's document ids, for ordered paging (a sorted set, all
    /// scores 0, so ordered by id bytes).
    pub(crate) fn document_ids(&self, projection: &str) -> String {
        self.keyed("docids", projection)
    }

    /// Subscription name → checkpoint record (a hash).
    pub(crate) fn checkpoints(&self) -> String {
        self.key("checkpoints")
    }

    /// One lease: owner, token, expiry on the server clock (a hash).
    pub(crate) fn lease(&self, name: &str) -> String {
        self.keyed("lease", name)
    }
}

impl Default for RedisNamespace {
    fn default() -> Self {
        Self { name: Self::DEFAULT.into() }
    }
}

impl fmt::Display for RedisNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for RedisNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisNamespace({:?})", self.name)
    }
}

/// Deletes every key of `namespace` (`SCAN` for `{<namespace>}:*`, then
/// `UNLINK` in batches), and returns how many it deleted: every event,
/// snapshot, document, checkpoint and lease of that namespace is gone.
/// Keys written while it runs may survive it. Meant for tests and for
/// operators retiring a namespace, like `DROP SCHEMA` on Postgres.
///
/// # Errors
/// The driver's error if a command fails (some keys may be deleted).
pub async fn delete_namespace(redis: &RedisConnection, namespace: &RedisNamespace) -> RedisResult<u64> {
    let mut conn = redis.bounded();
    let pattern = namespace.pattern();
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let removed: u64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await?;
            deleted += removed;
        }
        // SCAN ends when the cursor comes back to 0.
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(RedisNamespace::new("es_test_0190abc").is_ok());
        assert_eq!(RedisNamespace::new(""), Err(InvalidNamespace::Empty));
        assert!(matches!(
            RedisNamespace::new("x".repeat(65)),
            Err(InvalidNamespace::TooLong { len: 65, .. })
        ));
        for bad in ["a{b", "a}b", "a:b", "a*", "a?", "a[b]", "a\\b", "a b", "ä"] {
            assert!(
                matches!(RedisNamespace::new(bad), Err(InvalidNamespace::BadCharacter { .. })),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn keys_share_the_namespace_hash_tag() {
        let ns = RedisNamespace::new("bank").unwrap();
        assert_eq!(ns.events(), "{bank}:events");
        assert_eq!(ns.stream("account-1"), "{bank}:stream:account-1");
        assert_eq!(ns.documents("balances"), "{bank}:docs:balances");
        assert_eq!(ns.document_ids("balances"), "{bank}:docids:balances");
        assert_eq!(ns.lease("balances"), "{bank}:lease:balances");
        assert_eq!(ns.pattern(), "{bank}:*");
    }
}
