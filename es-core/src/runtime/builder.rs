//! [`EsBuilder`]: stores, settings and the read side of an application.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::attached::Attached;
use super::config::{AggregateConfig, CommandPath, EsConfig};
use super::es::{Es, Shared};
use super::registry;
use super::reload::Turns;
use super::stats::Stats;
use crate::aggregate::Aggregate;
use crate::error::{BuildError, ReadSideError};
use crate::store::{EventStore, ProjectionStore, SnapshotStore};

/// How long [`EsBuilder::build`] lets the event store warm up
/// ([`EventStore::warm_up`]) before it goes on without.
const WARM_UP_LIMIT: Duration = Duration::from_secs(1);

/// Starts the read side an application runs with, once the `Es` exists.
pub(crate) type AttachReadSide = Box<dyn FnOnce(&Es) -> Result<Box<dyn Attached>, ReadSideError> + Send>;

/// Builds an [`Es`].
#[derive(Default)]
pub struct EsBuilder {
    events: Option<Arc<dyn EventStore>>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    projections: Option<Arc<dyn ProjectionStore>>,
    config: EsConfig,
    aggregates: HashMap<TypeId, AggregateConfig>,
    aggregate_names: HashMap<TypeId, &'static str>,
    read_side: Option<AttachReadSide>,
}

impl EsBuilder {
    /// Sets the event store.
    #[must_use]
    pub fn event_store(mut self, store: impl EventStore) -> Self {
        self.events = Some(Arc::new(store));
        self
    }

    /// Sets the snapshot store (needed for snapshots).
    #[must_use]
    pub fn snapshot_store(mut self, store: impl SnapshotStore) -> Self {
        self.snapshots = Some(Arc::new(store));
        self
    }

    /// Sets the projection store.
    #[must_use]
    pub fn projection_store(mut self, store: impl ProjectionStore) -> Self {
        self.projections = Some(Arc::new(store));
        self
    }

    /// Sets how many times a command is tried in all when other writers
    /// keep changing its stream (default 200), before it fails with
    /// [`ExecuteError::Conflict`](crate::error::ExecuteError::Conflict).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.backoff.max_attempts = attempts;
        self
    }

    /// Sets the waits between attempts at a command that lost the race for
    /// its stream: a random time up to `first`, doubling with each attempt,
    /// at most `max` (defaults 1 ms and 25 ms; with the default 200
    /// attempts, four nodes hammering one aggregate lose no command). The
    /// same bounds pace a node's commands to a contended aggregate (see the
    /// runtime docs).
    #[must_use]
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.config.backoff.base = first;
        self.config.backoff.max = max.max(first);
        self
    }

    /// Declares this application the only writer of its event store (no
    /// other process or `Es` appends to it). Refusals and decisions that
    /// append nothing are then answered without reading the stream's head
    /// first. Off by default: with several writers a refusal could rest on
    /// a stale state.
    #[must_use]
    pub fn single_writer(mut self) -> Self {
        self.config.confirm_decisions = false;
        self
    }

    /// Sets whether an actor that starts with no snapshot to load (no
    /// snapshot store, or none configured for its aggregate) decides its
    /// first command on the aggregate's default state and appends it
    /// expecting no stream, without reading the stream first (default on).
    ///
    /// A command for a new aggregate then costs one round trip instead of
    /// two. When the aggregate does exist, the store refuses the append
    /// (nothing is written), the actor loads the stream and decides again:
    /// the first command to an existing aggregate whose actor is not live
    /// costs one round trip more. A refusal or an empty decision on the
    /// assumed state is always confirmed against the stream's head, also
    /// with [`single_writer`](EsBuilder::single_writer). Turn it off when
    /// most commands go to existing aggregates that are not live.
    #[must_use]
    pub fn assume_new_aggregates(mut self, on: bool) -> Self {
        self.config.assume_new = on;
        self
    }

    /// Sets a deadline for every command that sets none with
    /// [`Execute::timeout`](super::Execute::timeout) (default: none). A
    /// command that has not sent its append by then is cancelled
    /// ([`ExecuteError::Timeout`](crate::error::ExecuteError::Timeout));
    /// one whose append is in flight reports
    /// [`ExecuteError::OutcomeUnknown`](crate::error::ExecuteError::OutcomeUnknown).
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = Some(timeout);
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

    /// Sets how many of the commands waiting in one actor's mailbox it
    /// decides together and appends in one write (default 64; 1 appends
    /// each command on its own).
    ///
    /// Each command is still decided on the state its predecessors left
    /// and answered on its own; only the write is shared, so a busy
    /// aggregate pays one append (one round trip, one transaction) for
    /// many commands. If the shared write is refused (another writer moved
    /// the stream, or the store failed with nothing written), the actor
    /// reloads its state and runs the commands one by one, as it would
    /// have without batching. Commands whose id was given
    /// (`es.execute(command).id(..)`, and the commands of event handlers),
    /// which may be retries checked against what the id stored, always run
    /// on their own.
    #[must_use]
    pub fn command_batch(mut self, max: usize) -> Self {
        self.config.max_batch = max.max(1);
        self
    }

    /// Sets how many commands may wait in one actor's mailbox (default 256).
    #[must_use]
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.config.mailbox_capacity = capacity;
        self
    }

    /// Runs a read side with this application (see
    /// `EsBuilder::read_side`, defined with the read side).
    pub(crate) fn attach_read_side(mut self, attach: AttachReadSide) -> Self {
        self.read_side = Some(attach);
        self
    }

    /// Sets how long [`Es::execute`] waits for strong subscribers before it
    /// returns [`ExecuteError::ConsistencyTimeout`](crate::error::ExecuteError::ConsistencyTimeout) (default five seconds).
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

    /// Builds the application. Before it returns, it lets the event store
    /// open and prime what the first command needs
    /// ([`EventStore::warm_up`], at most a second; a failure is logged,
    /// not returned), so that command does not pay for it.
    ///
    /// # Errors
    /// [`BuildError`] naming the missing or invalid setting.
    pub async fn build(self) -> Result<Es, BuildError> {
        let events = self.events.ok_or(BuildError::MissingEventStore)?;
        if self.config.backoff.max_attempts == 0 {
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
        // Before the read side starts, so its tasks do not take the
        // connections being primed for the first command.
        match tokio::time::timeout(WARM_UP_LIMIT, events.warm_up()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "warming up the event store failed; the first command will connect")
            }
            Err(_) => tracing::debug!(
                limit_ms = WARM_UP_LIMIT.as_millis(),
                "the event store did not warm up in time; going on without"
            ),
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
                turns: Turns::default(),
                read_side: OnceLock::new(),
            }),
        };
        if let Some(attach) = self.read_side {
            let read_side = attach(&es)?;
            // The cell was created empty just above and nothing else can
            // reach it yet, so this set cannot find it full.
            let _ = es.shared.read_side.set(read_side);
        }
        Ok(es)
    }
}
