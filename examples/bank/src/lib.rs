//! The bank domain: accounts that are opened, verified, credited, debited and
//! closed, event sourced with es.
//!
//! Everything non-deterministic (the account number, the verification code)
//! is decided in `handle` and carried in the event, so replaying the events
//! always rebuilds the same state.
//!
//! The read side registers itself at link time, so a `ReadSide` built
//! without an explicit registry runs all of it:
//! - projections `account-summary` ([`AccountSummary`]) and
//!   `transaction-entries` (a [`HistoryEntry`] per transaction, read as an
//!   account's [`TransactionHistory`]);
//! - the `welcome-mail` handler ([`welcome_mail`]), which writes an
//!   [`OutboxMail`] per new account to the [`Outbox`] the read side is
//!   given as state, and never again on replay;
//! - the `transfer-process` handler ([`TransferProcess`]), which moves the
//!   money of a [`Transfer`] between two accounts, refunding it when the
//!   target refuses the credit.
// The README's examples (see `ReadmeDoctests`) link only what they use:
// none of the bank's own link-time registrations.
#![doc(test(no_crate_inject))]

pub mod http;
mod mail;
mod projections;
pub mod store;
mod transfer;

use std::time::Duration;

use es_core::error::{ConsistencyError, ReadSideError};
use es_core::error::{UpcastError, ValidationError};
use es_core::{command, event, Aggregate, Apply, Events, GlobalPosition, Handle, ReadSide};
use serde::{Deserialize, Serialize};

pub use mail::{welcome_mail, Outbox, OutboxMail, MAIL_OUTBOX};
pub use projections::{
    history_entry_id, AccountSummaries, AccountSummary, HistoryEntry, SqlAccountSummaries, Summaries,
    SummaryTable, Transaction, TransactionHistories, TransactionHistory, TransactionKind, ACCOUNT_SUMMARY,
    TRANSACTION_HISTORY,
};
pub use transfer::{
    MarkCompleted, MarkCreditRefused, MarkDebited, MarkFailed, MarkRefunded, StartTransfer, Transfer,
    TransferCommand, TransferCompleted, TransferCreditRefused, TransferDebited, TransferError, TransferEvent,
    TransferFailed, TransferProcess, TransferRefunded, TransferStarted, TransferStatus, TRANSFER_REFERENCE,
};

/// An account was opened; it must be verified before money can leave it.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOpened {
    /// The account id (also the aggregate id).
    pub account_id: String,
    /// Who owns it.
    pub owner: String,
    /// The generated account number.
    pub account_number: String,
    /// The generated code the owner must confirm.
    pub verification_code: String,
}

/// The owner confirmed the verification code.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountVerified {}

/// Money came in.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct MoneyDeposited {
    /// Amount in cents.
    pub amount: u64,
}

/// Money went out. Version 2 added `reference`; version 1 payloads are
/// upcast on read (see [`upcast_withdrawal`]).
#[event(version = 2, upcast = upcast_withdrawal)]
#[derive(Debug, Clone, PartialEq)]
pub struct MoneyWithdrawn {
    /// Amount in cents.
    pub amount: u64,
    /// What the withdrawal was for, if said.
    pub reference: Option<String>,
}

/// Turns a version 1 `MoneyWithdrawn` (`{"amount": n}`) into version 2.
///
/// # Errors
/// When the payload is not a JSON object.
pub fn upcast_withdrawal(
    from_version: u32,
    payload: serde_json::Value,
) -> Result<serde_json::Value, UpcastError> {
    match (from_version, payload) {
        (1, serde_json::Value::Object(mut fields)) => {
            fields.entry("reference").or_insert(serde_json::Value::Null);
            Ok(serde_json::Value::Object(fields))
        }
        (1, _) => Err(UpcastError::UnexpectedShape { expected: "a JSON object" }),
        (from, _) => Err(UpcastError::UnsupportedVersion { from }),
    }
}

/// The account was closed; it takes no more commands.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountClosed {}

/// Open a new account.
#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct OpenAccount {
    /// The new account's id.
    #[id]
    #[validate(non_empty)]
    pub account_id: String,
    /// Who owns it.
    #[validate(non_empty)]
    pub owner: String,
}

/// Confirm the verification code sent to the owner.
#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct VerifyAccount {
    /// The account.
    #[id]
    pub account_id: String,
    /// The code the owner received.
    pub code: String,
}

/// Put money in.
#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct Deposit {
    /// The account.
    #[id]
    pub account_id: String,
    /// Amount in cents.
    #[validate(min = 1)]
    pub amount: u64,
}

/// Take money out.
#[command(aggregate = Account, validate = check_reference)]
#[derive(Debug, Clone)]
pub struct Withdraw {
    /// The account.
    #[id]
    pub account_id: String,
    /// Amount in cents.
    #[validate(min = 1)]
    pub amount: u64,
    /// What it is for.
    pub reference: Option<String>,
}

/// A withdrawal's reference, when given, is at most 140 characters.
fn check_reference(command: &Withdraw) -> Result<(), ValidationError> {
    let mut error = ValidationError::new("Withdraw");
    if command.reference.as_ref().is_some_and(|r| r.chars().count() > 140) {
        error.field("reference", "must be at most 140 characters");
    }
    error.into_result()
}

/// Close the account; its balance must be zero.
#[command(aggregate = Account)]
#[derive(Debug, Clone)]
pub struct CloseAccount {
    /// The account.
    #[id]
    pub account_id: String,
}

/// Why the account refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// `OpenAccount` on an account that exists.
    #[error("account is already open")]
    AlreadyOpen,
    /// A command to an account that was never opened.
    #[error("account does not exist")]
    NotOpen,
    /// The account is closed.
    #[error("account is closed")]
    Closed,
    /// The verification code does not match.
    #[error("verification code does not match")]
    WrongVerificationCode,
    /// Money cannot leave an unverified account.
    #[error("account is not verified yet")]
    NotVerified,
    /// Not enough money.
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds {
        /// The balance, in cents.
        balance: u64,
        /// The requested amount, in cents.
        requested: u64,
    },
    /// The deposit would take the balance past what it can hold.
    #[error(
        "a deposit of {requested} would take the balance {balance} past the largest balance an account holds"
    )]
    BalanceLimit {
        /// The balance, in cents.
        balance: u64,
        /// The requested amount, in cents.
        requested: u64,
    },
    /// Only an empty account can be closed.
    #[error("balance must be zero to close, it is {balance}")]
    BalanceNotZero {
        /// The balance, in cents.
        balance: u64,
    },
}

/// A bank account: the fold of its events.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[aggregate(
    name = "account",
    error = AccountError,
    events(AccountOpened, AccountVerified, MoneyDeposited, MoneyWithdrawn, AccountClosed),
    commands(OpenAccount, VerifyAccount, Deposit, Withdraw, CloseAccount)
)]
pub struct Account {
    /// Whether it was opened.
    pub open: bool,
    /// Whether the owner verified it.
    pub verified: bool,
    /// Whether it was closed.
    pub closed: bool,
    /// The owner.
    pub owner: String,
    /// The generated account number.
    pub account_number: String,
    /// The code the owner must confirm.
    pub verification_code: String,
    /// Balance in cents.
    pub balance: u64,
}

impl Account {
    fn ensure_active(&self) -> Result<(), AccountError> {
        if !self.open {
            Err(AccountError::NotOpen)
        } else if self.closed {
            Err(AccountError::Closed)
        } else {
            Ok(())
        }
    }
}

/// Derives a 6-digit code and a 10-digit account number from a fresh UUID.
/// Random on purpose: it is decided once, in `handle`, and stored in the event.
fn generate_identifiers() -> (String, String) {
    let bits = uuid::Uuid::new_v4().as_u128();
    let code = format!("{:06}", bits % 1_000_000);
    let number = format!("{:010}", (bits >> 64) % 10_000_000_000);
    (number, code)
}

impl Handle<OpenAccount> for Account {
    fn handle(&self, command: OpenAccount) -> Result<Events<Self>, AccountError> {
        if self.open {
            return Err(AccountError::AlreadyOpen);
        }
        let (account_number, verification_code) = generate_identifiers();
        Ok(Events::one(AccountOpened {
            account_id: command.account_id,
            owner: command.owner,
            account_number,
            verification_code,
        }))
    }
}

impl Handle<VerifyAccount> for Account {
    fn handle(&self, command: VerifyAccount) -> Result<Events<Self>, AccountError> {
        self.ensure_active()?;
        if self.verified {
            return Ok(Events::none());
        }
        if command.code != self.verification_code {
            return Err(AccountError::WrongVerificationCode);
        }
        Ok(Events::one(AccountVerified {}))
    }
}

impl Handle<Deposit> for Account {
    fn handle(&self, command: Deposit) -> Result<Events<Self>, AccountError> {
        self.ensure_active()?;
        if self.balance.checked_add(command.amount).is_none() {
            return Err(AccountError::BalanceLimit { balance: self.balance, requested: command.amount });
        }
        Ok(Events::one(MoneyDeposited { amount: command.amount }))
    }
}

impl Handle<Withdraw> for Account {
    fn handle(&self, command: Withdraw) -> Result<Events<Self>, AccountError> {
        self.ensure_active()?;
        if !self.verified {
            return Err(AccountError::NotVerified);
        }
        if command.amount > self.balance {
            return Err(AccountError::InsufficientFunds { balance: self.balance, requested: command.amount });
        }
        Ok(Events::one(MoneyWithdrawn { amount: command.amount, reference: command.reference }))
    }
}

impl Handle<CloseAccount> for Account {
    fn handle(&self, _: CloseAccount) -> Result<Events<Self>, AccountError> {
        self.ensure_active()?;
        if self.balance != 0 {
            return Err(AccountError::BalanceNotZero { balance: self.balance });
        }
        Ok(Events::one(AccountClosed {}))
    }
}

impl Apply<AccountOpened> for Account {
    fn apply(&mut self, event: &AccountOpened) {
        self.open = true;
        self.owner.clone_from(&event.owner);
        self.account_number.clone_from(&event.account_number);
        self.verification_code.clone_from(&event.verification_code);
    }
}

impl Apply<AccountVerified> for Account {
    fn apply(&mut self, _: &AccountVerified) {
        self.verified = true;
    }
}

impl Apply<MoneyDeposited> for Account {
    fn apply(&mut self, event: &MoneyDeposited) {
        // `handle` refuses a deposit past the limit; saturating keeps a
        // stored one (written by other code) from panicking the fold.
        self.balance = self.balance.saturating_add(event.amount);
    }
}

impl Apply<MoneyWithdrawn> for Account {
    fn apply(&mut self, event: &MoneyWithdrawn) {
        self.balance = self.balance.saturating_sub(event.amount);
    }
}

impl Apply<AccountClosed> for Account {
    fn apply(&mut self, _: &AccountClosed) {
        self.closed = true;
    }
}

/// Waiting for the read side to settle failed.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// The head of the event store could not be read.
    #[error(transparent)]
    ReadSide(#[from] ReadSideError),
    /// A subscription timed out or stopped on a failing event.
    #[error(transparent)]
    Consistency(#[from] ConsistencyError),
}

/// Waits until every subscription of `read_side` has handled every stored
/// event, including the events that handlers cause on the way (a transfer
/// runs in several commands): it waits for the head, then again for the
/// new head, until no subscription appended anything more. Returns the
/// settled head.
///
/// # Errors
/// [`SettleError::Consistency`] when a subscription does not reach the head
/// within `timeout` (each wait has its own) or stopped on a failing event;
/// [`SettleError::ReadSide`] when the head cannot be read.
pub async fn settle(read_side: &ReadSide, timeout: Duration) -> Result<GlobalPosition, SettleError> {
    let names: Vec<String> = read_side.names().map(str::to_owned).collect();
    if names.is_empty() {
        return Ok(GlobalPosition::START);
    }
    let mut target = read_side.head_position().await?;
    loop {
        for name in &names {
            read_side.wait_for(name, target, timeout).await?;
        }
        let head = read_side.head_position().await?;
        if head == target {
            return Ok(target);
        }
        target = head;
    }
}

/// The README's examples, compiled (and the in-memory ones run) as doc
/// tests of the flagship example, which depends on every adapter.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
