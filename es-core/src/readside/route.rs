//! Routing an event to the subscriber code that consumes its type: one
//! table for handlers and projections alike.
//!
//! A subscriber lists the event types it consumes (`.on::<E>()`); each
//! becomes a [`Route`] that decodes the envelope as `E` and calls the
//! subscriber with its context: a handler's [`HandlerCtx`], a projection's
//! [`ProjectionTx`]. Events of other types are skipped by the runner, and
//! still move the checkpoint.
//!
//! Events are routed by aggregate and event type together: two aggregates
//! may both store an `Opened`, and a route for `account`'s `Opened` must
//! never see `vault`'s. The aggregates that record `E` come from the
//! link-time records of `#[derive(Aggregate)]` ([`owners_of`]); an event's
//! aggregate is read off its stream id (`{aggregate}-{id}`). An event type
//! no aggregate lists (appended through the port directly) is routed by its
//! type name alone. A type two aggregates both list is ambiguous until the
//! subscriber says which ([`Ambiguity`], refused by the registry).

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::handler::{HandleEvent, HandlerCtx, HandlerError};
use super::projection::{DocumentIds, Prefetch, Project, ProjectionTx};
use super::recorded::Recorded;
use super::state::Used;
use super::subscriber::{Subscriber, SubscriberKind};
use super::table::{ProjectRows, TableTx};
use crate::envelope::RecordedEvent;
use crate::event::owners::{self, owners_of};
use crate::event::Event;

/// An event a route decoded ahead of its call (a `Recorded<E>`, type
/// erased), handed back to that call so the event is decoded once.
pub(crate) type Decoded = Box<dyn std::any::Any + Send>;

/// The future of one call of a subscriber on one event.
pub(crate) type RouteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// A subscriber's entry for one event type, with the types erased. `C` is
/// what the subscriber is called with.
pub(crate) trait Route<C>: Send + Sync {
    fn call<'a>(&'a self, event: &'a RecordedEvent, ctx: &'a mut C) -> RouteFuture<'a>;

    /// [`call`](Route::call) with what [`documents`](Route::documents)
    /// decoded of `event`, if anything.
    fn call_decoded<'a>(
        &'a self,
        event: &'a RecordedEvent,
        _decoded: Option<Decoded>,
        ctx: &'a mut C,
    ) -> RouteFuture<'a> {
        self.call(event, ctx)
    }

    /// Whether the route names the documents its events read
    /// ([`documents`](Route::documents)): a subscriber none of whose routes
    /// does skips the prefetch pass, and decodes no event for it.
    fn prefetches(&self) -> bool {
        false
    }

    /// Adds the ids of the documents `event` will read, and returns the
    /// event as decoded for that, for [`call_decoded`](Route::call_decoded).
    /// An event that does not decode, or whose subscriber code panics
    /// naming them, names none: the ids are a hint, and the event's own
    /// call reports what is wrong with it.
    fn documents(&self, _event: &RecordedEvent, _ids: &mut DocumentIds) -> Option<Decoded> {
        None
    }
}

/// Subscriber `S` consuming events of type `E`.
pub(crate) struct Typed<S, E> {
    subscriber: Arc<S>,
    event: PhantomData<fn() -> E>,
}

impl<H: HandleEvent<E>, E: Event> Route<HandlerCtx> for Typed<H, E> {
    fn call<'a>(&'a self, event: &'a RecordedEvent, ctx: &'a mut HandlerCtx) -> RouteFuture<'a> {
        Box::pin(async move {
            let recorded = Recorded::<E>::decode(event)?;
            // Each try at the event dispatches its commands as steps 0, 1,
            // ... again: a retry sends the same command ids.
            ctx.steps.store(0, Ordering::Relaxed);
            self.subscriber.handle(&recorded, ctx).await
        })
    }
}

impl<P: Project<E>, E: Event> Route<ProjectionTx> for Typed<P, E> {
    fn call<'a>(&'a self, event: &'a RecordedEvent, tx: &'a mut ProjectionTx) -> RouteFuture<'a> {
        Box::pin(async move {
            let recorded = Recorded::<E>::decode(event)?;
            self.subscriber.project(&recorded, tx).await
        })
    }
}

/// Projection `P` consuming events of type `E` and naming the documents
/// each reads ([`Prefetch<E>`]).
pub(crate) struct Prefetching<P, E>(Typed<P, E>);

impl<P: Prefetch<E>, E: Event> Route<ProjectionTx> for Prefetching<P, E> {
    fn call<'a>(&'a self, event: &'a RecordedEvent, tx: &'a mut ProjectionTx) -> RouteFuture<'a> {
        self.0.call(event, tx)
    }

    fn call_decoded<'a>(
        &'a self,
        event: &'a RecordedEvent,
        decoded: Option<Decoded>,
        tx: &'a mut ProjectionTx,
    ) -> RouteFuture<'a> {
        match decoded.and_then(|decoded| decoded.downcast::<Recorded<E>>().ok()) {
            Some(recorded) => Box::pin(async move { self.0.subscriber.project(&recorded, tx).await }),
            None => self.0.call(event, tx),
        }
    }

    fn prefetches(&self) -> bool {
        true
    }

    fn documents(&self, event: &RecordedEvent, ids: &mut DocumentIds) -> Option<Decoded> {
        let recorded = Recorded::<E>::decode(event).ok()?;
        // The ids named before a panic are kept: each is only a hint.
        let named =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.0.subscriber.documents(&recorded, ids)));
        if named.is_err() {
            tracing::debug!(event_type = %event.event_type, position = %event.global_position, "naming the documents of an event panicked; they are read one by one");
        }
        Some(Box::new(recorded))
    }
}

impl<P: ProjectRows<E>, E: Event> Route<TableTx<P>> for Typed<P, E> {
    fn call<'a>(&'a self, event: &'a RecordedEvent, tx: &'a mut TableTx<P>) -> RouteFuture<'a> {
        Box::pin(async move {
            let recorded = Recorded::<E>::decode(event)?;
            self.subscriber.project(&recorded, tx).await
        })
    }
}

/// One route and the aggregate whose events it takes (`None`: any stream).
struct Entry<C> {
    aggregate: Option<&'static str>,
    route: Box<dyn Route<C>>,
}

/// An event type the subscriber consumes that several aggregates record,
/// without saying which aggregate's events it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ambiguity {
    /// The Rust type of the event.
    pub(crate) event: &'static str,
    /// The aggregates that list it, sorted.
    pub(crate) aggregates: Vec<&'static str>,
}

/// The routes of one subscriber, by stored event type name.
pub(crate) struct Routes<C> {
    by_type: BTreeMap<&'static str, Vec<Entry<C>>>,
    /// Per stored type name, every aggregate of the program that records a
    /// type of that name, longest name first (so `account-audit-1` is
    /// `account-audit`'s, not `account`'s).
    aggregates_by_type: BTreeMap<&'static str, Vec<&'static str>>,
    ambiguous: Vec<Ambiguity>,
}

impl<C> Routes<C> {
    /// The route for `event`, if the subscriber consumes its type from its
    /// aggregate.
    pub(crate) fn get(&self, event: &RecordedEvent) -> Option<&dyn Route<C>> {
        let entries = self.by_type.get(event.event_type.as_str())?;
        let stream = event.stream_id.as_str();
        let aggregate = self.aggregates_by_type.get(event.event_type.as_str()).and_then(|names| {
            names
                .iter()
                .copied()
                .find(|name| stream.strip_prefix(name).is_some_and(|rest| rest.starts_with('-')))
        });
        entries
            .iter()
            .find(|entry| entry.aggregate.is_none() || entry.aggregate == aggregate)
            .map(|entry| entry.route.as_ref())
    }

    /// Whether any route names the documents its events read.
    pub(crate) fn prefetches(&self) -> bool {
        self.by_type.values().flatten().any(|entry| entry.route.prefetches())
    }

    /// Whether the subscriber consumes events stored under `event_type`
    /// (from some aggregate).
    pub(crate) fn consumes(&self, event_type: &str) -> bool {
        self.by_type.contains_key(event_type)
    }

    /// The consumed event type names, sorted.
    pub(crate) fn event_types(&self) -> Vec<&'static str> {
        self.by_type.keys().copied().collect()
    }

    /// The consumed event types that several aggregates record, with no
    /// aggregate named.
    pub(crate) fn ambiguities(&self) -> &[Ambiguity] {
        &self.ambiguous
    }
}

/// What the three subscriber builders share: the subscriber, the routes
/// listed so far and the state types declared.
pub(crate) struct RouteTable<S, C> {
    subscriber: Arc<S>,
    routes: Routes<C>,
    uses: Vec<Used>,
}

impl<S, C> RouteTable<S, C> {
    /// A builder's `Debug`: its name and the event types listed so far.
    pub(crate) fn debug<'f, 'b>(
        &self,
        f: &'f mut std::fmt::Formatter<'b>,
        builder: &str,
    ) -> std::fmt::DebugStruct<'f, 'b> {
        let mut debug = f.debug_struct(builder);
        debug.field("events", &self.routes.event_types());
        debug
    }
}

impl<S: Send + Sync + 'static, C: 'static> RouteTable<S, C> {
    pub(crate) fn new(subscriber: S) -> Self {
        let routes =
            Routes { by_type: BTreeMap::new(), aggregates_by_type: BTreeMap::new(), ambiguous: Vec::new() };
        Self { subscriber: Arc::new(subscriber), routes, uses: Vec::new() }
    }

    /// Adds the route for events of type `E` from the aggregates that
    /// record it (`from`: only that aggregate's). Several aggregates and no
    /// `from` is an [`Ambiguity`].
    pub(crate) fn add<E: Event>(&mut self, from: Option<&'static str>)
    where
        Typed<S, E>: Route<C>,
    {
        let route = Typed::<S, E> { subscriber: Arc::clone(&self.subscriber), event: PhantomData };
        self.insert::<E>(from, Box::new(route));
    }

    /// As [`add`](RouteTable::add), with a route that also names the
    /// documents each event reads.
    pub(crate) fn add_prefetching<E: Event>(&mut self, from: Option<&'static str>)
    where
        Prefetching<S, E>: Route<C>,
    {
        let route = Typed::<S, E> { subscriber: Arc::clone(&self.subscriber), event: PhantomData };
        self.insert::<E>(from, Box::new(Prefetching(route)));
    }

    /// Puts `route` in the table for `E` from `from` (see
    /// [`add`](RouteTable::add)), replacing a route listed before for the
    /// same type and aggregate.
    fn insert<E: Event>(&mut self, from: Option<&'static str>, route: Box<dyn Route<C>>) {
        let owners = owners_of(std::any::TypeId::of::<E>());
        let aggregate = match (from, owners.as_slice()) {
            (Some(chosen), _) => Some(chosen),
            (None, []) => None,
            (None, [only]) => Some(*only),
            (None, several) => {
                self.routes
                    .ambiguous
                    .push(Ambiguity { event: std::any::type_name::<E>(), aggregates: several.to_vec() });
                None
            }
        };
        let entries = self.routes.by_type.entry(E::TYPE).or_default();
        entries.retain(|entry| entry.aggregate != aggregate);
        entries.push(Entry { aggregate, route });
    }

    /// Declares that the subscriber reads state of type `T`.
    pub(crate) fn uses<T: Send + Sync + 'static>(&mut self) {
        self.uses.push(Used::of::<T>());
    }

    /// The subscriber the routes call.
    pub(crate) fn subscriber(&self) -> Arc<S> {
        Arc::clone(&self.subscriber)
    }

    /// The runnable subscriber: `kind` wraps the finished routes.
    pub(crate) fn build(mut self, kind: impl FnOnce(Routes<C>) -> SubscriberKind) -> Subscriber {
        let uses = std::mem::take(&mut self.uses);
        Subscriber::new(kind(self.into_routes())).using(uses)
    }

    fn into_routes(mut self) -> Routes<C> {
        for event_type in self.routes.by_type.keys() {
            let mut names: Vec<&'static str> = owners::all()
                .filter(|owner| owner.event_type() == *event_type)
                .map(owners::EventOwner::aggregate)
                .collect();
            names.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            names.dedup();
            self.routes.aggregates_by_type.insert(event_type, names);
        }
        self.routes
    }
}

/// The builder methods that read the same for every kind of subscriber,
/// written once: `on_from` and `uses`. Call it inside `impl<$S> $Builder`
/// with the type parameter, the trait a consumed type needs, what the
/// subscriber is called in docs and the `state` method it reads state with.
///
/// Each builder writes its `on` out by hand: `#[event_handler]` and
/// `#[projection]` expand to calls of it, and the compiler quotes its
/// signature when a subscriber lacks the trait for a listed event.
macro_rules! shared_builder_methods {
    ($S:ident: $Consumes:ident, $what:literal, $state:literal) => {
        /// Consumes events of type `E` recorded by aggregate `A` only: for an
        /// event type that several aggregates record (the registry refuses
        /// `on::<E>()` for one).
        #[must_use]
        pub fn on_from<A: crate::aggregate::Aggregate, E: crate::event::Event>(mut self) -> Self
        where
            $S: $Consumes<E>,
        {
            self.table.add::<E>(Some(A::NAME));
            self
        }

        #[doc = concat!(
            "Declares that the ", $what, " reads state of type `T` with\n[`", $state,
            "`]: building a read side that was not given a\n`T` fails, naming the ", $what, " and the type."
        )]
        #[must_use]
        pub fn uses<T: Send + Sync + 'static>(mut self) -> Self {
            self.table.uses::<T>();
            self
        }
    };
}
pub(crate) use shared_builder_methods;
