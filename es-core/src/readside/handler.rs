//! Event handlers: side effects and process managers fed by the global
//! stream.
//!
//! A handler implements [`HandleEvent<E>`] once per event type it consumes
//! and is turned into a runnable [`Subscriber`] with
//! [`Subscriber::handler`]. Delivery is at least once, in position order:
//! a handler must tolerate seeing an event again after a crash.
//!
//! ```
//! use es_core::{HandleEvent, HandlerCtx, HandlerError, Recorded};
//! use es_core::readside::{Replay, Subscriber};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! # struct AccountOpened { owner: String }
//! # impl es_core::Event for AccountOpened { const TYPE: &'static str = "AccountOpened"; }
//!
//! struct WelcomeMail;
//!
//! impl HandleEvent<AccountOpened> for WelcomeMail {
//!     async fn handle(&self, event: &Recorded<AccountOpened>, _ctx: &HandlerCtx) -> Result<(), HandlerError> {
//!         println!("welcome, {}", event.owner);
//!         Ok(())
//!     }
//! }
//!
//! let subscriber = Subscriber::handler(WelcomeMail).on::<AccountOpened>().replay(Replay::Skip).build();
//! assert_eq!(subscriber.event_types(), ["AccountOpened"]);
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use uuid::Uuid;

use super::recorded::Recorded;
use super::route::{shared_builder_methods, RouteTable};
use super::state::SubscriberState;
use super::subscriber::{Subscriber, SubscriberKind};
use crate::aggregate::Command;
use crate::envelope::{Metadata, RecordedEvent};
use crate::error::{BoxError, DecodeError, ProjectionError};
use crate::event::Event;
use crate::runtime::es::Es;
use crate::runtime::outcome::CommandOutcome;
use crate::version::{EventId, GlobalPosition};

/// Handles one event type `E`: implement it once per consumed type.
///
/// Write the method as `async fn handle(&self, event: &Recorded<E>, ctx:
/// &HandlerCtx) -> Result<(), HandlerError>`; the future must be `Send`.
/// Returning an error makes the runner retry the event with backoff; after
/// the last attempt the subscription stops at that event and reports it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is asked to handle `{E}` but does not implement `HandleEvent<{E}>`",
    label = "missing `impl HandleEvent<{E}> for {Self}`",
    note = "add `impl es_core::HandleEvent<{E}> for {Self} {{ async fn handle(&self, event: &es_core::Recorded<{E}>, ctx: &es_core::HandlerCtx) -> Result<(), es_core::HandlerError> {{ .. }} }}`"
)]
pub trait HandleEvent<E: Event>: Send + Sync + 'static {
    /// Handles one recorded event.
    ///
    /// # Errors
    /// Whatever went wrong; the event is retried, never skipped.
    fn handle(
        &self,
        event: &Recorded<E>,
        ctx: &HandlerCtx,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Whether a handler runs while history is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Replay {
    /// Run it for replayed events too (the handler sees
    /// [`HandlerCtx::is_replay`]).
    #[default]
    Run,
    /// Never run it for replayed events: its checkpoint just moves past
    /// them. For side effects that must not happen twice (mail, payments).
    Skip,
}

/// A handler or projection failed on one event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The event could not be decoded as the consumed type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Reading or writing projection documents failed.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// A command dispatched by a process manager failed.
    #[error("command `{command}` dispatched by the handler failed")]
    Command {
        /// The command's type name.
        command: &'static str,
        /// The execution error.
        #[source]
        source: BoxError,
    },
    /// The subscriber asked for state of a type it did not declare with
    /// `uses` (declared state is checked when the read side is built).
    #[error("state `{type_name}` was not declared: add `.uses::<{type_name}>()` to the subscriber (`uses({type_name})` in the macro) and give the value to `ReadSideBuilder::state`")]
    UndeclaredState {
        /// The Rust type asked for.
        type_name: &'static str,
    },
    /// The handler dispatched a command, but the read side has no [`Es`]
    /// to dispatch it with.
    #[error("no command dispatcher: give the read side an `Es` to dispatch commands from handlers")]
    NoDispatcher,
    /// Any other failure of the handler's own code.
    #[error("{message}")]
    Failed {
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl HandlerError {
    /// A failure described by a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::Failed { message: message.into(), source: None }
    }

    /// A failure caused by another error.
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Failed { message: error.to_string(), source: Some(Box::new(error)) }
    }

    /// Whether the projection store failed under the subscriber (an outage,
    /// a pool timeout) rather than the subscriber itself: the runner waits
    /// such failures out and does not count them against the event.
    pub(crate) fn is_store_failure(&self) -> bool {
        matches!(self, Self::Projection(ProjectionError::Backend(_)))
    }
}

/// What a handler knows about the event it handles, and the door to
/// dispatch commands (process managers, sagas).
///
/// Commands dispatched through [`execute`](HandlerCtx::execute) carry the
/// triggering event's id as causation id and its correlation id (or, if it
/// has none, its event id) as correlation id.
#[derive(Debug, Clone)]
pub struct HandlerCtx {
    pub(crate) subscriber: Arc<str>,
    pub(crate) event_id: EventId,
    pub(crate) correlation_id: Uuid,
    pub(crate) position: GlobalPosition,
    pub(crate) replay: bool,
    pub(crate) es: Option<Es>,
    pub(crate) state: SubscriberState,
    /// Where a test kit records dispatched commands.
    pub(crate) dispatch_log: Option<crate::testkit::DispatchLog>,
    /// How many commands the handler dispatched for this event so far: the
    /// step number in the next command's derived id.
    pub(crate) steps: Arc<AtomicU32>,
}

impl HandlerCtx {
    pub(crate) fn for_event(
        subscriber: Arc<str>,
        event: &RecordedEvent,
        replay: bool,
        es: Option<Es>,
        state: SubscriberState,
    ) -> Self {
        Self {
            subscriber,
            event_id: event.event_id,
            correlation_id: event.metadata.correlation_id.unwrap_or(event.event_id.as_uuid()),
            position: event.global_position,
            replay,
            es: es.map(|es| es.for_handler()),
            state,
            dispatch_log: None,
            steps: Arc::default(),
        }
    }

    /// The name of the handler being run.
    pub fn name(&self) -> &str {
        &self.subscriber
    }

    /// Whether the event is replayed history (after
    /// [`ReadSide::rebuild`](crate::ReadSide::rebuild)) rather than news.
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// The global position of the event being handled.
    pub fn position(&self) -> GlobalPosition {
        self.position
    }

    /// Metadata for a command caused by the event being handled.
    pub fn command_metadata(&self) -> Metadata {
        Metadata::new().with_causation_id(self.event_id.as_uuid()).with_correlation_id(self.correlation_id)
    }

    /// The application, when the read side was given one. Commands sent
    /// through this handle (or a clone of it, also from a task the handler
    /// spawns) do not wait for strongly consistent subscribers: the calling
    /// subscription cannot move on until the handler returns.
    pub fn es(&self) -> Option<&Es> {
        self.es.as_ref()
    }

    /// The value of type `T` the application gave the read side
    /// ([`ReadSideBuilder::state`](crate::readside::ReadSideBuilder::state)),
    /// which the handler declared it uses.
    ///
    /// # Errors
    /// [`HandlerError::UndeclaredState`] if the handler did not declare `T`
    /// with [`uses`](HandlerBuilder::uses).
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, HandlerError> {
        self.state.get()
    }

    /// Executes a command caused by the event being handled (see the type
    /// docs for the ids it carries). Commands dispatched from a handler do
    /// not wait for strongly consistent subscribers: the calling
    /// subscription cannot move on until the handler returns.
    ///
    /// The command's id is derived from the event's id, the handler's name
    /// and the number of commands the handler dispatched for this event
    /// before: when the event is delivered again (after a crash, a retry or
    /// a replay), the same commands get the same ids, the store sees exact
    /// retries, and nothing happens twice. Dispatch a handler's commands in
    /// the same order every time it runs for an event.
    ///
    /// # Errors
    /// [`HandlerError::NoDispatcher`] without an [`Es`];
    /// [`HandlerError::Command`] carrying the [`ExecuteError`](crate::error::ExecuteError)
    /// if the command failed. Use [`es`](HandlerCtx::es) with
    /// [`command_metadata`](HandlerCtx::command_metadata) to match on the
    /// execution error yourself.
    pub async fn execute<C: Command>(
        &self,
        command: C,
    ) -> Result<CommandOutcome<C::Aggregate>, HandlerError> {
        self.execute_with(command, self.command_metadata()).await
    }

    /// [`execute`](HandlerCtx::execute) with `metadata` instead of
    /// [`command_metadata`](HandlerCtx::command_metadata): start from the
    /// latter to keep the causation, and add fields
    /// (`ctx.command_metadata().with_field(..)`).
    ///
    /// # Errors
    /// As [`execute`](HandlerCtx::execute).
    pub async fn execute_with<C: Command>(
        &self,
        command: C,
        metadata: Metadata,
    ) -> Result<CommandOutcome<C::Aggregate>, HandlerError> {
        if let Some(log) = &self.dispatch_log {
            log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Box::new(command.clone()));
        }
        let es = self.es.as_ref().ok_or(HandlerError::NoDispatcher)?;
        let step = self.steps.fetch_add(1, Ordering::Relaxed);
        let id = crate::runtime::ids::command_id(self.event_id, &self.subscriber, step);
        es.execute(command)
            .id(id)
            .metadata(metadata)
            .await
            .map_err(|error| HandlerError::Command { command: C::NAME, source: Box::new(error) })
    }

    /// Numbers the next command [`execute`](HandlerCtx::execute) dispatches
    /// as step `step` (0-based) of this event's handling, and the ones after
    /// it from there.
    ///
    /// For a handler that runs a process in steps and, when the event comes
    /// again, resumes where the process's own state says it stands rather
    /// than from the start: giving each command its place in the process
    /// (not its place among the commands sent this time) means a command
    /// resent after a crash gets the id it had the first time, and the store
    /// sees an exact retry.
    pub fn resume_at(&self, step: u32) {
        self.steps.store(step, Ordering::Relaxed);
    }
}

/// Builds a handler [`Subscriber`]: list the consumed event types with
/// [`on`](HandlerBuilder::on). Made by [`Subscriber::handler`].
pub struct HandlerBuilder<H> {
    table: RouteTable<H, HandlerCtx>,
    replay: Replay,
}

impl<H: Send + Sync + 'static> HandlerBuilder<H> {
    pub(crate) fn new(handler: H) -> Self {
        Self { table: RouteTable::new(handler), replay: Replay::Run }
    }

    /// Consumes events of type `E` (other types are skipped, and still
    /// move the checkpoint).
    #[must_use]
    pub fn on<E: Event>(mut self) -> Self
    where
        H: HandleEvent<E>,
    {
        self.table.add::<E>(None);
        self
    }

    shared_builder_methods!(H: HandleEvent, "handler", "HandlerCtx::state");

    /// Sets whether the handler runs for replayed events (default
    /// [`Replay::Run`]).
    #[must_use]
    pub fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }

    /// The runnable subscriber.
    pub fn build(self) -> Subscriber {
        self.table.build(|routes| SubscriberKind::Handler { routes, replay: self.replay })
    }
}

impl<H> std::fmt::Debug for HandlerBuilder<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.table.debug(f, "HandlerBuilder").field("replay", &self.replay).finish_non_exhaustive()
    }
}
