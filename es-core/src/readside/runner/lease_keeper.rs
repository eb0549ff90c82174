//! Lease keeping: taking a subscription's lease, and renewing it while the
//! subscription runs.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::slot::{Shared, Slot};
use super::{describe, Exit};
use crate::clock::deadline;
use crate::store::{Lease, LeaseStore};

/// Waits until the lease is ours; `None` if cancelled first. Returns it with
/// the instant the granting request was sent: the store may have granted it
/// any time after that, so its TTL is counted from there.
pub(super) async fn acquire(
    shared: &Shared,
    slot: &Slot,
    cancel: &mut watch::Receiver<bool>,
) -> Option<(Lease, Instant)> {
    loop {
        if *cancel.borrow() {
            return None;
        }
        let asked = Instant::now();
        match shared.leases.try_acquire(&slot.name, &shared.owner, shared.config.lease_ttl).await {
            Ok(Some(lease)) => return Some((lease, asked)),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(subscription = %slot.name, error = %describe(&error), "acquiring the lease failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(shared.config.lease_retry) => {}
            _ = cancel.changed() => return None,
        }
    }
}

/// Keeps a lease alive: renews it every third of its TTL.
pub(super) struct LeaseKeeper {
    pub(super) lease: Lease,
    ttl: Duration,
    next_renew: Instant,
    expires: Instant,
}

impl LeaseKeeper {
    /// `asked`: when the request that granted `lease` was sent.
    pub(super) fn new(lease: Lease, ttl: Duration, asked: Instant) -> Self {
        Self { lease, ttl, next_renew: deadline(asked, ttl / 3), expires: deadline(asked, ttl) }
    }

    pub(super) fn until_renew(&self) -> Duration {
        self.next_renew.saturating_duration_since(Instant::now())
    }

    /// Renews the lease if due. `Err(LeaseLost)` once it is gone.
    pub(super) async fn ensure(&mut self, store: &dyn LeaseStore) -> Result<(), Exit> {
        let now = Instant::now();
        if now < self.next_renew {
            return Ok(());
        }
        match store.renew(&self.lease, self.ttl).await {
            Ok(true) => {
                self.expires = deadline(now, self.ttl);
                self.next_renew = deadline(now, self.ttl / 3);
                Ok(())
            }
            Ok(false) => Err(Exit::LeaseLost),
            Err(error) if deadline(now, self.ttl / 3) < self.expires => {
                tracing::warn!(lease = %self.lease.name, error = %describe(&error), "renewing the lease failed; retrying");
                self.next_renew = deadline(now, (self.ttl / 10).max(Duration::from_millis(1)));
                Ok(())
            }
            Err(error) => {
                tracing::warn!(lease = %self.lease.name, error = %describe(&error), "renewing the lease failed too long; giving it up");
                Err(Exit::LeaseLost)
            }
        }
    }
}
