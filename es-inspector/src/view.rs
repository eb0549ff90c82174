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

/// One stream, as the stream list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamView {
    /// Its name.
    pub stream_id: String,
    /// The version of its last event.
    pub version: u64,
}

/// An aggregate's state after some version (time travel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateView {
    /// The stream.
    pub stream_id: String,
    /// The aggregate type it was folded as.
    pub aggregate: String,
    /// The version of the last event folded in (`None`: none).
    pub version: Option<u64>,
    /// The stream's newest version, for a slider's end.
    pub head: Option<u64>,
    /// The state, as the aggregate serializes it.
    pub state: serde_json::Value,
}

/// One subscription of the read side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// Its registered name.
    pub name: String,
    /// `Handler` or `Projection`.
    pub kind: String,
    /// `Eventual` or `Strong`.
    pub consistency: String,
    /// `Stopped`, `Standby`, `Running`, `CaughtUp` or `Failed`.
    pub state: String,
    /// Every event up to this position is handled.
    pub position: u64,
    /// `position` as a person reads it (the store's own notation: on
    /// Postgres `transaction:index`).
    pub position_label: String,
    /// The last committed checkpoint, if any.
    pub checkpoint: Option<u64>,
    /// The head of the global stream.
    pub head: u64,
    /// `head` as a person reads it.
    pub head_label: String,
    /// Events it has read and not handled yet (a lower bound when its last
    /// read filled a batch; 0 while it does not run on this node).
    pub lag_events: u64,
    /// Age of the oldest event not handled yet, in seconds (0 when caught up).
    pub lag_seconds: f64,
    /// Why it stopped, when it failed.
    pub error: Option<String>,
    /// The event it stopped at, when it failed.
    pub failed_event: Option<FailedEvent>,
    /// What holds it back, when a running transaction hides events from it.
    pub held_back_by: Option<String>,
    /// The last rebuild started from this inspector, if any.
    pub rebuild: Option<RebuildProgress>,
}

/// The event a subscription stopped at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedEvent {
    /// Its global position.
    pub position: u64,
    /// Its id (`None` for a failed commit).
    pub event_id: Option<String>,
    /// Its type (`None` for a failed commit).
    pub event_type: Option<String>,
    /// How many times it was tried.
    pub attempts: u32,
}

/// How far a rebuild has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildProgress {
    /// The head when the rebuild started: the rebuild is done once the
    /// subscription reached it.
    pub target: u64,
    /// Where the subscription stands.
    pub position: u64,
    /// Whether it reached the target.
    pub done: bool,
}
