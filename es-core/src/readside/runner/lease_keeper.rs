//! Lease keeping: taking a subscription's lease, and renewing it while the
//! subscription runs.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::slot::{Shared, Slot};
use super::{describe, Exit};
use crate::clock::deadline;
use crate::envelope::Timestamp;
use crate::readside::status::{StoreOutage, SubscriptionState};
use crate::store::{Lease, LeaseStore};

/// Waits until the lease is ours; `None` if cancelled first. Returns it with
/// the instant the granting request was sent: the store may have granted it
/// any time after that, so its TTL is counted from there.
pub(super) async fn acquire(
    shared: &Shared,
    slot: &Slot,
    cancel: &mut watch::Receiver<bool>,
) -> Option<(Lease, Instant)> {
    let mut outage: Option<StoreOutage> = None;
    loop {
        if *cancel.borrow() {
            return None;
        }
        let asked = Instant::now();
        match shared.leases.try_acquire(&slot.name, &shared.owner, shared.config.lease_ttl).await {
            Ok(Some(lease)) => return Some((lease, asked)),
            Ok(None) => {
                if outage.take().is_some() {
                    slot.set_state(SubscriptionState::Standby);
                }
            }
            Err(error) => {
                let error = describe(&error);
                tracing::warn!(subscription = %slot.name, %error, "acquiring the lease failed");
                // The lease store is down: say so rather than "standby",
                // which would mean another node runs it.
                let outage = outage.get_or_insert_with(|| StoreOutage {
                    error: String::new(),
                    since: Timestamp::now(),
                    attempts: 0,
                });
                outage.attempts = outage.attempts.saturating_add(1);
                outage.error = format!("acquiring the lease: {error}");
                slot.set_state(SubscriptionState::WaitingForStore(outage.clone()));
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

    /// Runs `work` (a table projection's batch in one transaction of the
    /// store, or one handler's or projection's call), renewing the lease
    /// meanwhile, so that work slower than the lease's TTL does not lose
    /// it. Both are polled: where the store makes a renewal wait
    /// for the batch's transaction (SQLite's one writer), the renewal goes
    /// through after it. A renewal that finds the lease lost, or fails past
    /// its expiry, stops the renewals and is left to the next check
    /// (before the next event or batch): what the work staged commits
    /// under its fence, which a takeover waits for or refuses.
    pub(super) async fn renewing_during<T>(
        &mut self,
        store: &dyn LeaseStore,
        work: impl Future<Output = T>,
    ) -> T {
        let mut work = std::pin::pin!(work);
        // Most calls end on their first poll (a projection that only
        // reads and writes cached documents): those set no timer.
        let first = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await;
        if let Poll::Ready(done) = first {
            return done;
        }
        loop {
            let renew = async {
                tokio::time::sleep(self.until_renew()).await;
                self.ensure(store).await
            };
            tokio::select! {
                biased;
                done = &mut work => return done,
                renewed = renew => if renewed.is_err() {
                    return work.await;
                },
            }
        }
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
