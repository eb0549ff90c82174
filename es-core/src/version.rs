//! Identities and counters: the newtypes every port speaks in.
//!
//! Each meaningful number or name gets its own type, so a stream version can
//! never be passed where a global position is expected.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The name of one event stream, such as `account-42`.
///
/// Streams written by the runtime are named `{aggregate name}-{aggregate id}`
/// (see [`StreamId::for_aggregate`]); other streams may use any name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// Wraps a stream name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The stream of one aggregate instance: `{aggregate_type}-{id}`.
    pub fn for_aggregate(aggregate_type: &str, id: &str) -> Self {
        let mut name = String::with_capacity(aggregate_type.len() + 1 + id.len());
        name.push_str(aggregate_type);
        name.push('-');
        name.push_str(id);
        Self(name)
    }

    /// The stream name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StreamId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for StreamId {
    fn from(name: String) -> Self {
        Self(name)
    }
}

/// The 1-based position of an event within its stream. Versions are gap-free:
/// the first event of a stream is version 1, the next 2, and so on.
///
/// No stored event has version 0: every adapter refuses to store one and
/// reports a stored row with version 0 as corrupt. `StreamVersion(0)` still
/// has one meaning where a version describes a stream rather than an event:
/// the stream before its first event. So
/// `ExpectedVersion::Exact(StreamVersion(0))` expects no stream, exactly as
/// [`ExpectedVersion::NoStream`] does, and `load_at(id, StreamVersion(0))`
/// is the state before any event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamVersion(pub u64);

impl StreamVersion {
    /// The version of a stream's first event.
    pub const FIRST: StreamVersion = StreamVersion(1);

    /// The version after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// The raw number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The position of an event in the global stream of all events. Positions
/// strictly increase in commit order as readers see them; they start at 1.
/// Positions may have holes (a rolled-back append), never duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GlobalPosition(pub u64);

impl GlobalPosition {
    /// The position before the first event: read or subscribe "from the start".
    pub const START: GlobalPosition = GlobalPosition(0);

    /// The raw number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for GlobalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The unique id of one event, a UUID v7 (time ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A fresh UUID v7.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an append expects of the stream it writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must exist (hold at least one event).
    StreamExists,
    /// The stream's last event must have exactly this version.
    /// `Exact(StreamVersion(0))` means the stream must not exist yet (no
    /// event has version 0), the same as [`NoStream`](ExpectedVersion::NoStream).
    Exact(StreamVersion),
}

impl ExpectedVersion {
    /// The expectation that matches a stream currently at `version`
    /// (`None`: the stream does not exist).
    pub fn from_current(version: Option<StreamVersion>) -> Self {
        match version {
            None => Self::NoStream,
            Some(v) => Self::Exact(v),
        }
    }

    /// Whether a stream at `actual` satisfies this expectation.
    pub fn accepts(self, actual: Option<StreamVersion>) -> bool {
        match (self, actual) {
            (Self::Any, _) => true,
            (Self::NoStream, None) => true,
            (Self::StreamExists, Some(_)) => true,
            (Self::Exact(want), Some(have)) => want == have,
            (Self::Exact(want), None) => want.get() == 0,
            _ => false,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("an existing stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_version_accepts_only_matching_states() {
        let v3 = Some(StreamVersion(3));
        assert!(ExpectedVersion::Any.accepts(None));
        assert!(ExpectedVersion::Any.accepts(v3));
        assert!(ExpectedVersion::NoStream.accepts(None));
        assert!(!ExpectedVersion::NoStream.accepts(v3));
        assert!(ExpectedVersion::StreamExists.accepts(v3));
        assert!(!ExpectedVersion::StreamExists.accepts(None));
        assert!(ExpectedVersion::Exact(StreamVersion(3)).accepts(v3));
        assert!(!ExpectedVersion::Exact(StreamVersion(2)).accepts(v3));
        assert!(!ExpectedVersion::Exact(StreamVersion(1)).accepts(None));
        assert!(
            ExpectedVersion::Exact(StreamVersion(0)).accepts(None),
            "version 0 is the stream before its first event"
        );
        assert!(!ExpectedVersion::Exact(StreamVersion(0)).accepts(v3));
    }

    #[test]
    fn aggregate_streams_are_named_type_dash_id() {
        assert_eq!(StreamId::for_aggregate("account", "42").as_str(), "account-42");
    }
}
