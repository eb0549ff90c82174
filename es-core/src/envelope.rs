//! Event envelopes: what goes into the store and what comes back out.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::version::{EventId, GlobalPosition, StreamId, StreamVersion};

/// Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a `SystemTime` (saturating at the `i64` range).
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)),
            Err(before) => Self(-i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// As a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_micros(self.0.unsigned_abs())
        }
    }
}

/// An event's JSON, kept as text until something decodes it.
///
/// Stores hand events back as text and the aggregate decodes that text
/// straight into its typed event, with no [`Value`] tree in between: on a
/// long replay that tree (one allocation per field) costs more than reading
/// the rows. [`decode`](Payload::decode) gives a typed value,
/// [`to_value`](Payload::to_value) a tree for code that inspects fields.
///
/// It serializes as the JSON it holds, for serde_json (and the stores);
/// with another serde format, convert it with
/// [`to_value`](Payload::to_value) first.
///
/// Two payloads are equal when they hold the same JSON value, whatever
/// their spacing or key order (Postgres' `jsonb` reorders keys), and a
/// payload equals a [`Value`] the same way:
///
/// ```
/// use es_core::store::Payload;
/// use serde_json::json;
///
/// let stored = Payload::from_json(r#"{"b": 2, "a": 1}"#)?;
/// assert_eq!(stored, json!({ "a": 1, "b": 2 }));
/// assert_eq!(stored.as_str(), r#"{"b": 2, "a": 1}"#);
///
/// #[derive(serde::Deserialize)]
/// struct Pair { a: u32, b: u32 }
/// let pair: Pair = stored.decode()?;
/// assert_eq!((pair.a, pair.b), (1, 2));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// Checks that `text` is one JSON value and keeps it as it is.
    ///
    /// # Errors
    /// serde's error, naming line and column, if it is not.
    pub fn from_json(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.into()).map(Self)
    }

    /// Serializes `value` (an event, usually).
    ///
    /// # Errors
    /// serde's error if `value` does not serialize to JSON (a map with
    /// non-string keys, a failing `Serialize` impl).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Decodes the JSON into `T`.
    ///
    /// # Errors
    /// serde's error if the JSON does not fit `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// Whether a string in the JSON holds a NUL character (`\u0000`),
    /// which Postgres cannot store in JSONB.
    pub fn contains_nul(&self) -> bool {
        // The text is valid JSON: a backslash only occurs in a string, as
        // the start of an escape.
        let bytes = self.as_str().as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'\\' {
                i += 1;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            i += if bytes.get(i + 1) == Some(&b'u') { 6 } else { 2 };
        }
        false
    }

    /// The JSON as a [`Value`] tree.
    ///
    /// # Errors
    /// serde's error for a number `Value` cannot hold (such as `1e400`).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        self.decode()
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::from(&value)
    }
}

impl From<&Value> for Payload {
    fn from(value: &Value) -> Self {
        // A `Value` always serializes: its keys are strings and its numbers
        // finite. Its `Display` is that serialization.
        match RawValue::from_string(value.to_string()) {
            Ok(raw) => Self(raw),
            Err(_) => unreachable!("a serde_json::Value always serializes to valid JSON"),
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
            || matches!((self.to_value(), other.to_value()), (Ok(a), Ok(b)) if a == b)
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.to_value().is_ok_and(|value| value == *other)
    }
}

impl PartialEq<Payload> for Value {
    fn eq(&self, other: &Payload) -> bool {
        other == self
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON text.
impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What travels with an event besides its payload: where it came from and
/// any fields the application adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Ties together every message of one business transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The message (command or event) that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Application fields (user id, tenant, request id, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty", flatten)]
    pub fields: Map<String, Value>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Adds an application field.
    #[must_use]
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none() && self.causation_id.is_none() && self.fields.is_empty()
    }
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Unique id; an exact retry with the same ids is idempotent.
    pub event_id: EventId,
    /// The aggregate type the stream belongs to (such as `account`).
    pub aggregate_type: String,
    /// The event's type name (such as `MoneyDeposited`).
    pub event_type: String,
    /// The schema version of `payload`.
    pub schema_version: u32,
    /// The event itself, as JSON.
    pub payload: Payload,
    /// Correlation, causation and application fields.
    pub metadata: Metadata,
}

impl NewEvent {
    /// A new event with a fresh UUID v7 and empty metadata.
    pub fn new(
        aggregate_type: impl Into<String>,
        event_type: impl Into<String>,
        schema_version: u32,
        payload: impl Into<Payload>,
    ) -> Self {
        Self {
            event_id: EventId::new(),
            aggregate_type: aggregate_type.into(),
            event_type: event_type.into(),
            schema_version,
            payload: payload.into(),
            metadata: Metadata::default(),
        }
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the event id.
    #[must_use]
    pub fn with_event_id(mut self, event_id: EventId) -> Self {
        self.event_id = event_id;
        self
    }
}

/// An event as stored: the new event plus where and when it landed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Unique id (UUID v7).
    pub event_id: EventId,
    /// The stream the event belongs to.
    pub stream_id: StreamId,
    /// The aggregate type of the stream.
    pub aggregate_type: String,
    /// 1-based, gap-free version within the stream.
    pub stream_version: StreamVersion,
    /// Position in the global stream.
    pub global_position: GlobalPosition,
    /// The event's type name.
    pub event_type: String,
    /// The schema version the payload was written with.
    pub schema_version: u32,
    /// The event as JSON.
    pub payload: Payload,
    /// Correlation, causation and application fields.
    pub metadata: Metadata,
    /// When the store recorded it.
    pub recorded_at: Timestamp,
}

/// What rebuilding an aggregate needs of a stored event: its version, type
/// and payload. [`EventStore::read_replay`](crate::store::EventStore::read_replay)
/// returns these, so an adapter can leave out what replay never looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayEvent {
    /// 1-based, gap-free version within the stream.
    pub stream_version: StreamVersion,
    /// The event's type name.
    pub event_type: String,
    /// The schema version the payload was written with.
    pub schema_version: u32,
    /// The event as JSON.
    pub payload: Payload,
}

impl From<&RecordedEvent> for ReplayEvent {
    fn from(event: &RecordedEvent) -> Self {
        Self {
            stream_version: event.stream_version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            payload: event.payload.clone(),
        }
    }
}

impl From<RecordedEvent> for ReplayEvent {
    fn from(event: RecordedEvent) -> Self {
        Self {
            stream_version: event.stream_version,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
        }
    }
}

/// Where one appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The event's id.
    pub event_id: EventId,
    /// Its version in the stream.
    pub stream_version: StreamVersion,
    /// Its position in the global stream.
    pub global_position: GlobalPosition,
}

/// The result of a successful append.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// The stream's version after the append (`None` only for an empty
    /// append to a stream that does not exist).
    pub stream_version: Option<StreamVersion>,
    /// One entry per appended event, in order. For an exact retry of an
    /// append that already committed, the original versions and positions.
    pub committed: Vec<Committed>,
}

impl AppendOutcome {
    /// The global position of the last appended event.
    pub fn last_position(&self) -> Option<GlobalPosition> {
        self.committed.last().map(|c| c.global_position)
    }
}

/// A saved aggregate state: the fold of a stream up to `stream_version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The stream the state was folded from.
    pub stream_id: StreamId,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The version of the last event folded into `state`.
    pub stream_version: StreamVersion,
    /// The aggregate's snapshot schema version when it was taken; a snapshot
    /// of another version is ignored on load.
    pub schema_version: u32,
    /// The state, as JSON.
    pub state: Value,
    /// When it was taken.
    pub taken_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_through_system_time() {
        let t = Timestamp(1_700_000_000_123_456);
        assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
        let before = Timestamp(-5);
        assert_eq!(Timestamp::from_system_time(before.to_system_time()), before);
    }

    #[test]
    fn metadata_serializes_user_fields_flat() {
        let m = Metadata::new().with_field("user", "ada");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json, serde_json::json!({"user": "ada"}));
        let back: Metadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }
}
