//! The SQLite lease store: one row per subscription name in `es_leases`,
//! taken and renewed by single statements on the database clock.
//!
//! Every process on the file shares the table, so each subscription runs
//! in one process at a time, and a projection store on the same file
//! checks a commit's fence against it in the commit's own transaction.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::error::{BoxError, LeaseError};
use es_core::store::{lease_ttl_micros, Lease, LeaseStore};
use sqlx::{Row, SqlStr};

use crate::clock;
use crate::database::SqliteDatabase;
use crate::error::SqliteError;
use crate::migrate::MigrateError;

/// A [`LeaseStore`] in an SQLite file, shared by every process that opens
/// the file: each subscription then runs in one process at a time.
///
/// Leases expire on the database clock (SQLite's reading of the machine's
/// clock, with millisecond resolution; see the crate docs). A release
/// expires the lease at once instead of deleting it, and every new
/// acquisition takes a token above every token the table holds, so
/// [`Lease::token`] strictly increases. Cheap to clone. Call
/// [`migrate`](SqliteLeaseStore::migrate) once before use.
///
/// ```
/// use std::time::Duration;
/// use es_core::store::LeaseStore;
/// use es_sqlite::{SqliteDatabase, SqliteLeaseStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let leases = SqliteLeaseStore::new(SqliteDatabase::temporary().await?);
/// leases.migrate().await?;
/// let ttl = Duration::from_secs(30);
/// let lease = leases.try_acquire("account-summary", "node-a", ttl).await?.expect("free");
/// assert!(leases.try_acquire("account-summary", "node-b", ttl).await?.is_none());
/// assert!(leases.renew(&lease, ttl).await?);
/// leases.release(&lease).await?;
/// let next = leases.try_acquire("account-summary", "node-b", ttl).await?.expect("released");
/// assert!(next.token > lease.token);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteLeaseStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: SqliteDatabase,
    try_acquire: SqlStr,
    renew: SqlStr,
    release: SqlStr,
    holder: SqlStr,
}

impl fmt::Debug for SqliteLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLeaseStore").field("path", &self.inner.db.path()).finish_non_exhaustive()
    }
}

fn backend(error: impl Into<BoxError>) -> LeaseError {
    LeaseError::Backend(error.into())
}

/// A lease's token as stored. A token no SQLite integer holds was never
/// handed out here; it matches no row.
fn stored_token(lease: &Lease) -> Option<i64> {
    i64::try_from(lease.token).ok()
}

impl SqliteLeaseStore {
    /// A store on `db`'s file.
    pub fn new(db: SqliteDatabase) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                try_acquire: clock::render(include_str!("lease/try_acquire.sql")),
                renew: clock::render(include_str!("lease/renew.sql")),
                release: clock::render(include_str!("lease/release.sql")),
                holder: clock::render(include_str!("lease/holder.sql")),
            }),
        }
    }

    /// The database the store lives in.
    pub fn database(&self) -> &SqliteDatabase {
        &self.inner.db
    }

    /// Creates or upgrades the tables (see [`SqliteDatabase::migrate`]).
    ///
    /// # Errors
    /// [`MigrateError`] naming the file and the step that failed.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        self.inner.db.migrate().await
    }

    fn write_error(&self, error: sqlx::Error) -> LeaseError {
        backend(self.inner.db.write_error(error))
    }

    /// The unexpired lease on `name`, if anyone holds it.
    ///
    /// # Errors
    /// [`LeaseError::Backend`] if the query fails (its source a
    /// [`SqliteError`] naming the file).
    pub async fn holder(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        let row = sqlx::query(self.inner.holder.clone())
            .bind(name)
            .fetch_optional(self.inner.db.readers())
            .await
            .map_err(|e| backend(self.inner.db.read_error(e)))?;
        let Some(row) = row else { return Ok(None) };
        let owner: String = row.try_get(0).map_err(|e| backend(self.inner.db.read_error(e)))?;
        let token: i64 = row.try_get(1).map_err(|e| backend(self.inner.db.read_error(e)))?;
        Lease::from_stored(name, owner, token).map(Some)
    }

    /// The writer connection, for one statement that is its own transaction.
    async fn writer(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, LeaseError> {
        self.inner.db.writer().await.map_err(|e: SqliteError| backend(e))
    }
}

#[async_trait]
impl LeaseStore for SqliteLeaseStore {
    async fn try_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>, LeaseError> {
        let mut conn = self.writer().await?;
        let token: Option<i64> = sqlx::query_scalar(self.inner.try_acquire.clone())
            .bind(name)
            .bind(owner)
            .bind(lease_ttl_micros(ttl))
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.write_error(e))?;
        token.map(|token| Lease::from_stored(name, owner, token)).transpose()
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LeaseError> {
        let Some(token) = stored_token(lease) else { return Ok(false) };
        let mut conn = self.writer().await?;
        let done = sqlx::query(self.inner.renew.clone())
            .bind(&lease.name)
            .bind(&lease.owner)
            .bind(token)
            .bind(lease_ttl_micros(ttl))
            .execute(&mut *conn)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        let Some(token) = stored_token(lease) else { return Ok(()) };
        let mut conn = self.writer().await?;
        sqlx::query(self.inner.release.clone())
            .bind(&lease.name)
            .bind(&lease.owner)
            .bind(token)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }
}
