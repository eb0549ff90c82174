//! The connection the stores share: one multiplexed, self-reconnecting
//! connection for commands, and the client that opens the dedicated
//! connection blocking reads need.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// How long [`RedisConnection::connect`] lets one command take before it
/// gives up on the reply (redis-rs' own default is 500 ms, short for a
/// large batch or page on a busy server).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`RedisConnection::connect`] lets one connection attempt take.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one call of a store may take in all (reconnecting included)
/// before the store gives up on it, unless
/// [`RedisConnection::with_call_timeout`] says otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A Redis connection for the es-redis stores: a
/// [`ConnectionManager`] (one multiplexed connection that every task and
/// every store built on it shares, reconnecting by itself after a failure)
/// and the [`Client`] it came from, from which
/// [`RedisEventStore`](crate::RedisEventStore) opens one more connection of
/// its own for blocking reads (a blocked command would hold up everything
/// queued behind it on the shared one).
///
/// Cheap to clone; clones share the connection.
///
/// ```no_run
/// use es_redis::RedisConnection;
///
/// # async fn demo() -> Result<(), redis::RedisError> {
/// let redis = RedisConnection::connect("redis://127.0.0.1:6379").await?;
/// // The application may use the same connection for its own commands.
/// let mut conn = redis.manager();
/// let _: () = redis::cmd("SET").arg("greeting").arg("hello").query_async(&mut conn).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConnection {
    client: Client,
    manager: ConnectionManager,
    call_timeout: Duration,
}

impl RedisConnection {
    /// Connects to `url` (such as `redis://127.0.0.1:6379/0`) with
    /// [`DEFAULT_RESPONSE_TIMEOUT`] and [`DEFAULT_CONNECTION_TIMEOUT`].
    ///
    /// # Errors
    /// The driver's error if the URL is invalid or the server does not
    /// answer.
    pub async fn connect(url: &str) -> RedisResult<Self> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(DEFAULT_RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(DEFAULT_CONNECTION_TIMEOUT));
        let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self { client, manager, call_timeout: DEFAULT_CALL_TIMEOUT })
    }

    /// Wraps a connection manager the application made from `client` (with
    /// its own timeouts, say). `client` must point at the same server.
    pub fn new(client: Client, manager: ConnectionManager) -> Self {
        Self { client, manager, call_timeout: DEFAULT_CALL_TIMEOUT }
    }

    /// Bounds every call the stores make on this connection by `timeout`
    /// (default [`DEFAULT_CALL_TIMEOUT`]), reconnects included. A call that
    /// runs out fails with a timed-out I/O error; an append that does may
    /// or may not have been stored.
    #[must_use]
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The shared connection with every call bounded, as the stores use it.
    pub(crate) fn bounded(&self) -> Bounded {
        Bounded { manager: self.manager.clone(), limit: self.call_timeout }
    }

    /// The shared connection (a cheap clone of it).
    pub fn manager(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// The client the connection came from.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens a connection of its own, for commands that block (its reply
    /// timeout is `response_timeout`).
    pub(crate) async fn dedicated(&self, response_timeout: Duration) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(DEFAULT_CONNECTION_TIMEOUT));
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection info may hold a password: show none of it.
        f.debug_struct("RedisConnection").finish_non_exhaustive()
    }
}

/// The shared connection with a bound on every call: the connection's own
/// reply timeout covers a reply that is late, this covers everything else
/// (reconnecting, a request that never leaves), so no caller of a store
/// waits without end.
#[derive(Clone)]
pub(crate) struct Bounded {
    manager: ConnectionManager,
    limit: Duration,
}

async fn within<T>(limit: Duration, call: RedisFuture<'_, T>) -> RedisResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no reply from Redis within {limit:?}"),
        ))),
    }
}

impl ConnectionLike for Bounded {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let limit = self.limit;
        Box::pin(async move { within(limit, self.manager.req_packed_command(cmd)).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let limit = self.limit;
        Box::pin(
            async move { within(limit, self.manager.req_packed_commands(pipeline, offset, count)).await },
        )
    }

    fn get_db(&self) -> i64 {
        self.manager.get_db()
    }
}
