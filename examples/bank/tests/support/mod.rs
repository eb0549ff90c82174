//! Helpers shared by the HTTP tests: the bank on the in-memory store, and
//! requests sent through its router in process.

// Helpers shared by the tests: a failure must fail the test at once.
// Each test binary uses some of them; `pub` items of a test's module are
// reachable only from that binary.
#![allow(clippy::expect_used, dead_code, unreachable_pub)]

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bank::http::ServiceConfig;
use bank::store::StoreChoice;
use es_core::Es;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The bank on the in-memory store, with its read side.
pub async fn memory_bank() -> Es {
    bank::store::open(&StoreChoice::Memory, |read_side| read_side).await.expect("the bank starts").es
}

/// An answer: status, content type, body (JSON, or the text as a JSON string).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// Asserts that this is a problem document with `status`, and returns it.
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["type"].as_str().is_some_and(|t| t.starts_with("https://")), "{self:?}");
        assert!(self.body["title"].is_string() && self.body["detail"].is_string(), "{self:?}");
        &self.body
    }

    /// Asserts success with `status` and returns the body.
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        &self.body
    }
}

/// Sends one request through `app`: `body` as JSON when given, `raw` as is
/// (with a JSON content type) otherwise.
pub async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let raw = body.map(|b| b.to_string());
    send_raw(app, method, uri, raw.as_deref(), headers).await
}

/// As [`send`], with the body's text given.
pub async fn send_raw(
    app: &Router,
    method: Method,
    uri: &str,
    raw: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if raw.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(raw.map(|r| Body::from(r.to_owned())).unwrap_or_default()).expect("a request");
    let response = app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.into_body().collect().await.expect("a body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, content_type, body }
}

/// The router of `es` with the default configuration.
pub fn router(es: &Es) -> Router {
    bank::http::router(es.clone(), ServiceConfig::default())
}

/// Opens `account`, verifies it (reading the code through the state
/// endpoint) and deposits `amount`; returns the deposit's position.
pub async fn verified_account(app: &Router, account: &str, amount: u64) -> u64 {
    let opened = serde_json::json!({"account_id": account, "owner": "Ada"});
    send(app, Method::POST, "/accounts", Some(opened), &[]).await.ok(201);
    let state = send(app, Method::GET, &format!("/accounts/{account}/state"), None, &[]).await;
    let code = state.ok(200)["state"]["verification_code"].as_str().expect("a code").to_owned();
    let verify = serde_json::json!({"code": code});
    send(app, Method::POST, &format!("/accounts/{account}/verification"), Some(verify), &[]).await.ok(200);
    let deposit = serde_json::json!({"amount": amount});
    let deposited =
        send(app, Method::POST, &format!("/accounts/{account}/deposits"), Some(deposit), &[]).await;
    deposited.ok(200)["position"].as_u64().expect("a position")
}
