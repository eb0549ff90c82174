//! What an injected fault does, and the plans that say which calls meet one.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::StoreCall;

/// What a call meets when a fault is injected into it
/// ([`TestStore::inject`](super::TestStore::inject)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The call fails with a backend error ([`InjectedFault`](super::InjectedFault)
    /// as its source) without reaching the inner store, as over a lost
    /// connection. A failed `wait_for_events` cannot return an error: it
    /// sleeps its whole `max_wait` instead, as when a store's wake-up
    /// channel is lost. This is what [`fail_next`](super::TestStore::fail_next)
    /// and an [`outage`](super::TestStore::outage) inject.
    Backend,
    /// The call answers as a store does when another writer got there
    /// first, without reaching the inner store: `append` with
    /// `AppendError::WrongExpectedVersion` (naming the stream's actual
    /// version), a document or a table projection's `commit` with
    /// `ProjectionError::CheckpointMoved` (as if the projection had been
    /// reset under it), `try_acquire` with `Ok(None)` (held by another
    /// node), `renew` with `Ok(false)` (lost). A refusal,
    /// not an outage, so callers handle it as they handle a lost race.
    /// Calls that cannot lose a race meet [`Fault::Backend`] instead.
    Conflict,
    /// The call says it was done without reaching the inner store, as a
    /// store that acknowledges a write and loses it: `renew` answers
    /// `Ok(true)` without extending the lease; `commit`, `put`, `delete`,
    /// `reset`, `save_snapshot` and `release` answer `Ok(())` and change
    /// nothing. Calls with no such answer (reads, `append`, `try_acquire`,
    /// `wait_for_events`) meet [`Fault::Backend`] instead.
    Dropped,
    /// The inner store does the call, then the call panics, as an adapter
    /// with a bug that panics after its commit.
    PanicAfter,
    /// The call never answers, as a store that stopped responding; only the
    /// caller's own timeout ends the wait.
    Hang,
    /// The inner store does the call at once but the answer arrives this
    /// much later (a slow reply: what the store did, it did before the
    /// wait).
    SlowReply(Duration),
}

/// One [`Fault`] for the calls of one kind whose numbers are in
/// `first..=last` (calls are numbered from 1 per kind).
#[derive(Debug, Clone, Copy)]
struct Plan {
    call: StoreCall,
    fault: Fault,
    first: u64,
    last: u64,
}

/// The plans of one [`TestStore`](super::TestStore) and its clones.
#[derive(Debug, Default)]
pub(super) struct Plans(Mutex<Vec<Plan>>);

impl Plans {
    pub(super) fn add(&self, call: StoreCall, fault: Fault, calls: impl RangeBounds<u64>) {
        let first = match calls.start_bound() {
            Bound::Included(n) => *n,
            Bound::Excluded(n) => n.saturating_add(1),
            Bound::Unbounded => 1,
        };
        let last = match calls.end_bound() {
            Bound::Included(n) => *n,
            Bound::Excluded(n) => n.saturating_sub(1),
            Bound::Unbounded => u64::MAX,
        };
        // A poisoned lock only means a test thread panicked while holding
        // it; the plans themselves are always whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(Plan { call, fault, first, last });
    }

    /// The fault planned for call number `n` of kind `call` (the first
    /// plan added wins).
    pub(super) fn fault(&self, call: StoreCall, n: u64) -> Option<Fault> {
        let plans = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        plans
            .iter()
            .find(|plan| plan.call == call && (plan.first..=plan.last).contains(&n))
            .map(|plan| plan.fault)
    }

    pub(super) fn clear(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// Values kept alive with the store ([`TestStore::holding`](super::TestStore::holding)).
#[derive(Default)]
pub(super) struct Guards(Mutex<Vec<Box<dyn Send + Sync>>>);

impl Guards {
    pub(super) fn keep(&self, guard: Box<dyn Send + Sync>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(guard);
    }
}

impl fmt::Debug for Guards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.0.lock().map_or(0, |guards| guards.len());
        write!(f, "Guards({held})")
    }
}
