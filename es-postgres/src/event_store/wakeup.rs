//! Wake-ups for caught-up readers: `NOTIFY` after appends, one shared
//! `LISTEN` per store.
//!
//! Sending: `NOTIFY` inside a writing transaction takes a database-wide lock
//! from its commit until the commit is flushed to disk, which would
//! serialize every append's commit behind one lock. So an append through
//! the pool signals a [`Notifier`] after it committed; the notifier's task
//! sends `NOTIFY` on its own connection in a transaction that writes no WAL
//! (so it holds that lock only for a moment), and coalesces: signals that
//! arrive while one `NOTIFY` is pending share it. Appends inside a caller's
//! transaction notify in their statement (the store cannot see that commit).
//!
//! Receiving: a background task, started on the first wait, holds a
//! [`PgListener`] on its own connection (outside the pool) and bumps a
//! counter per notification; waiters watch the counter. If the listener
//! cannot be had, waiters fall back to sleeping their whole `max_wait`
//! (polling). A listener that heard nothing for the store's call timeout
//! checks that its connection still answers (see [`start`]). Both tasks
//! end when the store (every clone) is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use es_core::store::WakeupMark;
use es_core::GlobalPosition;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, watch, Mutex};

use super::PgEventStore;

impl PgEventStore {
    /// [`EventStore::wait_for_events`](es_core::store::EventStore::wait_for_events)
    /// (no `mark`) and
    /// [`EventStore::wait_for_events_since`](es_core::store::EventStore::wait_for_events_since):
    /// until a notification arrives or something landed already (the head
    /// is past `after`; with a mark, the mark moved, which needs no query),
    /// and never past `max_wait`.
    pub(super) async fn wait_for_wakeup(
        &self,
        after: GlobalPosition,
        mark: Option<WakeupMark>,
        max_wait: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + max_wait;
        // Every step is bounded by the deadline: connecting the listener or
        // reading the head can wait on a busy pool or an unreachable server,
        // and subscriptions renew their lease between waits.
        let wait = async {
            let Some(mut counter) = self
                .inner
                .wakeups
                .subscribe(self.inner.calls.pool(), &self.inner.channel, self.inner.calls.get())
                .await
            else {
                tokio::time::sleep_until(deadline).await;
                return;
            };
            let notified = *counter.borrow_and_update();
            let landed = match mark {
                // A notification or an append of this store since moves the
                // mark (only a notification wakes a waiter).
                Some(mark) => self.mark_at(notified) != mark,
                // Something may have committed before we subscribed.
                None => self.visible_head().await.is_ok_and(|head| head > after),
            };
            if landed {
                return;
            }
            if counter.changed().await.is_err() {
                // The listener stopped: poll.
                tokio::time::sleep_until(deadline).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline, wait).await;
    }

    /// [`EventStore::wakeup_mark`](es_core::store::EventStore::wakeup_mark):
    /// the running listener's count of notifications plus this store's
    /// count of its own committed appends; `None` while no listener runs
    /// (before the first wait, or after it failed). Both counts only grow,
    /// so the sum moves when either does. Counting its own appends lets a
    /// reader on this node see at once that one landed during its batch
    /// (and read it) rather than wait for the coalesced `NOTIFY`, which
    /// cost a caught-up table projection about 1 ms of median lag in
    /// `pg_live_lag`; the appends themselves wake no waiter.
    pub(super) fn mark_of_wakeups(&self) -> Option<WakeupMark> {
        let WakeupMark(notified) = self.inner.wakeups.mark()?;
        Some(self.mark_at(notified))
    }

    /// The mark when the listener has counted `notified` notifications.
    fn mark_at(&self, notified: u64) -> WakeupMark {
        WakeupMark(notified.wrapping_add(self.inner.notifier.signals()))
    }
}

/// How long the notifier waits for its connection or a `NOTIFY`'s answer
/// before it drops the connection and connects again at the next signal
/// (the server stopped answering: readers elsewhere poll meanwhile).
const NOTIFY_WITHIN: Duration = Duration::from_secs(5);

/// The least time between two `NOTIFY`s of one store.
const COALESCE: Duration = Duration::from_millis(2);

/// Sends the store's `NOTIFY`s after appends commit, coalescing bursts.
#[derive(Default)]
pub(crate) struct Notifier {
    signal: StdMutex<Option<mpsc::Sender<()>>>,
    /// How many signals it was given: this store's committed pool appends.
    signals: AtomicU64,
}

impl Notifier {
    /// Asks for one `NOTIFY` on `channel` after this call. Never blocks.
    pub(crate) fn signal(&self, pool: &PgPool, channel: &str) {
        self.signals.fetch_add(1, Ordering::AcqRel);
        let Ok(mut signal) = self.signal.lock() else { return };
        if let Some(sender) = signal.as_ref() {
            match sender.try_send(()) {
                // Sent, or a NOTIFY is already pending, which covers this append.
                Ok(()) | Err(mpsc::error::TrySendError::Full(())) => return,
                // The task ended with the runtime it ran on: start another.
                Err(mpsc::error::TrySendError::Closed(())) => {}
            }
        }
        let (sender, receiver) = mpsc::channel(1);
        let _ = sender.try_send(());
        tokio::spawn(send_notifications(pool.clone(), channel.to_owned(), receiver));
        *signal = Some(sender);
    }

    /// How many appends signalled so far.
    pub(crate) fn signals(&self) -> u64 {
        self.signals.load(Ordering::Acquire)
    }
}

async fn send_notifications(pool: PgPool, channel: String, mut signals: mpsc::Receiver<()>) {
    let mut conn: Option<PgConnection> = None;
    while signals.recv().await.is_some() {
        if conn.is_none() {
            let options = pool.connect_options();
            match tokio::time::timeout(NOTIFY_WITHIN, PgConnection::connect_with(&options)).await {
                Ok(Ok(c)) => conn = Some(c),
                Ok(Err(error)) => {
                    tracing::warn!(%error, channel, "cannot connect to NOTIFY; readers on other nodes will poll");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(
                        channel,
                        "no connection to NOTIFY within {NOTIFY_WITHIN:?}; readers on other nodes will poll"
                    );
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            let notify = sqlx::query("SELECT pg_notify($1, '')").bind(&channel).execute(&mut *c);
            let failed = match tokio::time::timeout(NOTIFY_WITHIN, notify).await {
                Ok(Ok(_)) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some(format!("no answer within {NOTIFY_WITHIN:?}")),
            };
            if let Some(error) = failed {
                tracing::warn!(%error, channel, "NOTIFY failed; readers on other nodes will poll");
                // Dropped, not closed: a connection that stopped answering
                // would not answer a goodbye either.
                conn = None;
            }
        }
        // Under a stream of appends, let signals gather for a moment so one
        // NOTIFY covers them (each NOTIFY is a transaction on the server).
        tokio::time::sleep(COALESCE).await;
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

/// How long to wait before trying to start a failed listener again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct Wakeups {
    state: Mutex<State>,
    /// The running listener's counter, read without waiting for `state`
    /// (marks are taken before every read of a subscription).
    live: StdMutex<Option<watch::Receiver<u64>>>,
}

#[derive(Default)]
struct State {
    /// The running listener's counter, if one runs.
    counter: Option<watch::Receiver<u64>>,
    /// Where the next listener's counter starts: past every value an
    /// earlier one reached, so a mark taken from a listener that stopped
    /// never equals a count of the next.
    next_start: u64,
    /// When starting a listener last failed.
    failed_at: Option<Instant>,
}

impl Wakeups {
    /// A receiver of the notification counter, starting the listener task if
    /// none runs. `None`: no listener can be had now (callers poll).
    /// `check_after`: how long the listener may hear nothing before it
    /// checks its connection (see [`start`]).
    pub(crate) async fn subscribe(
        &self,
        pool: &PgPool,
        channel: &str,
        check_after: Duration,
    ) -> Option<watch::Receiver<u64>> {
        let mut state = self.state.lock().await;
        if let Some(counter) = &state.counter {
            if counter.has_changed().is_ok() {
                return Some(counter.clone());
            }
            let reached = *counter.borrow();
            state.next_start = reached.wrapping_add(1);
            state.counter = None;
            self.set_live(None);
        }
        if state.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return None;
        }
        match start(pool, channel, state.next_start, check_after).await {
            Ok(counter) => {
                state.failed_at = None;
                state.counter = Some(counter.clone());
                self.set_live(Some(counter.clone()));
                Some(counter)
            }
            Err(error) => {
                tracing::warn!(%error, channel, "cannot LISTEN for new events; caught-up readers will poll");
                state.failed_at = Some(Instant::now());
                None
            }
        }
    }

    /// The running listener's count, if one runs.
    fn mark(&self) -> Option<WakeupMark> {
        let live = self.live.lock().ok()?;
        let counter = live.as_ref()?;
        // A counter whose listener stopped changes no more: no mark.
        counter.has_changed().is_ok().then(|| WakeupMark(*counter.borrow()))
    }

    fn set_live(&self, counter: Option<watch::Receiver<u64>>) {
        if let Ok(mut live) = self.live.lock() {
            *live = counter;
        }
    }
}

/// Starts the listener task. A connection that stops answering without
/// closing (a partition, a stalled middlebox) would deliver nothing and
/// never fail, so a listener that heard nothing for `check_after` asks its
/// server a `SELECT 1`, within `check_after` too; without an answer it
/// wakes every waiter and ends, and the next wait starts a listener on a
/// new connection.
async fn start(
    pool: &PgPool,
    channel: &str,
    count_from: u64,
    check_after: Duration,
) -> Result<watch::Receiver<u64>, sqlx::Error> {
    // The listener keeps its connection for as long as it runs, so it gets
    // a one-connection pool of its own (same settings, like the notifier's
    // connection): taking one of the application's pooled connections
    // forever would starve a small pool.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen(channel).await?;
    let (tx, rx) = watch::channel(count_from);
    let channel = channel.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(check_after) => {
                    let ping = sqlx::query("SELECT 1").execute(&mut listener);
                    if !matches!(tokio::time::timeout(check_after, ping).await, Ok(Ok(_))) {
                        tracing::warn!(channel, "the LISTEN connection stopped answering; listening again on a new one");
                        tx.send_modify(|n| *n = n.wrapping_add(1));
                        return;
                    }
                }
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
