//! [`ReadSide`]: the handle that runs, watches and controls subscriptions.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::local_leases::LocalLeases;
use super::registry::{Registry, Selection};
use super::runner::{self, Dispatcher, Progress, Shared, Slot, Start, Task};
use super::status::{SubscriptionState, SubscriptionStatus};
use super::subscriber::{Consistency, RetryPolicy};
use crate::error::{ConsistencyError, ReadSideError};
use crate::runtime::es::Es;
use crate::store::LeaseStore;
use crate::store::{EventStore, ProjectionStore};
use crate::version::GlobalPosition;

/// Settings shared by every subscription of a read side.
#[derive(Debug, Clone)]
pub struct ReadSideConfig {
    /// How many events one read of the global stream fetches (and one
    /// projection commit covers at most).
    pub batch_size: usize,
    /// How long a caught-up subscription waits for new events before it
    /// reads again anyway (adapters with wake-ups return earlier).
    pub idle_wait: Duration,
    /// How long a lease lasts without renewal; renewed every third of it.
    /// Must exceed the time one batch (with its retries) takes.
    pub lease_ttl: Duration,
    /// How often a node in standby tries to take a lease.
    pub lease_retry: Duration,
    /// A subscription that only passes filtered-out events commits its
    /// checkpoint after this many of them (and whenever it catches up).
    pub checkpoint_every: usize,
    /// Backoff for failed reads of the event or projection store; reads are
    /// retried until they succeed (`max_attempts` is not used).
    pub store_retry: RetryPolicy,
    /// How often a waiter polls the stored checkpoint of a subscription
    /// that runs on another node.
    pub remote_poll: Duration,
    /// A caught-up subscription that committed events stay hidden from (a
    /// long-running transaction, see
    /// [`EventStore::read_blocker`](crate::store::EventStore::read_blocker)) for
    /// longer than this logs a warning naming the transaction and reports
    /// it in [`SubscriptionStatus::held_back_by`]. It asks the store at most
    /// every half of this (and at most every `idle_wait`), only while
    /// caught up.
    pub held_back_warning: Duration,
    /// How many bytes (roughly) of documents a projection's runner keeps in
    /// memory (0: none). A projection that reads a document it read or
    /// wrote before gets it from memory instead of a store round trip, and
    /// a rebuild, which starts from an empty store, reads nothing back while
    /// its documents fit. The cache assumes the runner, under its lease, is
    /// the only writer of its projection's documents: documents changed
    /// from elsewhere (`ProjectionStore::put`, SQL) are not seen until the
    /// projection is restarted or rebuilt. It is emptied when the lease is
    /// taken again or a commit fails.
    pub document_cache_bytes: usize,
}

impl Default for ReadSideConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            idle_wait: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(30),
            lease_retry: Duration::from_secs(1),
            checkpoint_every: 1000,
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(100)),
            remote_poll: Duration::from_millis(100),
            held_back_warning: Duration::from_secs(10),
            document_cache_bytes: 16 << 20,
        }
    }
}

/// Builds a [`ReadSide`].
#[derive(Default)]
pub struct ReadSideBuilder {
    events: Option<Arc<dyn EventStore>>,
    projections: Option<Arc<dyn ProjectionStore>>,
    leases: Option<Arc<dyn LeaseStore>>,
    owner: Option<String>,
    registry: Option<Registry>,
    selection: Selection,
    config: ReadSideConfig,
    dispatcher: Option<Dispatcher>,
}

impl std::fmt::Debug for ReadSideBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSideBuilder")
            .field("owner", &self.owner)
            .field("selection", &self.selection)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ReadSideBuilder {
    /// Takes the event store, the projection store (if set) and the command
    /// dispatcher from an application.
    #[must_use]
    pub fn es(mut self, es: &Es) -> Self {
        self.events = Some(Arc::clone(es.event_store()));
        if let Some(projections) = es.projection_store() {
            self.projections = Some(Arc::clone(projections));
        }
        self.dispatcher = Some(Dispatcher::Strong(es.clone()));
        self
    }

    /// As [`es`](ReadSideBuilder::es), for the read side `es` itself owns:
    /// it dispatches through a weak handle, so dropping the last `Es` drops
    /// the read side too.
    pub(crate) fn owned_by(mut self, es: &Es) -> Self {
        self = self.es(es);
        self.dispatcher = Some(Dispatcher::Weak(es.downgrade()));
        self
    }

    /// Sets the event store to read.
    #[must_use]
    pub fn event_store(mut self, store: impl EventStore) -> Self {
        self.events = Some(Arc::new(store));
        self
    }

    /// Sets the projection store (documents and checkpoints).
    #[must_use]
    pub fn projection_store(mut self, store: impl ProjectionStore) -> Self {
        self.projections = Some(Arc::new(store));
        self
    }

    /// Sets the lease store shared by every node (default: none, for a
    /// read side that is the only one running its subscriptions: every
    /// lease is its own).
    #[must_use]
    pub fn lease_store(mut self, store: impl LeaseStore) -> Self {
        self.leases = Some(Arc::new(store));
        self
    }

    /// Names this node in leases (default: `node-` and a fresh UUID).
    /// Must be unique among running read sides.
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Sets the registry to pick subscribers from (default:
    /// [`Registry::from_inventory`]).
    #[must_use]
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Picks which registered subscribers run (default: all).
    #[must_use]
    pub fn select(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// Sets the settings.
    #[must_use]
    pub fn config(mut self, config: ReadSideConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the application that handlers dispatch commands to.
    #[must_use]
    pub fn dispatcher(mut self, es: Es) -> Self {
        self.dispatcher = Some(Dispatcher::Strong(es));
        self
    }

    /// Builds the read side without starting any subscription.
    ///
    /// # Errors
    /// [`ReadSideError`] naming the missing store, the refused registration
    /// or selection, or the invalid setting.
    pub fn build(self) -> Result<ReadSide, ReadSideError> {
        let events = self.events.ok_or(ReadSideError::MissingEventStore)?;
        let projections = self.projections.ok_or(ReadSideError::MissingProjectionStore)?;
        let config = self.config;
        if config.batch_size == 0 {
            return Err(ReadSideError::InvalidConfig("batch_size must be at least 1".into()));
        }
        if config.checkpoint_every == 0 {
            return Err(ReadSideError::InvalidConfig("checkpoint_every must be at least 1".into()));
        }
        if config.lease_ttl < Duration::from_millis(3) {
            return Err(ReadSideError::InvalidConfig("lease_ttl must be at least 3 ms".into()));
        }
        let registry = match self.registry {
            Some(registry) => registry,
            None => Registry::from_inventory()?,
        };
        let mut slots = BTreeMap::new();
        for (name, subscriber) in registry.select(&self.selection)? {
            if subscriber.retry.max_attempts == 0 {
                return Err(ReadSideError::InvalidConfig(format!(
                    "`{name}`: retry max_attempts must be at least 1"
                )));
            }
            slots.insert(name.clone(), Arc::new(Slot::new(name, subscriber)));
        }
        let owner = self.owner.unwrap_or_else(|| format!("node-{}", uuid::Uuid::now_v7()));
        let leases = self.leases.unwrap_or_else(|| Arc::new(LocalLeases));
        Ok(ReadSide {
            shared: Arc::new(Shared {
                events,
                projections,
                leases,
                owner,
                config,
                dispatcher: RwLock::new(self.dispatcher),
            }),
            slots: Arc::new(Slots(slots)),
        })
    }

    /// Builds the read side and starts every selected subscription.
    ///
    /// # Errors
    /// As [`build`](ReadSideBuilder::build), and
    /// [`ReadSideError::NoRuntime`] outside a tokio runtime.
    pub fn start(self) -> Result<ReadSide, ReadSideError> {
        let read_side = self.build()?;
        read_side.start()?;
        Ok(read_side)
    }
}

/// The subscriptions of one read side. Dropping the last handle aborts
/// their tasks without releasing leases (like a crash); call
/// [`ReadSide::shutdown`] to stop them cleanly.
struct Slots(BTreeMap<String, Arc<Slot>>);

impl Drop for Slots {
    fn drop(&mut self) {
        for slot in self.0.values() {
            if let Some(task) = slot.take_task() {
                task.join.abort();
            }
        }
    }
}

/// Runs the read side: one subscription task per selected handler or
/// projection, each holding its lease while it processes. Cheap to clone;
/// clones control the same tasks.
///
/// ```
/// use std::time::Duration;
/// use es_core::ReadSide;
/// use es_core::readside::Registry;
/// # use es_core::{HandlerError, Project, ProjectionTx, Recorded};
/// # use es_core::readside::Subscriber;
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// # struct Pinged;
/// # impl es_core::Event for Pinged { const TYPE: &'static str = "Pinged"; }
/// # struct Pings;
/// # impl Project<Pinged> for Pings {
/// #     async fn project(&self, _: &Recorded<Pinged>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
/// #         let n: u64 = tx.get("count").await?.unwrap_or(0);
/// #         Ok(tx.put("count", &(n + 1))?)
/// #     }
/// # }
/// # async fn demo(events: impl es_core::store::EventStore, documents: impl es_core::store::ProjectionStore) -> Result<(), Box<dyn std::error::Error>> {
/// let mut registry = Registry::new();
/// registry.register("pings", Subscriber::projection(Pings).on::<Pinged>().build())?;
/// let read_side = ReadSide::builder()
///     .event_store(events)
///     .projection_store(documents)
///     .registry(registry)
///     .start()?;
/// // ... append events, then read your own writes:
/// # let position = es_core::GlobalPosition(1);
/// read_side.wait_for("pings", position, Duration::from_secs(5)).await?;
/// read_side.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReadSide {
    shared: Arc<Shared>,
    slots: Arc<Slots>,
}

impl std::fmt::Debug for ReadSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSide")
            .field("owner", &self.shared.owner)
            .field("subscriptions", &self.slots.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ReadSide {
    /// Starts building a read side.
    pub fn builder() -> ReadSideBuilder {
        ReadSideBuilder::default()
    }

    /// This node's name in leases.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// The names of the subscriptions, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.0.keys().map(String::as_str)
    }

    /// Sets (or, with `None`, clears) the application handlers dispatch
    /// commands to. The read side keeps `es` alive; for a read side that
    /// `es` itself owns ([`EsBuilder::read_side`](crate::runtime::EsBuilder::read_side))
    /// that makes a cycle, and dropping the `Es` no longer stops it: the
    /// builder already set the dispatcher there.
    pub fn set_dispatcher(&self, es: Option<Es>) {
        let es = es.map(Dispatcher::Strong);
        match self.shared.dispatcher.write() {
            Ok(mut slot) => *slot = es,
            Err(poisoned) => *poisoned.into_inner() = es,
        }
    }

    fn slot(&self, name: &str) -> Result<&Arc<Slot>, ReadSideError> {
        self.slots.0.get(name).ok_or_else(|| ReadSideError::UnknownSubscription { name: name.to_owned() })
    }

    /// Starts every subscription that is not running (stopped, failed or
    /// never started).
    ///
    /// # Errors
    /// [`ReadSideError::NoRuntime`] outside a tokio runtime.
    pub fn start(&self) -> Result<(), ReadSideError> {
        for slot in self.slots.0.values() {
            self.spawn(slot, Start::Resume)?;
        }
        Ok(())
    }

    fn spawn(&self, slot: &Arc<Slot>, start: Start) -> Result<(), ReadSideError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ReadSideError::NoRuntime)?;
        let mut task = match slot.task.lock() {
            Ok(task) => task,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(running) = task.as_ref().filter(|t| !t.join.is_finished()) {
            if start == Start::Resume {
                return Ok(());
            }
            // A rebuild is never dropped for a task started meanwhile (a
            // start racing with the rebuild's stop): that task is stopped,
            // and the rebuilding one waits for it to exit.
            running.cancel.send_replace(true);
        }
        slot.starting(start);
        let (cancel, cancelled) = watch::channel(false);
        let (exit, exited) = watch::channel(());
        let previous = slot.replace_exit(exited);
        let run = runner::run(Arc::clone(&self.shared), Arc::clone(slot), start, cancelled, exit, previous);
        let join = runtime.spawn(run);
        *task = Some(Task { cancel, join });
        Ok(())
    }

    async fn stop_slot(slot: &Slot) {
        let Some(task) = slot.take_task() else { return };
        task.cancel.send_replace(true);
        if let Err(error) = task.join.await {
            tracing::error!(subscription = %slot.name, %error, "subscription task ended abnormally");
            slot.set_state(SubscriptionState::Stopped);
        }
    }

    /// Stops one subscription on this node: it finishes the event at hand
    /// (a handler that never returns keeps this waiting), commits how far
    /// it got and releases its lease (another node may take over).
    ///
    /// # Errors
    /// [`ReadSideError::UnknownSubscription`].
    pub async fn stop(&self, name: &str) -> Result<(), ReadSideError> {
        Self::stop_slot(self.slot(name)?).await;
        Ok(())
    }

    /// Stops one subscription and starts it again from its stored
    /// checkpoint (after a failure: retries the failing event).
    ///
    /// # Errors
    /// [`ReadSideError::UnknownSubscription`]; [`ReadSideError::NoRuntime`].
    pub async fn restart(&self, name: &str) -> Result<(), ReadSideError> {
        let slot = self.slot(name)?;
        Self::stop_slot(slot).await;
        self.spawn(slot, Start::Resume)
    }

    /// Rebuilds a projection: stops it, deletes its documents and
    /// checkpoint ([`ProjectionStore::reset`]) once it holds the lease, and
    /// replays every event from the start (flagged as replay), then goes on
    /// live. For a handler, its checkpoint goes back to the start and every
    /// event up to the current head is delivered again, flagged as replay:
    /// a handler with [`Replay::Skip`](crate::readside::Replay::Skip) is not
    /// run for them (its checkpoint just moves). The end of the replay is
    /// stored with the checkpoint, so a crash mid-replay does not turn
    /// history into news.
    ///
    /// # Errors
    /// [`ReadSideError::UnknownSubscription`]; [`ReadSideError::NoRuntime`].
    pub async fn rebuild(&self, name: &str) -> Result<(), ReadSideError> {
        let slot = self.slot(name)?;
        Self::stop_slot(slot).await;
        self.spawn(slot, Start::Rebuild)
    }

    /// Stops every subscription cleanly (releasing leases) and drops the
    /// dispatcher. Dropping the last handle instead aborts the
    /// subscriptions and keeps their leases until they expire, as a crash
    /// would.
    pub async fn shutdown(&self) {
        for slot in self.slots.0.values() {
            Self::stop_slot(slot).await;
        }
        self.set_dispatcher(None);
    }

    fn status_of(slot: &Slot, head: GlobalPosition) -> SubscriptionStatus {
        let progress: Progress = slot.progress.borrow().clone();
        SubscriptionStatus {
            name: slot.name.to_string(),
            kind: slot.subscriber.kind(),
            consistency: slot.subscriber.consistency,
            state: progress.state,
            position: progress.reached,
            checkpoint: progress.checkpoint,
            head,
            lag: head.get().saturating_sub(progress.reached.get()),
            held_back_by: progress.held_back_by,
        }
    }

    /// The status of one subscription.
    ///
    /// # Errors
    /// [`ReadSideError::UnknownSubscription`]; [`ReadSideError::Store`] if
    /// the head position cannot be read.
    pub async fn status(&self, name: &str) -> Result<SubscriptionStatus, ReadSideError> {
        let slot = self.slot(name)?;
        let head = self.shared.events.head_position().await?;
        Ok(Self::status_of(slot, head))
    }

    /// The status of every subscription, ordered by name.
    ///
    /// # Errors
    /// [`ReadSideError::Store`] if the head position cannot be read.
    pub async fn statuses(&self) -> Result<Vec<SubscriptionStatus>, ReadSideError> {
        let head = self.shared.events.head_position().await?;
        Ok(self.slots.0.values().map(|slot| Self::status_of(slot, head)).collect())
    }

    /// Waits until subscription `name` has handled every event up to
    /// `position` (read your own writes), on this node or, when another
    /// node runs it, through its stored checkpoint.
    ///
    /// # Errors
    /// [`ConsistencyError::Timeout`] after `timeout`;
    /// [`ConsistencyError::Failed`] if it stopped on a failing event;
    /// [`ConsistencyError::Unknown`] for an unknown name.
    pub async fn wait_for(
        &self,
        name: &str,
        position: GlobalPosition,
        timeout: Duration,
    ) -> Result<(), ConsistencyError> {
        let slot =
            self.slots.0.get(name).ok_or_else(|| ConsistencyError::Unknown { name: name.to_owned() })?;
        let deadline = crate::clock::deadline_from_now(timeout);
        self.wait_slot(slot, position, timeout, deadline).await
    }

    /// Waits until every [`Consistency::Strong`] subscription has handled
    /// every event up to `position`. This is what `Es::execute` calls after
    /// appending (except for commands a handler dispatches through its
    /// [`HandlerCtx`](crate::HandlerCtx): the calling subscription cannot
    /// move until the handler returns, so they do not wait).
    ///
    /// # Errors
    /// The first [`ConsistencyError`] met, naming the subscription.
    pub async fn wait_for_strong(
        &self,
        position: GlobalPosition,
        timeout: Duration,
    ) -> Result<(), ConsistencyError> {
        let deadline = crate::clock::deadline_from_now(timeout);
        for slot in self.slots.0.values().filter(|s| s.subscriber.consistency == Consistency::Strong) {
            self.wait_slot(slot, position, timeout, deadline).await?;
        }
        Ok(())
    }

    async fn wait_slot(
        &self,
        slot: &Slot,
        position: GlobalPosition,
        timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<(), ConsistencyError> {
        let mut progress = slot.progress.subscribe();
        loop {
            let (reached, state, rebuilding) = {
                let now = progress.borrow_and_update();
                (now.reached, now.state.clone(), now.rebuilding)
            };
            // What this node reached counts only while it processes the
            // subscription (or stopped on a failure here): once it stopped,
            // another node may have rebuilt it, and only the stored
            // checkpoint tells.
            let here = state.is_active() || matches!(state, SubscriptionState::Failed(_));
            if here && reached >= position {
                return Ok(());
            }
            let timed_out =
                || ConsistencyError::Timeout { name: slot.name.to_string(), position, reached, timeout };
            match state {
                SubscriptionState::Failed(failure) => {
                    return Err(ConsistencyError::Failed { name: slot.name.to_string(), position, failure });
                }
                SubscriptionState::Running | SubscriptionState::CaughtUp => {
                    tokio::select! {
                        changed = progress.changed() => if changed.is_err() { return Err(timed_out()) },
                        () = tokio::time::sleep_until(deadline) => return Err(timed_out()),
                    }
                }
                _ => {
                    // Not processing here: another node may run it. (While a
                    // rebuild is pending here, the stored checkpoint is stale.)
                    // The read is bounded by the deadline too: a store that
                    // stops answering must not hold the caller past it.
                    let stored = if rebuilding {
                        Ok(None)
                    } else {
                        let read = self.shared.projections.checkpoint(&slot.name);
                        match tokio::time::timeout_at(deadline, read).await {
                            Ok(stored) => stored,
                            Err(_) => return Err(timed_out()),
                        }
                    };
                    match stored {
                        Ok(Some(stored)) if stored.position >= position => return Ok(()),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(subscription = %slot.name, error = %runner::describe(&error), "reading the checkpoint failed");
                        }
                    }
                    tokio::select! {
                        _ = progress.changed() => {}
                        () = tokio::time::sleep(self.shared.config.remote_poll) => {}
                        () = tokio::time::sleep_until(deadline) => return Err(timed_out()),
                    }
                }
            }
        }
    }
}
