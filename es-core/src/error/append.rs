//! Errors of appending: the append families of the event store port, and
//! what of a batch no store keeps.

use std::fmt;

use super::BoxError;
use crate::version::{EventId, ExpectedVersion, StreamId, StreamVersion};

/// An append failed. Nothing of the batch was written, except after
/// [`AppendError::OutcomeUnknown`] (see there).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The stream was not at the version the append expected.
    #[error("stream `{}` is at {}, expected {expected}", shown(.stream), describe_version(*.actual))]
    WrongExpectedVersion {
        /// The stream appended to.
        stream: StreamId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's actual version (`None`: no stream).
        actual: Option<StreamVersion>,
    },
    /// An event id in the batch is already stored, and this is not an exact
    /// retry of the append that stored it (see
    /// [`classify_stored`](crate::store::classify_stored): the same ids with
    /// other content, in another stream or order, or under an expectation
    /// that did not admit the original placement).
    #[error("event {event_id} was already appended (stream `{}`)", shown(.stream))]
    DuplicateEventId {
        /// The reused id.
        event_id: EventId,
        /// The stream the rejected append targeted.
        stream: StreamId,
    },
    /// The same event id appears twice in one batch.
    #[error("event {event_id} appears more than once in one append to stream `{}`", shown(.stream))]
    DuplicateInBatch {
        /// The repeated id.
        event_id: EventId,
        /// The stream appended to.
        stream: StreamId,
    },
    /// The batch holds something no store keeps: a value over one of the
    /// limits of [`check_storable`](crate::store::check_storable), or a NUL
    /// character. Every adapter refuses it alike, before writing anything.
    #[error("cannot append to stream `{}`: {reason}", shown(.stream))]
    Unstorable {
        /// The stream appended to.
        stream: StreamId,
        /// What cannot be stored, and where.
        reason: Unstorable,
    },
    /// The storage backend failed before the append could have been
    /// stored: nothing was written (for instance no connection could be
    /// had, or the server refused the statement).
    #[error("event store backend failed while appending to stream `{}`", shown(.stream))]
    Backend {
        /// The stream appended to.
        stream: StreamId,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The connection to the backend was lost while the append (or its
    /// commit) was in flight: **the events may or may not be stored**.
    ///
    /// Retrying the same events (the same event ids, the same expectation)
    /// is safe: if the first attempt committed, the retry is an exact retry
    /// and returns the original placement without storing anything twice;
    /// if it did not, the retry appends them. Reading the stream tells too.
    /// Do not retry with new event ids: that may store the events twice.
    #[error(
        "the connection was lost while appending to stream `{}`; the events may or may not be stored \
         (retrying with the same event ids is safe)",
        shown(.stream)
    )]
    OutcomeUnknown {
        /// The stream appended to.
        stream: StreamId,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

/// What of a batch no store keeps, as [`AppendError::Unstorable`] reports
/// it. The limits are those of [`check_storable`](crate::store::check_storable).
///
/// Messages name the limit and the actual size, never the refused input
/// (which may be megabytes). `event` is the index of the offending event in
/// the batch, counting from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unstorable {
    /// The stream id is longer than
    /// [`MAX_STREAM_ID_BYTES`](crate::store::MAX_STREAM_ID_BYTES).
    #[error("the stream id is {len} bytes long, over the limit of {max} bytes")]
    StreamIdTooLong {
        /// The stream id's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An aggregate or event type name is longer than
    /// [`MAX_TYPE_NAME_BYTES`](crate::store::MAX_TYPE_NAME_BYTES).
    #[error("the {field} of the batch's event at index {event} is {len} bytes long, over the limit of {max} bytes")]
    TypeNameTooLong {
        /// The offending event's index in the batch.
        event: usize,
        /// Which name: [`Field::AggregateType`] or [`Field::EventType`].
        field: Field,
        /// The name's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A payload's JSON text is longer than
    /// [`MAX_PAYLOAD_BYTES`](crate::store::MAX_PAYLOAD_BYTES).
    #[error(
        "the payload of the batch's event at index {event} is {len} bytes, over the limit of {max} bytes"
    )]
    PayloadTooLarge {
        /// The offending event's index in the batch.
        event: usize,
        /// The payload's length in bytes (as JSON text).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An event's metadata, as JSON, is longer than
    /// [`MAX_METADATA_BYTES`](crate::store::MAX_METADATA_BYTES).
    #[error(
        "the metadata of the batch's event at index {event} is {len} bytes, over the limit of {max} bytes"
    )]
    MetadataTooLarge {
        /// The offending event's index in the batch.
        event: usize,
        /// The metadata's length in bytes (as JSON text).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A payload or metadata nests arrays and objects deeper than
    /// [`MAX_JSON_DEPTH`](crate::store::MAX_JSON_DEPTH): stored, it could
    /// not be read back (JSON decoders stop at a depth).
    #[error("the {field} of the batch's event at index {event} nests {depth} levels deep, over the limit of {max}")]
    NestedTooDeep {
        /// The offending event's index in the batch.
        event: usize,
        /// Which value: [`Field::Payload`] or [`Field::Metadata`].
        field: Field,
        /// How deep it nests (arrays and objects; a scalar is 0).
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// The batch holds more events than
    /// [`MAX_BATCH_EVENTS`](crate::store::MAX_BATCH_EVENTS).
    #[error("the batch holds {count} events, over the limit of {max}")]
    TooManyEvents {
        /// How many events the batch holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The payloads and metadata of the batch together are longer than
    /// [`MAX_BATCH_BYTES`](crate::store::MAX_BATCH_BYTES).
    #[error("the batch's payloads and metadata are {len} bytes together, over the limit of {max} bytes")]
    BatchTooLarge {
        /// Their length in bytes (as JSON text).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A NUL character, which Postgres stores in neither text nor JSONB.
    #[error("the {field}{} contains a NUL character", at_event(*.event))]
    Nul {
        /// The offending event's index in the batch (`None` for the stream id).
        event: Option<usize>,
        /// Where the NUL is.
        field: Field,
    },
}

fn at_event(event: Option<usize>) -> String {
    event.map(|n| format!(" of the batch's event at index {n}")).unwrap_or_default()
}

/// A part of an append, as [`Unstorable`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The stream id.
    StreamId,
    /// An event's aggregate type.
    AggregateType,
    /// An event's type name.
    EventType,
    /// An event's payload.
    Payload,
    /// An event's metadata.
    Metadata,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StreamId => "stream id",
            Self::AggregateType => "aggregate type",
            Self::EventType => "event type",
            Self::Payload => "payload",
            Self::Metadata => "metadata",
        })
    }
}

/// The most bytes of a stream id an error message shows.
const STREAM_SHOWN: usize = 100;

/// A stream id for an error message: whole when short, else its first
/// [`STREAM_SHOWN`] bytes (at a character boundary) and its length, so a
/// huge id never makes a huge message.
fn shown(stream: &StreamId) -> String {
    let name = stream.as_str();
    if name.len() <= STREAM_SHOWN {
        return name.to_owned();
    }
    let mut end = STREAM_SHOWN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &name[..end], name.len())
}

fn describe_version(version: Option<StreamVersion>) -> String {
    match version {
        None => "no stream".to_owned(),
        Some(v) => format!("version {v}"),
    }
}

impl AppendError {
    /// Whether the events may have been stored despite this error
    /// ([`AppendError::OutcomeUnknown`]). Every other append error stored
    /// nothing.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown { .. })
    }
}
