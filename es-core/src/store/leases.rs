//! The lease store port: each subscription runs on one node at a time.
//!
//! Before a read side processes a subscription it acquires the
//! subscription's lease from a [`LeaseStore`] shared by every node; it
//! renews the lease while it runs and releases it when it stops. A node that
//! dies stops renewing, its lease expires, and another node takes over from
//! the stored checkpoint.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::LeaseError;

/// The longest TTL an SQL adapter passes to its database, about a thousand
/// years: now plus much more overflows SQL timestamps and integers, and a
/// longer lease is no different.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(1_000 * 366 * 24 * 3_600);

/// A TTL as whole microseconds for SQL: at least 1, at most
/// [`MAX_LEASE_TTL`] (the in-memory store saturates a huge TTL too). For
/// adapter authors.
pub fn lease_ttl_micros(ttl: Duration) -> i64 {
    let max = i64::try_from(MAX_LEASE_TTL.as_micros()).unwrap_or(i64::MAX);
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX).clamp(1, max)
}

/// A stored lease token that is not positive.
#[derive(Debug, thiserror::Error)]
#[error("lease `{name}` has token {token}, which is not positive")]
struct BadToken {
    name: String,
    token: i64,
}

/// The right, held by one owner, to run one subscription until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The subscription's name.
    pub name: String,
    /// Who holds it (a node id, unique per running [`ReadSide`](crate::ReadSide)).
    pub owner: String,
    /// A number that grows with every acquisition of this name, also when
    /// the owner that holds it acquires it again, so a store can fence off
    /// the writes of every earlier acquisition: another node's, or this
    /// owner's own from before (a node restarted under the same owner id,
    /// whose earlier run may still have a commit in flight).
    pub token: u64,
}

impl Lease {
    /// The lease on `name` held by `owner` from the token an SQL table keeps
    /// (for adapter authors): tokens are positive, so anything else (only a
    /// hand edit gets there) is an error naming the lease.
    ///
    /// # Errors
    /// [`LeaseError::Backend`] when `token` is zero or negative.
    pub fn from_stored(name: &str, owner: impl Into<String>, token: i64) -> Result<Self, LeaseError> {
        let positive = u64::try_from(token)
            .ok()
            .filter(|token| *token > 0)
            .ok_or_else(|| LeaseError::Backend(Box::new(BadToken { name: name.to_owned(), token })))?;
        Ok(Self { name: name.to_owned(), owner: owner.into(), token: positive })
    }
}

/// Hands out one lease per subscription name, shared by every node.
///
/// The contract every implementation keeps (the in-memory one and those of
/// the SQL and Redis adapters):
///
/// - **Exclusive.** At any instant at most one owner holds an unexpired
///   lease on a name. [`try_acquire`](LeaseStore::try_acquire) by another
///   owner returns `Ok(None)` while it is held.
/// - **Expiring.** A lease not renewed within its `ttl` expires; after that
///   any owner may acquire it. Time is the store's own clock (the
///   database's `now()` for Postgres), never the caller's.
/// - **Every acquisition is new.** `try_acquire` by the owner that already
///   holds the name succeeds, extends the lease and returns a new, larger
///   token; the lease as acquired before is lost (its `renew` returns
///   `Ok(false)`, its `release` leaves the new acquisition held, and a
///   commit fenced with its token is refused). An owner id may be stable
///   across restarts, and a restarted node must not inherit the token under
///   which its earlier run may still have a commit in flight.
/// - **Renewal tells the truth.** [`renew`](LeaseStore::renew) returns
///   `Ok(false)` when the lease expired or was acquired again since, by
///   another owner or by the same one (same name and owner but another token
///   counts as lost); the caller must then stop processing at once and never
///   commit again under that lease.
/// - **Release is idempotent.** [`release`](LeaseStore::release) of a lease
///   not held (expired, taken over, acquired again) does nothing.
/// - **Tokens strictly increase per name**, over every acquisition.
/// - An implementation backed by a session lock (a Postgres advisory lock
///   held by a pooled connection) must also release the lock if the session
///   dies, must report `Ok(false)` from `renew` once the session is gone,
///   and still needs a counter beside the lock for its tokens: taking the
///   lock again in the same session is an acquisition too.
///
/// The runner checks its lease before every event and every commit and
/// renews it once a third of the TTL has passed; it stops at once when
/// `renew` says the lease is lost. So with a TTL well above the time one
/// event (with its retries) takes, a holder never commits after its lease
/// passed to another node. On top of that every commit the runner makes
/// carries a [`Fence`](crate::store::Fence) with the lease's name and
/// [`Lease::token`]: a projection store that keeps its leases in the same
/// database refuses a commit whose lease is no longer held with that token
/// ([`ProjectionError::Fenced`](crate::error::ProjectionError::Fenced)), and the
/// runner then treats the lease as lost, so even a commit delayed past the
/// TTL cannot land after another node took over, nor after a later run of
/// the same owner (restarted under a stable owner id) acquired the lease
/// and read the checkpoint.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Acquires the lease on `name` for `owner` for `ttl`, with a token
    /// larger than any this name had, or `Ok(None)` if another owner holds
    /// it. An owner that holds it already gets it again, under a new token.
    ///
    /// # Errors
    /// [`LeaseError::Backend`] if storage fails.
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError>;

    /// Extends a held lease by `ttl` from now. `Ok(false)`: the lease is
    /// lost.
    ///
    /// # Errors
    /// [`LeaseError::Backend`] if storage fails (the lease may still hold
    /// until it expires).
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError>;

    /// Gives the lease up so another owner can take it at once.
    ///
    /// # Errors
    /// [`LeaseError::Backend`] if storage fails (the lease then expires on
    /// its own).
    async fn release(&self, lease: &Lease) -> Result<(), LeaseError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_become_positive_microseconds() {
        assert_eq!(lease_ttl_micros(Duration::from_millis(1500)), 1_500_000);
        assert_eq!(lease_ttl_micros(Duration::ZERO), 1);
        assert_eq!(u128::try_from(lease_ttl_micros(Duration::MAX)).unwrap(), MAX_LEASE_TTL.as_micros());
    }

    #[test]
    fn only_positive_tokens_pass() {
        let lease = Lease::from_stored("p", "node", 7).unwrap();
        assert_eq!(lease, Lease { name: "p".into(), owner: "node".into(), token: 7 });
        for bad in [0, -1, i64::MIN] {
            let error = Lease::from_stored("p", "node", bad).unwrap_err();
            let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
            assert!(cause.contains(&format!("token {bad}")), "{bad}: {error:?}");
        }
    }
}
