//! Wake-ups for caught-up readers: one shared `LISTEN` per store.
//!
//! Every append statement sends one `NOTIFY` on the schema's channel
//! (delivered when its transaction commits). A background task, started on
//! the first wait, holds a [`PgListener`] and bumps a counter per
//! notification; waiters watch the counter. If the listener cannot be had,
//! waiters fall back to sleeping their whole `max_wait` (polling). The task
//! ends when the store (every clone) is dropped.

use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{watch, Mutex};

/// How long to wait before trying to start a failed listener again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct Wakeups {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The running listener's counter, if one runs.
    counter: Option<watch::Receiver<u64>>,
    /// When starting a listener last failed.
    failed_at: Option<Instant>,
}

impl Wakeups {
    /// A receiver of the notification counter, starting the listener task if
    /// none runs. `None`: no listener can be had now (callers poll).
    pub(crate) async fn subscribe(&self, pool: &PgPool, channel: &str) -> Option<watch::Receiver<u64>> {
        let mut state = self.state.lock().await;
        if let Some(counter) = &state.counter {
            if counter.has_changed().is_ok() {
                return Some(counter.clone());
            }
            state.counter = None;
        }
        if state.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return None;
        }
        match start(pool, channel).await {
            Ok(counter) => {
                state.failed_at = None;
                state.counter = Some(counter.clone());
                Some(counter)
            }
            Err(error) => {
                tracing::warn!(%error, channel, "cannot LISTEN for new events; caught-up readers will poll");
                state.failed_at = Some(Instant::now());
                None
            }
        }
    }
}

async fn start(pool: &PgPool, channel: &str) -> Result<watch::Receiver<u64>, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    let (tx, rx) = watch::channel(0u64);
    let channel = channel.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tx.closed() => return,
                received = listener.try_recv() => match received {
                    // A notification: something committed.
                    Ok(Some(_)) => tx.send_modify(|n| *n = n.wrapping_add(1)),
                    // The connection dropped and is being re-established;
                    // notifications may have been missed, so wake everyone.
                    Ok(None) => tx.send_modify(|n| *n = n.wrapping_add(1)),
                    Err(error) => {
                        tracing::warn!(%error, channel, "LISTEN for new events failed; caught-up readers will poll");
                        return;
                    }
                },
            }
        }
    });
    Ok(rx)
}
