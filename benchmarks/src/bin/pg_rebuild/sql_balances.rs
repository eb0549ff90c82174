//! The table projection `pg_rebuild` measures: one row per account in a
//! table of the application's own, gathered over a batch and written with
//! one `INSERT … ON CONFLICT DO UPDATE` per batch, in the transaction that
//! stores the checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use es_core::readside::Subscriber;
use es_core::{HandlerError, ProjectRows, Recorded, TableProjection, TableTx};
use es_postgres::{sql_failure, PgSchema, PgTransaction};
use sqlx::{AssertSqlSafe, PgPool};

use super::MoneyDeposited;

/// The SQL of the `balances` table in one schema.
pub(crate) struct SqlBalances {
    create: String,
    upsert: String,
    truncate: String,
    balance: String,
}

impl SqlBalances {
    pub(crate) fn new(schema: &PgSchema) -> Arc<Self> {
        let table = format!("{schema}.balances");
        Arc::new(Self {
            create: format!(
                "CREATE TABLE {table} (account text PRIMARY KEY, balance bigint NOT NULL, deposits bigint NOT NULL)"
            ),
            upsert: format!(
                "INSERT INTO {table} AS t (account, balance, deposits)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])
                 ON CONFLICT (account) DO UPDATE
                 SET balance = t.balance + excluded.balance, deposits = t.deposits + excluded.deposits"
            ),
            truncate: format!("TRUNCATE {table}"),
            balance: format!("SELECT balance, deposits FROM {table} WHERE account = $1"),
        })
    }

    /// Creates the table (the application's own migration).
    pub(crate) async fn migrate(&self, pool: &PgPool) -> anyhow::Result<()> {
        sqlx::raw_sql(AssertSqlSafe(self.create.clone())).execute(pool).await?;
        Ok(())
    }

    /// The balance and number of deposits of `account`.
    pub(crate) async fn balance(&self, pool: &PgPool, account: &str) -> anyhow::Result<(i64, i64)> {
        Ok(sqlx::query_as(AssertSqlSafe(self.balance.clone())).bind(account).fetch_one(pool).await?)
    }

    pub(crate) fn subscriber(self: &Arc<Self>) -> Subscriber {
        Subscriber::table_projection(BalancesTable(Arc::clone(self))).on::<MoneyDeposited>().build()
    }
}

/// The projection: deposits per account, summed over a batch.
struct BalancesTable(Arc<SqlBalances>);

impl TableProjection for BalancesTable {
    type Transaction = PgTransaction;
    type Batch = BTreeMap<String, (i64, i64)>;

    async fn reset(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let truncate = AssertSqlSafe(self.0.truncate.clone());
        sqlx::query(truncate).execute(&mut **tx.transaction()).await.map_err(sql_failure)?;
        Ok(())
    }

    async fn flush(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let (rows, transaction) = tx.take_batch();
        let (accounts, sums): (Vec<String>, Vec<(i64, i64)>) = rows.into_iter().unzip();
        let (balances, deposits): (Vec<i64>, Vec<i64>) = sums.into_iter().unzip();
        sqlx::query(AssertSqlSafe(self.0.upsert.clone()))
            .bind(accounts)
            .bind(balances)
            .bind(deposits)
            .execute(&mut **transaction)
            .await
            .map_err(sql_failure)?;
        Ok(())
    }
}

impl ProjectRows<MoneyDeposited> for BalancesTable {
    async fn project(
        &self,
        e: &Recorded<MoneyDeposited>,
        tx: &mut TableTx<Self>,
    ) -> Result<(), HandlerError> {
        let amount = i64::try_from(e.amount).map_err(HandlerError::other)?;
        let row = tx.batch().entry(e.account.clone()).or_default();
        row.0 += amount;
        row.1 += 1;
        Ok(())
    }
}
