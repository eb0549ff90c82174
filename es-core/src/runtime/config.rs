//! Runtime settings: per application ([`EsConfig`]), per aggregate
//! ([`AggregateConfig`]), and the choice of [`CommandPath`].

use std::time::Duration;

use super::backoff::Backoff;

#[cfg(doc)]
use super::EsBuilder;
#[cfg(doc)]
use crate::error::ExecuteError;

/// Per-aggregate settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AggregateConfig {
    /// Take a snapshot every this many events (`None`: never). Needs a
    /// snapshot store ([`EsBuilder::snapshot_store`]).
    pub snapshot_every: Option<u64>,
}

/// How commands reach their aggregate.
///
/// Both paths give the same results and the same guarantees across nodes
/// (optimistic concurrency with bounded retries); they differ in cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CommandPath {
    /// One actor per live aggregate holds its state in memory and handles
    /// its commands one at a time. The first command to a cold aggregate
    /// rehydrates it (newest snapshot plus later events); later commands
    /// read nothing before appending, so a hot aggregate costs O(1) per
    /// command. Idle actors passivate after the idle timeout ([`EsBuilder::idle_timeout`]); at
    /// most [`EsBuilder::max_live_actors`] are live at once. The default,
    /// for long-running processes.
    #[default]
    Actors,
    /// Every command rebuilds its aggregate from the store (snapshot plus
    /// later events), decides, and appends. No task or memory outlives a
    /// command, which suits short-lived, serverless-style processes that
    /// handle a few commands each, at O(history since the last snapshot)
    /// per command.
    Reload,
}

/// Runtime settings, set through [`EsBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct EsConfig {
    /// How often a command whose stream other writers keep changing is
    /// tried (optimistic concurrency), and how long it waits between tries,
    /// before it fails with [`ExecuteError::Conflict`].
    pub(crate) backoff: Backoff,
    /// Whether decisions that append nothing (refusals, empty decisions)
    /// are confirmed against the stream's head: needed whenever another
    /// process may write the store.
    pub(crate) confirm_decisions: bool,
    /// Whether a new actor with no snapshot to start from decides its
    /// first command on the default state, appending with a no-stream
    /// expectation, instead of reading the stream first.
    pub(crate) assume_new: bool,
    /// How commands reach their aggregate.
    pub(crate) command_path: CommandPath,
    /// An actor idle this long stops and frees its memory; the next command
    /// rehydrates the aggregate.
    pub(crate) idle_timeout: Duration,
    /// At most this many actors are live at once; starting one more stops
    /// the least recently used.
    pub(crate) max_live_actors: usize,
    /// How many commands wait in one actor's mailbox before senders wait
    /// for room.
    pub(crate) mailbox_capacity: usize,
    /// How long `Es::execute` waits for strong read-side subscribers to
    /// handle a command's events before it returns
    /// [`ExecuteError::ConsistencyTimeout`].
    pub(crate) consistency_timeout: Duration,
    /// The deadline of a command that sets none (`None`: no deadline).
    pub(crate) command_timeout: Option<Duration>,
    /// At most this many commands queued for one actor are decided
    /// together and appended in one write.
    pub(crate) max_batch: usize,
}

impl Default for EsConfig {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            confirm_decisions: true,
            assume_new: true,
            command_path: CommandPath::Actors,
            idle_timeout: Duration::from_secs(5 * 60),
            max_live_actors: 10_000,
            mailbox_capacity: 256,
            consistency_timeout: Duration::from_secs(5),
            command_timeout: None,
            max_batch: 64,
        }
    }
}
