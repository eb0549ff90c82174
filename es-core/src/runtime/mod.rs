//! The runtime: the [`Es`] application handle, command execution and
//! aggregate loading.

mod command;
mod rehydrate;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

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
    /// Take a snapshot every this many events (`None`: never).
    pub snapshot_every: Option<u64>,
}

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct EsConfig {
    /// How many times a command runs when other writers keep changing its
    /// stream (optimistic concurrency), before it fails with
    /// [`ExecuteError::Conflict`].
    pub max_attempts: u32,
}

impl Default for EsConfig {
    fn default() -> Self {
        Self { max_attempts: 5 }
    }
}

pub(crate) struct Shared {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) snapshots: Option<Arc<dyn SnapshotStore>>,
    pub(crate) projections: Option<Arc<dyn ProjectionStore>>,
    pub(crate) config: EsConfig,
    pub(crate) aggregates: HashMap<TypeId, AggregateConfig>,
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

    /// Sets the settings of aggregate `A`.
    #[must_use]
    pub fn aggregate<A: Aggregate>(mut self, config: AggregateConfig) -> Self {
        self.aggregates.insert(TypeId::of::<A>(), config);
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
        Ok(Es {
            shared: Arc::new(Shared {
                events,
                snapshots: self.snapshots,
                projections: self.projections,
                config: self.config,
                aggregates: self.aggregates,
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

    /// Executes a command: validates it, loads its aggregate, handles it,
    /// appends the events with optimistic concurrency (retrying on conflict)
    /// and returns what was stored.
    ///
    /// # Errors
    /// [`ExecuteError`]: validation, the aggregate's refusal, a conflict that
    /// outlasted every retry, or a storage failure. Nothing is appended
    /// unless the variant says so.
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

    /// The current state of aggregate `id`.
    ///
    /// # Errors
    /// [`LoadError`] if the stream cannot be read or an event not decoded.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<A, LoadError> {
        Ok(self.load_versioned::<A>(id, None).await?.state)
    }

    /// The state of aggregate `id` right after event `version` (time travel).
    /// Past the newest event, it is the current state.
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
