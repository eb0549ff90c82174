//! Typed errors, one enum per operation family.
//!
//! Each error says what was wrong and names the stream, version or type it
//! concerns. Whether anything may have been written:
//!
//! | error | may anything be stored? |
//! |---|---|
//! | [`ExecuteError::Validation`], [`ExecuteError::Rejected`], [`ExecuteError::Conflict`], [`ExecuteError::Load`], [`ExecuteError::Encode`], [`ExecuteError::CommandIdReused`], [`ExecuteError::Shutdown`] | no (for a command id that ran before, the original events stay stored) |
//! | [`ExecuteError::Append`] | no (an append whose outcome is unknown is reported as [`ExecuteError::OutcomeUnknown`]) |
//! | [`ExecuteError::Panicked`] | only if `appended` is true |
//! | [`ExecuteError::OutcomeUnknown`] | unknown: execute it again with the same command id to find out |
//! | [`ExecuteError::Timeout`] | no: it was cancelled before its append |
//! | [`ExecuteError::ConsistencyTimeout`], [`ExecuteError::ConsistencyFailed`] | yes: the events are stored |
//! | [`AppendError`] (`WrongExpectedVersion`, `DuplicateEventId`, `DuplicateInBatch`, `Unstorable`, `Backend`) | no |
//! | [`AppendError::OutcomeUnknown`] | unknown: the events may or may not be stored; retrying the same events (same ids) is safe |
//! | [`ProjectionError`] from a commit | no |
//! | [`StoreError`], [`LoadError`], [`DecodeError`] (reads) | nothing is written by a read |

mod append;
mod build;
mod readside;
mod upcast;

use std::error::Error as StdError;
use std::fmt;

use crate::version::{CommandId, GlobalPosition, StreamId, StreamVersion};

pub use append::{AppendError, Field, Unstorable};
pub use build::BuildError;
pub use readside::{ConsistencyError, Failure, FailureKind, ReadSideError, RegistryError};
pub use upcast::UpcastError;

/// A boxed backend error, carried as a `#[source]`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The lease store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The storage backend failed.
    #[error("lease store backend failed")]
    Backend(#[source] BoxError),
}

/// Reading events or snapshots failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored row could not be turned into an envelope (corrupt data).
    /// Nothing was rewritten. A read of the global stream returns the events
    /// before such a row and fails on a read that starts at it, with its
    /// `position`, so that a reader can stop there (or deliberately skip it).
    #[error("stored event at {location} is corrupt: {detail}")]
    Corrupt {
        /// Where the bad row sits (stream and version, or global position).
        location: String,
        /// The row's global position, when the store could read it.
        position: Option<GlobalPosition>,
        /// What is wrong with it.
        detail: String,
    },
    /// The storage backend failed (connection lost, timeout, ...).
    #[error("event store backend failed")]
    Backend(#[source] BoxError),
}

/// Why a stored event could not be turned into a typed event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// No event of the aggregate has this type name.
    #[error("unknown event type")]
    UnknownType,
    /// The event was written by a newer schema than this code knows.
    #[error("schema version {found} is newer than the supported version {supported}")]
    NewerVersion {
        /// The stored schema version.
        found: u32,
        /// The newest version this code reads.
        supported: u32,
    },
    /// Upcasting an older schema version failed.
    #[error("upcasting from schema version {from} failed: {source}")]
    Upcast {
        /// The stored schema version.
        from: u32,
        /// What the upcaster reported.
        #[source]
        source: UpcastError,
    },
    /// The payload does not match the event's shape.
    #[error("payload does not match the event type")]
    Payload(#[source] serde_json::Error),
}

/// A stored event could not be decoded. Nothing was dropped or rewritten:
/// the event stays stored as it was.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode event `{event_type}` (schema version {schema_version}) at version {version} of stream `{stream}`: {kind}")]
pub struct DecodeError {
    /// The event's stream.
    pub stream: StreamId,
    /// The event's version in that stream.
    pub version: StreamVersion,
    /// The stored type name.
    pub event_type: String,
    /// The stored schema version.
    pub schema_version: u32,
    /// What went wrong.
    #[source]
    pub kind: DecodeErrorKind,
}

/// An event could not be serialized to JSON.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode event `{event_type}`")]
pub struct EncodeError {
    /// The event's type name.
    pub event_type: &'static str,
    /// serde's error.
    #[source]
    pub source: serde_json::Error,
}

/// One rule a command broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The offending field, if the rule is about one.
    pub field: Option<&'static str>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "`{field}` {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A command was refused before its aggregate was loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("command `{command}` is invalid: {}", join_violations(.violations))]
pub struct ValidationError {
    /// The command's type name.
    pub command: &'static str,
    /// Every rule it broke.
    pub violations: Vec<Violation>,
}

fn join_violations(violations: &[Violation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ValidationError {
    /// A validation error for `command` with no violations yet.
    pub fn new(command: &'static str) -> Self {
        Self { command, violations: Vec::new() }
    }

    /// Adds a violation of a field rule.
    pub fn field(&mut self, field: &'static str, message: impl Into<String>) {
        self.violations.push(Violation { field: Some(field), message: message.into() });
    }

    /// Adds a violation of a whole-command rule.
    pub fn rule(&mut self, message: impl Into<String>) {
        self.violations.push(Violation { field: None, message: message.into() });
    }

    /// `Ok(())` if no rule was broken, else `Err(self)`.
    ///
    /// # Errors
    /// `self`, when it holds at least one violation.
    pub fn into_result(self) -> Result<(), Self> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

/// Loading an aggregate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Reading the stream or snapshot failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// No event of this aggregate instance is stored.
    #[error("aggregate `{aggregate}` with id `{id}` does not exist (no event is stored for it)")]
    NotFound {
        /// The aggregate type.
        aggregate: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The aggregate's code panicked while applying an event.
    #[error("aggregate `{aggregate}` with id `{id}` panicked while applying events")]
    Panicked {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate id.
        id: String,
    },
}

/// A command could not be executed. Unless the variant says otherwise,
/// nothing was appended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The command broke a validation rule; its aggregate was not loaded.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The aggregate refused the command.
    #[error("command rejected: {0}")]
    Rejected(E),
    /// Another writer kept winning the race for the stream; the command was
    /// retried `attempts` times.
    #[error("stream `{stream}` kept changing under the command; gave up after {attempts} attempts")]
    Conflict {
        /// The contended stream.
        stream: StreamId,
        /// How many times the command ran.
        attempts: u32,
    },
    /// The aggregate could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Events could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The append failed for a reason other than a version conflict.
    #[error(transparent)]
    Append(AppendError),
    /// The aggregate's code panicked while handling the command or applying
    /// its events; the aggregate's actor was stopped. If `appended` is true the
    /// events were stored before the panic (the next command sees them).
    #[error("aggregate `{aggregate}` with id `{id}` panicked (events appended: {appended})")]
    Panicked {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate id.
        id: String,
        /// Whether the command's events were stored before the panic.
        appended: bool,
    },
    /// The command may or may not have stored its events: its append was
    /// sent and no answer came back (the connection dropped during the
    /// commit, the actor running it ended, or the caller's deadline passed
    /// while it was in flight). Executing the same command again with the
    /// same [`command_id`](crate::CommandId) is safe: it returns the original
    /// outcome if the events were stored, and stores them once if not.
    #[error("command {command_id} on aggregate `{aggregate}` with id `{id}`: the outcome is unknown ({cause}); executing it again with the same command id is safe")]
    OutcomeUnknown {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate id.
        id: String,
        /// The command's id: execute the command again with it.
        command_id: CommandId,
        /// Why the outcome is unknown.
        cause: Unknown,
    },
    /// The command did not run within its deadline
    /// ([`Execute::timeout`](crate::runtime::Execute::timeout) or
    /// [`EsBuilder::command_timeout`](crate::runtime::EsBuilder::command_timeout)).
    /// It was cancelled before sending an append: nothing was stored.
    #[error("command {command_id} on aggregate `{aggregate}` with id `{id}` did not run within its deadline; nothing was stored")]
    Timeout {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate id.
        id: String,
        /// The command's id.
        command_id: CommandId,
    },
    /// The command's id already ran on another stream (a caller reused an
    /// idempotency key for a different aggregate). Nothing was stored by
    /// this call; what the id stored earlier stays as it was.
    #[error(
        "command id {command_id} already ran on stream `{ran_on}`, not on `{stream}`; nothing was stored"
    )]
    CommandIdReused {
        /// The reused command id.
        command_id: CommandId,
        /// The stream this call targeted.
        stream: StreamId,
        /// The stream the id's events are stored in.
        ran_on: StreamId,
    },
    /// The runtime is shutting down and no longer takes commands.
    #[error("the es runtime is shut down")]
    Shutdown,
    /// The events were stored, but a strongly consistent read model did not
    /// catch up within the timeout. The command itself succeeded.
    #[error(
        "events stored up to position {position}, but `{waiting_for}` did not catch up within the timeout"
    )]
    ConsistencyTimeout {
        /// The position of the last stored event.
        position: GlobalPosition,
        /// The handler or projection that did not catch up.
        waiting_for: String,
    },
    /// The events were stored, but a strongly consistent handler or
    /// projection stopped on a failing event (or is not running here). The
    /// command itself succeeded.
    #[error("events stored up to position {position}, but `{waiting_for}` cannot catch up: {cause}")]
    ConsistencyFailed {
        /// The position of the last stored event.
        position: GlobalPosition,
        /// The handler or projection that failed.
        waiting_for: String,
        /// Why it cannot catch up.
        cause: Box<ConsistencyError>,
    },
}

/// Why a command's outcome is unknown ([`ExecuteError::OutcomeUnknown`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unknown {
    /// The store could not say whether the append committed.
    #[error("the store could not say whether the append committed: {0}")]
    Store(Box<AppendError>),
    /// The actor running the command ended while its append was in flight
    /// (its task was aborted, or the event store panicked).
    #[error("the actor running it stopped during its append")]
    Interrupted,
    /// The caller's deadline passed while the append was in flight.
    #[error("the deadline passed during its append")]
    Deadline,
}

/// Working with the projection store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// A document could not be (de)serialized.
    #[error("document `{id}` of projection `{projection}` could not be (de)serialized")]
    Serde {
        /// The projection.
        projection: String,
        /// The document id.
        id: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// The unit of work expected another checkpoint: someone else moved it.
    #[error("checkpoint of projection `{projection}` is at {actual:?}, expected {expected:?}")]
    CheckpointMoved {
        /// The projection.
        projection: String,
        /// The checkpoint the unit of work was built on.
        expected: Option<GlobalPosition>,
        /// The stored checkpoint.
        actual: Option<GlobalPosition>,
    },
    /// A fenced unit of work was refused: its lease passed to another
    /// holder (or expired) since it was acquired.
    #[error("lease `{lease}` with token {token} is no longer held; the commit to projection `{projection}` was refused")]
    Fenced {
        /// The projection.
        projection: String,
        /// The lease's name.
        lease: String,
        /// The token the commit was fenced with.
        token: u64,
    },
    /// The storage backend failed.
    #[error("projection store backend failed")]
    Backend(#[source] BoxError),
}
