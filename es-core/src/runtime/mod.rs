//! The runtime: the [`Es`] application handle, command execution and
//! aggregate loading.
//!
//! Commands run through aggregate actors (module `actor`) by default: one task per
//! live aggregate instance keeps its state in memory, so a hot aggregate
//! costs the same per command whatever its history. The alternative
//! [`CommandPath::Reload`] rebuilds the aggregate from the store for every
//! command; see [`CommandPath`] for when to choose which.

mod actor;
mod command;
mod registry;
mod rehydrate;
mod snapshot;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use command::CommandOutcome;
pub use rehydrate::Loaded;

use crate::aggregate::{Aggregate, Command};
use crate::envelope::Metadata;
use crate::error::{ExecuteError, LoadError};
use crate::store::{EventStore, ProjectionStore, SnapshotStore};
use crate::version::{StreamId, StreamVersion};

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
    /// command. Idle actors passivate after [`EsConfig::idle_timeout`]; at
    /// most [`EsConfig::max_live_actors`] are live at once. The default,
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

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct EsConfig {
    /// How many times a command runs when other writers keep changing its
    /// stream (optimistic concurrency), before it fails with
    /// [`ExecuteError::Conflict`].
    pub max_attempts: u32,
    /// How commands reach their aggregate.
    pub command_path: CommandPath,
    /// An actor idle this long stops and frees its memory; the next command
    /// rehydrates the aggregate.
    pub idle_timeout: Duration,
    /// At most this many actors are live at once; starting one more stops
    /// the least recently used.
    pub max_live_actors: usize,
    /// How many commands wait in one actor's mailbox before senders wait
    /// for room.
    pub mailbox_capacity: usize,
}

impl Default for EsConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            command_path: CommandPath::Actors,
            idle_timeout: Duration::from_secs(5 * 60),
            max_live_actors: 10_000,
            mailbox_capacity: 256,
        }
    }
}

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

pub(crate) struct Shared {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) snapshots: Option<Arc<dyn SnapshotStore>>,
    pub(crate) projections: Option<Arc<dyn ProjectionStore>>,
    pub(crate) config: EsConfig,
    pub(crate) aggregates: HashMap<TypeId, AggregateConfig>,
    pub(crate) registry: registry::Registry,
    pub(crate) stats: Arc<Stats>,
}

impl Shared {
    pub(crate) fn aggregate_config<A: Aggregate>(&self) -> AggregateConfig {
        self.aggregates.get(&TypeId::of::<A>()).copied().unwrap_or_default()
    }
}

/// An es application: executes commands and loads aggregates. Cheap to
/// clone; clones share everything.
#[derive(Clone)]
pub struct Es {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Es {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

/// Builds an [`Es`].
#[derive(Default)]
pub struct EsBuilder {
    events: Option<Arc<dyn EventStore>>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    projections: Option<Arc<dyn ProjectionStore>>,
    config: EsConfig,
    aggregates: HashMap<TypeId, AggregateConfig>,
    aggregate_names: HashMap<TypeId, &'static str>,
}

/// Building an [`Es`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No event store was given.
    #[error("no event store: call `EsBuilder::event_store` before `build`")]
    MissingEventStore,
    /// A snapshot interval of zero.
    #[error("aggregate `{aggregate}`: snapshot interval must be at least 1")]
    ZeroSnapshotInterval {
        /// The aggregate type.
        aggregate: &'static str,
    },
    /// `max_attempts` of zero.
    #[error("max_attempts must be at least 1")]
    ZeroAttempts,
    /// `max_live_actors` of zero.
    #[error("max_live_actors must be at least 1")]
    ZeroLiveActors,
    /// `mailbox_capacity` of zero.
    #[error("mailbox_capacity must be at least 1")]
    ZeroMailbox,
}

impl EsBuilder {
    /// Sets the event store.
    #[must_use]
    pub fn event_store(mut self, store: impl EventStore) -> Self {
        self.events = Some(Arc::new(store));
        self
    }

    /// Sets an event store that is already shared.
    #[must_use]
    pub fn shared_event_store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.events = Some(store);
        self
    }

    /// Sets the snapshot store (needed for snapshots).
    #[must_use]
    pub fn snapshot_store(mut self, store: impl SnapshotStore) -> Self {
        self.snapshots = Some(Arc::new(store));
        self
    }

    /// Sets a snapshot store that is already shared.
    #[must_use]
    pub fn shared_snapshot_store(mut self, store: Arc<dyn SnapshotStore>) -> Self {
        self.snapshots = Some(store);
        self
    }

    /// Sets the projection store.
    #[must_use]
    pub fn projection_store(mut self, store: impl ProjectionStore) -> Self {
        self.projections = Some(Arc::new(store));
        self
    }

    /// Sets a projection store that is already shared.
    #[must_use]
    pub fn shared_projection_store(mut self, store: Arc<dyn ProjectionStore>) -> Self {
        self.projections = Some(store);
        self
    }

    /// Sets how many times a conflicting command is tried.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }

    /// Sets how commands reach their aggregate (default
    /// [`CommandPath::Actors`]).
    #[must_use]
    pub fn command_path(mut self, path: CommandPath) -> Self {
        self.config.command_path = path;
        self
    }

    /// Sets how long an actor may be idle before it stops (default five
    /// minutes).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Sets how many actors may be live at once (default 10,000).
    #[must_use]
    pub fn max_live_actors(mut self, max: usize) -> Self {
        self.config.max_live_actors = max;
        self
    }

    /// Sets how many commands may wait in one actor's mailbox (default 256).
    #[must_use]
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.config.mailbox_capacity = capacity;
        self
    }

    /// Replaces every runtime setting at once.
    #[must_use]
    pub fn config(mut self, config: EsConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the settings of aggregate `A`.
    #[must_use]
    pub fn aggregate<A: Aggregate>(mut self, config: AggregateConfig) -> Self {
        self.aggregates.insert(TypeId::of::<A>(), config);
        self.aggregate_names.insert(TypeId::of::<A>(), A::NAME);
        self
    }

    /// Builds the application.
    ///
    /// # Errors
    /// [`BuildError`] naming the missing or invalid setting.
    pub async fn build(self) -> Result<Es, BuildError> {
        let events = self.events.ok_or(BuildError::MissingEventStore)?;
        if self.config.max_attempts == 0 {
            return Err(BuildError::ZeroAttempts);
        }
        if self.config.max_live_actors == 0 {
            return Err(BuildError::ZeroLiveActors);
        }
        if self.config.mailbox_capacity == 0 {
            return Err(BuildError::ZeroMailbox);
        }
        if let Some(aggregate) = self.aggregate_names.iter().find_map(|(type_id, name)| {
            let zero = self.aggregates.get(type_id).is_some_and(|c| c.snapshot_every == Some(0));
            zero.then_some(*name)
        }) {
            return Err(BuildError::ZeroSnapshotInterval { aggregate });
        }
        let registry = registry::Registry::new(self.config.max_live_actors, self.config.mailbox_capacity);
        Ok(Es {
            shared: Arc::new(Shared {
                events,
                snapshots: self.snapshots,
                projections: self.projections,
                config: self.config,
                aggregates: self.aggregates,
                registry,
                stats: Arc::new(Stats::default()),
            }),
        })
    }
}

impl Es {
    /// Starts building an application.
    pub fn builder() -> EsBuilder {
        EsBuilder::default()
    }

    /// The event store.
    pub fn event_store(&self) -> &Arc<dyn EventStore> {
        &self.shared.events
    }

    /// The projection store, if one was set.
    pub fn projection_store(&self) -> Option<&Arc<dyn ProjectionStore>> {
        self.shared.projections.as_ref()
    }

    /// Executes a command: validates it, hands it to its aggregate (its
    /// actor, or a fresh reload; see [`CommandPath`]), which decides,
    /// appends the events with optimistic concurrency (catching up and
    /// deciding again on conflict) and returns what was stored.
    ///
    /// Dropping the returned future after the command reached its actor
    /// does not cancel the command.
    ///
    /// # Errors
    /// [`ExecuteError`]: validation, the aggregate's refusal, a conflict that
    /// outlasted every retry, a storage failure, a panic in the aggregate's
    /// code, or [`ExecuteError::Shutdown`] after [`Es::shutdown`]. Nothing is
    /// appended unless the variant says so.
    pub async fn execute<C: Command>(
        &self,
        command: C,
    ) -> Result<CommandOutcome<C::Aggregate>, ExecuteError<<C::Aggregate as Aggregate>::Error>> {
        self.execute_with(command, Metadata::default()).await
    }

    /// [`execute`](Es::execute) with metadata (correlation, causation, user
    /// fields) recorded on every event the command produces.
    ///
    /// # Errors
    /// As [`execute`](Es::execute).
    pub async fn execute_with<C: Command>(
        &self,
        command: C,
        metadata: Metadata,
    ) -> Result<CommandOutcome<C::Aggregate>, ExecuteError<<C::Aggregate as Aggregate>::Error>> {
        command::execute(&self.shared, command, metadata).await
    }

    /// Stops taking commands and stops every actor once it has handled the
    /// commands already in its mailbox; returns when all have exited. Later
    /// commands fail with [`ExecuteError::Shutdown`].
    pub async fn shutdown(&self) {
        for exit in self.shared.registry.shut_down() {
            registry::exited(exit).await;
        }
    }

    /// How many aggregate actors are live.
    pub fn live_actors(&self) -> usize {
        self.shared.registry.live()
    }

    /// The runtime's counters.
    pub fn stats(&self) -> EsStats {
        let stats = &self.shared.stats;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EsStats {
            live_actors: self.live_actors(),
            actors_started: read(&stats.actors_started),
            rehydrations: read(&stats.rehydrations),
            passivations: read(&stats.passivations),
            evictions: read(&stats.evictions),
            conflicts: read(&stats.conflicts),
            snapshots_saved: read(&stats.snapshots_saved),
            panics: read(&stats.panics),
        }
    }

    /// The current state of aggregate `id`, read from the store (newest
    /// snapshot plus later events).
    ///
    /// # Errors
    /// [`LoadError`] if the stream cannot be read or an event not decoded.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<A, LoadError> {
        Ok(self.load_versioned::<A>(id, None).await?.state)
    }

    /// The state of aggregate `id` right after event `version` (time travel).
    /// Past the newest event, it is the current state. A snapshot taken
    /// after `version` is not used.
    ///
    /// # Errors
    /// [`LoadError`] if the stream cannot be read or an event not decoded.
    pub async fn load_at<A: Aggregate>(&self, id: &str, version: StreamVersion) -> Result<A, LoadError> {
        Ok(self.load_versioned::<A>(id, Some(version)).await?.state)
    }

    /// The state of aggregate `id` with its version, up to `up_to` (`None`:
    /// the newest event).
    ///
    /// # Errors
    /// [`LoadError`] if the stream cannot be read or an event not decoded.
    pub async fn load_versioned<A: Aggregate>(
        &self,
        id: &str,
        up_to: Option<StreamVersion>,
    ) -> Result<Loaded<A>, LoadError> {
        let stream = StreamId::for_aggregate(A::NAME, id);
        rehydrate::rehydrate::<A>(
            self.shared.events.as_ref(),
            self.shared.snapshots.as_deref(),
            &stream,
            id,
            up_to,
        )
        .await
    }
}
