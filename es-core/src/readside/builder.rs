//! [`ReadSideBuilder`]: stores, registry, selection and settings of a
//! [`ReadSide`], checked when it is built.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::config::ReadSideConfig;
use super::local_leases::LocalLeases;
use super::read_side::{ReadSide, Slots};
use super::registry::{Registry, Selection};
use super::runner::{Dispatcher, Shared, Slot};
use super::state::StateMap;
use super::subscriber::SubscriberKind;
use crate::error::ReadSideError;
use crate::runtime::es::Es;
use crate::store::{EventStore, LeaseStore, ProjectionStore};
use crate::testkit::DispatchLog;

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
    state: StateMap,
    dispatch_log: Option<DispatchLog>,
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
    /// Must be unique among running read sides. It may stay the same
    /// across restarts: a restarted node takes its leases under new tokens,
    /// so a commit its earlier run left in flight is refused by a projection
    /// store that checks fences.
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

    /// Gives the subscribers a value of type `T` (a mailer, an HTTP client,
    /// a pool), which those that declared they use it
    /// ([`HandlerBuilder::uses`](crate::readside::HandlerBuilder::uses))
    /// read with [`HandlerCtx::state`](crate::HandlerCtx::state) (or
    /// [`ProjectionTx::state`](crate::ProjectionTx::state)). One value per
    /// type: a second `T` replaces the first. Wrap a value in an `Arc` to
    /// share it with the rest of the application.
    #[must_use]
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Records every command handlers dispatch (for
    /// [`ReadSideTest`](crate::testkit::ReadSideTest)).
    pub(crate) fn record_dispatches(mut self, log: DispatchLog) -> Self {
        self.dispatch_log = Some(log);
        self
    }

    /// Builds the read side without starting any subscription.
    ///
    /// # Errors
    /// [`ReadSideError`] naming the missing store, the refused registration
    /// or selection, the state a subscriber uses and was not given, or the
    /// invalid setting.
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
            if let Some(missing) = subscriber.uses.iter().find(|used| !self.state.contains(used)) {
                return Err(ReadSideError::MissingState { subscriber: name, type_name: missing.name });
            }
            if let SubscriberKind::Table(table) = &subscriber.kind {
                let (wants, wants_name) = table.transaction_type();
                let lends = projections.transactions();
                if lends.map(|store| store.transaction_type()) != Some(wants) {
                    return Err(ReadSideError::TransactionMismatch {
                        subscriber: name,
                        wants: wants_name,
                        lends: lends.map(|store| store.transaction_type_name()),
                    });
                }
            }
            if subscriber.retry.max_attempts == 0 {
                return Err(ReadSideError::InvalidConfig(format!(
                    "`{name}`: retry max_attempts must be at least 1"
                )));
            }
            slots.insert(name.clone(), Arc::new(Slot::new(name, subscriber)));
        }
        let owner = self.owner.unwrap_or_else(|| format!("node-{}", uuid::Uuid::now_v7()));
        let leases: Arc<dyn LeaseStore> = self.leases.unwrap_or_else(|| Arc::new(LocalLeases));
        Ok(ReadSide {
            slots: Arc::new(Slots(slots, Arc::clone(&leases))),
            shared: Arc::new(Shared {
                events,
                projections,
                leases,
                owner,
                config,
                dispatcher: RwLock::new(self.dispatcher),
                state: Arc::new(self.state),
                dispatch_log: self.dispatch_log,
            }),
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
