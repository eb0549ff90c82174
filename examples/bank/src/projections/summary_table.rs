//! The account summaries as a table of the bank's own on Postgres
//! (`<schema>.account_summaries`), kept by a table projection: each batch
//! gathers one row of changes per account and writes them all in one
//! `INSERT … ON CONFLICT DO UPDATE`, in the transaction that stores the
//! checkpoint. Queried with plain SQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use es_core::error::ProjectionError;
use es_core::readside::Subscriber;
use es_core::{HandlerError, ProjectRows, Recorded, TableProjection, TableTx};
use es_postgres::{sql_failure, PgSchema, PgTransaction};
use sqlx::{PgPool, Row};

use super::{account_id, AccountSummary};
use crate::{AccountClosed, AccountOpened, AccountVerified, MoneyDeposited, MoneyWithdrawn};

/// The statements of one table, rendered for its schema.
#[derive(Debug)]
struct Statements {
    create: String,
    upsert: String,
    truncate: String,
    get: String,
    all: String,
}

/// The `account_summaries` table in one schema: its migration, its
/// projection and its queries.
#[derive(Debug, Clone)]
pub struct SummaryTable {
    pool: PgPool,
    sql: Arc<Statements>,
}

const COLUMNS: &str = "account_id, owner, account_number, balance, verified, closed, transactions";

impl SummaryTable {
    /// The table `account_summaries` in `schema`, reached through `pool`.
    pub fn new(pool: PgPool, schema: &PgSchema) -> Self {
        let table = format!("\"{schema}\".account_summaries");
        let render = |sql: &str| sql.replace("{table}", &table);
        let sql = Statements {
            create: render(include_str!("summary_table.sql")),
            upsert: render(include_str!("summary_upsert.sql")),
            truncate: format!("TRUNCATE {table}"),
            get: format!("SELECT {COLUMNS} FROM {table} WHERE account_id = $1"),
            all: format!("SELECT {COLUMNS} FROM {table} ORDER BY account_id"),
        };
        Self { pool, sql: Arc::new(sql) }
    }

    /// Creates the table if it is missing (the bank's own migration).
    ///
    /// # Errors
    /// When Postgres refuses.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(self.sql.create.clone())).execute(&self.pool).await?;
        Ok(())
    }

    /// The projection that keeps the table, registered as `account-summary`.
    pub fn subscriber(&self) -> Subscriber {
        Subscriber::table_projection(SqlAccountSummaries { sql: Arc::clone(&self.sql) })
            .on::<AccountOpened>()
            .on::<AccountVerified>()
            .on::<MoneyDeposited>()
            .on::<MoneyWithdrawn>()
            .on::<AccountClosed>()
            .build()
    }

    /// The summary of `account_id`, if it has one.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the query fails.
    pub async fn get(&self, account_id: &str) -> Result<Option<AccountSummary>, ProjectionError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(self.sql.get.clone()))
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|row| summary(&row)).transpose()
    }

    /// Every summary, ordered by account id.
    ///
    /// # Errors
    /// [`ProjectionError::Backend`] if the query fails.
    pub async fn all(&self) -> Result<Vec<AccountSummary>, ProjectionError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.sql.all.clone()))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(summary).collect()
    }
}

fn backend(error: impl Into<es_core::error::BoxError>) -> ProjectionError {
    ProjectionError::Backend(error.into())
}

fn summary(row: &sqlx::postgres::PgRow) -> Result<AccountSummary, ProjectionError> {
    let count = |column: &str| -> Result<u64, ProjectionError> {
        let value: i64 = row.try_get(column).map_err(backend)?;
        u64::try_from(value).map_err(|_| backend(format!("{column} is negative ({value})")))
    };
    Ok(AccountSummary {
        account_id: row.try_get("account_id").map_err(backend)?,
        owner: row.try_get("owner").map_err(backend)?,
        account_number: row.try_get("account_number").map_err(backend)?,
        balance: count("balance")?,
        verified: row.try_get("verified").map_err(backend)?,
        closed: row.try_get("closed").map_err(backend)?,
        transactions: count("transactions")?,
    })
}

/// What one batch changes in one account's row.
#[derive(Debug, Default)]
pub struct RowChange {
    opened: Option<(String, String)>,
    balance: i64,
    verified: bool,
    closed: bool,
    transactions: i64,
}

/// Keeps [`SummaryTable`]: the `account-summary` projection on Postgres.
#[derive(Debug)]
pub struct SqlAccountSummaries {
    sql: Arc<Statements>,
}

impl SqlAccountSummaries {
    fn change<'t, E>(e: &Recorded<E>, tx: &'t mut TableTx<Self>) -> Result<&'t mut RowChange, HandlerError> {
        let account = account_id(&e.stream_id)?;
        Ok(tx.batch().entry(account.to_owned()).or_default())
    }
}

fn amount(cents: u64) -> Result<i64, HandlerError> {
    i64::try_from(cents).map_err(|_| HandlerError::msg(format!("amount {cents} does not fit a bigint")))
}

impl TableProjection for SqlAccountSummaries {
    type Transaction = PgTransaction;
    type Batch = BTreeMap<String, RowChange>;

    async fn reset(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let truncate = sqlx::AssertSqlSafe(self.sql.truncate.clone());
        sqlx::query(truncate).execute(&mut **tx.transaction()).await.map_err(sql_failure)?;
        Ok(())
    }

    async fn flush(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let (rows, transaction) = tx.take_batch();
        if rows.is_empty() {
            return Ok(());
        }
        let mut columns =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (account, change) in rows {
            let (owner, number) = change.opened.unzip();
            columns.0.push(account);
            columns.1.push(owner);
            columns.2.push(number);
            columns.3.push(change.balance);
            columns.4.push(change.verified);
            columns.5.push(change.closed);
            columns.6.push(change.transactions);
        }
        sqlx::query(sqlx::AssertSqlSafe(self.sql.upsert.clone()))
            .bind(columns.0)
            .bind(columns.1)
            .bind(columns.2)
            .bind(columns.3)
            .bind(columns.4)
            .bind(columns.5)
            .bind(columns.6)
            .execute(&mut **transaction)
            .await
            .map_err(sql_failure)?;
        Ok(())
    }
}

impl ProjectRows<AccountOpened> for SqlAccountSummaries {
    async fn project(&self, e: &Recorded<AccountOpened>, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        Self::change(e, tx)?.opened = Some((e.owner.clone(), e.account_number.clone()));
        Ok(())
    }
}

impl ProjectRows<AccountVerified> for SqlAccountSummaries {
    async fn project(
        &self,
        e: &Recorded<AccountVerified>,
        tx: &mut TableTx<Self>,
    ) -> Result<(), HandlerError> {
        Self::change(e, tx)?.verified = true;
        Ok(())
    }
}

impl ProjectRows<MoneyDeposited> for SqlAccountSummaries {
    async fn project(
        &self,
        e: &Recorded<MoneyDeposited>,
        tx: &mut TableTx<Self>,
    ) -> Result<(), HandlerError> {
        let amount = amount(e.amount)?;
        let change = Self::change(e, tx)?;
        change.balance += amount;
        change.transactions += 1;
        Ok(())
    }
}

impl ProjectRows<MoneyWithdrawn> for SqlAccountSummaries {
    async fn project(
        &self,
        e: &Recorded<MoneyWithdrawn>,
        tx: &mut TableTx<Self>,
    ) -> Result<(), HandlerError> {
        let amount = amount(e.amount)?;
        let change = Self::change(e, tx)?;
        change.balance -= amount;
        change.transactions += 1;
        Ok(())
    }
}

impl ProjectRows<AccountClosed> for SqlAccountSummaries {
    async fn project(&self, e: &Recorded<AccountClosed>, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        Self::change(e, tx)?.closed = true;
        Ok(())
    }
}
