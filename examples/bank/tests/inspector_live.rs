//! The inspector's live log over HTTP: server-sent events an `EventSource`
//! reads, one per stored event with its position as the id, history after
//! `after` first, then each new event as it commits.

// Helpers outside `#[test]` fns: a malformed feed must fail the test.
#![allow(clippy::expect_used)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request};
use bank::http::ServiceConfig;
use http_body_util::BodyExt;
use serde_json::Value;
use support::{memory_bank, send, verified_account};
use tower::ServiceExt;

/// The SSE events in `text` (complete ones only): (id, event name, data).
fn parse(text: &str) -> Vec<(Option<u64>, Option<String>, String)> {
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.is_empty() && !b.starts_with(':')) {
        let (mut id, mut name, mut data) = (None, None, Vec::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().expect("a numeric id"));
            } else if let Some(v) = line.strip_prefix("event: ") {
                name = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v);
            }
        }
        events.push((id, name, data.join("\n")));
    }
    events
}

#[tokio::test]
async fn the_live_log_sends_history_then_each_new_event_as_one_sse_event() {
    let es = memory_bank().await;
    let app =
        bank::http::router(es.clone(), ServiceConfig::default().inspector(bank::http::inspector(es.clone())));
    verified_account(&app, "ada", 700).await;

    let request = Request::get("/inspector/api/log/live?after=0").body(Body::empty()).expect("a request");
    let response = app.clone().oneshot(request).await.expect("the router answers");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body();
    let mut text = String::new();
    let mut deposited = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Ada's three events, then (after a deposit made while listening) a fourth.
    while parse(&text).len() < 4 {
        if parse(&text).len() == 3 && !deposited {
            let deposit = serde_json::json!({"amount": 5});
            send(&app, Method::POST, "/accounts/ada/deposits", Some(deposit), &[]).await.ok(200);
            deposited = true;
        }
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("the feed keeps up");
        let frame = frame.expect("the feed goes on").expect("a frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
        }
    }
    let events = parse(&text);
    assert_eq!(events.len(), 4, "{text}");
    let mut last = 0;
    for (i, (id, name, data)) in events.iter().enumerate() {
        assert_eq!(*name, None, "{text}");
        let event: Value = serde_json::from_str(data).expect("JSON data");
        assert_eq!(event["stream_id"], "account-ada");
        assert_eq!(event["version"], i as u64 + 1);
        let id = id.expect("an id");
        assert_eq!(event["position"], id);
        assert!(id > last, "positions grow: {text}");
        last = id;
    }
    let newest: Value = serde_json::from_str(&events[3].2).expect("JSON");
    assert_eq!(newest["payload"], serde_json::json!({"amount": 5}));
}

#[tokio::test]
async fn a_reconnecting_event_source_resumes_after_its_last_event_id() {
    let es = memory_bank().await;
    let app =
        bank::http::router(es.clone(), ServiceConfig::default().inspector(bank::http::inspector(es.clone())));
    verified_account(&app, "ada", 700).await;
    let first = es.event_store().read_all(es_core::GlobalPosition::START, 1).await.expect("events");
    let first = first[0].global_position.get();

    // The page repeats its original ?after=0; the header says where it was.
    let request = Request::get("/inspector/api/log/live?after=0")
        .header("last-event-id", first.to_string())
        .body(Body::empty())
        .expect("a request");
    let response = app.clone().oneshot(request).await.expect("the router answers");
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.into_body();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while parse(&text).len() < 2 {
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("the feed keeps up");
        if let Ok(data) = frame.expect("the feed goes on").expect("a frame").into_data() {
            text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
        }
    }
    let versions: Vec<Value> = parse(&text)
        .iter()
        .map(|(_, _, data)| serde_json::from_str::<Value>(data).expect("JSON")["version"].clone())
        .collect();
    assert_eq!(versions, [2, 3], "resumed after the first event, none repeated: {text}");

    let bad = Request::get("/inspector/api/log/live")
        .header("last-event-id", "yesterday")
        .body(Body::empty())
        .expect("a request");
    let response = app.clone().oneshot(bad).await.expect("the router answers");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
}
