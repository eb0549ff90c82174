//! The in-memory lease store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::LeaseError;
use es_core::store::{Lease, LeaseStore};
use tokio::time::Instant;

/// About thirty years: a TTL too large to add to the clock means "until
/// released" (tokio bounds unrepresentable sleeps the same way).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + ttl`, or far in the future when that does not fit the clock.
fn deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).or_else(|| now.checked_add(FAR_FUTURE)).unwrap_or(now)
}

/// Leases kept in memory: for several read sides in one process (tests,
/// single-node applications that run more than one read side). Uses
/// tokio's clock, so paused test time applies. Cheap to clone; clones share
/// the leases.
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
        // The owner that holds it gets it again, but under a new token: what
        // its earlier acquisition may still commit must be fenced off.
        if table.held.get(name).is_some_and(|held| held.owner != owner && held.expires > now) {
            return Ok(None);
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
        let again = store.try_acquire("p", "a", TTL).await.unwrap().unwrap();
        assert!(again.token > a.token, "a re-acquisition gets a new token");
        store.release(&a).await.unwrap();
        assert!(store.try_acquire("p", "b", TTL).await.unwrap().is_none(), "a stale release frees nothing");
        store.release(&again).await.unwrap();
        let b = store.try_acquire("p", "b", TTL).await.unwrap().unwrap();
        assert!(b.token > again.token);
        assert!(!store.renew(&again, TTL).await.unwrap());
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
