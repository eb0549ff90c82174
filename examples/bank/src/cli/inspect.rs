//! `bank inspect`: the inspector's operations on the command line, on the
//! bank's store (the SQLite file by default, or Postgres).
//!
//! It runs the application in this process, so on a store another bank
//! process serves, subscriptions run where their lease is: there they show
//! as `Standby`, and a rebuild waits for the lease (bounded).

use std::time::Duration;

use anyhow::Context;
use bank::store::StoreChoice;
use clap::Subcommand;
use es_inspector::Inspector;
use indicatif::{ProgressBar, ProgressStyle};

/// What to inspect.
#[derive(Debug, Subcommand)]
pub(crate) enum What {
    /// Streams whose name starts with PREFIX (all by default).
    Streams {
        /// The name prefix, e.g. `account-`.
        #[arg(default_value = "")]
        prefix: String,
        /// How many at most.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One stream's events, with payload and metadata.
    Events {
        /// The stream, e.g. `account-ada`.
        stream: String,
    },
    /// Every subscription: state, position, lag, error.
    Subscriptions,
    /// Rebuild a projection (or replay a handler) from the first event, with a progress bar.
    Rebuild {
        /// The subscription, e.g. `account-summary`.
        name: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

pub(crate) async fn inspect(choice: &StoreChoice, what: What) -> anyhow::Result<()> {
    if *choice == StoreChoice::Memory {
        eprintln!(
            "note: the in-memory store starts empty in every process; inspect the SQLite file or Postgres"
        );
    }
    let es = bank::store::open(choice, |read_side| read_side).await?.es;
    let inspector = bank::http::inspector(es.clone());
    let result = run(&inspector, what).await;
    es.shutdown().await;
    result
}

async fn run(inspector: &Inspector, what: What) -> anyhow::Result<()> {
    match what {
        What::Streams { prefix, limit } => {
            let streams = inspector.streams(&prefix, None, limit).await?;
            let rows = streams.iter().map(|s| vec![s.stream_id.clone(), s.version.to_string()]).collect();
            print_table(&["stream", "version"], rows);
        }
        What::Events { stream } => {
            let events = inspector.events(&stream, 1, es_inspector::MAX_PAGE).await?;
            let rows = events
                .iter()
                .map(|e| {
                    vec![
                        e.version.to_string(),
                        e.position.to_string(),
                        e.event_type.clone(),
                        e.payload.to_string(),
                        e.metadata.to_string(),
                    ]
                })
                .collect();
            print_table(&["v", "position", "type", "payload", "metadata"], rows);
        }
        What::Subscriptions => {
            let subscriptions = settled(inspector).await?;
            let rows = subscriptions
                .iter()
                .map(|s| {
                    let stopped_at = s.failed_event.as_ref().map(|f| {
                        format!(" at #{} {}", f.position, f.event_type.as_deref().unwrap_or("(commit)"))
                    });
                    vec![
                        s.name.clone(),
                        format!("{} / {}", s.kind, s.consistency),
                        s.state.clone(),
                        format!("{} of {}", s.position_label, s.head_label),
                        format!("{} events, {:.1} s", s.lag_events, s.lag_seconds),
                        format!("{}{}", s.error.as_deref().unwrap_or(""), stopped_at.unwrap_or_default()),
                    ]
                })
                .collect();
            print_table(&["subscription", "kind", "state", "position", "lag", "error"], rows);
        }
        What::Rebuild { name, timeout } => rebuild(inspector, &name, Duration::from_secs(timeout)).await?,
    }
    Ok(())
}

async fn rebuild(inspector: &Inspector, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let started = inspector.rebuild(name).await?;
    let bar = ProgressBar::new(started.target.max(1));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} positions ({elapsed})")
            .context("a progress bar template")?
            .progress_chars("=> "),
    );
    bar.set_message(format!("rebuilding {name}"));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = inspector.subscription(name).await?;
        let progress = status.rebuild.context("the rebuild's progress is gone")?;
        bar.set_position(progress.position.min(progress.target));
        if progress.done {
            bar.finish_with_message(format!("rebuilt {name}"));
            // The bar is drawn on a terminal only: say it on stdout too.
            println!("rebuilt {name}: replayed the global stream up to position {}", progress.target);
            return Ok(());
        }
        if let Some(error) = status.error {
            bar.abandon_with_message(format!("{name} failed"));
            anyhow::bail!("the rebuild of `{name}` stopped: {error}");
        }
        if tokio::time::Instant::now() >= deadline {
            bar.abandon_with_message(format!("{name}: {}", status.state));
            anyhow::bail!(
                "the rebuild of `{name}` did not finish within {timeout:?} (state {}: another process may hold its lease)",
                status.state
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The subscriptions once this process's read side has settled: right
/// after it starts, each waits for its lease (`Standby`) for a moment.
/// One still waiting after a few seconds runs in another process.
async fn settled(inspector: &Inspector) -> anyhow::Result<Vec<es_inspector::SubscriptionView>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let subscriptions = inspector.subscriptions().await?;
        if subscriptions.iter().all(|s| s.state != "Standby") || tokio::time::Instant::now() >= deadline {
            return Ok(subscriptions);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints `rows` under `header`, each column as wide as its widest cell.
fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    line(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect());
    if rows.is_empty() {
        println!("(none)");
    }
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
