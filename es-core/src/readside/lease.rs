//! Leases: each subscription runs on one node at a time.
//!
//! Before a runner processes a subscription it acquires the subscription's
//! lease from a [`LeaseStore`] shared by every node; it renews the lease
//! while it runs and releases it when it stops. A node that dies stops
//! renewing, its lease expires, and another node takes over from the stored
//! checkpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::clock::deadline;
use crate::error::BoxError;

/// The right, held by one owner, to run one subscription until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The subscription's name.
    pub name: String,
    /// Who holds it (a node id, unique per running [`ReadSide`](crate::ReadSide)).
    pub owner: String,
    /// A number that grows with every new acquisition of this name, so a
    /// store can fence off writes of an earlier holder.
    pub token: u64,
}

/// The lease store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The storage backend failed.
    #[error("lease store backend failed")]
    Backend(#[source] BoxError),
}

/// Hands out one lease per subscription name, shared by every node.
///
/// The contract every implementation keeps (the in-memory one and, in
/// `es-postgres`, one on advisory locks or a lease table):
///
/// - **Exclusive.** At any instant at most one owner holds an unexpired
///   lease on a name. [`try_acquire`](LeaseStore::try_acquire) by another
///   owner returns `Ok(None)` while it is held.
/// - **Expiring.** A lease not renewed within its `ttl` expires; after that
///   any owner may acquire it (with a larger `token`). Time is the store's
///   own clock (the database's `now()` for Postgres), never the caller's.
/// - **Re-entrant.** `try_acquire` by the owner that already holds the name
///   extends it and returns the same token.
/// - **Renewal tells the truth.** [`renew`](LeaseStore::renew) returns
///   `Ok(false)` when the lease expired or was taken by another owner since
///   (same name and owner but another token counts as lost); the caller must
///   then stop processing at once and never commit again under that lease.
/// - **Release is idempotent.** [`release`](LeaseStore::release) of a lease
///   not held (expired, taken over) does nothing.
/// - An implementation backed by a session lock (a Postgres advisory lock
///   held by a pooled connection) must also release the lock if the session
///   dies, and must report `Ok(false)` from `renew` once the session is gone.
///
/// The runner checks its lease before every event and every commit and
/// renews it once a third of the TTL has passed; it stops at once when
/// `renew` says the lease is lost. So with a TTL well above the time one
/// event (with its retries) takes, a holder never commits after its lease
/// passed to another node. On top of that every commit the runner makes
/// carries a [`Fence`](crate::Fence) with the lease's name and
/// [`Lease::token`]: a projection store that keeps its leases in the same
/// database refuses a commit whose lease is no longer held with that token
/// ([`ProjectionError::Fenced`](crate::ProjectionError::Fenced)), and the
/// runner then treats the lease as lost, so even a commit delayed past the
/// TTL cannot land after another node took over.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Acquires the lease on `name` for `owner` for `ttl`, or `Ok(None)` if
    /// another owner holds it.
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

/// Leases kept in memory: for several runners in one process (tests,
/// single-node apps). Uses tokio's clock, so paused test time applies.
#[derive(Debug, Clone, Default)]
pub struct InMemoryLeaseStore {
    inner: Arc<Mutex<LeaseTable>>,
}

#[derive(Debug, Default)]
struct LeaseTable {
    held: HashMap<String, Held>,
    last_token: u64,
}

#[derive(Debug)]
struct Held {
    owner: String,
    token: u64,
    expires: Instant,
}

impl InMemoryLeaseStore {
    /// An empty lease store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, LeaseTable>, LeaseError> {
        self.inner.lock().map_err(|_| LeaseError::Backend("in-memory lease store lock poisoned".into()))
    }

    /// The owner holding an unexpired lease on `name`, if any.
    pub fn holder(&self, name: &str) -> Option<String> {
        let table = self.lock().ok()?;
        table.held.get(name).filter(|h| h.expires > Instant::now()).map(|h| h.owner.clone())
    }
}

#[async_trait]
impl LeaseStore for InMemoryLeaseStore {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        let mut table = self.lock()?;
        let now = Instant::now();
        if let Some(held) = table.held.get_mut(name) {
            if held.owner == owner && held.expires > now {
                held.expires = deadline(now, ttl);
                return Ok(Some(Lease { name: name.to_owned(), owner: owner.to_owned(), token: held.token }));
            }
            if held.expires > now {
                return Ok(None);
            }
        }
        table.last_token += 1;
        let token = table.last_token;
        table
            .held
            .insert(name.to_owned(), Held { owner: owner.to_owned(), token, expires: deadline(now, ttl) });
        Ok(Some(Lease { name: name.to_owned(), owner: owner.to_owned(), token }))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        let mut table = self.lock()?;
        let now = Instant::now();
        match table.held.get_mut(&lease.name) {
            Some(held) if held.token == lease.token && held.owner == lease.owner && held.expires > now => {
                held.expires = deadline(now, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        let mut table = self.lock()?;
        if table.held.get(&lease.name).is_some_and(|h| h.token == lease.token) {
            table.held.remove(&lease.name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn one_owner_at_a_time_until_release() {
        let store = InMemoryLeaseStore::new();
        let a = store.try_acquire("p", "a", TTL).await.unwrap().unwrap();
        assert!(store.try_acquire("p", "b", TTL).await.unwrap().is_none());
        assert_eq!(store.try_acquire("p", "a", TTL).await.unwrap(), Some(a.clone()));
        store.release(&a).await.unwrap();
        let b = store.try_acquire("p", "b", TTL).await.unwrap().unwrap();
        assert!(b.token > a.token);
        assert!(!store.renew(&a, TTL).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unrenewed_lease_expires_and_is_lost() {
        let store = InMemoryLeaseStore::new();
        let a = store.try_acquire("p", "a", TTL).await.unwrap().unwrap();
        tokio::time::sleep(TTL / 2).await;
        assert!(store.renew(&a, TTL).await.unwrap());
        tokio::time::sleep(TTL + Duration::from_millis(1)).await;
        assert_eq!(store.holder("p"), None);
        let b = store.try_acquire("p", "b", TTL).await.unwrap().unwrap();
        assert!(!store.renew(&a, TTL).await.unwrap());
        store.release(&a).await.unwrap();
        assert_eq!(store.holder("p"), Some(b.owner));
    }
}
