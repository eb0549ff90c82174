//! [`Recorded`]: a decoded, typed event together with its stored envelope.

use std::ops::Deref;

use crate::envelope::{Metadata, RecordedEvent, Timestamp};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::event::{decode_event, Event};
use crate::version::{EventId, GlobalPosition, StreamId, StreamVersion};

/// One stored event, decoded as `E`, with where and when it was recorded.
///
/// Handlers and projections receive it; it dereferences to the event, so
/// `recorded.amount` reads a field of the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<E> {
    /// The decoded event (upcast to the current schema version).
    pub event: E,
    /// The event's unique id.
    pub event_id: EventId,
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// The aggregate type of the stream.
    pub aggregate_type: String,
    /// Its version within the stream.
    pub stream_version: StreamVersion,
    /// Its position in the global stream.
    pub position: GlobalPosition,
    /// Correlation, causation and application fields.
    pub metadata: Metadata,
    /// When the store recorded it.
    pub recorded_at: Timestamp,
}

impl<E: Event> Recorded<E> {
    /// Decodes a stored event as `E`, upcasting older schema versions.
    ///
    /// # Errors
    /// [`DecodeError`] naming the stream, version and type when the stored
    /// type name is not `E::TYPE`, the schema version is newer than `E`
    /// knows, upcasting fails, or the payload does not match.
    pub fn decode(stored: &RecordedEvent) -> Result<Self, DecodeError> {
        let error = |kind| DecodeError {
            stream: stored.stream_id.clone(),
            version: stored.stream_version,
            event_type: stored.event_type.clone(),
            schema_version: stored.schema_version,
            kind,
        };
        if stored.event_type != E::TYPE {
            return Err(error(DecodeErrorKind::UnknownType));
        }
        let event = decode_event::<E>(stored.schema_version, &stored.payload).map_err(error)?;
        Ok(Self {
            event,
            event_id: stored.event_id,
            stream_id: stored.stream_id.clone(),
            aggregate_type: stored.aggregate_type.clone(),
            stream_version: stored.stream_version,
            position: stored.global_position,
            metadata: stored.metadata.clone(),
            recorded_at: stored.recorded_at,
        })
    }
}

impl<E> Deref for Recorded<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.event
    }
}
