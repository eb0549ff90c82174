//! The bank as an HTTP service: a JSON API for every command and query,
//! errors as RFC 9457 problem documents, its OpenAPI document at
//! `/openapi.json`, and optionally Prometheus metrics at `/metrics` and the
//! es inspector under `/inspector`.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /accounts` | open an account (201) |
//! | `POST /accounts/{id}/verification` | verify it with the owner's code |
//! | `POST /accounts/{id}/deposits` | put money in |
//! | `POST /accounts/{id}/withdrawals` | take money out |
//! | `POST /accounts/{id}/closure` | close it |
//! | `POST /transfers` | move money between two accounts (201) |
//! | `GET /accounts/{id}?after=P` | its summary (read model) |
//! | `GET /accounts/{id}/transactions?after=P` | its deposits and withdrawals (read model) |
//! | `GET /accounts/{id}/events?from=V&limit=N` | its events as stored |
//! | `GET /accounts/{id}/state?version=V` | its state after event `V` (time travel) |
//! | `GET /transfers/{id}` | where a transfer stands |
//!
//! Commands take an `Idempotency-Key` header (a UUID), which becomes the
//! command's id: sending the same command again with it returns the first
//! outcome and stores nothing twice. A command answers with the global
//! `position` its events reached; a read-model query given `?after=` that
//! position waits (up to [`ServiceConfig::read_timeout`]) until the read
//! model has handled it, so a client reads its own writes.
//!
//! ```no_run
//! # async fn run(es: es_core::Es) -> anyhow::Result<()> {
//! let app = bank::http::router(es, bank::http::ServiceConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

mod commands;
mod extract;
mod metrics;
mod openapi;
mod problem;
mod queries;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::Summaries;
use axum::routing::{get, post};
use axum::Router;
use es_core::Es;
use es_inspector::Inspector;
use metrics_exporter_prometheus::PrometheusHandle;

pub use commands::{
    CommandResponse, DepositRequest, OpenAccountRequest, TransferRequest, VerifyRequest, WithdrawRequest,
};
pub use extract::{IDEMPOTENCY_KEY, MAX_ID_BYTES};
pub use openapi::openapi;
pub use problem::{FieldError, Problem};
pub use queries::StateAt;

/// How the service behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// How long a query with `?after=` waits for its read model (default 5 s).
    pub read_timeout: Duration,
    /// How long a command may take before it is answered with 503 (default 10 s).
    pub command_timeout: Duration,
    /// Serve `/metrics` from this Prometheus recorder (default: no `/metrics`).
    pub metrics: Option<PrometheusHandle>,
    /// Mount this inspector under `/inspector` (default: not mounted).
    pub inspector: Option<Inspector>,
    /// Where account summaries are read (default: the `account-summary`
    /// documents of the application's projection store; on Postgres the
    /// bank keeps them in a table: pass [`BankApp::summaries`](crate::store::BankApp::summaries)).
    pub summaries: Option<Summaries>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            metrics: None,
            inspector: None,
            summaries: None,
        }
    }
}

impl ServiceConfig {
    /// Sets [`read_timeout`](ServiceConfig::read_timeout).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Sets [`command_timeout`](ServiceConfig::command_timeout).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Mounts `inspector` under `/inspector` (see [`inspector`]).
    pub fn inspector(mut self, inspector: Inspector) -> Self {
        self.inspector = Some(inspector);
        self
    }

    /// Reads account summaries from `summaries`.
    pub fn summaries(mut self, summaries: Summaries) -> Self {
        self.summaries = Some(summaries);
        self
    }

    /// Serves `/metrics` from `handle`.
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }
}

/// What every handler gets: the application and the timeouts, behind one
/// `Arc` (axum clones the state for every request; one counter to bump
/// instead of one per handle in `Es` and the configuration).
#[derive(Debug, Clone)]
struct Api(Arc<ApiState>);

#[derive(Debug)]
struct ApiState {
    es: Es,
    config: ServiceConfig,
}

impl Deref for Api {
    type Target = ApiState;

    fn deref(&self) -> &ApiState {
        &self.0
    }
}

/// An inspector of the bank: accounts and transfers can be folded to any
/// version.
pub fn inspector(es: Es) -> Inspector {
    Inspector::new(es).aggregate::<crate::Account>().aggregate::<crate::Transfer>()
}

/// The service's routes on `es`: the API, `/openapi.json`, and what
/// `config` adds (`/metrics`, `/inspector`). Unknown paths and methods are
/// answered with problem documents too.
pub fn router(es: Es, config: ServiceConfig) -> Router {
    let metrics = config.metrics.clone();
    let sampled = es.clone();
    let inspector = config.inspector.clone();
    let mut app = Router::new()
        .route("/accounts", post(commands::open))
        .route("/accounts/{account_id}", get(queries::summary))
        .route("/accounts/{account_id}/verification", post(commands::verify))
        .route("/accounts/{account_id}/deposits", post(commands::deposit))
        .route("/accounts/{account_id}/withdrawals", post(commands::withdraw))
        .route("/accounts/{account_id}/closure", post(commands::close))
        .route("/accounts/{account_id}/transactions", get(queries::transactions))
        .route("/accounts/{account_id}/events", get(queries::events))
        .route("/accounts/{account_id}/state", get(queries::state))
        .route("/transfers", post(commands::transfer))
        .route("/transfers/{transfer_id}", get(queries::transfer))
        .route("/openapi.json", get(|| async { axum::Json(openapi()) }))
        .with_state(Api(Arc::new(ApiState { es, config })));
    if let Some(handle) = metrics {
        app = app.route(
            "/metrics",
            get(move || {
                let (es, handle) = (sampled.clone(), handle.clone());
                async move { metrics::render(&es, &handle).await }
            }),
        );
    }
    if let Some(inspector) = inspector {
        app = app.nest("/inspector", inspector.router());
    }
    app.fallback(|| async { Problem::not_found("nothing is at this address") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
}
