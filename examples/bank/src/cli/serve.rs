//! `bank serve`: the HTTP service, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use bank::http::ServiceConfig;
use bank::store::StoreChoice;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Serves the bank on `addr` until a shutdown signal: then it stops taking
/// connections, lets the requests in flight finish, and shuts the
/// application down (actors drain their mailboxes, subscriptions commit
/// and release their leases).
pub(crate) async fn serve(choice: &StoreChoice, addr: SocketAddr, inspector: Inspect) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let metrics =
        PrometheusBuilder::new().install_recorder().context("cannot install the metrics recorder")?;
    let app = bank::store::open(choice, |read_side| read_side).await?;
    let es = app.es;
    let inspected = inspector != Inspect::Off;
    let mut config = ServiceConfig::default().metrics(metrics).summaries(app.summaries);
    match inspector {
        Inspect::Off => {}
        Inspect::Open => config = config.inspector(bank::http::inspector(es.clone())),
        Inspect::Guarded(token) => config = config.inspector(bank::http::inspector(es.clone()).token(token)),
    }
    // One line per request, when it is answered: method, path, status, latency.
    let trace = TraceLayer::new_for_http()
        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
        .on_request(())
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    let app = bank::http::router(es.clone(), config).layer(trace);
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        "bank serving on http://{} with {}; Ctrl-C stops it",
        listener.local_addr()?,
        choice.describe()
    );
    if inspected {
        tracing::info!("inspector on http://{}/inspector", listener.local_addr()?);
    }
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await;
    tracing::info!("no longer taking requests; shutting the application down");
    es.shutdown().await;
    tracing::info!("stopped");
    served.context("the server failed")
}

/// Whether and how the inspector is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inspect {
    /// Not mounted.
    Off,
    /// Mounted, open to anyone who reaches the service.
    Open,
    /// Mounted, for requests with this token.
    Guarded(String),
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
