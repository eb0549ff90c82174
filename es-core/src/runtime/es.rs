//! [`Es`]: the application handle. Executes commands, loads aggregates,
//! owns the actor registry and (optionally) the read side.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use super::attached::Attached;
use super::builder::EsBuilder;
use super::config::{AggregateConfig, EsConfig};
use super::execute::Execute;
use super::registry;
use super::rehydrate::{self, Loaded};
use super::reload::Turns;
use super::stats::{EsStats, Stats};
use crate::aggregate::{Aggregate, Command};
use crate::envelope::Metadata;
use crate::error::LoadError;
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
    /// Turns of the reload path: one command per aggregate at a time.
    pub(crate) turns: Turns,
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
    /// actor, or a fresh load; see [`CommandPath`](crate::runtime::CommandPath)),
    /// which decides and appends the events with optimistic concurrency
    /// (catching up and deciding again, after a jittered wait, when another
    /// writer got there first), and returns what was stored. A refusal or a
    /// decision without events is confirmed against the stream's head first
    /// (unless [`EsBuilder::single_writer`](crate::runtime::EsBuilder::single_writer)).
    ///
    /// Await it as is, or set the command's id, metadata or deadline first
    /// (see [`Execute`]): `es.execute(cmd).id(id).timeout(d).await`.
    ///
    /// Dropping the returned future after the command reached its actor
    /// does not cancel the command; a deadline does, if the append was not
    /// sent yet.
    ///
    /// # Errors
    /// [`ExecuteError`](crate::error::ExecuteError): validation, the aggregate's refusal, a conflict that
    /// outlasted every retry, a storage failure, a panic in the aggregate's
    /// code, a missed deadline, or [`ExecuteError::Shutdown`](crate::error::ExecuteError::Shutdown) after
    /// [`Es::shutdown`]. Whether anything was stored: see
    /// [`crate::error`]'s table.
    pub fn execute<C: Command>(&self, command: C) -> Execute<'_, C> {
        Execute::new(self, command)
    }

    /// [`execute`](Es::execute) with metadata (correlation, causation, user
    /// fields) recorded on every event the command produces: the same as
    /// `es.execute(command).metadata(metadata)`.
    pub fn execute_with<C: Command>(&self, command: C, metadata: Metadata) -> Execute<'_, C> {
        Execute::new(self, command).metadata(metadata)
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
    /// commands fail with [`ExecuteError::Shutdown`](crate::error::ExecuteError::Shutdown).
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
        self.shared.stats.snapshot(self.live_actors())
    }

    /// The current state of aggregate `id`, read from the store (newest
    /// snapshot plus later events).
    ///
    /// # Errors
    /// [`LoadError::NotFound`] if no event of aggregate `id` is stored (so
    /// a mistyped id is not read as an empty aggregate); [`LoadError`] if
    /// the stream cannot be read or an event not decoded.
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
        let loaded = rehydrate::rehydrate::<A>(
            self.shared.events.as_ref(),
            self.shared.snapshots.as_deref(),
            &stream,
            id,
            up_to,
        )
        .await?;
        // No event applied: the stream is missing, or the version asked
        // for is 0 (the state before the first event).
        if loaded.version.is_none() && self.shared.events.stream_version(&stream).await?.is_none() {
            return Err(LoadError::NotFound { aggregate: A::NAME, id: id.to_owned() });
        }
        Ok(loaded)
    }
}
