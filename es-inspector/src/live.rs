//! The live global log: server-sent events, written a batch at a time.
//!
//! Each stored event is one SSE event (`id`: its position, `data`: its
//! JSON), as an `EventSource` expects; the events of one read (up to
//! [`LIVE_BATCH`]) go out in one body chunk, and after a chunk that
//! emptied the backlog the feed lets [`LINGER`] pass before it reads
//! again (after a full one it reads on at once), so a busy store
//! costs the service a few writes a second rather than one per event (a
//! person watching sees no difference). A store error
//! ends the stream with an `error` event. While nothing happens, a comment
//! line every [`KEEP_ALIVE`] keeps proxies from closing the connection.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use es_core::store::{EventStore, Payload, RecordedEvent};
use es_core::{EventId, GlobalPosition, Metadata};
use serde::{Deserialize, Serialize};

use crate::error::InspectorError;
use crate::extract::Query;
use crate::inspect::Inspector;

/// The most events one read (and one chunk) carries.
const LIVE_BATCH: usize = 100;
/// How long the feed lets pass after a chunk of events before it reads
/// again, so that events arriving meanwhile go out together.
const LINGER: Duration = Duration::from_millis(50);
/// How long the feed waits for new events before writing a keep-alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    after: Option<u64>,
}

/// Where the feed is: the position it has sent up to, or ended.
struct Feed {
    store: Arc<dyn EventStore>,
    after: GlobalPosition,
    ended: bool,
    /// When the last chunk of events went out.
    sent: Option<tokio::time::Instant>,
}

/// `GET /api/log/live?after=`: the global log after `after` (default: the
/// head) as it commits. An `EventSource` that reconnects sends the id of
/// the last event it got as `Last-Event-ID`; the feed resumes after it
/// (it wins over `after`, which the reconnecting page repeats), so a
/// dropped connection neither loses nor repeats events.
pub(crate) async fn live(
    State(inspector): State<Inspector>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> Result<Response, InspectorError> {
    let store = Arc::clone(inspector.es().event_store());
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => {
            Some(value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
                InspectorError::BadRequest("the Last-Event-ID header is not a position".to_owned())
            })?)
        }
    };
    let after = match resume.or(query.after) {
        Some(after) => GlobalPosition(after),
        None => store.head_position().await?,
    };
    let chunks = futures_util::stream::unfold(
        Feed { store, after, ended: false, sent: None },
        |mut feed| async move {
            if feed.ended {
                return None;
            }
            let chunk = feed.next_chunk().await;
            Some((Ok::<_, Infallible>(Bytes::from(chunk)), feed))
        },
    );
    let headers = [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")];
    Ok((headers, Body::from_stream(chunks)).into_response())
}

impl Feed {
    /// The next chunk to send: the next events, a keep-alive comment after
    /// a quiet [`KEEP_ALIVE`], or the error that ends the feed.
    async fn next_chunk(&mut self) -> String {
        if let Some(sent) = self.sent.take() {
            tokio::time::sleep_until(sent + LINGER).await;
        }
        let quiet_until = tokio::time::Instant::now() + KEEP_ALIVE;
        loop {
            match self.store.read_all(self.after, LIVE_BATCH).await {
                Ok(events) if events.is_empty() => {
                    let now = tokio::time::Instant::now();
                    if now >= quiet_until {
                        return ": keep-alive\n\n".to_owned();
                    }
                    self.store.wait_for_events(self.after, quiet_until - now).await;
                }
                Ok(events) => {
                    let mut chunk = String::new();
                    for event in &events {
                        write_event(&mut chunk, event);
                    }
                    if let Some(last) = events.last() {
                        self.after = last.global_position;
                    }
                    // A full read means more are waiting: no lingering then,
                    // or a busy store would leave the feed ever further behind.
                    self.sent = (events.len() < LIVE_BATCH).then(tokio::time::Instant::now);
                    return chunk;
                }
                Err(error) => {
                    self.ended = true;
                    let mut chunk = String::from("event: error\n");
                    data_lines(&mut chunk, &error.to_string());
                    return chunk;
                }
            }
        }
    }
}

/// An [`EventView`](crate::view::EventView) of a stored event, borrowed:
/// the same JSON (a test holds them equal), written without copying the
/// event's strings or parsing its payload, as the feed writes every event
/// a busy store takes.
#[derive(Serialize)]
struct LiveEvent<'a> {
    position: u64,
    stream_id: &'a str,
    version: u64,
    aggregate_type: &'a str,
    event_type: &'a str,
    schema_version: u32,
    event_id: EventId,
    recorded_at_micros: i64,
    payload: &'a Payload,
    metadata: &'a Metadata,
}

impl<'a> From<&'a RecordedEvent> for LiveEvent<'a> {
    fn from(event: &'a RecordedEvent) -> Self {
        Self {
            position: event.global_position.get(),
            stream_id: event.stream_id.as_str(),
            version: event.stream_version.get(),
            aggregate_type: &event.aggregate_type,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            event_id: event.event_id,
            recorded_at_micros: event.recorded_at.as_micros(),
            payload: &event.payload,
            metadata: &event.metadata,
        }
    }
}

/// One SSE event for `event`: its position as the id, its JSON (an
/// [`EventView`](crate::view::EventView)) as data.
fn write_event(chunk: &mut String, event: &RecordedEvent) {
    match serde_json::to_string(&LiveEvent::from(event)) {
        Ok(json) => {
            let _ = writeln!(chunk, "id: {}", event.global_position.get());
            // A payload stored with line breaks keeps them (it is written as
            // stored): data_lines makes each line a `data:` line.
            data_lines(chunk, &json);
        }
        Err(_) => chunk.push_str("event: error\ndata: an event did not serialize\n\n"),
    }
}

/// `text` as `data:` lines (one per line of it, whichever of CRLF, LF or
/// CR ends it, as SSE parsers split), ending the SSE event.
fn data_lines(chunk: &mut String, text: &str) {
    for line in text.split("\r\n").flat_map(|part| part.split(['\r', '\n'])) {
        chunk.push_str("data: ");
        chunk.push_str(line);
        chunk.push('\n');
    }
    chunk.push('\n');
}

#[cfg(test)]
mod tests {
    use es_core::store::{Payload, RecordedEvent, Timestamp};
    use es_core::{EventId, GlobalPosition, Metadata, StreamId, StreamVersion};

    use super::{data_lines, write_event};
    use crate::view::EventView;

    #[test]
    fn the_feed_writes_an_event_as_the_event_view_of_it() {
        let event = RecordedEvent {
            global_position: GlobalPosition(42),
            stream_id: StreamId::new("account-ada"),
            stream_version: StreamVersion(3),
            aggregate_type: "account".into(),
            event_type: "MoneyDeposited".into(),
            schema_version: 2,
            event_id: EventId::new(),
            recorded_at: Timestamp::now(),
            payload: Payload::from_json("{\"amount\":\n 7, \"note\": \"a\\nb\"}").unwrap(),
            metadata: Metadata::new().with_field("user", "ada"),
        };
        let mut chunk = String::new();
        write_event(&mut chunk, &event);
        let (id, data) = chunk.split_once('\n').unwrap();
        assert_eq!(id, "id: 42");
        // A payload stored with a line break spans two data lines, which an
        // EventSource joins with one.
        let json: String =
            data.lines().filter_map(|l| l.strip_prefix("data: ")).collect::<Vec<_>>().join("\n");
        let written: EventView = serde_json::from_str(&json).unwrap();
        assert_eq!(written, EventView::from(&event));
        assert!(chunk.ends_with("\n\n"));
    }

    #[test]
    fn every_line_of_a_message_is_a_data_line_and_an_empty_line_ends_it() {
        let mut chunk = String::new();
        data_lines(&mut chunk, "connection lost\r\nretrying\revent: x\nnow");
        assert_eq!(chunk, "data: connection lost\ndata: retrying\ndata: event: x\ndata: now\n\n");
    }
}
