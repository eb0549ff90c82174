//! The Postgres lease store: one row per subscription name in a `leases`
//! table, taken and renewed by single statements on the database clock.
//!
//! Why a table and not advisory locks: a lease must outlive no session and
//! must not pin a pooled connection per subscription. A row with an expiry
//! needs no held connection, works through any pooler, and its token grows
//! with every acquisition, which fences late writers. Time is the database's
//! `clock_timestamp()`, so nodes whose clocks disagree still agree on who
//! holds a lease.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::LeaseError;
use es_core::store::{lease_ttl_micros, Lease, LeaseStore};
use sqlx::{PgConnection, PgPool, Row, SqlStr};

use crate::bounded::Calls;
use crate::migrate::{migrate, MigrateError};
use crate::schema::PgSchema;

/// A [`LeaseStore`] on Postgres, shared by every node that uses the same
/// database and schema: each subscription then runs on one node at a time.
///
/// Leases expire on the database clock, so nodes with skewed clocks agree.
/// A release expires the lease at once instead of deleting it, so a name's
/// [`Lease::token`] grows with every acquisition, also when the owner that
/// holds it acquires it again. Cheap to clone. Call
/// [`migrate`](PgLeaseStore::migrate) once before use (it shares the
/// migrations of [`PgEventStore`](crate::PgEventStore)).
///
/// ```no_run
/// use std::time::Duration;
/// use es_core::store::LeaseStore;
/// use es_postgres::PgLeaseStore;
///
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let leases = PgLeaseStore::new(pool);
/// leases.migrate().await?;
/// if let Some(lease) = leases.try_acquire("account-summary", "node-a", Duration::from_secs(30)).await? {
///     // ... process, renewing before the TTL runs out ...
///     assert!(leases.renew(&lease, Duration::from_secs(30)).await?);
///     leases.release(&lease).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgLeaseStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The pool, and the call timeout
    /// ([`set_call_timeout`](PgLeaseStore::set_call_timeout)).
    calls: Calls,
    schema: PgSchema,
    sql: Statements,
}

struct Statements {
    try_acquire: SqlStr,
    renew: SqlStr,
    release: SqlStr,
    holder: SqlStr,
}

impl Statements {
    fn new(schema: &PgSchema) -> Self {
        Self {
            try_acquire: schema.render(include_str!("lease/try_acquire.sql")),
            renew: schema.render(include_str!("lease/renew.sql")),
            release: schema.render(include_str!("lease/release.sql")),
            holder: schema.render(include_str!("lease/holder.sql")),
        }
    }
}

impl fmt::Debug for PgLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLeaseStore").field("schema", &self.inner.schema).finish_non_exhaustive()
    }
}

fn backend(error: impl Into<es_core::error::BoxError>) -> LeaseError {
    LeaseError::Backend(error.into())
}

/// A lease's token as stored (tokens come from the table, so they fit).
fn stored_token(lease: &Lease) -> i64 {
    i64::try_from(lease.token).unwrap_or(i64::MAX)
}

impl PgLeaseStore {
    /// A store in the default schema (`es`) on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self::with_schema(pool, PgSchema::default())
    }

    /// A store in `schema` on `pool`.
    pub fn with_schema(pool: PgPool, schema: PgSchema) -> Self {
        let sql = Statements::new(&schema);
        Self { inner: Arc::new(Inner { calls: Calls::new(pool), schema, sql }) }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        self.inner.calls.pool()
    }

    /// Sets how long one call of this store (and of every clone of it) may
    /// take, waiting for a pooled connection included (default
    /// [`DEFAULT_CALL_TIMEOUT`](crate::DEFAULT_CALL_TIMEOUT), 30 s). A call
    /// that overruns fails and its connection is closed: see the crate
    /// docs, "When the server stops answering". Takes effect for
    /// calls that start after it.
    pub fn set_call_timeout(&self, timeout: std::time::Duration) {
        self.inner.calls.set(timeout);
    }

    /// The schema the lease table lives in.
    pub fn schema(&self) -> &PgSchema {
        &self.inner.schema
    }

    /// Creates or upgrades the tables (see [`migrate`](crate::migrate())).
    ///
    /// # Errors
    /// [`MigrateError`] naming the step that failed.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        migrate(self.inner.calls.pool(), &self.inner.schema).await
    }

    /// The unexpired lease on `name`, if anyone holds it.
    ///
    /// # Errors
    /// [`LeaseError::Backend`] if the query fails.
    pub async fn holder(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        let statement = sqlx::query(self.inner.sql.holder.clone()).bind(name);
        let row =
            self.inner.calls.run(async |conn| statement.fetch_optional(conn).await).await.map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let owner: String = row.try_get("owner").map_err(backend)?;
        let token: i64 = row.try_get("token").map_err(backend)?;
        Lease::from_stored(name, owner, token).map(Some)
    }
}

/// The unique index that makes the token part of a key (migration 5).
const TOKEN_KEY: &str = "leases_name_token";

#[async_trait]
impl LeaseStore for PgLeaseStore {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        let acquire = async |conn: &mut PgConnection| -> Result<Option<i64>, sqlx::Error> {
            let statement = || {
                sqlx::query_scalar(self.inner.sql.try_acquire.clone())
                    .bind(name)
                    .bind(owner)
                    .bind(lease_ttl_micros(ttl))
            };
            match statement().fetch_optional(&mut *conn).await {
                // Two first acquisitions of a name raced: the upsert
                // arbitrates on the name, but the (name, token) key can
                // refuse the loser first. The winner has committed (the
                // refusal waits for it): asked again, the row is there and
                // the upsert decides.
                Err(sqlx::Error::Database(e)) if e.constraint() == Some(TOKEN_KEY) => {
                    statement().fetch_optional(&mut *conn).await
                }
                answered => answered,
            }
        };
        let token = self.inner.calls.run(acquire).await.map_err(backend)?;
        token.map(|token| Lease::from_stored(name, owner, token)).transpose()
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        let statement = sqlx::query(self.inner.sql.renew.clone())
            .bind(&lease.name)
            .bind(&lease.owner)
            .bind(stored_token(lease))
            .bind(lease_ttl_micros(ttl));
        let done = self.inner.calls.run(async |conn| statement.execute(conn).await).await.map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        let statement = sqlx::query(self.inner.sql.release.clone())
            .bind(&lease.name)
            .bind(&lease.owner)
            .bind(stored_token(lease));
        self.inner.calls.run(async |conn| statement.execute(conn).await).await.map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_names_the_schema() {
        let sql = Statements::new(&PgSchema::new("billing").unwrap());
        for statement in [&sql.try_acquire, &sql.renew, &sql.release, &sql.holder] {
            assert!(statement.as_str().contains("\"billing\".leases"), "{}", statement.as_str());
        }
    }
}
