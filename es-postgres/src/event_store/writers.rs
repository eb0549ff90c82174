//! The connections group commit appends on: the store's own, kept between
//! appends, not taken from the pool.
//!
//! sqlx's pool checks a connection with a round trip before it hands it out
//! (`test_before_acquire`, on by default) and again when it takes it back
//! (always, in sqlx 0.9). Around a one-statement append that is two more
//! round trips, one of them on the caller's path: with one caller awaiting
//! each command, about a fifth of each command's time on the development
//! machine. So the appends that hold a group slot (a lone append, or a
//! group's statement: at most [`GroupCommit::max_in_flight`] at once) run
//! on connections the store opens itself with the pool's connect options,
//! and keeps while idle, at most one per slot. Everything else (appends
//! that gave up waiting for a slot, appends with group commit off, reads)
//! takes its connection from the pool.
//!
//! A kept connection follows the pool's `idle_timeout` and `max_lifetime`,
//! and stops being used once the pool is closed. It is not checked before
//! use, so it can have been closed while idle (the server restarted, or
//! ended the idle session): a lone append or a group that finds so is made
//! again, once, on a new connection (`append_connection.rs`, `append_group.rs`), the
//! same events under the same ids, so what the first try did commit is
//! found as an exact retry. When the server refuses to open a connection
//! (too many clients, say), appends go through the pool instead, and the
//! store does not ask the server again for a second.
//!
//! [`GroupCommit::max_in_flight`]: super::GroupCommit::max_in_flight

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolOptions;
use sqlx::{Connection, PgConnection, Postgres};

use crate::bounded::{timed_out, CallFailed, Calls};

/// How long closing a connection the store no longer keeps may take.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// One connection of the store's own.
struct Kept {
    conn: PgConnection,
    opened: Instant,
    idle_since: Instant,
}

/// How long after the server refused to open a connection the store asks
/// again: meanwhile its appends go through the pool without trying (a
/// refused connection costs the server a process start).
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// The store's own idle connections for appends.
#[derive(Default)]
pub(super) struct Writers {
    idle: Mutex<Vec<Kept>>,
    /// When the server last refused to open one.
    refused_at: Mutex<Option<Instant>>,
}

/// What a call on a writer connection returned, and whether that connection
/// had been kept from an earlier call (so it may have broken while idle).
pub(super) struct Ran<R> {
    pub(super) answer: R,
    pub(super) reused: bool,
}

impl Writers {
    fn lock(&self) -> MutexGuard<'_, Vec<Kept>> {
        // A list of idle connections stays usable whatever panicked.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `call` on a kept connection, or a new one, by `deadline`, and
    /// keeps the connection afterwards (at most `keep` idle) unless
    /// `broke` says the answer came from a broken connection. A call that
    /// overruns fails as in [`Calls::run_with`], and its connection is
    /// closed.
    pub(super) async fn run<R>(
        &self,
        calls: &Calls,
        deadline: tokio::time::Instant,
        keep: usize,
        call: impl AsyncFnOnce(&mut PgConnection) -> R,
        broke: impl FnOnce(&R) -> bool,
    ) -> Result<Ran<R>, CallFailed> {
        let pool = calls.pool();
        if pool.is_closed() {
            self.close_idle();
            return Err(CallFailed::NoConnection(sqlx::Error::PoolClosed));
        }
        let (mut kept, reused) = match self.take(pool.options()) {
            Some(kept) => (kept, true),
            None => (self.open(calls, deadline).await?, false),
        };
        let Ok(answer) = tokio::time::timeout_at(deadline, call(&mut kept.conn)).await else {
            // `kept` is dropped here: its socket closes now.
            return Err(CallFailed::TimedOut(timed_out(calls.get(), "; the connection was closed")));
        };
        if broke(&answer) {
            // The others were idle as long or longer: likely gone the same way.
            self.close_idle();
        } else {
            self.put(kept, keep, pool.options());
        }
        Ok(Ran { answer, reused })
    }

    /// The most recently used idle connection still within the pool's
    /// bounds; those past them are closed.
    fn take(&self, options: &PoolOptions<Postgres>) -> Option<Kept> {
        let mut idle = self.lock();
        while let Some(kept) = idle.pop() {
            if within_bounds(&kept, options) {
                return Some(kept);
            }
            retire(kept.conn);
        }
        None
    }

    fn put(&self, mut kept: Kept, keep: usize, options: &PoolOptions<Postgres>) {
        kept.idle_since = Instant::now();
        let mut idle = self.lock();
        if idle.len() < keep && within_bounds(&kept, options) {
            idle.push(kept);
        } else {
            drop(idle);
            retire(kept.conn);
        }
    }

    pub(super) fn close_idle(&self) {
        let idle = std::mem::take(&mut *self.lock());
        for kept in idle {
            retire(kept.conn);
        }
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.close_idle();
    }
}

impl Writers {
    /// Opens a connection with the pool's connect options, by `deadline`;
    /// fails at once for [`ASK_AGAIN_AFTER`] after the server refused one.
    async fn open(&self, calls: &Calls, deadline: tokio::time::Instant) -> Result<Kept, CallFailed> {
        let refused_at = *self.refused_at.lock().unwrap_or_else(PoisonError::into_inner);
        if refused_at.is_some_and(|at| at.elapsed() < ASK_AGAIN_AFTER) {
            return Err(CallFailed::NoConnection(sqlx::Error::Io(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "the server refused the store a connection of its own less than {ASK_AGAIN_AFTER:?} ago"
                ),
            ))));
        }
        let options = calls.pool().connect_options();
        match tokio::time::timeout_at(deadline, PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => {
                let now = Instant::now();
                Ok(Kept { conn, opened: now, idle_since: now })
            }
            Ok(Err(error)) => {
                *self.refused_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                Err(CallFailed::NoConnection(error))
            }
            Err(_) => Err(CallFailed::NoConnection(sqlx::Error::PoolTimedOut)),
        }
    }
}

/// Whether `kept` may still be used under the pool's `idle_timeout` and
/// `max_lifetime`.
fn within_bounds(kept: &Kept, options: &PoolOptions<Postgres>) -> bool {
    let idle_ok = options.get_idle_timeout().is_none_or(|limit| kept.idle_since.elapsed() < limit);
    let age_ok = options.get_max_lifetime().is_none_or(|limit| kept.opened.elapsed() < limit);
    idle_ok && age_ok
}

/// Closes `conn` politely on a task of its own (the server then logs no
/// lost client), or just drops it outside a runtime.
fn retire(conn: PgConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_WITHIN, conn.close()).await;
        });
    }
}
