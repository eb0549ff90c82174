//! [`ReadSideTest`]: run handlers and projections over given events in a
//! test, without wiring an application.
//!
//! Give it stores (in memory for documents; the application's database for
//! a table projection), the subscribers under test and the state they use;
//! append what happened with [`given`](ReadSideTest::given); then
//! [`settle`](ReadSideTest::settle) runs every subscriber up to the last
//! event, and the test reads documents ([`documents`](ReadSideTest::documents)),
//! its own tables, or the commands a process manager dispatched
//! ([`dispatched`](ReadSideTest::dispatched)). It runs the real read side,
//! so what passes here passes in the application.
//!
//! ```
//! use es_core::readside::Subscriber;
//! use es_core::testkit::ReadSideTest;
//! use es_core::{event, Aggregate, Apply, Events, Handle, HandlerError, Project, ProjectionTx, Recorded};
//! use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
//! # use serde::{Deserialize, Serialize};
//!
//! #[event]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct Deposited { pub amount: u64 }
//!
//! #[derive(Aggregate, Debug, Default, Serialize, Deserialize)]
//! #[aggregate(name = "piggy", error = std::convert::Infallible, events(Deposited), commands())]
//! pub struct Piggy;
//! impl Apply<Deposited> for Piggy { fn apply(&mut self, _: &Deposited) {} }
//!
//! struct Savings;
//! impl Project<Deposited> for Savings {
//!     async fn project(&self, e: &Recorded<Deposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
//!         let saved: u64 = tx.get(e.stream_id.as_str()).await?.unwrap_or(0);
//!         Ok(tx.put(e.stream_id.as_str(), &(saved + e.amount))?)
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut test = ReadSideTest::new(InMemoryEventStore::new(), InMemoryProjectionStore::new())
//!     .subscriber("savings", Subscriber::projection(Savings).on::<Deposited>().build());
//! test.given::<Piggy>("p1", [Deposited { amount: 5 }.into(), Deposited { amount: 7 }.into()]).await;
//! test.settle().await;
//! assert_eq!(test.documents::<u64>("savings").get("piggy-p1").await.unwrap(), Some(12));
//! test.finish().await;
//! # });
//! ```

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::aggregate::{Aggregate, Command};
use crate::envelope::NewEvent;
use crate::event::EventSet;
use crate::readside::{Documents, ReadSideBuilder, ReadSideConfig, Registry, Subscriber};
use crate::store::{EventStore, ExpectedVersion, ProjectionStore};
use crate::version::{GlobalPosition, StreamId};
use crate::{Es, ReadSide};

/// The commands handlers dispatched, as a test kit records them.
pub(crate) type DispatchLog = Arc<Mutex<Vec<Box<dyn Any + Send>>>>;

/// Runs handlers and projections over given events (see the
/// [module docs](crate::testkit)). Failures panic with a message naming what failed,
/// as a test should.
pub struct ReadSideTest {
    events: Arc<dyn EventStore>,
    projections: Arc<dyn ProjectionStore>,
    builder: Option<ReadSideBuilder>,
    registry: Registry,
    read_side: Option<ReadSide>,
    log: DispatchLog,
    timeout: Duration,
}

impl std::fmt::Debug for ReadSideTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSideTest").field("registry", &self.registry).finish_non_exhaustive()
    }
}

impl ReadSideTest {
    /// A test over these stores, with no subscriber yet.
    pub fn new(events: impl EventStore, projections: impl ProjectionStore) -> Self {
        let events: Arc<dyn EventStore> = Arc::new(events);
        let projections: Arc<dyn ProjectionStore> = Arc::new(projections);
        let log = DispatchLog::default();
        let builder = ReadSide::builder()
            .event_store(Arc::clone(&events))
            .projection_store(Arc::clone(&projections))
            .config(ReadSideConfig { idle_wait: Duration::from_millis(50), ..ReadSideConfig::default() })
            .record_dispatches(Arc::clone(&log));
        Self {
            events,
            projections,
            builder: Some(builder),
            registry: Registry::new(),
            read_side: None,
            log,
            timeout: Duration::from_secs(30),
        }
    }

    /// Runs `subscriber` under `name`.
    ///
    /// # Panics
    /// If the name is taken or the registry refuses the subscriber, or
    /// after the first [`settle`](ReadSideTest::settle).
    #[must_use]
    pub fn subscriber(mut self, name: &str, subscriber: Subscriber) -> Self {
        self.before_settle("subscriber");
        if let Err(error) = self.registry.register(name, subscriber) {
            panic!("ReadSideTest: {error}");
        }
        self
    }

    /// Runs the subscriber registered at link time (by `#[event_handler]`
    /// or `#[projection]`) under `name`.
    ///
    /// # Panics
    /// If no subscriber of that name was registered, or after the first
    /// [`settle`](ReadSideTest::settle).
    #[must_use]
    pub fn registered(mut self, name: &str) -> Self {
        let registration = inventory::iter::<crate::readside::Registration>
            .into_iter()
            .find(|registration| registration.name() == name)
            .unwrap_or_else(|| panic!("ReadSideTest: no subscriber named `{name}` is registered"));
        self.before_settle("registered");
        if let Err(error) = self.registry.register_static(registration) {
            panic!("ReadSideTest: {error}");
        }
        self
    }

    /// Gives the subscribers a value of type `T` (see
    /// [`ReadSideBuilder::state`]).
    #[must_use]
    ///
    /// # Panics
    /// After the first [`settle`](ReadSideTest::settle): the read side runs.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.builder = Some(self.unstarted("state").state(value));
        self
    }

    /// The application handlers dispatch their commands to.
    #[must_use]
    ///
    /// # Panics
    /// After the first [`settle`](ReadSideTest::settle): the read side runs.
    pub fn dispatch_to(mut self, es: Es) -> Self {
        self.builder = Some(self.unstarted("dispatch_to").dispatcher(es));
        self
    }

    /// The builder, which is there until the read side starts.
    fn unstarted(&mut self, what: &str) -> ReadSideBuilder {
        match self.builder.take() {
            Some(builder) => builder,
            None => Self::started(what),
        }
    }

    fn started(what: &str) -> ! {
        panic!("ReadSideTest: `{what}` comes before the first `settle`, which starts the read side")
    }

    fn before_settle(&self, what: &str) {
        if self.builder.is_none() {
            Self::started(what);
        }
    }

    /// How long [`settle`](ReadSideTest::settle) waits (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Appends `events` to the stream of aggregate `A` with id `id`, as if
    /// the aggregate had recorded them; returns the last one's position.
    ///
    /// # Panics
    /// If an event does not serialize or the store refuses the append.
    pub async fn given<A: Aggregate>(
        &self,
        id: &str,
        events: impl IntoIterator<Item = A::Event>,
    ) -> GlobalPosition {
        let new: Vec<NewEvent> = events
            .into_iter()
            .map(|event| {
                let payload = event.to_payload().unwrap_or_else(|error| {
                    panic!("ReadSideTest: a `{}` does not serialize: {error}", event.event_type())
                });
                NewEvent::new(A::NAME, event.event_type(), event.schema_version(), payload)
            })
            .collect();
        let stream = StreamId::for_aggregate(A::NAME, id);
        match self.events.append(&stream, ExpectedVersion::Any, new).await {
            Ok(outcome) => outcome.last_position().unwrap_or(GlobalPosition::START),
            Err(error) => panic!("ReadSideTest: appending to `{stream}` failed: {error}"),
        }
    }

    /// Runs every subscriber until it has handled every event appended so
    /// far (starting the read side the first time).
    ///
    /// # Panics
    /// If the read side cannot be built (a missing state names the
    /// subscriber and the type), or a subscriber stops on a failing event
    /// or does not get there within the timeout.
    pub async fn settle(&mut self) {
        if self.read_side.is_none() {
            let builder = self.unstarted("settle");
            let registry = std::mem::take(&mut self.registry);
            let read_side =
                builder.registry(registry).start().unwrap_or_else(|error| panic!("ReadSideTest: {error}"));
            self.read_side = Some(read_side);
        }
        let Some(read_side) = &self.read_side else { return };
        let head = match self.events.head_position().await {
            Ok(head) => head,
            Err(error) => panic!("ReadSideTest: reading the head position failed: {error}"),
        };
        for name in read_side.names() {
            if let Err(error) = read_side.wait_for(name, head, self.timeout).await {
                panic!("ReadSideTest: {error}");
            }
        }
    }

    /// The documents of projection `name`.
    pub fn documents<T: serde::Serialize + serde::de::DeserializeOwned>(&self, name: &str) -> Documents<T> {
        Documents::new(Arc::clone(&self.projections), name)
    }

    /// The commands of type `C` handlers dispatched so far, in order (each
    /// time they were dispatched: a retried or redelivered event's commands
    /// show again, with the same ids).
    pub fn dispatched<C: Command>(&self) -> Vec<C> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter().filter_map(|command| command.downcast_ref::<C>()).cloned().collect()
    }

    /// How many commands (of any type) handlers dispatched so far.
    pub fn dispatched_count(&self) -> usize {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Stops the read side (releasing its leases).
    pub async fn finish(mut self) {
        if let Some(read_side) = self.read_side.take() {
            read_side.shutdown().await;
        }
    }
}
