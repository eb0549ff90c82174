//! The Erlang experiment's scenario: aggregates passivate (their actor
//! stops and frees its memory) after an idle timeout, and come back from
//! the store on their next command: the newest snapshot plus the events
//! after it.

use std::time::Duration;

use es_core::runtime::AggregateConfig;
use es_core::store::SnapshotStore;
use es_core::{Es, StreamId};

use crate::store::Backend;
use crate::{Counter, Create, Increment};

/// How long a counter's actor may idle before it passivates.
pub const IDLE: Duration = Duration::from_millis(300);

/// A snapshot every this many events.
pub const SNAPSHOT_EVERY: u64 = 5;

/// How long to wait for the actors to passivate before giving up.
const PASSIVATION_LIMIT: Duration = Duration::from_secs(10);

/// Increments each counter gets before it idles: with its `Created`, one
/// snapshot (at version 5) and two events after it.
const INCREMENTS: u64 = 6;

/// What the scenario saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassivationReport {
    /// Live actors while the counters were busy.
    pub live_busy: usize,
    /// Live actors after they idled past [`IDLE`].
    pub live_idle: usize,
    /// Actors that passivated (one per counter, more if the machine
    /// stalled for longer than [`IDLE`] mid-run).
    pub passivations: u64,
    /// How long the last one took to go, after the last command.
    pub idle_for: Duration,
    /// The snapshot version stored for each counter when it went.
    pub snapshots: Vec<Option<u64>>,
    /// Live actors after one more command to each counter.
    pub live_again: usize,
    /// Rehydrations those commands caused (one per counter).
    pub rehydrations: u64,
    /// Each counter's value after that command (`INCREMENTS` + 1 = 7).
    pub values: Vec<u64>,
}

/// An application whose counters passivate after [`IDLE`], with a
/// snapshot every [`SNAPSHOT_EVERY`] events.
///
/// # Errors
/// If the application cannot be built.
pub async fn app(backend: &Backend) -> anyhow::Result<Es> {
    let snapshots = AggregateConfig { snapshot_every: Some(SNAPSHOT_EVERY) };
    Ok(backend.builder().idle_timeout(IDLE).aggregate::<Counter>(snapshots).build().await?)
}

/// Runs the scenario on counters `ids`.
///
/// # Errors
/// If a command fails, or the actors do not passivate within 10 s.
pub async fn run(backend: &Backend, ids: &[String]) -> anyhow::Result<PassivationReport> {
    let es = app(backend).await?;
    // Counted from here: on a machine that stalls for longer than `IDLE`,
    // a counter may passivate (and come back) mid-run, or just before the
    // live actors are counted, and each of its passivations counts.
    let before = es.stats();
    // Round by round, so that every counter's last command is only a few
    // commands before the count of live actors, however slow the machine.
    for id in ids {
        es.execute(Create { counter_id: id.clone() }).await?;
    }
    for _ in 0..INCREMENTS {
        for id in ids {
            es.execute(Increment { counter_id: id.clone(), by: 1 }).await?;
        }
    }
    let live_busy = es.live_actors();
    let last_command = tokio::time::Instant::now();
    while es.live_actors() > 0 {
        anyhow::ensure!(
            last_command.elapsed() < PASSIVATION_LIMIT,
            "{} actors still live {PASSIVATION_LIMIT:?} after the last command",
            es.live_actors()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let idle_for = last_command.elapsed();
    let idle = es.stats();
    let mut snapshots = Vec::with_capacity(ids.len());
    for id in ids {
        let snapshot = backend.snapshots().load_snapshot(&StreamId::for_aggregate("counter", id)).await?;
        snapshots.push(snapshot.map(|s| s.stream_version.get()));
    }
    let mut values = Vec::with_capacity(ids.len());
    for id in ids {
        es.execute(Increment { counter_id: id.clone(), by: 1 }).await?;
        let counter: Counter = es.load(id).await?;
        values.push(counter.value);
    }
    let after = es.stats();
    let report = PassivationReport {
        live_busy,
        live_idle: idle.live_actors,
        passivations: idle.passivations - before.passivations,
        idle_for,
        snapshots,
        live_again: after.live_actors,
        rehydrations: after.rehydrations - idle.rehydrations,
        values,
    };
    es.shutdown().await;
    Ok(report)
}
