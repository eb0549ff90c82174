//! A bound on how long one call of a store waits on the server.
//!
//! sqlx sets no timeout on a socket. A server that stops answering without
//! closing the connection (a network partition, a stalled proxy or pooler)
//! holds a query for as long as the operating system keeps the connection,
//! and a reply awaited on a request the server's side acknowledged is
//! awaited for ever. So every call of the stores runs through
//! [`Calls::run`]: the connection is taken from the pool and the call
//! made on it within the store's call timeout.
//!
//! - A connection not had in time fails the call with
//!   [`sqlx::Error::PoolTimedOut`]: nothing was sent.
//! - A call that overruns fails with an [`sqlx::Error::Io`] of kind
//!   [`TimedOut`](std::io::ErrorKind::TimedOut): a statement may have been
//!   sent and may have committed, and the append's outcome table
//!   (`event_store/outcome.rs`) reads it so. Its connection is closed, not
//!   handed back: sqlx pings a connection dropped mid-reply before it goes
//!   back to the pool, and that ping would wait on the same silent server
//!   while holding a place in the pool.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// The call timeout the stores start with: as long as sqlx's default wait
/// for a pooled connection, so that a call that waited for a connection
/// still has time to run.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// How a store calls the server: on a connection of its pool, within its
/// call timeout (shared by the store's clones, changed at run time).
#[derive(Debug)]
pub(crate) struct Calls {
    pool: PgPool,
    micros: AtomicU64,
}

impl Calls {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool, micros: AtomicU64::new(micros(DEFAULT_CALL_TIMEOUT)) }
    }

    /// The pool the calls take their connections from.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn get(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    /// Sets the timeout; one longer than a year is taken as a year (a
    /// deadline must be a time the clock can hold).
    pub(crate) fn set(&self, limit: Duration) {
        self.micros.store(micros(limit.min(LONGEST)), Ordering::Relaxed);
    }

    /// Runs `call` on a connection of the pool, both within the timeout (see
    /// the module docs). The connection goes back to the pool when `call`
    /// ends in time, whatever it returned.
    pub(crate) async fn run_with<R>(
        &self,
        call: impl AsyncFnOnce(&mut PgConnection) -> R,
    ) -> Result<R, CallFailed> {
        self.run_until(tokio::time::Instant::now() + self.get(), call).await
    }

    /// [`run_with`](Self::run_with) by `deadline` (a call that already
    /// spent part of its time elsewhere).
    pub(crate) async fn run_until<R>(
        &self,
        deadline: tokio::time::Instant,
        call: impl AsyncFnOnce(&mut PgConnection) -> R,
    ) -> Result<R, CallFailed> {
        let limit = self.get();
        let mut conn = match tokio::time::timeout_at(deadline, self.pool.acquire()).await {
            Ok(conn) => conn.map_err(CallFailed::NoConnection)?,
            Err(_) => return Err(CallFailed::NoConnection(sqlx::Error::PoolTimedOut)),
        };
        match tokio::time::timeout_at(deadline, call(&mut conn)).await {
            Ok(answer) => Ok(answer),
            Err(_) => {
                // Dropped here, out of the pool: its socket closes now.
                drop(conn.detach());
                Err(CallFailed::TimedOut(timed_out(limit, "; the connection was closed")))
            }
        }
    }

    /// [`run_with`](Self::run_with) for a call that fails with a driver
    /// error.
    pub(crate) async fn run<T>(
        &self,
        call: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        self.run_with(call).await?
    }

    /// [`begin`] within the timeout. The transaction may idle (wait for its
    /// holder's next statement) for the call timeout at most: then the
    /// server ends its session. A transaction whose holder was cut off from
    /// the server would otherwise hold its locks until the server noticed
    /// the connection was gone (hours, with the operating system's default
    /// keepalive), and a fenced one locks its lease's row: no other node
    /// could take the lease over meanwhile.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.within(begin(&self.pool, Some(begin_idling_at_most(self.get())))).await?
    }

    /// Awaits `call` within the timeout, for a call on a connection the
    /// caller holds (a transaction lent to a table projection). An overrun
    /// fails as in [`run_with`](Self::run_with), but the connection is the
    /// holder's to drop: sqlx pings it before it goes back to the pool,
    /// which holds a place in the pool until the server answers or the
    /// connection breaks.
    pub(crate) async fn within<R>(&self, call: impl Future<Output = R>) -> Result<R, sqlx::Error> {
        let limit = self.get();
        tokio::time::timeout(limit, call).await.map_err(|_| timed_out(limit, ""))
    }
}

/// Begins a transaction on a connection of `pool`.
///
/// The begin runs on a task of its own, which is not cancelled when the
/// caller gives up (or is dropped): sqlx counts a transaction only once its
/// `BEGIN` was answered, so a begin dropped while it waited for that answer
/// hands its connection back to the pool inside an open transaction, where
/// the statements of the connection's next users run and never commit (an
/// append would be acknowledged and lost). A begin that answers after its
/// caller left ends on its task, where its transaction is dropped, which
/// rolls it back before the connection goes back to the pool.
///
/// `statement`, if given, begins it instead of a plain `BEGIN` (and may
/// set the transaction up, as `BEGIN; SET LOCAL ...`).
pub(crate) async fn begin(
    pool: &PgPool,
    statement: Option<String>,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    let begin = async move {
        match statement {
            // The callers build it from numbers, never from input.
            Some(statement) => pool.begin_with(sqlx::AssertSqlSafe(statement)).await,
            None => pool.begin().await,
        }
    };
    match tokio::spawn(begin).await {
        Ok(begun) => begun,
        // The task panicked, or its runtime is shutting down.
        Err(_) => Err(sqlx::Error::WorkerCrashed),
    }
}

/// `BEGIN`, and the server's bound on the transaction's idle time: `limit`
/// in milliseconds, at least one (zero would turn it off), at most what
/// the setting holds (an `int`, about 24.8 days).
fn begin_idling_at_most(limit: Duration) -> String {
    let millis = limit.as_millis().clamp(1, i32::MAX as u128);
    format!("BEGIN; SET LOCAL idle_in_transaction_session_timeout = {millis}")
}

/// Why [`Calls::run_with`] has no answer from its call.
#[derive(Debug)]
pub(crate) enum CallFailed {
    /// No connection could be had (in time): the call sent nothing.
    NoConnection(sqlx::Error),
    /// The call overran; it may have done what it was sent to do.
    TimedOut(sqlx::Error),
}

impl From<CallFailed> for sqlx::Error {
    fn from(failed: CallFailed) -> Self {
        match failed {
            CallFailed::NoConnection(error) | CallFailed::TimedOut(error) => error,
        }
    }
}

/// The error of a call that got no answer within `limit` (`and` says what
/// became of its connection).
pub(crate) fn timed_out(limit: Duration, and: &str) -> sqlx::Error {
    sqlx::Error::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the server did not answer within the call timeout ({limit:?}){and}"),
    ))
}

fn micros(limit: Duration) -> u64 {
    u64::try_from(limit.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_bound_of_a_transaction_is_one_the_server_takes() {
        let idle = |limit| begin_idling_at_most(limit).rsplit(' ').next().map(str::to_owned);
        assert_eq!(idle(Duration::from_secs(30)).as_deref(), Some("30000"));
        assert_eq!(idle(Duration::ZERO).as_deref(), Some("1"), "zero would turn the bound off");
        assert_eq!(idle(LONGEST).as_deref(), Some("2147483647"), "the setting is an int");
    }
}
