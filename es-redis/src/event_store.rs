//! The Redis event store: the global log as a Redis stream, appends as one
//! server-side script.

mod entry;
mod outcome;
mod wakeup;

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{AppendError, BoxError, StoreError};
use es_core::store::{
    check_storable, classify_stored, AppendOutcome, Committed, Direction, EventStore, ExpectedVersion,
    NewEvent, RecordedEvent, StreamSummary,
};
use es_core::{EventId, GlobalPosition, StreamId, StreamVersion};
use redis::{Script, Value};

use crate::connection::{Bounded, RedisConnection};
use crate::namespace::RedisNamespace;
pub(crate) use entry::{recorded_event, Expected};
use wakeup::Wakeups;

static APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("event_store/append.lua")));
static READ_STREAM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("event_store/read_stream.lua")));

/// An [`EventStore`] (and [`SnapshotStore`](es_core::store::SnapshotStore)) on
/// Redis, keeping its keys under one [`RedisNamespace`].
///
/// Appends run as one Lua script on the server, which Redis runs alone: the
/// expectation check, the event-id check and the writes happen as one step,
/// and global positions come from one counter (`INCR`-like, inside the
/// script) in the order readers see them, so the global order is gap-free
/// and an event is readable the moment its append returns. Readers of the
/// global stream wake by a blocking `XREAD` (see
/// [`wait_for_events`](EventStore::wait_for_events)) on a connection of the
/// store's own.
///
/// Cheap to clone; clones share the connection and the wake-up reader.
/// See the [crate docs](crate) for the keys, and for what Redis keeps on
/// disk (maybe nothing).
#[derive(Clone)]
pub struct RedisEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConnection,
    namespace: RedisNamespace,
    events: String,
    position: String,
    ids: String,
    streams: String,
    wakeups: Arc<Wakeups>,
}

impl fmt::Debug for RedisEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEventStore").field("namespace", &self.inner.namespace).finish_non_exhaustive()
    }
}

fn store_backend(error: impl Into<BoxError>) -> StoreError {
    StoreError::Backend(error.into())
}

/// A reply of a shape the scripts never send.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from Redis to {command}: {reply}")]
pub(crate) struct UnexpectedReply {
    command: &'static str,
    reply: String,
}

impl UnexpectedReply {
    pub(crate) fn new(command: &'static str, reply: &Value) -> Self {
        let mut reply = format!("{reply:?}");
        if reply.len() > 200 {
            let mut end = 200;
            while !reply.is_char_boundary(end) {
                end -= 1;
            }
            reply.truncate(end);
            reply.push_str("...");
        }
        Self { command, reply }
    }
}

/// A count as a Redis argument (`COUNT`, list indexes): at most `i64::MAX`.
pub(crate) fn count_arg(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The words `append.lua` reads for an expectation.
fn expectation_args(expected: ExpectedVersion) -> (&'static str, u64) {
    match expected {
        ExpectedVersion::Any => ("any", 0),
        ExpectedVersion::NoStream => ("none", 0),
        ExpectedVersion::StreamExists => ("exists", 0),
        ExpectedVersion::Exact(version) => ("exact", version.get()),
    }
}

fn version_of(count: i64) -> Option<StreamVersion> {
    u64::try_from(count).ok().filter(|v| *v > 0).map(StreamVersion)
}

impl RedisEventStore {
    /// A store keeping its keys under `namespace` on `redis`.
    pub fn new(redis: RedisConnection, namespace: RedisNamespace) -> Self {
        let inner = Inner {
            events: namespace.events(),
            position: namespace.position(),
            ids: namespace.ids(),
            streams: namespace.streams(),
            wakeups: Arc::new(Wakeups::new()),
            redis,
            namespace,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The namespace the store's keys live under.
    pub fn namespace(&self) -> &RedisNamespace {
        &self.inner.namespace
    }

    /// The connection the store runs on.
    pub fn connection(&self) -> &RedisConnection {
        &self.inner.redis
    }

    pub(crate) fn conn(&self) -> Bounded {
        self.inner.redis.bounded()
    }

    /// Runs the append script and turns its reply into an outcome.
    async fn run_append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, AppendError> {
        let backend = |source: BoxError| AppendError::Backend { stream: stream.clone(), source };
        let (kind, exact) = expectation_args(expected);
        let mut invocation = APPEND.prepare_invoke();
        invocation
            .key(&self.inner.events)
            .key(&self.inner.position)
            .key(&self.inner.ids)
            .key(self.inner.namespace.stream(stream.as_str()))
            .key(&self.inner.streams)
            .arg(stream.as_str())
            .arg(kind)
            .arg(exact)
            .arg(events.len());
        for event in events {
            let metadata = if event.metadata.is_empty() {
                "{}".to_owned()
            } else {
                serde_json::to_string(&event.metadata).map_err(|e| backend(Box::new(e)))?
            };
            invocation
                .arg(event.event_id.to_string())
                .arg(&event.aggregate_type)
                .arg(&event.event_type)
                .arg(event.schema_version)
                .arg(event.payload.as_str())
                .arg(metadata);
        }
        let reply: Value =
            invocation.invoke_async(&mut self.conn()).await.map_err(|e| outcome::call_failed(stream, e))?;
        // A reply the script never sends: it ran, and what it did is unknown.
        let unexpected = |reply: &Value| AppendError::OutcomeUnknown {
            stream: stream.clone(),
            source: Box::new(UnexpectedReply::new("the append script", reply)),
        };
        // The script wrote nothing when it replied "taken".
        let refused = |reply: &Value| backend(Box::new(UnexpectedReply::new("the append script", reply)));
        let Value::Array(parts) = &reply else { return Err(unexpected(&reply)) };
        let (Some(Value::BulkString(word)), Some(&Value::Int(version))) = (parts.first(), parts.get(1))
        else {
            return Err(unexpected(&reply));
        };
        let current = version_of(version);
        match (word.as_slice(), &parts[2..]) {
            (b"ok", [Value::Int(first), Value::Int(_at)]) => {
                let first = u64::try_from(*first).map_err(|_| unexpected(&reply))?;
                let stream_version = version.unsigned_abs();
                let n = events.len() as u64;
                let committed = events
                    .iter()
                    .zip(0..)
                    .map(|(event, i)| Committed {
                        event_id: event.event_id,
                        stream_version: StreamVersion(stream_version - n + 1 + i),
                        global_position: GlobalPosition(first + i),
                    })
                    .collect::<Vec<_>>();
                if let Some(last) = committed.last() {
                    self.inner.wakeups.publish(last.global_position);
                }
                Ok(AppendOutcome { stream_version: current, committed })
            }
            (b"wrong", []) => {
                Err(AppendError::WrongExpectedVersion { stream: stream.clone(), expected, actual: current })
            }
            (b"taken", stored) if stored.len() == events.len() => {
                let mut found = Vec::with_capacity(stored.len());
                for (entry, event) in stored.iter().zip(events) {
                    match entry {
                        Value::Nil => {}
                        Value::BulkString(word) if word == b"missing" => {
                            return Err(backend(
                                format!(
                                    "event id {} is indexed in {} at a position with no entry in {}",
                                    event.event_id, self.inner.ids, self.inner.events
                                )
                                .into(),
                            ));
                        }
                        entry => {
                            let recorded = recorded_event(entry.clone(), &Expected::default())
                                .map_err(|e| backend(Box::new(e)))?;
                            found.push(recorded);
                        }
                    }
                }
                match classify_stored(stream, expected, events, &found)? {
                    Some(committed) => Ok(AppendOutcome { stream_version: current, committed }),
                    // The script found a stored id; the classifier must too.
                    None => Err(refused(&reply)),
                }
            }
            _ => Err(unexpected(&reply)),
        }
    }
}

#[async_trait]
impl EventStore for RedisEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        check_storable(stream, &events)?;
        self.run_append(stream, expected, &events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let direction = match direction {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        };
        let reply: Value = READ_STREAM
            .key(self.inner.namespace.stream(stream.as_str()))
            .key(&self.inner.events)
            .arg(direction)
            .arg(from.get())
            .arg(count_arg(limit))
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_backend)?;
        let Value::Array(parts) = reply else {
            return Err(store_backend(UnexpectedReply::new("the read script", &reply)));
        };
        if parts.len() % 3 != 0 {
            return Err(store_backend(UnexpectedReply::new("the read script", &Value::Array(parts))));
        }
        let mut events = Vec::with_capacity(parts.len() / 3);
        let mut parts = parts.into_iter();
        while let (Some(version), Some(position), Some(entry)) = (parts.next(), parts.next(), parts.next()) {
            let Value::Int(version) = version else {
                return Err(store_backend(UnexpectedReply::new("the read script", &version)));
            };
            let mut at = Expected {
                stream: Some(stream),
                version: version_of(version).map(StreamVersion::get),
                position: None,
            };
            let position = match &position {
                Value::BulkString(raw) => std::str::from_utf8(raw).ok().and_then(|p| p.parse::<u64>().ok()),
                Value::Int(p) => u64::try_from(*p).ok(),
                _ => None,
            }
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                at.corrupt(format!("the stream's index holds {position:?}, not a global position"))
            })?;
            at.position = Some(position);
            if entry == Value::Nil {
                return Err(at.corrupt("the stream's index points at no event of the global log"));
            }
            events.push(recorded_event(entry, &at)?);
        }
        Ok(events)
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let reply: Value = redis::cmd("XRANGE")
            .arg(&self.inner.events)
            .arg(format!("({after}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(count_arg(limit))
            .query_async(&mut self.conn())
            .await
            .map_err(store_backend)?;
        let Value::Array(entries) = reply else {
            return Err(store_backend(UnexpectedReply::new("XRANGE", &reply)));
        };
        // A page stops at an entry that cannot become an envelope: the
        // events before it are delivered, and the read that starts at it
        // gets the typed error (which names its position, so a reader can
        // skip it deliberately).
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            match recorded_event(entry, &Expected::default()) {
                Ok(event) => events.push(event),
                Err(StoreError::Corrupt { .. }) if !events.is_empty() => break,
                Err(error) => return Err(error),
            }
        }
        Ok(events)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<StreamVersion>, StoreError> {
        let count: i64 = redis::cmd("LLEN")
            .arg(self.inner.namespace.stream(stream.as_str()))
            .query_async(&mut self.conn())
            .await
            .map_err(store_backend)?;
        Ok(version_of(count))
    }

    async fn events_by_id(&self, ids: &[EventId]) -> Result<Vec<RecordedEvent>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut lookup = redis::cmd("HMGET");
        lookup.arg(&self.inner.ids);
        for id in ids {
            lookup.arg(id.to_string());
        }
        let positions: Vec<Option<u64>> =
            lookup.query_async(&mut self.conn()).await.map_err(store_backend)?;
        let mut pipe = redis::pipe();
        for position in positions.iter().flatten() {
            pipe.cmd("XRANGE")
                .arg(&self.inner.events)
                .arg(format!("{position}-0"))
                .arg(format!("{position}-0"));
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn()).await.map_err(store_backend)?;
        let mut events = Vec::with_capacity(replies.len());
        for (reply, position) in replies.into_iter().zip(positions.iter().flatten()) {
            let at = Expected { position: Some(*position), ..Expected::default() };
            match reply {
                Value::Array(mut entries) if entries.len() == 1 => {
                    events.push(recorded_event(entries.remove(0), &at)?);
                }
                _ => return Err(at.corrupt("an indexed event id points at no event of the global log")),
            }
        }
        Ok(events)
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Ids sort by bytes, so those with the prefix are contiguous from
        // the prefix on: the first id without it ends the list.
        let start = match after {
            Some(after) if after.as_str() >= prefix => format!("({after}"),
            _ => format!("[{prefix}"),
        };
        let ids: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(&self.inner.streams)
            .arg(start)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(count_arg(limit))
            .query_async(&mut self.conn())
            .await
            .map_err(store_backend)?;
        let ids: Vec<String> = ids.into_iter().take_while(|id| id.starts_with(prefix)).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut lengths = redis::pipe();
        for id in &ids {
            lengths.cmd("LLEN").arg(self.inner.namespace.stream(id));
        }
        let versions: Vec<i64> = lengths.query_async(&mut self.conn()).await.map_err(store_backend)?;
        Ok(ids
            .into_iter()
            .zip(versions)
            .filter_map(|(id, count)| version_of(count).map(|v| StreamSummary::new(StreamId::new(id), v)))
            .collect())
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        let head: Option<u64> = redis::cmd("GET")
            .arg(&self.inner.position)
            .query_async(&mut self.conn())
            .await
            .map_err(store_backend)?;
        let head = GlobalPosition(head.unwrap_or(0));
        self.inner.wakeups.publish(head);
        Ok(head)
    }

    async fn wait_for_events(&self, after: GlobalPosition, max_wait: Duration) {
        let inner = &self.inner;
        inner.wakeups.wait(&inner.redis, &inner.events, &inner.position, after, max_wait).await;
    }
}
