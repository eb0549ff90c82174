//! Turning stored rows into envelopes, with typed errors for bad data.
//!
//! A row that does not fit an envelope (negative version, a payload or
//! metadata that does not decode) gives [`StoreError::Corrupt`] naming the
//! row; nothing is rewritten. Other driver failures are
//! [`StoreError::Backend`].

use es_core::error::StoreError;
use es_core::store::{Payload, RecordedEvent, ReplayEvent, Timestamp};
use es_core::{EventId, GlobalPosition, Metadata, StreamId, StreamVersion};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::types::Json;
use std::fmt;

use sqlx::{ColumnIndex, Decode, Postgres, Row, Type, TypeInfo, ValueRef};
use uuid::Uuid;

/// Maps a driver error of a read: decoding trouble is corruption of the row
/// at `location`, anything else is the backend's.
pub(crate) fn read_error(error: sqlx::Error, location: impl FnOnce() -> String) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { index, source } => StoreError::Corrupt {
            position: None,
            location: location(),
            detail: format!("column {index} does not decode: {source}"),
        },
        other => StoreError::Backend(Box::new(other)),
    }
}

/// Reads column `index` (a name or a position) of `row`, naming `location`
/// if it does not decode.
pub(crate) fn column<'r, T, I>(
    row: &'r PgRow,
    index: I,
    location: &dyn Fn() -> String,
) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
    I: ColumnIndex<PgRow> + fmt::Debug + Copy,
{
    row.try_get::<T, I>(index).map_err(|error| match error {
        sqlx::Error::ColumnDecode { source, .. } => StoreError::Corrupt {
            position: None,
            location: location(),
            detail: format!("column {index:?} does not decode: {source}"),
        },
        other => StoreError::Backend(Box::new(other)),
    })
}

/// The bytes of column `index` when it came in binary as `type_name` (as
/// the extended protocol sends results) and is not NULL; `None` otherwise,
/// for sqlx's decoding and its errors. Event rows are decoded this way on
/// the hot path: sqlx's typed `try_get` checks and clones the column's type
/// for every value (in a profile of a rebuild, about a third of the CPU
/// spent decoding rows).
fn binary<'r>(row: &'r PgRow, index: usize, type_name: &str) -> Option<&'r [u8]> {
    let value = row.try_get_raw(index).ok()?;
    let fits = value.format() == PgValueFormat::Binary && value.type_info().name() == type_name;
    if fits {
        value.as_bytes().ok()
    } else {
        None
    }
}

/// Column `index` as a `bigint`.
fn int8(row: &PgRow, index: usize, location: &dyn Fn() -> String) -> Result<i64, StoreError> {
    match binary(row, index, "INT8").and_then(|bytes| <[u8; 8]>::try_from(bytes).ok()) {
        Some(bytes) => Ok(i64::from_be_bytes(bytes)),
        None => column(row, index, location),
    }
}

/// Column `index` as `text`.
fn text(row: &PgRow, index: usize, location: &dyn Fn() -> String) -> Result<String, StoreError> {
    match binary(row, index, "TEXT").and_then(|bytes| std::str::from_utf8(bytes).ok()) {
        Some(text) => Ok(text.to_owned()),
        None => column(row, index, location),
    }
}

/// Column `index` as a `uuid`.
fn uuid(row: &PgRow, index: usize, location: &dyn Fn() -> String) -> Result<Uuid, StoreError> {
    match binary(row, index, "UUID").and_then(|bytes| <[u8; 16]>::try_from(bytes).ok()) {
        Some(bytes) => Ok(Uuid::from_bytes(bytes)),
        None => column(row, index, location),
    }
}

/// A stored counter that must be positive (versions, positions).
pub(crate) fn positive(value: i64, what: &str, location: &dyn Fn() -> String) -> Result<u64, StoreError> {
    u64::try_from(value).ok().filter(|v| *v > 0).ok_or_else(|| StoreError::Corrupt {
        position: None,
        location: location(),
        detail: format!("{what} {value} is not positive"),
    })
}

/// A stored schema version, which must fit a `u32`.
pub(crate) fn schema_version(value: i64, location: &dyn Fn() -> String) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        position: None,
        location: location(),
        detail: format!("schema version {value} is out of range"),
    })
}

/// Microseconds between the Unix epoch and Postgres' epoch (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Reads a `timestamptz` column as sent in binary: big-endian microseconds
/// since 2000-01-01 UTC. (Decoded here so es-postgres needs no date crate.)
pub(crate) fn timestamp(
    row: &PgRow,
    index: usize,
    location: &dyn Fn() -> String,
) -> Result<Timestamp, StoreError> {
    let name = index;
    let corrupt = |detail: String| StoreError::Corrupt { location: location(), position: None, detail };
    let value = row.try_get_raw(name).map_err(|e| StoreError::Backend(Box::new(e)))?;
    if value.type_info().name() != "TIMESTAMPTZ" || value.format() != PgValueFormat::Binary {
        return Err(corrupt(format!(
            "column {name} is {} in {:?}, not a binary timestamptz",
            value.type_info().name(),
            value.format()
        )));
    }
    let bytes = value.as_bytes().map_err(|e| corrupt(format!("column {name}: {e}")))?;
    let micros = <[u8; 8]>::try_from(bytes)
        .map(i64::from_be_bytes)
        .map_err(|_| corrupt(format!("column {name} holds {} bytes, not 8", bytes.len())))?;
    Ok(Timestamp(micros.saturating_add(PG_EPOCH_MICROS)))
}

/// Reads the metadata column. Most events carry none (`{}`), which skips
/// serde's (slow) flattening path.
fn metadata(row: &PgRow, index: usize, location: &dyn Fn() -> String) -> Result<Metadata, StoreError> {
    let raw = row.try_get_raw(index).map_err(|e| StoreError::Backend(Box::new(e)))?;
    if raw.format() == PgValueFormat::Binary && raw.as_bytes().is_ok_and(|b| b == b"\x01{}") {
        return Ok(Metadata::default());
    }
    let Json(metadata): Json<Metadata> = column(row, index, location)?;
    Ok(metadata)
}

/// The version byte that starts a `jsonb` value in binary format.
const JSONB_VERSION: u8 = 1;

/// Reads a `jsonb` (or `json`) column as [`Payload`] text: no `Value` tree
/// is built, the aggregate decodes the text into its event directly.
fn payload(row: &PgRow, index: usize, location: &dyn Fn() -> String) -> Result<Payload, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { location: location(), position: None, detail };
    let value = row.try_get_raw(index).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let info = value.type_info();
    let name = info.name();
    let bytes = value.as_bytes().map_err(|e| corrupt(format!("column {index}: {e}")))?;
    let text = match (name, value.format()) {
        ("JSONB", PgValueFormat::Binary) => match bytes.split_first() {
            Some((&JSONB_VERSION, text)) => text,
            _ => return Err(corrupt(format!("column {index} is jsonb of an unknown binary version"))),
        },
        ("JSONB" | "JSON", _) => bytes,
        _ => return Err(corrupt(format!("column {index} is {name}, not jsonb"))),
    };
    let text = std::str::from_utf8(text).map_err(|e| corrupt(format!("column {index} is not UTF-8: {e}")))?;
    Payload::from_json(text).map_err(|e| corrupt(format!("column {index} is not JSON: {e}")))
}

/// The event columns every event read selects, in this order, from the
/// column `first` on (see `read_forward.sql`); a read that spans streams
/// adds the stream's name after them.
const POSITION: usize = 0;
const EVENT_ID: usize = 1;
const VERSION: usize = 2;
const AGGREGATE_TYPE: usize = 3;
const EVENT_TYPE: usize = 4;
const SCHEMA_VERSION: usize = 5;
const PAYLOAD: usize = 6;
const METADATA: usize = 7;
const RECORDED_AT: usize = 8;
const STREAM: usize = 9;

/// Decodes an event row whose columns start at position `first` (columns
/// are read by position: this is the hot path of every load). A read of one
/// `stream` passes it, and its rows leave the name out; a read across
/// streams passes `None`, and its rows carry the name last.
///
/// A row that does not fit an envelope is [`StoreError::Corrupt`] naming its
/// stream, version and global position, with the position also in
/// `position` (so a reader of the global stream can stop there, or go on
/// after it).
pub(crate) fn recorded_event(
    row: &PgRow,
    first: usize,
    stream: Option<&StreamId>,
) -> Result<RecordedEvent, StoreError> {
    let raw_position = int8(row, first + POSITION, &|| "an event row".to_owned())?;
    decode_event(row, first, stream, raw_position).map_err(|error| match error {
        StoreError::Corrupt { location, detail, position: None } => StoreError::Corrupt {
            location,
            detail,
            position: u64::try_from(raw_position).ok().filter(|p| *p > 0).map(GlobalPosition),
        },
        other => other,
    })
}

fn decode_event(
    row: &PgRow,
    first: usize,
    stream: Option<&StreamId>,
    raw_position: i64,
) -> Result<RecordedEvent, StoreError> {
    let at_position = || format!("global position {raw_position}");
    let stream = match stream {
        Some(stream) => stream.clone(),
        None => StreamId::new(text(row, first + STREAM, &at_position)?),
    };
    let raw_version = int8(row, first + VERSION, &at_position)?;
    let location = || format!("stream `{stream}` version {raw_version} (global position {raw_position})");
    let stream_version = StreamVersion(positive(raw_version, "stream version", &location)?);
    let global_position = GlobalPosition(positive(raw_position, "global position", &location)?);
    let event_id = uuid(row, first + EVENT_ID, &location)?;
    let aggregate_type = text(row, first + AGGREGATE_TYPE, &location)?;
    let event_type = text(row, first + EVENT_TYPE, &location)?;
    let schema_version = schema_version(int8(row, first + SCHEMA_VERSION, &location)?, &location)?;
    let payload = payload(row, first + PAYLOAD, &location)?;
    let metadata = metadata(row, first + METADATA, &location)?;
    let recorded_at = timestamp(row, first + RECORDED_AT, &location)?;
    Ok(RecordedEvent {
        event_id: EventId(event_id),
        stream_id: stream,
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

/// Decodes a row of the replay read (version, type, schema version,
/// payload) of `stream`.
pub(crate) fn replay_event(row: &PgRow, stream: &StreamId) -> Result<ReplayEvent, StoreError> {
    let raw_version = int8(row, 0, &|| format!("a row of stream `{stream}`"))?;
    let location = || format!("stream `{stream}` version {raw_version}");
    Ok(ReplayEvent {
        stream_version: StreamVersion(positive(raw_version, "stream version", &location)?),
        event_type: text(row, 1, &location)?,
        schema_version: schema_version(int8(row, 2, &location)?, &location)?,
        payload: payload(row, 3, &location)?,
    })
}
