//! The queries: an account's summary and transactions (read models, which
//! take `?after=` to read a write), its events and its state at a version
//! (the event store itself), and a transfer's status.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use es_core::readside::Documents;
use es_core::store::{Direction, EventStore};
use es_core::{GlobalPosition, StreamId, StreamVersion};
use es_inspector::EventView;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{check_id, PathParam, QueryParams};
use super::problem::Problem;
use super::Api;
use crate::{
    Account, AccountSummary, HistoryEntry, Summaries, TransactionHistory, Transfer, ACCOUNT_SUMMARY,
    TRANSACTION_HISTORY,
};

/// `?after=`: answer once the read model has handled every event up to
/// this global position (a command's `position`).
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
pub(super) struct After {
    /// A global position from a command's response.
    pub(super) after: Option<u64>,
}

/// `?from=&limit=` on a stream's events.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
pub(super) struct Page {
    /// The first version to list (default 1).
    pub(super) from: Option<u64>,
    /// How many events at most (default and maximum 1000).
    pub(super) limit: Option<usize>,
}

/// `?version=` on an account's state.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
pub(super) struct AtVersion {
    /// The version to fold up to (default: the newest).
    pub version: Option<u64>,
}

/// An aggregate's state at a version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StateAt<T> {
    /// The version of the last event folded in.
    pub version: Option<u64>,
    /// The state.
    pub state: T,
}

/// The most events one page lists.
const MAX_PAGE: usize = 1_000;

/// How long `?after=` gives the store's head to reach a position beyond
/// it (a commit not visible yet) before calling the position unknown.
const HEAD_GRACE: Duration = Duration::from_secs(1);

impl Api {
    /// Waits (up to the read timeout) until `subscription` has handled
    /// every event up to `after`.
    async fn reach(&self, subscription: &str, after: After) -> Result<(), Problem> {
        let Some(after) = after.after.map(GlobalPosition) else { return Ok(()) };
        let store = self.es.event_store();
        let deadline = tokio::time::Instant::now() + HEAD_GRACE;
        loop {
            let head = store.head_position().await?;
            if head >= after {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Problem::invalid_field(
                    "after",
                    format!("is past the newest stored position, {head}"),
                ));
            }
            store.wait_for_events(head, HEAD_GRACE / 10).await;
        }
        let read_side =
            self.es.read_side().ok_or_else(|| Problem::internal("the bank runs without its read side"))?;
        read_side.wait_for(subscription, after, self.config.read_timeout).await?;
        Ok(())
    }

    fn summaries(&self) -> Result<Summaries, Problem> {
        self.config
            .summaries
            .clone()
            .or_else(|| self.es.documents(ACCOUNT_SUMMARY).map(Summaries::Documents))
            .ok_or_else(|| Problem::internal("the bank runs without a projection store"))
    }

    fn histories(&self) -> Result<Documents<HistoryEntry>, Problem> {
        self.es
            .documents(TRANSACTION_HISTORY)
            .ok_or_else(|| Problem::internal("the bank runs without a projection store"))
    }
}

/// A stream version from a request: 1 or more, and within what every store
/// keeps (Postgres: a signed 64-bit integer).
fn check_version(field: &str, version: Option<u64>) -> Result<Option<u64>, Problem> {
    match version {
        Some(0) => Err(Problem::invalid_field(field, "must be at least 1 (versions count from 1)")),
        Some(v) if v > i64::MAX as u64 => {
            Err(Problem::invalid_field(field, format!("must be at most {}", i64::MAX)))
        }
        version => Ok(version),
    }
}

/// An account at a glance (the `account-summary` read model).
#[utoipa::path(get, path = "/accounts/{account_id}", tag = "queries",
    params(("account_id" = String, Path, description = "The account"), After),
    responses(
        (status = 200, description = "The summary", body = AccountSummary),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid id or position", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable, or the read model did not catch up in time", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn summary(
    State(api): State<Api>,
    PathParam(account_id): PathParam<String>,
    QueryParams(after): QueryParams<After>,
) -> Result<Json<AccountSummary>, Problem> {
    check_id("account_id", &account_id)?;
    api.reach(ACCOUNT_SUMMARY, after).await?;
    let summary = api.summaries()?.get(&account_id).await?;
    summary.map(Json).ok_or_else(|| Problem::not_found(format!("no account `{account_id}`")))
}

/// An account's deposits and withdrawals (the `transaction-entries` read model).
#[utoipa::path(get, path = "/accounts/{account_id}/transactions", tag = "queries",
    params(("account_id" = String, Path, description = "The account"), After),
    responses(
        (status = 200, description = "The transactions, oldest first", body = TransactionHistory),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid id or position", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable, or the read model did not catch up in time", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn transactions(
    State(api): State<Api>,
    PathParam(account_id): PathParam<String>,
    QueryParams(after): QueryParams<After>,
) -> Result<Json<TransactionHistory>, Problem> {
    check_id("account_id", &account_id)?;
    api.reach(TRANSACTION_HISTORY, after).await?;
    let history = TransactionHistory::load(&api.histories()?, &account_id).await?;
    if history.transactions.is_empty() {
        let stream = StreamId::for_aggregate(<Account as es_core::Aggregate>::NAME, &account_id);
        if api.es.event_store().stream_version(&stream).await?.is_none() {
            return Err(Problem::not_found(format!("no account `{account_id}`")));
        }
    }
    Ok(Json(history))
}

/// An account's events as stored, oldest first.
#[utoipa::path(get, path = "/accounts/{account_id}/events", tag = "queries",
    params(("account_id" = String, Path, description = "The account"), Page),
    responses(
        (status = 200, description = "The events", body = Vec<Object>),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid id or page", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn events(
    State(api): State<Api>,
    PathParam(account_id): PathParam<String>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<Vec<EventView>>, Problem> {
    check_id("account_id", &account_id)?;
    let from = check_version("from", page.from)?.unwrap_or(1);
    let limit = page.limit.unwrap_or(MAX_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid_field("limit", format!("must be between 1 and {MAX_PAGE}")));
    }
    let stream = StreamId::for_aggregate(<Account as es_core::Aggregate>::NAME, &account_id);
    let store = api.es.event_store();
    let events = store.read_stream(&stream, StreamVersion(from), Direction::Forward, limit).await?;
    if events.is_empty() && store.stream_version(&stream).await?.is_none() {
        return Err(Problem::not_found(format!("no account `{account_id}`")));
    }
    Ok(Json(events.iter().map(EventView::from).collect()))
}

/// An account's state right after event `version` (time travel).
#[utoipa::path(get, path = "/accounts/{account_id}/state", tag = "queries",
    params(("account_id" = String, Path, description = "The account"), AtVersion),
    responses(
        (status = 200, description = "The state", body = StateAt<Account>),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid id or version", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn state(
    State(api): State<Api>,
    PathParam(account_id): PathParam<String>,
    QueryParams(at): QueryParams<AtVersion>,
) -> Result<Json<StateAt<Account>>, Problem> {
    check_id("account_id", &account_id)?;
    let version = check_version("version", at.version)?;
    let loaded = api.es.load_versioned::<Account>(&account_id, version.map(StreamVersion)).await?;
    Ok(Json(StateAt { version: loaded.version.map(|v| v.get()), state: loaded.state }))
}

/// Where a transfer stands.
#[utoipa::path(get, path = "/transfers/{transfer_id}", tag = "queries",
    params(("transfer_id" = String, Path, description = "The transfer")),
    responses(
        (status = 200, description = "The transfer", body = StateAt<Transfer>),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such transfer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn transfer(
    State(api): State<Api>,
    PathParam(transfer_id): PathParam<String>,
) -> Result<Json<StateAt<Transfer>>, Problem> {
    check_id("transfer_id", &transfer_id)?;
    let loaded = api.es.load_versioned::<Transfer>(&transfer_id, None).await?;
    Ok(Json(StateAt { version: loaded.version.map(|v| v.get()), state: loaded.state }))
}
