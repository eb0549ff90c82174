//! Errors of the read side: building and controlling it, its registry, and
//! waiting for a subscription.

use std::time::Duration;

use super::StoreError;
use crate::version::{EventId, GlobalPosition};

/// Where a subscription stopped because an event (or the commit of its
/// batch) kept failing, or because a stored row is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// What failed.
    pub kind: FailureKind,
    /// The last error, with its chain of causes.
    pub error: String,
    /// The position of the event that failed (for a failed commit: the last
    /// event of the batch; for a corrupt row: the row's).
    pub position: GlobalPosition,
    /// The failing event's id (`None` for a failed commit).
    pub event_id: Option<EventId>,
    /// The failing event's type name (`None` for a failed commit).
    pub event_type: Option<String>,
    /// How many times it was tried.
    pub attempts: u32,
}

/// What made a subscription stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The handler or projection kept failing on the event.
    Event,
    /// The store kept refusing the batch's commit (not an outage: those
    /// are waited out).
    Commit,
    /// A table projection's `reset` kept failing during a rebuild.
    Reset,
    /// The stored row at `position` cannot be turned into an event (see
    /// [`StoreError::Corrupt`]). Fix the row and restart, or skip it with
    /// [`ReadSide::skip`](crate::ReadSide::skip).
    CorruptRow,
    /// The subscription's task panicked outside the subscriber's own code
    /// (whose panics count as its failures on the event) and outside the
    /// projection store's commits (waited out like an outage): a store
    /// adapter's bug, say. The error holds the panic's message; start the
    /// subscription again once the cause is fixed.
    Panicked,
}

/// The registry refused a name, or a selection named something unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two subscribers were registered under one name.
    #[error("a subscriber named `{name}` is already registered")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A name the registry does not accept.
    #[error("subscriber name `{name}` is invalid: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A selection named a subscriber that is not registered.
    #[error("no subscriber named `{name}` is registered")]
    UnknownName {
        /// The unknown name.
        name: String,
    },
    /// A selection named a group no subscriber belongs to.
    #[error("no subscriber is registered in group `{group}`")]
    UnknownGroup {
        /// The unknown group.
        group: String,
    },
    /// A subscriber consumes an event type that several aggregates record
    /// without saying whose events it wants.
    #[error(
        "subscriber `{name}` consumes `{event}`, which aggregates {} all record; say which with `.on_from::<Aggregate, Event>()`",
        aggregates.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" and ")
    )]
    AmbiguousEvent {
        /// The subscriber's name.
        name: String,
        /// The event's Rust type.
        event: &'static str,
        /// The aggregates that record it.
        aggregates: Vec<&'static str>,
    },
}

/// Building or controlling a read side failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadSideError {
    /// No event store was given.
    #[error("no event store: call `ReadSideBuilder::event_store` (or `es`) before `build`")]
    MissingEventStore,
    /// No projection store was given (checkpoints live there).
    #[error("no projection store: call `ReadSideBuilder::projection_store` before `build`")]
    MissingProjectionStore,
    /// The registry refused a name or the selection.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A subscriber declared that it uses state of a type the read side
    /// was not given.
    #[error("subscriber `{subscriber}` uses state `{type_name}`, which the read side was not given: add it with `ReadSideBuilder::state`")]
    MissingState {
        /// The subscriber's name.
        subscriber: String,
        /// The Rust type it uses.
        type_name: &'static str,
    },
    /// A table projection is written against another store's transactions
    /// than the read side's projection store lends (or it lends none).
    #[error("table projection `{subscriber}` writes in a `{wants}`, but the projection store lends {}", .lends.map_or_else(|| "no transactions".to_owned(), |t| format!("a `{t}`")))]
    TransactionMismatch {
        /// The projection's name.
        subscriber: String,
        /// The transaction type it is written against.
        wants: &'static str,
        /// The store's transaction type, if it lends any.
        lends: Option<&'static str>,
    },
    /// A setting is out of range.
    #[error("invalid read side setting: {0}")]
    InvalidConfig(String),
    /// No subscriber of that name runs on this read side.
    #[error("no subscriber named `{name}` runs on this read side")]
    UnknownSubscription {
        /// The name asked for.
        name: String,
    },
    /// Subscriptions can only start inside a tokio runtime.
    #[error("the read side must be started from within a tokio runtime")]
    NoRuntime,
    /// Reading the head of the event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// [`ReadSide::skip`](crate::ReadSide::skip) was asked for a
    /// subscription that has not stopped at a corrupt row: nothing is
    /// skipped.
    #[error("`{name}` has not stopped at a corrupt row: there is nothing to skip")]
    NothingToSkip {
        /// The subscription's name.
        name: String,
    },
}

/// A wait for a subscription to reach a position did not succeed. The
/// events are stored either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsistencyError {
    /// The subscription did not reach the position in time.
    #[error(
        "events are stored up to position {position}, but `{name}` reached only {reached} within {timeout:?}"
    )]
    Timeout {
        /// The subscription waited for.
        name: String,
        /// The position waited for.
        position: GlobalPosition,
        /// How far it got.
        reached: GlobalPosition,
        /// The timeout.
        timeout: Duration,
    },
    /// The subscription stopped on a failing event before the position.
    #[error("events are stored up to position {position}, but `{name}` stopped at position {} on a failing event: {}", .failure.position, .failure.error)]
    Failed {
        /// The subscription waited for.
        name: String,
        /// The position waited for.
        position: GlobalPosition,
        /// Where and why it stopped.
        failure: Failure,
    },
    /// No subscriber of that name runs on this read side.
    #[error("no subscriber named `{name}` runs on this read side")]
    Unknown {
        /// The name asked for.
        name: String,
    },
}

impl ConsistencyError {
    /// The name of the subscription that was waited for.
    pub fn name(&self) -> &str {
        match self {
            Self::Timeout { name, .. } | Self::Failed { name, .. } | Self::Unknown { name } => name,
        }
    }
}
