//! What the inspector shows, as JSON: the shapes its endpoints answer with,
//! which other tools (a command line, an application's own API) reuse.

use es_core::store::RecordedEvent;
use serde::{Deserialize, Serialize};

/// One stored event, as a person reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Its position in the global stream.
    pub position: u64,
    /// Its stream.
    pub stream_id: String,
    /// Its version in that stream (from 1).
    pub version: u64,
    /// The aggregate type that wrote it.
    pub aggregate_type: String,
    /// Its type name.
    pub event_type: String,
    /// The schema version it was written with.
    pub schema_version: u32,
    /// Its id.
    pub event_id: String,
    /// When it was recorded, in microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// Its payload, as stored.
    pub payload: serde_json::Value,
    /// Its metadata: correlation, causation, user fields.
    pub metadata: serde_json::Value,
}

impl From<&RecordedEvent> for EventView {
    fn from(event: &RecordedEvent) -> Self {
        Self {
            position: event.global_position.get(),
            stream_id: event.stream_id.to_string(),
            version: event.stream_version.get(),
            aggregate_type: event.aggregate_type.clone(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            event_id: event.event_id.to_string(),
            recorded_at_micros: event.recorded_at.as_micros(),
            // A stored payload is one JSON value (checked on append); its text
            // stands in should it ever not parse.
            payload: event
                .payload
                .to_value()
                .unwrap_or_else(|_| serde_json::Value::String(event.payload.to_string())),
            metadata: serde_json::to_value(&event.metadata).unwrap_or(serde_json::Value::Null),
        }
    }
}
