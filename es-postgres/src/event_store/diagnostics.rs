//! What holds readers of the global stream back: the oldest running (or
//! prepared) transaction, and how long committed events have been hidden.

use std::fmt;
use std::time::Duration;

use es_core::error::StoreError;
use es_core::store::ReadBlocker;

use super::row::{column, read_error};
use super::PgEventStore;

/// A running transaction that holds readers of the global stream back: its
/// events (and every later one) stay invisible to
/// [`read_all`](es_core::store::EventStore::read_all) until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightTransaction {
    /// The backend process id (for `pg_terminate_backend`).
    pub pid: i32,
    /// Its transaction id, as Postgres shows it.
    pub xid: String,
    /// The database it runs in.
    pub database: Option<String>,
    /// The backend state (`active`, `idle in transaction`, ...).
    pub state: Option<String>,
    /// The start of its current or last statement.
    pub query: Option<String>,
    /// How long the transaction has been running.
    pub age: Duration,
}

/// The first characters of a query kept in a [`ReadBlocker`]'s description.
const QUERY_SHOWN: usize = 200;

impl fmt::Display for InFlightTransaction {
    /// `transaction 1234 (pid 42, idle in transaction, running for 12.5s,
    /// database app): INSERT INTO ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transaction {} (pid {}", self.xid, self.pid)?;
        if let Some(state) = &self.state {
            write!(f, ", {state}")?;
        }
        write!(f, ", running for {:.1?}", self.age)?;
        if let Some(database) = &self.database {
            write!(f, ", database {database}")?;
        }
        f.write_str(")")?;
        if let Some(query) = &self.query {
            let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let shown: String = query.chars().take(QUERY_SHOWN).collect();
            let more = if shown.len() < query.len() { "..." } else { "" };
            write!(f, ": {shown}{more}")?;
        }
        Ok(())
    }
}

/// Microseconds from SQL as a duration (negative ones as zero).
fn micros(micros: i64) -> Duration {
    Duration::from_micros(micros.max(0).unsigned_abs())
}

impl PgEventStore {
    /// The oldest running transaction (in the whole cluster) that holds a
    /// transaction id, if any. While it runs, readers of the global stream
    /// see nothing it or any later transaction wrote: subscriptions use
    /// this to say which transaction holds them back.
    ///
    /// Prepared (two-phase) transactions also hold readers back but have no
    /// backend; see `pg_prepared_xacts` for those.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the query fails.
    pub async fn oldest_in_flight(&self) -> Result<Option<InFlightTransaction>, StoreError> {
        let statement = sqlx::query(self.inner.sql.oldest_in_flight.clone());
        let row = self
            .inner
            .calls
            .run(async |conn| statement.fetch_optional(conn).await)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let Some(row) = row else { return Ok(None) };
        let location = || "pg_stat_activity".to_owned();
        Ok(Some(InFlightTransaction {
            pid: column(&row, "pid", &location)?,
            xid: column(&row, "xid", &location)?,
            database: column(&row, "datname", &location)?,
            state: column(&row, "state", &location)?,
            query: column(&row, "query", &location)?,
            age: micros(column(&row, "age_micros", &location)?),
        }))
    }

    /// [`EventStore::read_blocker`](es_core::store::EventStore::read_blocker).
    pub(super) async fn blocker(&self) -> Result<Option<ReadBlocker>, StoreError> {
        let Some(hiding_for) = self.hidden_for().await? else { return Ok(None) };
        if let Some(transaction) = self.oldest_in_flight().await? {
            return Ok(Some(ReadBlocker::new(transaction.to_string(), transaction.age, hiding_for)));
        }
        Ok(self
            .oldest_prepared()
            .await?
            .map(|(description, age)| ReadBlocker::new(description, age, hiding_for)))
    }

    /// How long committed events have been hidden from readers, if any are.
    async fn hidden_for(&self) -> Result<Option<Duration>, StoreError> {
        let statement = sqlx::query_scalar(self.inner.sql.hidden_since.clone());
        let hidden: Option<i64> = self
            .inner
            .calls
            .run(async |conn| statement.fetch_optional(conn).await)
            .await
            .map_err(|e| read_error(e, || "the hidden part of the global stream".to_owned()))?;
        Ok(hidden.map(micros))
    }

    /// The oldest prepared transaction, described, with its age.
    async fn oldest_prepared(&self) -> Result<Option<(String, Duration)>, StoreError> {
        let statement = sqlx::query(self.inner.sql.oldest_prepared.clone());
        let row = self
            .inner
            .calls
            .run(async |conn| statement.fetch_optional(conn).await)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let Some(row) = row else { return Ok(None) };
        let location = || "pg_prepared_xacts".to_owned();
        let xid: String = column(&row, "xid", &location)?;
        let gid: String = column(&row, "gid", &location)?;
        let database: Option<String> = column(&row, "database", &location)?;
        let age = micros(column(&row, "age_micros", &location)?);
        let database = database.map(|d| format!(", database {d}")).unwrap_or_default();
        Ok(Some((format!("prepared transaction {xid} (gid {gid}, prepared {age:.1?} ago{database})"), age)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_flight_transaction_names_itself_on_one_line() {
        let mut transaction = InFlightTransaction {
            pid: 42,
            xid: "1234".into(),
            database: Some("app".into()),
            state: Some("idle in transaction".into()),
            query: Some("INSERT INTO t\n   VALUES (1)".into()),
            age: Duration::from_millis(12_500),
        };
        assert_eq!(
            transaction.to_string(),
            "transaction 1234 (pid 42, idle in transaction, running for 12.5s, database app): INSERT INTO t VALUES (1)"
        );
        transaction.query = Some("x".repeat(QUERY_SHOWN + 1));
        transaction.database = None;
        transaction.state = None;
        let shown = transaction.to_string();
        assert!(shown.starts_with("transaction 1234 (pid 42, running for 12.5s): xxx"), "{shown}");
        assert!(shown.ends_with(&format!("{}...", "x".repeat(QUERY_SHOWN).get(..10).unwrap())), "{shown}");
    }
}
