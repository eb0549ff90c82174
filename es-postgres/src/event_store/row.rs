//! Turning stored rows into envelopes, with typed errors for bad data.
//!
//! A row that does not fit an envelope (negative version, a payload or
//! metadata that does not decode) gives [`StoreError::Corrupt`] naming the
//! row; nothing is rewritten. Other driver failures are
//! [`StoreError::Backend`].

use es_core::{
    EventId, GlobalPosition, Metadata, RecordedEvent, StoreError, StreamId, StreamVersion, Timestamp,
};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Decode, Postgres, Row, Type};
use uuid::Uuid;

/// Maps a driver error of a read: decoding trouble is corruption of the row
/// at `location`, anything else is the backend's.
pub(crate) fn read_error(error: sqlx::Error, location: impl FnOnce() -> String) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { index, source } => StoreError::Corrupt {
            location: location(),
            detail: format!("column {index} does not decode: {source}"),
        },
        other => StoreError::Backend(Box::new(other)),
    }
}

/// Reads column `name` of `row`, naming `location` if it does not decode.
pub(crate) fn column<'r, T>(
    row: &'r PgRow,
    name: &str,
    location: &dyn Fn() -> String,
) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get::<T, _>(name).map_err(|error| match error {
        sqlx::Error::ColumnDecode { source, .. } => StoreError::Corrupt {
            location: location(),
            detail: format!("column `{name}` does not decode: {source}"),
        },
        other => StoreError::Backend(Box::new(other)),
    })
}

/// A stored counter that must be positive (versions, positions).
pub(crate) fn positive(value: i64, what: &str, location: &dyn Fn() -> String) -> Result<u64, StoreError> {
    u64::try_from(value).ok().filter(|v| *v > 0).ok_or_else(|| StoreError::Corrupt {
        location: location(),
        detail: format!("{what} {value} is not positive"),
    })
}

/// A stored schema version, which must fit a `u32`.
pub(crate) fn schema_version(value: i64, location: &dyn Fn() -> String) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        location: location(),
        detail: format!("schema version {value} is out of range"),
    })
}

/// Decodes a row of `select_events.sql`.
pub(crate) fn recorded_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let raw_position: i64 = column(row, "global_position", &|| "an event row".to_owned())?;
    let at_position = || format!("global position {raw_position}");
    let stream: String = column(row, "stream_id", &at_position)?;
    let raw_version: i64 = column(row, "stream_version", &at_position)?;
    let location = || format!("stream `{stream}` version {raw_version} (global position {raw_position})");
    let stream_version = StreamVersion(positive(raw_version, "stream version", &location)?);
    let global_position = GlobalPosition(positive(raw_position, "global position", &location)?);
    let event_id: Uuid = column(row, "event_id", &location)?;
    let aggregate_type: String = column(row, "aggregate_type", &location)?;
    let event_type: String = column(row, "event_type", &location)?;
    let schema_version = schema_version(column(row, "schema_version", &location)?, &location)?;
    let payload: Value = column(row, "payload", &location)?;
    let Json(metadata): Json<Metadata> = column(row, "metadata", &location)?;
    let recorded_at = Timestamp(column(row, "recorded_at_micros", &location)?);
    Ok(RecordedEvent {
        event_id: EventId(event_id),
        stream_id: StreamId::new(stream),
        aggregate_type,
        stream_version,
        global_position,
        event_type,
        schema_version,
        payload,
        metadata,
        recorded_at,
    })
}
