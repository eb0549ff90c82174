//! The runtime: the [`Es`] application handle, command execution and
//! aggregate loading.
//!
//! Commands run through aggregate actors (module `actor`) by default: one
//! task per live aggregate instance keeps its state in memory, so a hot
//! aggregate costs the same per command whatever its history. Actors are
//! found through the registry (module `registry`), which keeps their number
//! under a cap. The alternative
//! [`CommandPath::Reload`] rebuilds the aggregate from the store for every
//! command; see [`CommandPath`] for when to choose which.

mod actor;
mod command;
mod config;
mod registry;
mod rehydrate;
mod snapshot;
mod stats;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

pub use command::CommandOutcome;
pub use config::{AggregateConfig, CommandPath, EsConfig};
pub use rehydrate::Loaded;
pub use stats::EsStats;
pub(crate) use stats::Stats;

use crate::aggregate::{Aggregate, Command};
use crate::envelope::Metadata;
use crate::error::{ExecuteError, LoadError};
use crate::readside::{ConsistencyError, ReadSide, ReadSideBuilder, ReadSideError};
use crate::store::{EventStore, ProjectionStore, SnapshotStore};
use crate::version::{StreamId, StreamVersion};

pub(crate) struct Shared {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) snapshots: Option<Arc<dyn SnapshotStore>>,
    pub(crate) projections: Option<Arc<dyn ProjectionStore>>,
    pub(crate) config: EsConfig,
    pub(crate) aggregates: HashMap<TypeId, AggregateConfig>,
    pub(crate) registry: registry::Registry,
    pub(crate) stats: Arc<Stats>,
    /// Set once, right after the `Es` is built, when the builder was given
    /// a read side (the read side needs the `Es` to dispatch commands).
    pub(crate) read_side: OnceLock<ReadSide>,
}

impl Shared {
    pub(crate) fn aggregate_config<A: Aggregate>(&self) -> AggregateConfig {
        self.aggregates.get(&TypeId::of::<A>()).copied().unwrap_or_default()
    }
}

/// An es application: executes commands and loads aggregates. Cheap to
/// clone; clones share everything.
///
/// Dropping the last handle stops the application as a crash would: actors
/// stop, and the subscriptions of the read side it owns are aborted without
/// releasing their leases (another node takes them over when they expire).
/// A clone of that [`ReadSide`] kept elsewhere keeps it alive: its
/// projections run on, its handlers (which need the application) stop.
/// [`shutdown`](Es::shutdown) is the clean stop.
#[derive(Clone)]
pub struct Es {
    shared: Arc<Shared>,
    /// The handle handlers get ([`HandlerCtx::es`](crate::HandlerCtx::es)):
    /// commands through it, or any clone of it, do not wait for strongly
    /// consistent subscribers, since the calling subscription cannot move
    /// on until its handler returns.
    in_handler: bool,
}

/// An [`Es`] that does not keep the application alive: the read side an
/// `Es` owns dispatches its handlers' commands through one, so that the two
/// do not hold each other up when the user drops the last `Es`.
#[derive(Clone)]
pub(crate) struct WeakEs(Weak<Shared>);

impl WeakEs {
    /// The application, while some `Es` handle still holds it.
    pub(crate) fn upgrade(&self) -> Option<Es> {
        self.0.upgrade().map(|shared| Es { shared, in_handler: false })
    }
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
    read_side: Option<ReadSideBuilder>,
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
    /// The read side could not be built or started.
    #[error("the read side could not start")]
    ReadSide(#[from] ReadSideError),
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

    /// Runs a read side (event handlers and projections) with this
    /// application: it reads this application's event store, writes to its
    /// projection store, and its handlers dispatch commands here. Strong
    /// subscribers (`Consistency::Strong`) then run before
    /// [`Es::execute`] returns.
    #[must_use]
    pub fn read_side(mut self, read_side: ReadSideBuilder) -> Self {
        self.read_side = Some(read_side);
        self
    }

    /// Sets how long [`Es::execute`] waits for strong subscribers before it
    /// returns [`ExecuteError::ConsistencyTimeout`] (default five seconds).
    #[must_use]
    pub fn consistency_timeout(mut self, timeout: Duration) -> Self {
        self.config.consistency_timeout = timeout;
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
        let es = Es {
            in_handler: false,
            shared: Arc::new(Shared {
                events,
                snapshots: self.snapshots,
                projections: self.projections,
                config: self.config,
                aggregates: self.aggregates,
                registry,
                stats: Arc::new(Stats::default()),
                read_side: OnceLock::new(),
            }),
        };
        if let Some(builder) = self.read_side {
            let read_side = builder.owned_by(&es).start()?;
            // The cell was created empty just above and nothing else can
            // reach it yet, so this set cannot find it full.
            let _ = es.shared.read_side.set(read_side);
        }
        Ok(es)
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
        let outcome = command::execute(&self.shared, command, metadata).await?;
        if self.in_handler {
            return Ok(outcome);
        }
        if let (Some(read_side), Some(position)) = (self.shared.read_side.get(), outcome.position) {
            let timeout = self.shared.config.consistency_timeout;
            if let Err(error) = read_side.wait_for_strong(position, timeout).await {
                let waiting_for = error.name().to_owned();
                return Err(match error {
                    ConsistencyError::Timeout { .. } => {
                        ExecuteError::ConsistencyTimeout { position, waiting_for }
                    }
                    other => {
                        ExecuteError::ConsistencyFailed { position, waiting_for, reason: other.to_string() }
                    }
                });
            }
        }
        Ok(outcome)
    }

    /// This application as handlers get it: see `in_handler`.
    pub(crate) fn for_handler(&self) -> Es {
        Es { shared: Arc::clone(&self.shared), in_handler: true }
    }

    pub(crate) fn downgrade(&self) -> WeakEs {
        WeakEs(Arc::downgrade(&self.shared))
    }

    /// The read side this application runs, if the builder was given one.
    pub fn read_side(&self) -> Option<&ReadSide> {
        self.shared.read_side.get()
    }

    /// Stops taking commands and stops every actor once it has handled the
    /// commands already in its mailbox; returns when all have exited. Later
    /// commands fail with [`ExecuteError::Shutdown`].
    pub async fn shutdown(&self) {
        if let Some(read_side) = self.shared.read_side.get() {
            read_side.shutdown().await;
        }
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
