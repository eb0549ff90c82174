//! The bank's read models:
//!
//! - `account-summary` ([`AccountSummary`]): owner, number, balance,
//!   verified, closed and how many transactions;
//! - `transaction-entries` ([`HistoryEntry`], a document per deposit or
//!   withdrawal, read as an account's [`TransactionHistory`]): every
//!   transaction with its global position and reference.
//!
//! Both are kept by the read side from the account events, with the
//! document changes and the checkpoint committed together, so they never
//! count an event twice; `ReadSide::rebuild` recomputes them from history.
//! On Postgres the account summary is a table of the bank's own instead
//! ([`SummaryTable`], kept by the table projection [`SqlAccountSummaries`]
//! in the transaction of its checkpoint); [`Summaries`] reads either.

mod summary_table;

use es_core::error::ProjectionError;
use es_core::readside::Documents;
use es_core::{projection, Aggregate, Event, HandlerError, Project, ProjectionTx, Recorded, StreamId};
use serde::{Deserialize, Serialize};

pub use self::summary_table::{SqlAccountSummaries, SummaryTable};

use crate::transfer::TRANSFER_REFERENCE;
use crate::{Account, AccountClosed, AccountOpened, AccountVerified, MoneyDeposited, MoneyWithdrawn};

/// The name (document namespace) of the account summaries.
pub const ACCOUNT_SUMMARY: &str = "account-summary";

/// The name (document namespace) of the transaction histories.
pub const TRANSACTION_HISTORY: &str = "transaction-entries";

/// One account at a glance; its document id is the account id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountSummary {
    /// The account id.
    pub account_id: String,
    /// Who owns it.
    pub owner: String,
    /// Its account number.
    pub account_number: String,
    /// Balance in cents.
    pub balance: u64,
    /// Whether the owner verified it.
    pub verified: bool,
    /// Whether it was closed.
    pub closed: bool,
    /// How many deposits and withdrawals it had.
    pub transactions: u64,
}

/// Where the account summaries are read from: documents of the
/// `account-summary` projection (in memory, SQLite), or the
/// `account_summaries` table its table projection keeps (Postgres).
#[derive(Debug, Clone)]
pub enum Summaries {
    /// Documents, kept by [`AccountSummaries`].
    Documents(Documents<AccountSummary>),
    /// The bank's own table, kept by [`SqlAccountSummaries`].
    Table(SummaryTable),
}

impl Summaries {
    /// The summary of `account_id`, if it has one.
    ///
    /// # Errors
    /// [`ProjectionError`] if the store fails or a stored summary is not one.
    pub async fn get(&self, account_id: &str) -> Result<Option<AccountSummary>, ProjectionError> {
        match self {
            Self::Documents(documents) => documents.get(account_id).await,
            Self::Table(table) => table.get(account_id).await,
        }
    }

    /// Every summary, ordered by account id.
    ///
    /// # Errors
    /// As [`get`](Summaries::get).
    pub async fn all(&self) -> Result<Vec<AccountSummary>, ProjectionError> {
        match self {
            Self::Documents(documents) => Ok(documents.list().await?.into_iter().map(|(_, s)| s).collect()),
            Self::Table(table) => table.all().await,
        }
    }
}

/// Keeps an [`AccountSummary`] per account.
#[projection(
    name = "account-summary",
    events(AccountOpened, AccountVerified, MoneyDeposited, MoneyWithdrawn, AccountClosed)
)]
#[derive(Debug, Default)]
pub struct AccountSummaries;

impl AccountSummaries {
    /// Reads the summary of the event's account, changes it and stores it.
    async fn update<E: Event>(
        e: &Recorded<E>,
        tx: &mut ProjectionTx,
        change: impl FnOnce(&mut AccountSummary),
    ) -> Result<(), HandlerError> {
        let account_id = account_id(&e.stream_id)?;
        let mut summary = tx.get::<AccountSummary>(account_id).await?.unwrap_or_else(|| AccountSummary {
            account_id: account_id.to_owned(),
            ..AccountSummary::default()
        });
        change(&mut summary);
        Ok(tx.put(account_id, &summary)?)
    }
}

impl Project<AccountOpened> for AccountSummaries {
    async fn project(&self, e: &Recorded<AccountOpened>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Self::update(e, tx, |summary| {
            summary.owner.clone_from(&e.owner);
            summary.account_number.clone_from(&e.account_number);
        })
        .await
    }
}

impl Project<AccountVerified> for AccountSummaries {
    async fn project(
        &self,
        e: &Recorded<AccountVerified>,
        tx: &mut ProjectionTx,
    ) -> Result<(), HandlerError> {
        Self::update(e, tx, |summary| summary.verified = true).await
    }
}

impl Project<MoneyDeposited> for AccountSummaries {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Self::update(e, tx, |summary| {
            summary.balance = summary.balance.saturating_add(e.amount);
            summary.transactions += 1;
        })
        .await
    }
}

impl Project<MoneyWithdrawn> for AccountSummaries {
    async fn project(&self, e: &Recorded<MoneyWithdrawn>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Self::update(e, tx, |summary| {
            summary.balance = summary.balance.saturating_sub(e.amount);
            summary.transactions += 1;
        })
        .await
    }
}

impl Project<AccountClosed> for AccountSummaries {
    async fn project(&self, e: &Recorded<AccountClosed>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Self::update(e, tx, |summary| summary.closed = true).await
    }
}

/// Which way money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransactionKind {
    /// Money came in.
    Deposit,
    /// Money went out.
    Withdrawal,
}

/// One deposit or withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transaction {
    /// The global position of its event.
    pub position: u64,
    /// In or out.
    pub kind: TransactionKind,
    /// Amount in cents.
    pub amount: u64,
    /// What it was for: a withdrawal's own reference, or the transfer a
    /// deposit belongs to.
    pub reference: Option<String>,
}

/// Every transaction of one account, oldest first: what
/// `GET /accounts/{id}/transactions` answers, read from the
/// `transaction-entries` documents with [`TransactionHistory::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransactionHistory {
    /// The account id.
    pub account_id: String,
    /// Oldest first.
    pub transactions: Vec<Transaction>,
}

/// One transaction as the `transaction-entries` projection stores it: a
/// document of its own, with the account it belongs to. Its id is
/// [`history_entry_id`]: the account, then the position zero-padded, so
/// an account's entries sort oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The account id.
    pub account_id: String,
    /// The transaction.
    #[serde(flatten)]
    pub transaction: Transaction,
}

/// The document id of the transaction at global position `position` of
/// account `account_id`.
pub fn history_entry_id(account_id: &str, position: u64) -> String {
    format!("{account_id}/{position:020}")
}

impl TransactionHistory {
    /// The transactions of `account_id`, oldest first, from the
    /// `transaction-entries` documents: one containment query (on Postgres
    /// served by the projection's own index, see `store::open`).
    ///
    /// # Errors
    /// The projection store's error.
    pub async fn load(entries: &Documents<HistoryEntry>, account_id: &str) -> Result<Self, ProjectionError> {
        let found = entries.containing(&serde_json::json!({ "account_id": account_id })).await?;
        // Ids sort by position within an account; the query returns id order.
        Ok(Self {
            account_id: account_id.to_owned(),
            transactions: found.into_iter().map(|(_, entry)| entry.transaction).collect(),
        })
    }
}

/// Keeps the `transaction-entries` documents: one per deposit or
/// withdrawal, written once, so an event costs the same however long the
/// account's history is (a single growing document per account would be
/// read and written whole for every event). Earlier versions of the bank
/// kept that growing document under the name `transaction-history`; the
/// new name makes an upgraded store build the entries from the first event
/// and leaves the old documents alone (delete them with
/// `ProjectionStore::reset("transaction-history")` once unused).
#[projection(name = "transaction-entries", events(MoneyDeposited, MoneyWithdrawn))]
#[derive(Debug, Default)]
pub struct TransactionHistories;

impl TransactionHistories {
    /// Stores `transaction` as an entry of the event's account.
    fn record<E: Event>(
        e: &Recorded<E>,
        tx: &mut ProjectionTx,
        transaction: Transaction,
    ) -> Result<(), HandlerError> {
        let account_id = account_id(&e.stream_id)?;
        let id = history_entry_id(account_id, transaction.position);
        Ok(tx.put(id, &HistoryEntry { account_id: account_id.to_owned(), transaction })?)
    }
}

impl Project<MoneyDeposited> for TransactionHistories {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let reference = e.metadata.fields.get(TRANSFER_REFERENCE).and_then(|r| r.as_str()).map(str::to_owned);
        let deposit = Transaction {
            position: e.position.get(),
            kind: TransactionKind::Deposit,
            amount: e.amount,
            reference,
        };
        Self::record(e, tx, deposit)
    }
}

impl Project<MoneyWithdrawn> for TransactionHistories {
    async fn project(&self, e: &Recorded<MoneyWithdrawn>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let withdrawal = Transaction {
            position: e.position.get(),
            kind: TransactionKind::Withdrawal,
            amount: e.amount,
            reference: e.reference.clone(),
        };
        Self::record(e, tx, withdrawal)
    }
}

/// The account id of an account stream (`account-{id}`).
pub(crate) fn account_id(stream: &StreamId) -> Result<&str, HandlerError> {
    stream
        .as_str()
        .strip_prefix(Account::NAME)
        .and_then(|rest| rest.strip_prefix('-'))
        .ok_or_else(|| HandlerError::msg(format!("stream `{stream}` is not an account stream")))
}
