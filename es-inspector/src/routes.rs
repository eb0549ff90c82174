//! The inspector's routes: the page, its JSON endpoints, the live log.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/streams?prefix=&after=&limit=` | streams by name prefix |
//! | `GET /api/streams/{stream}/events?from=&limit=` | one stream's events |
//! | `GET /api/streams/{stream}/state?version=` | its aggregate's state after a version |
//! | `GET /api/log?after=&limit=` | the global log after a position |
//! | `GET /api/log/tail?count=` | the newest events of the global log |
//! | `GET /api/log/live?after=` | the global log as it grows (server-sent events) |
//! | `GET /api/subscriptions` | every subscription's state, position, lag, error |
//! | `POST /api/subscriptions/{name}/{stop,start,rebuild}` | act on one |

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::InspectorError;
use crate::extract::{Path, Query};
use crate::inspect::{Inspector, MAX_PAGE};
use crate::view::{EventView, RebuildProgress, StateView, StreamView, SubscriptionView};

impl Inspector {
    /// The inspector's routes, to mount with `Router::nest`. Answers 401 to
    /// every request without the token, when one is set.
    pub fn router(&self) -> Router {
        let routes = Router::new()
            .route("/", get(page))
            .route("/api/streams", get(streams))
            .route("/api/streams/{stream}/events", get(events))
            .route("/api/streams/{stream}/state", get(state))
            .route("/api/log", get(log))
            .route("/api/log/tail", get(tail))
            .route("/api/log/live", get(crate::live::live))
            .route("/api/subscriptions", get(subscriptions))
            .route("/api/subscriptions/{name}/stop", post(stop))
            .route("/api/subscriptions/{name}/start", post(start))
            .route("/api/subscriptions/{name}/rebuild", post(rebuild))
            .with_state(self.clone());
        routes.layer(axum::middleware::from_fn_with_state(self.clone(), guard))
    }
}

/// Lets through requests with the token (header or query), if one is set.
async fn guard(State(inspector): State<Inspector>, request: Request, next: Next) -> Response {
    let Some(token) = inspector.token.as_deref() else { return next.run(request).await };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let queried =
        request.uri().query().and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("token=")));
    if bearer == Some(token) || queried == Some(token) {
        next.run(request).await
    } else {
        InspectorError::Unauthorized.into_response()
    }
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

#[derive(Debug, Deserialize)]
struct StreamsQuery {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
}

async fn streams(
    State(inspector): State<Inspector>,
    Query(query): Query<StreamsQuery>,
) -> Result<Json<Vec<StreamView>>, InspectorError> {
    let limit = query.limit.unwrap_or(100);
    Ok(Json(inspector.streams(&query.prefix, query.after.as_deref(), limit).await?))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

async fn events(
    State(inspector): State<Inspector>,
    Path(stream): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Vec<EventView>>, InspectorError> {
    let (from, limit) = (query.from.unwrap_or(1), query.limit.unwrap_or(MAX_PAGE));
    Ok(Json(inspector.events(&stream, from, limit).await?))
}

#[derive(Debug, Deserialize)]
struct StateQuery {
    version: Option<u64>,
}

async fn state(
    State(inspector): State<Inspector>,
    Path(stream): Path<String>,
    Query(query): Query<StateQuery>,
) -> Result<Json<StateView>, InspectorError> {
    Ok(Json(inspector.state_at(&stream, query.version).await?))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn log(
    State(inspector): State<Inspector>,
    Query(query): Query<LogQuery>,
) -> Result<Json<Vec<EventView>>, InspectorError> {
    Ok(Json(inspector.log(query.after.unwrap_or(0), query.limit.unwrap_or(100)).await?))
}

#[derive(Debug, Deserialize)]
struct TailQuery {
    count: Option<usize>,
}

async fn tail(
    State(inspector): State<Inspector>,
    Query(query): Query<TailQuery>,
) -> Result<Json<Vec<EventView>>, InspectorError> {
    let count = query.count.unwrap_or(50).clamp(1, MAX_PAGE);
    Ok(Json(inspector.tail(count).await?))
}

async fn subscriptions(
    State(inspector): State<Inspector>,
) -> Result<Json<Vec<SubscriptionView>>, InspectorError> {
    Ok(Json(inspector.subscriptions().await?))
}

async fn stop(
    State(inspector): State<Inspector>,
    Path(name): Path<String>,
) -> Result<Json<SubscriptionView>, InspectorError> {
    inspector.stop(&name).await?;
    Ok(Json(inspector.subscription(&name).await?))
}

async fn start(
    State(inspector): State<Inspector>,
    Path(name): Path<String>,
) -> Result<Json<SubscriptionView>, InspectorError> {
    inspector.start(&name).await?;
    Ok(Json(inspector.subscription(&name).await?))
}

async fn rebuild(
    State(inspector): State<Inspector>,
    Path(name): Path<String>,
) -> Result<Json<RebuildProgress>, InspectorError> {
    Ok(Json(inspector.rebuild(&name).await?))
}
