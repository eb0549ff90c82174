//! [`Es`]: the application handle. Executes commands, loads aggregates,
//! owns the actor registry and (optionally) the read side.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use super::attached::Attached;
use super::builder::EsBuilder;
use super::command::{self, CommandOutcome};
use super::config::{AggregateConfig, EsConfig};
use super::registry;
use super::rehydrate::{self, Loaded};
use super::stats::{EsStats, Stats};
use crate::aggregate::{Aggregate, Command};
use crate::envelope::Metadata;
use crate::error::ConsistencyError;
use crate::error::{ExecuteError, LoadError};
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
    pub(crate) read_side: OnceLock<Box<dyn Attached>>,
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
/// A clone of that [`ReadSide`](crate::ReadSide) kept elsewhere keeps it alive: its
/// projections run on, its handlers (which need the application) stop.
/// [`shutdown`](Es::shutdown) is the clean stop.
#[derive(Clone)]
pub struct Es {
    pub(crate) shared: Arc<Shared>,
    /// The handle handlers get ([`HandlerCtx::es`](crate::HandlerCtx::es)):
    /// commands through it, or any clone of it, do not wait for strongly
    /// consistent subscribers, since the calling subscription cannot move
    /// on until its handler returns.
    pub(crate) in_handler: bool,
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
    /// actor, or a fresh reload; see [`CommandPath`](crate::runtime::CommandPath)), which decides,
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
                    cause => {
                        ExecuteError::ConsistencyFailed { position, waiting_for, cause: Box::new(cause) }
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
