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
use es_core::store::EventStore;
use es_core::GlobalPosition;
use serde::Deserialize;

use crate::error::InspectorError;
use crate::extract::Query;
use crate::inspect::Inspector;
use crate::view::EventView;

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
                        write_event(&mut chunk, &EventView::from(event));
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

/// One SSE event for `event`: its position as the id, its JSON as data.
fn write_event(chunk: &mut String, event: &EventView) {
    match serde_json::to_string(event) {
        Ok(json) => {
            let _ = writeln!(chunk, "id: {}", event.position);
            // serde_json writes no raw newlines; data_lines keeps it so anyway.
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
    use super::data_lines;

    #[test]
    fn every_line_of_a_message_is_a_data_line_and_an_empty_line_ends_it() {
        let mut chunk = String::new();
        data_lines(&mut chunk, "connection lost\r\nretrying\revent: x\nnow");
        assert_eq!(chunk, "data: connection lost\ndata: retrying\ndata: event: x\ndata: now\n\n");
    }
}
