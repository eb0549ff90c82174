//! The connection the stores share: one multiplexed, self-reconnecting
//! connection for commands, and the client that opens the dedicated
//! connection blocking reads need.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisResult};

/// How long [`RedisConnection::connect`] lets one command take before it
/// gives up on the reply (redis-rs' own default is 500 ms, short for a
/// large batch or page on a busy server).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`RedisConnection::connect`] lets one connection attempt take.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

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
        Ok(Self { client, manager })
    }

    /// Wraps a connection manager the application made from `client` (with
    /// its own timeouts, say). `client` must point at the same server.
    pub fn new(client: Client, manager: ConnectionManager) -> Self {
        Self { client, manager }
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
