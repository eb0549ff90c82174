//! Turning stored rows into envelopes, with typed errors for bad data.
//!
//! A row that does not fit an envelope (a version below 1, an id that is no
//! UUID, a payload or metadata that is no JSON) gives
//! [`StoreError::Corrupt`] naming the stream, version and position; nothing
//! is rewritten. Other driver failures are [`StoreError::Backend`].

use es_core::error::StoreError;
use es_core::store::{Payload, RecordedEvent, ReplayEvent, Timestamp};
use es_core::{EventId, GlobalPosition, Metadata, StreamId, StreamVersion};
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};
use uuid::Uuid;

/// Reads column `index` of `row`, naming `location` if it does not decode.
pub(crate) fn column<'r, T>(
    row: &'r SqliteRow,
    index: usize,
    location: &dyn Fn() -> String,
) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get::<T, usize>(index).map_err(|error| match error {
        sqlx::Error::ColumnDecode { source, .. } => StoreError::Corrupt {
            location: location(),
            position: None,
            detail: format!("column {index} does not decode: {source}"),
        },
        other => StoreError::Backend(Box::new(other)),
    })
}

/// A stored counter that must be positive (versions, positions).
pub(crate) fn positive(value: i64, what: &str, location: &dyn Fn() -> String) -> Result<u64, StoreError> {
    u64::try_from(value).ok().filter(|v| *v > 0).ok_or_else(|| StoreError::Corrupt {
        location: location(),
        position: None,
        detail: format!("{what} {value} is not positive"),
    })
}

/// A stored schema version, which must fit a `u32`.
pub(crate) fn schema_version(value: i64, location: &dyn Fn() -> String) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        location: location(),
        position: None,
        detail: format!("schema version {value} is out of range"),
    })
}

/// Reads a JSON text column as [`Payload`]: no `Value` tree is built, the
/// aggregate decodes the text into its event directly.
pub(crate) fn payload(
    row: &SqliteRow,
    index: usize,
    location: &dyn Fn() -> String,
) -> Result<Payload, StoreError> {
    let text: &str = column(row, index, location)?;
    Payload::from_json(text).map_err(|e| StoreError::Corrupt {
        location: location(),
        position: None,
        detail: format!("column {index} is not JSON: {e}"),
    })
}

/// Reads the metadata column. Most events carry none (`{}`), which skips
/// serde's (slow) flattening path.
fn metadata(row: &SqliteRow, index: usize, location: &dyn Fn() -> String) -> Result<Metadata, StoreError> {
    let text: &str = column(row, index, location)?;
    if text == "{}" {
        return Ok(Metadata::default());
    }
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        location: location(),
        position: None,
        detail: format!("column {index} is not event metadata: {e}"),
    })
}

/// Reads a 16-byte event id.
fn event_id(row: &SqliteRow, index: usize, location: &dyn Fn() -> String) -> Result<EventId, StoreError> {
    let bytes: &[u8] = column(row, index, location)?;
    Uuid::from_slice(bytes).map(EventId).map_err(|_| StoreError::Corrupt {
        location: location(),
        position: None,
        detail: format!("column {index} holds {} bytes, not a 16-byte UUID", bytes.len()),
    })
}

/// `error` with the bad row's position, when it is a [`StoreError::Corrupt`]
/// that does not carry one yet and the position is a valid one.
fn at_position(error: StoreError, raw_position: i64) -> StoreError {
    match error {
        StoreError::Corrupt { location, position: None, detail } => StoreError::Corrupt {
            location,
            position: u64::try_from(raw_position).ok().filter(|p| *p > 0).map(GlobalPosition),
            detail,
        },
        other => other,
    }
}

/// Decodes a row of `select_events.sql`. A read of one `stream` passes it,
/// so the stream's name is not decoded once per row. A corrupt row's error
/// carries its position.
pub(crate) fn recorded_event(
    row: &SqliteRow,
    stream: Option<&StreamId>,
) -> Result<RecordedEvent, StoreError> {
    let raw_position: i64 = column(row, 0, &|| "an event row".to_owned())?;
    decode_recorded(row, stream, raw_position).map_err(|e| at_position(e, raw_position))
}

fn decode_recorded(
    row: &SqliteRow,
    stream: Option<&StreamId>,
    raw_position: i64,
) -> Result<RecordedEvent, StoreError> {
    let here = || format!("global position {raw_position}");
    let stream = match stream {
        Some(stream) => stream.clone(),
        None => StreamId::new(column::<String>(row, 2, &here)?),
    };
    let raw_version: i64 = column(row, 3, &here)?;
    let location = || format!("stream `{stream}` version {raw_version} (global position {raw_position})");
    Ok(RecordedEvent {
        global_position: GlobalPosition(positive(raw_position, "global position", &location)?),
        stream_version: StreamVersion(positive(raw_version, "stream version", &location)?),
        event_id: event_id(row, 1, &location)?,
        aggregate_type: column(row, 4, &location)?,
        event_type: column(row, 5, &location)?,
        schema_version: schema_version(column(row, 6, &location)?, &location)?,
        payload: payload(row, 7, &location)?,
        metadata: metadata(row, 8, &location)?,
        recorded_at: Timestamp(column(row, 9, &location)?),
        stream_id: stream,
    })
}

/// Decodes a row of `read_replay.sql` (version, type, schema version,
/// payload, position) of `stream`. A corrupt row's error carries its
/// position.
pub(crate) fn replay_event(row: &SqliteRow, stream: &StreamId) -> Result<ReplayEvent, StoreError> {
    let raw_position: i64 = column(row, 4, &|| format!("a row of stream `{stream}`"))?;
    decode_replay(row, stream, raw_position).map_err(|e| at_position(e, raw_position))
}

fn decode_replay(row: &SqliteRow, stream: &StreamId, raw_position: i64) -> Result<ReplayEvent, StoreError> {
    let raw_version: i64 = column(row, 0, &|| format!("stream `{stream}` (global position {raw_position})"))?;
    let location = || format!("stream `{stream}` version {raw_version} (global position {raw_position})");
    Ok(ReplayEvent {
        stream_version: StreamVersion(positive(raw_version, "stream version", &location)?),
        event_type: column(row, 1, &location)?,
        schema_version: schema_version(column(row, 2, &location)?, &location)?,
        payload: payload(row, 3, &location)?,
    })
}
