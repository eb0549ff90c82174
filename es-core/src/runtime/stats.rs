//! Runtime counters: what the runtime did, for tests, the benchmarks, and
//! metrics.
//!
//! Each event is counted twice: in this application's [`EsStats`] (read
//! with [`Es::stats`]) and through the [`metrics`] facade, for whatever
//! exporter the application installs (names below; labels `aggregate` and,
//! for commands, `outcome`):
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `es_commands_total` | counter | commands answered, by aggregate and outcome (`ok`, `rejected`, `invalid`, `conflict`, `unknown`, `timeout`, `error`) |
//! | `es_conflicts_total` | counter | appends that lost a race with another writer |
//! | `es_command_retries_total` | counter | attempts made again after a conflict |
//! | `es_stale_decisions_total` | counter | refusals or empty decisions found stale by the head check and made again |
//! | `es_rehydrations_total` | counter | aggregates rebuilt from the store |
//! | `es_command_batches_total` | counter | writes shared by two or more queued commands of one aggregate (see [`EsBuilder::command_batch`](crate::runtime::EsBuilder::command_batch)) |
//! | `es_batched_commands_total` | counter | commands answered through such a shared write |
//! | `es_batch_fallbacks_total` | counter | batches whose shared write stored nothing (or whose head moved), so their commands ran again one by one |
//! | `es_live_actors` | gauge | actors live now |
//! | `es_append_seconds` | histogram | time of one append, by aggregate |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::aggregate::Aggregate;
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
    /// start on the actor path, once per command on the reload path).
    pub rehydrations: u64,
    /// Actors stopped for being idle.
    pub passivations: u64,
    /// Actors stopped to stay under the live-actor cap.
    pub evictions: u64,
    /// Appends that lost a race with another writer.
    pub conflicts: u64,
    /// Attempts made again after a conflict (each after a jittered wait).
    pub retries: u64,
    /// Refusals or empty decisions that the head check found were made on
    /// a stale state, and were made again.
    pub stale_decisions: u64,
    /// Snapshots saved.
    pub snapshots_saved: u64,
    /// Actors stopped because aggregate code panicked.
    pub panics: u64,
    /// Writes shared by two or more commands queued behind a busy actor
    /// (or, for a batch that stores nothing, one head check).
    pub batches: u64,
    /// Commands answered through those shared writes.
    pub batched_commands: u64,
    /// Batches whose shared write the store refused with nothing written,
    /// or whose stream moved under them: their commands ran again one by
    /// one.
    pub batch_fallbacks: u64,
}

/// The runtime's counters, shared with its actors.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) actors_started: AtomicU64,
    pub(crate) rehydrations: AtomicU64,
    pub(crate) passivations: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) stale_decisions: AtomicU64,
    pub(crate) snapshots_saved: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) batched_commands: AtomicU64,
    pub(crate) batch_fallbacks: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn snapshot(&self, live_actors: usize) -> EsStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EsStats {
            live_actors,
            actors_started: read(&self.actors_started),
            rehydrations: read(&self.rehydrations),
            passivations: read(&self.passivations),
            evictions: read(&self.evictions),
            conflicts: read(&self.conflicts),
            retries: read(&self.retries),
            stale_decisions: read(&self.stale_decisions),
            snapshots_saved: read(&self.snapshots_saved),
            panics: read(&self.panics),
            batches: read(&self.batches),
            batched_commands: read(&self.batched_commands),
            batch_fallbacks: read(&self.batch_fallbacks),
        }
    }

    pub(crate) fn command<A: Aggregate>(&self, outcome: &'static str) {
        metrics::counter!("es_commands_total", "aggregate" => A::NAME, "outcome" => outcome).increment(1);
    }

    pub(crate) fn conflict<A: Aggregate>(&self) {
        bump(&self.conflicts);
        metrics::counter!("es_conflicts_total", "aggregate" => A::NAME).increment(1);
    }

    pub(crate) fn retry<A: Aggregate>(&self) {
        bump(&self.retries);
        metrics::counter!("es_command_retries_total", "aggregate" => A::NAME).increment(1);
    }

    pub(crate) fn stale_decision(&self) {
        bump(&self.stale_decisions);
        metrics::counter!("es_stale_decisions_total").increment(1);
    }

    pub(crate) fn rehydration<A: Aggregate>(&self) {
        bump(&self.rehydrations);
        metrics::counter!("es_rehydrations_total", "aggregate" => A::NAME).increment(1);
    }

    /// A shared write answered `commands` commands.
    pub(crate) fn batch<A: Aggregate>(&self, commands: usize) {
        bump(&self.batches);
        self.batched_commands.fetch_add(commands as u64, Ordering::Relaxed);
        metrics::counter!("es_command_batches_total", "aggregate" => A::NAME).increment(1);
        metrics::counter!("es_batched_commands_total", "aggregate" => A::NAME).increment(commands as u64);
    }

    pub(crate) fn batch_fallback<A: Aggregate>(&self) {
        bump(&self.batch_fallbacks);
        metrics::counter!("es_batch_fallbacks_total", "aggregate" => A::NAME).increment(1);
    }

    pub(crate) fn append_took<A: Aggregate>(&self, took: Duration) {
        metrics::histogram!("es_append_seconds", "aggregate" => A::NAME).record(took.as_secs_f64());
    }

    pub(crate) fn live_actors(&self, live: usize) {
        metrics::gauge!("es_live_actors").set(live as f64);
    }
}
