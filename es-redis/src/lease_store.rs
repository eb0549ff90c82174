//! The Redis lease store: one hash per subscription name, taken, renewed
//! and released by scripts on the server's clock.
//!
//! Why a hash with an expiry field and not a key with `PEXPIRE`: an expired
//! key is gone, and with it the name's last token; the hash stays, so a
//! name's tokens strictly increase across acquisitions, which is what lets
//! [`RedisProjectionStore`](crate::RedisProjectionStore) fence off a late
//! writer. Time is the server's `TIME`, read inside each script, so nodes
//! whose clocks disagree still agree on who holds a lease.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{BoxError, LeaseError};
use es_core::store::{Lease, LeaseStore};
use redis::{Script, Value};

use crate::connection::{Bounded, RedisConnection};
use crate::event_store::UnexpectedReply;
use crate::namespace::RedisNamespace;

static TRY_ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lease_store/try_acquire.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease_store/renew.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease_store/release.lua")));
static HOLDER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease_store/holder.lua")));

/// A [`LeaseStore`] on Redis, shared by every node that uses the same
/// server and [`RedisNamespace`]: each subscription then runs on one node
/// at a time.
///
/// Leases expire on the server clock. A release expires the lease at once
/// instead of deleting it, so a name's [`Lease::token`] grows with every
/// acquisition, also when the owner that holds it acquires it again. Cheap
/// to clone.
///
/// ```no_run
/// use std::time::Duration;
/// use es_core::store::LeaseStore;
/// use es_redis::{RedisConnection, RedisLeaseStore, RedisNamespace};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisConnection::connect("redis://127.0.0.1:6379").await?;
/// let leases = RedisLeaseStore::new(redis, RedisNamespace::new("bank")?);
/// if let Some(lease) = leases.try_acquire("account-summary", "node-a", Duration::from_secs(30)).await? {
///     // ... process, renewing before the TTL runs out ...
///     assert!(leases.renew(&lease, Duration::from_secs(30)).await?);
///     leases.release(&lease).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisLeaseStore {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConnection,
    namespace: RedisNamespace,
}

impl fmt::Debug for RedisLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLeaseStore").field("namespace", &self.inner.namespace).finish_non_exhaustive()
    }
}

fn backend(error: impl Into<BoxError>) -> LeaseError {
    LeaseError::Backend(error.into())
}

/// The longest TTL passed to the scripts, about 100 years: the server's
/// time plus it stays an exact Lua number, and a longer lease is no
/// different.
const MAX_TTL_MICROS: u64 = 100 * 365 * 24 * 3_600 * 1_000_000;

/// A TTL as whole microseconds: at least 1, at most [`MAX_TTL_MICROS`] (the
/// in-memory store saturates a huge TTL too).
fn micros(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_TTL_MICROS)
}

/// A token as the lease hash holds it, which must be positive.
fn token_of(name: &str, value: &Value) -> Result<u64, LeaseError> {
    let token = match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(raw) => std::str::from_utf8(raw).ok().and_then(|t| t.parse().ok()),
        _ => None,
    };
    token.filter(|t| *t > 0).ok_or_else(|| {
        backend(format!("lease `{name}` holds token {value:?}, which is not a positive number"))
    })
}

impl RedisLeaseStore {
    /// A store keeping its leases under `namespace` on `redis`.
    pub fn new(redis: RedisConnection, namespace: RedisNamespace) -> Self {
        Self { inner: Arc::new(Inner { redis, namespace }) }
    }

    /// The namespace the leases live under.
    pub fn namespace(&self) -> &RedisNamespace {
        &self.inner.namespace
    }

    fn conn(&self) -> Bounded {
        self.inner.redis.bounded()
    }

    /// The unexpired lease on `name`, if anyone holds it.
    ///
    /// # Errors
    /// [`LeaseError::Backend`] if Redis fails.
    pub async fn holder(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        let reply: Value = HOLDER
            .key(self.inner.namespace.lease(name))
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        match &reply {
            Value::Nil => Ok(None),
            Value::Array(parts) => match parts.as_slice() {
                [Value::BulkString(owner), token] => Ok(Some(Lease {
                    name: name.to_owned(),
                    owner: String::from_utf8_lossy(owner).into_owned(),
                    token: token_of(name, token)?,
                })),
                _ => Err(backend(UnexpectedReply::new("the lease holder script", &reply))),
            },
            _ => Err(backend(UnexpectedReply::new("the lease holder script", &reply))),
        }
    }
}

#[async_trait]
impl LeaseStore for RedisLeaseStore {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        let reply: Value = TRY_ACQUIRE
            .key(self.inner.namespace.lease(name))
            .arg(owner)
            .arg(micros(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        match reply {
            Value::Nil => Ok(None),
            token => Ok(Some(Lease {
                name: name.to_owned(),
                owner: owner.to_owned(),
                token: token_of(name, &token)?,
            })),
        }
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        let renewed: i64 = RENEW
            .key(self.inner.namespace.lease(&lease.name))
            .arg(&lease.owner)
            .arg(lease.token)
            .arg(micros(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        Ok(renewed == 1)
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        let _released: i64 = RELEASE
            .key(self.inner.namespace.lease(&lease.name))
            .arg(&lease.owner)
            .arg(lease.token)
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_become_bounded_positive_microseconds() {
        assert_eq!(micros(Duration::from_millis(1500)), 1_500_000);
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::MAX), MAX_TTL_MICROS);
        // The server's time (about 1.8e15 µs now) plus the longest TTL stays
        // below 2^53, where Lua numbers stop being exact integers.
        const { assert!(4_000_000_000_000_000 + MAX_TTL_MICROS < 1 << 53) };
    }

    #[test]
    fn only_positive_tokens_pass() {
        assert_eq!(token_of("p", &Value::Int(7)).unwrap(), 7);
        assert_eq!(token_of("p", &Value::BulkString(b"8".to_vec())).unwrap(), 8);
        for bad in [Value::Int(0), Value::Int(-1), Value::BulkString(b"x".to_vec()), Value::Okay] {
            assert!(token_of("p", &bad).is_err(), "{bad:?}");
        }
    }
}
