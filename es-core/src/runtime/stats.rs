//! Runtime counters: what the runtime did, for tests, metrics and the
//! benchmarks.

use std::sync::atomic::AtomicU64;

#[cfg(doc)]
use crate::Es;

/// Counters of one [`Es`] since it was built, from [`Es::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EsStats {
    /// Actors live right now.
    pub live_actors: usize,
    /// Actors started.
    pub actors_started: u64,
    /// Aggregates rebuilt from the store to handle a command (once per actor
    /// start on the actor path, once per attempt on the reload path).
    pub rehydrations: u64,
    /// Actors stopped for being idle.
    pub passivations: u64,
    /// Actors stopped to stay under the live-actor cap.
    pub evictions: u64,
    /// Appends that lost a race with another writer and were retried or
    /// given up on.
    pub conflicts: u64,
    /// Snapshots saved.
    pub snapshots_saved: u64,
    /// Actors stopped because aggregate code panicked.
    pub panics: u64,
}

/// The runtime's counters, shared with its actors.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) actors_started: AtomicU64,
    pub(crate) rehydrations: AtomicU64,
    pub(crate) passivations: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) snapshots_saved: AtomicU64,
    pub(crate) panics: AtomicU64,
}
