//! [`TestStore`]: one store wrapper for tests and benchmarks that counts the
//! calls made to the store inside it, makes chosen calls fail, and lets a
//! test watch or hold back calls as they start.

mod fault;
mod hooks;
mod ports;
mod transactions;

use std::future::Future;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{BoxError, StoreError};
#[cfg(doc)]
use crate::store::{EventStore, LeaseStore, ProjectionStore, SnapshotStore};

pub use fault::Fault;
use fault::{Guards, Plans};
use hooks::Hooks;

/// One kind of call on a store port, for counting and for faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreCall {
    /// [`EventStore::append`].
    Append,
    /// [`EventStore::read_stream`], [`EventStore::read_replay`] and
    /// [`EventStore::replay`].
    ReadStream,
    /// [`EventStore::read_all`].
    ReadAll,
    /// [`EventStore::stream_version`].
    StreamVersion,
    /// [`EventStore::events_by_id`].
    EventsById,
    /// [`EventStore::streams`].
    Streams,
    /// [`EventStore::head_position`].
    HeadPosition,
    /// [`EventStore::read_blocker`].
    ReadBlocker,
    /// [`EventStore::wait_for_events`].
    WaitForEvents,
    /// [`SnapshotStore::load_snapshot`].
    LoadSnapshot,
    /// [`SnapshotStore::save_snapshot`].
    SaveSnapshot,
    /// [`ProjectionStore::get`].
    Get,
    /// [`ProjectionStore::get_many`].
    GetMany,
    /// [`ProjectionStore::put`].
    Put,
    /// [`ProjectionStore::delete`].
    Delete,
    /// [`ProjectionStore::query`] and [`ProjectionStore::count`].
    Query,
    /// [`ProjectionStore::checkpoint`].
    Checkpoint,
    /// [`ProjectionStore::commit`].
    Commit,
    /// [`ProjectionStore::reset`].
    Reset,
    /// [`ProjectionTransactions::begin`](crate::store::ProjectionTransactions::begin)
    /// (a table projection's transaction).
    Begin,
    /// [`ProjectionTransactions::commit`](crate::store::ProjectionTransactions::commit).
    CommitTransaction,
    /// [`LeaseStore::try_acquire`].
    Acquire,
    /// [`LeaseStore::renew`].
    Renew,
    /// [`LeaseStore::release`].
    Release,
}

impl StoreCall {
    const ALL: [StoreCall; 24] = [
        Self::Append,
        Self::ReadStream,
        Self::ReadAll,
        Self::StreamVersion,
        Self::EventsById,
        Self::Streams,
        Self::HeadPosition,
        Self::ReadBlocker,
        Self::WaitForEvents,
        Self::LoadSnapshot,
        Self::SaveSnapshot,
        Self::Get,
        Self::GetMany,
        Self::Put,
        Self::Delete,
        Self::Query,
        Self::Checkpoint,
        Self::Commit,
        Self::Reset,
        Self::Begin,
        Self::CommitTransaction,
        Self::Acquire,
        Self::Renew,
        Self::Release,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|call| *call == self).unwrap_or(0)
    }
}

/// What the clones of one [`TestStore`] share.
#[derive(Debug, Default)]
struct Probe {
    down: AtomicBool,
    /// Per call kind: how many of the next calls fail.
    failing: [AtomicU64; StoreCall::ALL.len()],
    calls: [AtomicU64; StoreCall::ALL.len()],
    /// Per call kind: nanoseconds spent in the inner store.
    busy: [AtomicU64; StoreCall::ALL.len()],
    plans: Plans,
    events_read: AtomicU64,
    guards: Guards,
    hooks: Hooks,
}

/// The error an injected fault returns: a backend failure, as a lost
/// connection or a pool timeout would be.
#[derive(Debug, thiserror::Error)]
#[error("injected fault: {call:?} failed")]
pub struct InjectedFault {
    /// The call that was made to fail.
    pub call: StoreCall,
}

/// A wrapper around a store for tests: counts calls per [`StoreCall`] and
/// fails the ones it is told to with a backend error ([`InjectedFault`]
/// as its source).
///
/// It implements every port its inner store implements ([`EventStore`],
/// [`SnapshotStore`], [`ProjectionStore`], [`LeaseStore`]), forwarding each
/// call. Clones share the counters, the faults and the hooks, so a test
/// keeps one clone to steer while the application runs on another.
///
/// Besides backend failures it injects the other ways a store lets its
/// caller down ([`Fault`]: a lost race, a write acknowledged but not done,
/// a panic after the commit, no answer, a slow answer) into chosen calls,
/// numbered from 1 per kind:
///
/// ```
/// use es_core::store::ProjectionStore;
/// use es_core::testkit::{Fault, StoreCall, TestStore};
/// use es_memory::InMemoryProjectionStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = TestStore::new(InMemoryProjectionStore::new());
/// store.inject(StoreCall::Commit, Fault::Conflict, 2..=2); // the second commit loses a race
/// assert!(store.commit("p", Default::default()).await.is_ok());
/// let refused = store.commit("p", Default::default()).await.unwrap_err();
/// assert!(refused.to_string().starts_with("checkpoint of projection `p` is at"));
/// assert!(store.commit("p", Default::default()).await.is_ok());
/// # }
/// ```
///
/// ```
/// use es_core::store::{EventStore, ProjectionStore};
/// use es_core::testkit::{StoreCall, TestStore};
/// use es_memory::InMemoryProjectionStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = TestStore::new(InMemoryProjectionStore::new());
/// store.fail_next(StoreCall::Commit, 1);
/// assert!(store.commit("p", Default::default()).await.is_err()); // the injected fault
/// assert!(store.commit("p", Default::default()).await.is_ok());
///
/// store.outage(true); // every call fails, as while the database is down
/// assert!(store.get("p", "a").await.is_err());
/// store.outage(false);
/// assert_eq!(store.calls(StoreCall::Commit), 2);
/// # }
/// ```
///
/// A test that needs to see what the store holds when a call starts, or
/// to hold a call back, gives that call kind a hook
/// ([`before`](TestStore::before)); one that waits for the application to
/// make a call waits with [`reached`](TestStore::reached).
#[derive(Debug, Clone)]
pub struct TestStore<S> {
    inner: S,
    probe: Arc<Probe>,
}

impl<S> TestStore<S> {
    /// Wraps `inner`, with no faults.
    pub fn new(inner: S) -> Self {
        Self { inner, probe: Arc::default() }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Makes the next `times` calls of kind `call` fail (added to any
    /// already pending; `u64::MAX`: until [`heal`](TestStore::heal)).
    pub fn fail_next(&self, call: StoreCall, times: u64) {
        let failing = &self.probe.failing[call.index()];
        let _ = failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_add(times)));
    }

    /// Switches an outage on or off: while on, every call fails (as while
    /// the database is down or its pool has no free connection).
    pub fn outage(&self, down: bool) {
        self.probe.down.store(down, Ordering::SeqCst);
    }

    /// Makes the calls of kind `call` whose numbers fall in `calls` meet
    /// `fault`. Calls are numbered from 1 per kind, over every clone, in
    /// the order they reach the store; `store.calls(call) + 1..` means
    /// "from the next call on". Where two injections cover one call, the
    /// earlier one wins; [`fail_next`](TestStore::fail_next) and an
    /// [`outage`](TestStore::outage) win over both.
    pub fn inject(&self, call: StoreCall, fault: Fault, calls: impl RangeBounds<u64>) {
        self.probe.plans.add(call, fault, calls);
    }

    /// Ends the outage and drops every pending fault.
    pub fn heal(&self) {
        self.outage(false);
        for failing in &self.probe.failing {
            failing.store(0, Ordering::SeqCst);
        }
        self.probe.plans.clear();
    }

    /// Keeps `guard` alive until the last clone of this store is dropped:
    /// a test's cleanup (dropping its schema or namespace) then runs when
    /// the store it set up goes away, even if the store was moved into code
    /// that consumes it.
    #[must_use]
    pub fn holding(self, guard: impl Send + Sync + 'static) -> Self {
        self.probe.guards.keep(Box::new(guard));
        self
    }

    /// Runs `hook` each time a call of kind `call` starts, with the call's
    /// number (from 1 per kind, as in [`inject`](TestStore::inject)); the
    /// call waits for the future `hook` returns, then meets its fault if it
    /// has one, then reaches the inner store. Replaces the kind's earlier
    /// hook, if any. [`heal`](TestStore::heal) leaves hooks in place.
    ///
    /// For a test that checks what holds as a call starts (who holds a
    /// lease when a commit begins), or that holds a call back until
    /// something else happened. Wait with a bound (`tokio::time::timeout`)
    /// where the awaited thing may never come, so a failure fails the test
    /// instead of hanging it. A hook that keeps a clone of its own store
    /// keeps that store alive.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::store::ProjectionStore;
    /// use es_core::testkit::{StoreCall, TestStore};
    /// use es_memory::InMemoryProjectionStore;
    /// use tokio::sync::Semaphore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = TestStore::new(InMemoryProjectionStore::new());
    /// let gate = Arc::new(Semaphore::new(0));
    /// let held = Arc::clone(&gate);
    /// // The first commit waits until the test lets it go; later ones pass.
    /// store.before(StoreCall::Commit, move |n| {
    ///     let held = Arc::clone(&held);
    ///     async move {
    ///         if n == 1 {
    ///             held.acquire().await.expect("the gate stays open").forget();
    ///         }
    ///     }
    /// });
    /// let committing = tokio::spawn({
    ///     let store = store.clone();
    ///     async move { store.commit("p", Default::default()).await }
    /// });
    /// store.reached(StoreCall::Commit, 1).await; // the commit has started...
    /// assert_eq!(store.inner().checkpoint("p").await.unwrap(), None); // ...and waits
    /// gate.add_permits(1);
    /// committing.await.unwrap().unwrap();
    /// # }
    /// ```
    pub fn before<F, Fut>(&self, call: StoreCall, hook: F)
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.probe.hooks.set(call, hook);
    }

    /// Waits until `n` calls of kind `call` have started, over every clone
    /// (returns at once if they have). A call counts as started before its
    /// hook runs, so this also sees a call its hook holds back.
    pub async fn reached(&self, call: StoreCall, n: u64) {
        self.probe.hooks.until(|| self.calls(call) >= n).await;
    }

    /// How many calls of kind `call` were made (failed ones included).
    pub fn calls(&self, call: StoreCall) -> u64 {
        self.probe.calls[call.index()].load(Ordering::SeqCst)
    }

    /// The time calls of kind `call` spent in the inner store (failed ones
    /// included; time spent in injected faults not).
    pub fn busy(&self, call: StoreCall) -> Duration {
        Duration::from_nanos(self.probe.busy[call.index()].load(Ordering::SeqCst))
    }

    /// How many events the successful reads returned (`read_stream`,
    /// `read_replay`, `read_all`, `events_by_id`), plus every event
    /// `replay` handed over.
    pub fn events_read(&self) -> u64 {
        self.probe.events_read.load(Ordering::SeqCst)
    }

    /// Counts a call of kind `call`, runs its hook, and says which fault it
    /// meets, if any.
    async fn enter(&self, call: StoreCall) -> Option<Fault> {
        let n = self.probe.calls[call.index()].fetch_add(1, Ordering::SeqCst).saturating_add(1);
        self.probe.hooks.started(call, n).await;
        let failing = &self.probe.failing[call.index()];
        let backend = self.probe.down.load(Ordering::SeqCst)
            || failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if backend {
            return Some(Fault::Backend);
        }
        self.probe.plans.fault(call, n)
    }

    /// Runs `inner` (the inner store's answer to a call of kind `call`) as
    /// `fault` says; `backend` makes the port's backend error.
    async fn run<T, E>(
        &self,
        call: StoreCall,
        fault: Option<Fault>,
        inner: impl Future<Output = Result<T, E>>,
        backend: impl FnOnce(BoxError) -> E,
    ) -> Result<T, E> {
        match fault {
            None => self.timed(call, inner).await,
            Some(Fault::Backend | Fault::Conflict | Fault::Dropped) => {
                Err(backend(Box::new(InjectedFault { call })))
            }
            Some(Fault::Hang) => std::future::pending().await,
            Some(Fault::PanicAfter) => {
                let _answer = self.timed(call, inner).await;
                panic!("injected fault: {call:?} panicked after the inner store answered");
            }
            Some(Fault::SlowReply(delay)) => {
                let answer = self.timed(call, inner).await;
                tokio::time::sleep(delay).await;
                answer
            }
        }
    }

    /// Forwards a call of kind `call`, meeting its fault if it has one.
    async fn pass<T, E>(
        &self,
        call: StoreCall,
        inner: impl Future<Output = Result<T, E>>,
        backend: impl FnOnce(BoxError) -> E,
    ) -> Result<T, E> {
        let fault = self.enter(call).await;
        self.run(call, fault, inner, backend).await
    }

    /// As [`pass`](TestStore::pass), for a write with nothing to answer:
    /// a [`Fault::Dropped`] makes it answer `Ok(())` without reaching the
    /// inner store.
    async fn pass_write<E>(
        &self,
        call: StoreCall,
        inner: impl Future<Output = Result<(), E>>,
        backend: impl FnOnce(BoxError) -> E,
    ) -> Result<(), E> {
        match self.enter(call).await {
            Some(Fault::Dropped) => Ok(()),
            fault => self.run(call, fault, inner, backend).await,
        }
    }

    async fn timed<T>(&self, call: StoreCall, inner: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let answer = inner.await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.probe.busy[call.index()].fetch_add(nanos, Ordering::SeqCst);
        answer
    }

    fn read<T>(&self, events: Result<Vec<T>, StoreError>) -> Result<Vec<T>, StoreError> {
        if let Ok(events) = &events {
            self.probe.events_read.fetch_add(events.len() as u64, Ordering::SeqCst);
        }
        events
    }
}
