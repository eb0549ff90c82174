//! Routing an event to the subscriber code that consumes its type: one
//! table for handlers and projections alike.
//!
//! A subscriber lists the event types it consumes (`.on::<E>()`); each
//! becomes a [`Route`] that decodes the envelope as `E` and calls the
//! subscriber with its context: a handler's [`HandlerCtx`], a projection's
//! [`ProjectionTx`]. Events of other types are skipped by the runner, and
//! still move the checkpoint.

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::handler::{HandleEvent, HandlerCtx, HandlerError};
use super::projection::{Project, ProjectionTx};
use super::recorded::Recorded;
use crate::envelope::RecordedEvent;
use crate::event::Event;

/// The future of one call of a subscriber on one event.
pub(crate) type RouteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// A subscriber's entry for one event type, with the types erased. `C` is
/// what the subscriber is called with.
pub(crate) trait Route<C>: Send + Sync {
    fn call<'a>(&'a self, event: &'a RecordedEvent, ctx: &'a mut C) -> RouteFuture<'a>;
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

/// The routes of one subscriber, by stored event type name.
pub(crate) struct Routes<C> {
    by_type: BTreeMap<&'static str, Box<dyn Route<C>>>,
}

impl<C> Routes<C> {
    /// The route for `event`, if the subscriber consumes its type.
    pub(crate) fn get(&self, event: &RecordedEvent) -> Option<&dyn Route<C>> {
        self.by_type.get(event.event_type.as_str()).map(Box::as_ref)
    }

    /// The consumed event type names, sorted.
    pub(crate) fn event_types(&self) -> Vec<&'static str> {
        self.by_type.keys().copied().collect()
    }
}

impl<S, C> RouteTable<S, C> {
    pub(crate) fn event_types(&self) -> Vec<&'static str> {
        self.routes.event_types()
    }
}

/// What the handler and projection builders share: the subscriber and the
/// routes listed so far.
pub(crate) struct RouteTable<S, C> {
    subscriber: Arc<S>,
    routes: Routes<C>,
}

impl<S: Send + Sync + 'static, C: 'static> RouteTable<S, C> {
    pub(crate) fn new(subscriber: S) -> Self {
        Self { subscriber: Arc::new(subscriber), routes: Routes { by_type: BTreeMap::new() } }
    }

    /// Adds the route for events of type `E`.
    pub(crate) fn add<E: Event>(&mut self)
    where
        Typed<S, E>: Route<C>,
    {
        let route = Typed::<S, E> { subscriber: Arc::clone(&self.subscriber), event: PhantomData };
        self.routes.by_type.insert(E::TYPE, Box::new(route));
    }

    pub(crate) fn into_routes(self) -> Routes<C> {
        self.routes
    }
}
