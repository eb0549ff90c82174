//! Money transfers between two accounts, run as a process manager.
//!
//! A [`Transfer`] aggregate records where a transfer stands; the
//! [`TransferProcess`] handler moves the money with account commands:
//!
//! ```text
//! StartTransfer ─> TransferStarted ─┬─ Withdraw(from) ok ─> TransferDebited ─┬─ Deposit(to) ok ─> TransferCompleted
//!                                   │                                         └─ refused ─> TransferCreditRefused
//!                                   │                                               ─> Deposit(from) ─> TransferRefunded
//!                                   └─ refused (funds, closed..) ─> TransferFailed
//! ```
//!
//! Each state has exactly one side effect on an account, so the process
//! can resume anywhere: on `TransferStarted` it loads the transfer and
//! performs the step its state calls for, until the transfer is finished.
//! Delivery is at least once, and the process keeps no books of its own
//! for it: its commands go through [`HandlerCtx::execute`], whose ids derive
//! from the `TransferStarted` and the command's place in the process
//! ([`HandlerCtx::resume_at`]). A crash between an account command and the
//! transfer's own step resends the account command with the id it had, and
//! the store answers that exact retry with its first outcome: the money
//! never moves twice.

mod process;

use es_core::error::ValidationError;
use es_core::{command, event, Aggregate, Apply, Events, Handle};
use serde::{Deserialize, Serialize};

pub use process::{TransferProcess, TRANSFER_REFERENCE};

/// A transfer was asked for: `amount` from `from` to `to`.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct TransferStarted {
    /// The transfer id (also the aggregate id).
    pub transfer_id: String,
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// Amount in cents.
    pub amount: u64,
}

/// The money left the source account.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct TransferDebited {}

/// The money arrived on the target account: the transfer is done.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct TransferCompleted {}

/// The source account refused the debit: no money moved.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct TransferFailed {
    /// Why the debit was refused.
    pub reason: String,
}

/// The target account refused the credit: the money goes back.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct TransferCreditRefused {
    /// Why the credit was refused.
    pub reason: String,
}

/// The money is back on the source account: the transfer is over.
#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRefunded {}

/// Move money from one account to another.
#[command(aggregate = Transfer, validate = distinct_accounts)]
#[derive(Debug, Clone)]
pub struct StartTransfer {
    /// A fresh id for the transfer.
    #[id]
    #[validate(non_empty)]
    pub transfer_id: String,
    /// The account to debit.
    #[validate(non_empty)]
    pub from: String,
    /// The account to credit.
    #[validate(non_empty)]
    pub to: String,
    /// Amount in cents.
    #[validate(min = 1)]
    pub amount: u64,
}

/// A transfer moves money between two different accounts.
fn distinct_accounts(command: &StartTransfer) -> Result<(), ValidationError> {
    let mut error = ValidationError::new("StartTransfer");
    if command.from == command.to {
        error.field("to", "must be another account than `from`");
    }
    error.into_result()
}

/// Record that the source account was debited.
#[command(aggregate = Transfer)]
#[derive(Debug, Clone)]
pub struct MarkDebited {
    /// The transfer.
    #[id]
    pub transfer_id: String,
}

/// Record that the target account was credited.
#[command(aggregate = Transfer)]
#[derive(Debug, Clone)]
pub struct MarkCompleted {
    /// The transfer.
    #[id]
    pub transfer_id: String,
}

/// Record that the source account refused the debit.
#[command(aggregate = Transfer)]
#[derive(Debug, Clone)]
pub struct MarkFailed {
    /// The transfer.
    #[id]
    pub transfer_id: String,
    /// Why.
    pub reason: String,
}

/// Record that the target account refused the credit.
#[command(aggregate = Transfer)]
#[derive(Debug, Clone)]
pub struct MarkCreditRefused {
    /// The transfer.
    #[id]
    pub transfer_id: String,
    /// Why.
    pub reason: String,
}

/// Record that the money went back to the source account.
#[command(aggregate = Transfer)]
#[derive(Debug, Clone)]
pub struct MarkRefunded {
    /// The transfer.
    #[id]
    pub transfer_id: String,
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TransferStatus {
    /// Never started.
    #[default]
    New,
    /// Asked for; the source account is debited next.
    Started,
    /// The money left the source; the target is credited next.
    Debited,
    /// The money arrived. Final.
    Completed,
    /// The debit was refused; nothing moved. Final.
    Failed,
    /// The credit was refused; the source is refunded next.
    CreditRefused,
    /// The money went back to the source. Final.
    Refunded,
}

impl TransferStatus {
    /// Whether the transfer is over (completed, failed or refunded).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Refunded)
    }
}

/// Why a transfer refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// `StartTransfer` with an id already used.
    #[error("transfer already exists")]
    AlreadyStarted,
    /// A step that does not follow from where the transfer stands.
    #[error("transfer is {status:?}, so `{command}` does not apply")]
    WrongStep {
        /// Where the transfer stands.
        status: TransferStatus,
        /// The refused command.
        command: &'static str,
    },
}

/// A money transfer: the fold of its events.
#[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[aggregate(
    name = "transfer",
    error = TransferError,
    events(
        TransferStarted,
        TransferDebited,
        TransferCompleted,
        TransferFailed,
        TransferCreditRefused,
        TransferRefunded
    ),
    commands(StartTransfer, MarkDebited, MarkCompleted, MarkFailed, MarkCreditRefused, MarkRefunded)
)]
pub struct Transfer {
    /// Where it stands.
    pub status: TransferStatus,
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// Amount in cents.
    pub amount: u64,
    /// Why it failed or was refunded, if it was.
    pub reason: Option<String>,
}

impl Transfer {
    /// `event` if the transfer stands at `from`; nothing if it already
    /// reached `to` (the step is repeated after a crash); a refusal else.
    fn step(
        &self,
        from: TransferStatus,
        to: TransferStatus,
        command: &'static str,
        event: impl Into<TransferEvent>,
    ) -> Result<Events<Self>, TransferError> {
        if self.status == from {
            Ok(Events::one(event))
        } else if self.status == to {
            Ok(Events::none())
        } else {
            Err(TransferError::WrongStep { status: self.status, command })
        }
    }
}

impl Handle<StartTransfer> for Transfer {
    fn handle(&self, command: StartTransfer) -> Result<Events<Self>, TransferError> {
        if self.status != TransferStatus::New {
            return Err(TransferError::AlreadyStarted);
        }
        Ok(Events::one(TransferStarted {
            transfer_id: command.transfer_id,
            from: command.from,
            to: command.to,
            amount: command.amount,
        }))
    }
}

impl Handle<MarkDebited> for Transfer {
    fn handle(&self, _: MarkDebited) -> Result<Events<Self>, TransferError> {
        self.step(TransferStatus::Started, TransferStatus::Debited, "MarkDebited", TransferDebited {})
    }
}

impl Handle<MarkCompleted> for Transfer {
    fn handle(&self, _: MarkCompleted) -> Result<Events<Self>, TransferError> {
        self.step(TransferStatus::Debited, TransferStatus::Completed, "MarkCompleted", TransferCompleted {})
    }
}

impl Handle<MarkFailed> for Transfer {
    fn handle(&self, command: MarkFailed) -> Result<Events<Self>, TransferError> {
        let event = TransferFailed { reason: command.reason };
        self.step(TransferStatus::Started, TransferStatus::Failed, "MarkFailed", event)
    }
}

impl Handle<MarkCreditRefused> for Transfer {
    fn handle(&self, command: MarkCreditRefused) -> Result<Events<Self>, TransferError> {
        let event = TransferCreditRefused { reason: command.reason };
        self.step(TransferStatus::Debited, TransferStatus::CreditRefused, "MarkCreditRefused", event)
    }
}

impl Handle<MarkRefunded> for Transfer {
    fn handle(&self, _: MarkRefunded) -> Result<Events<Self>, TransferError> {
        self.step(
            TransferStatus::CreditRefused,
            TransferStatus::Refunded,
            "MarkRefunded",
            TransferRefunded {},
        )
    }
}

impl Apply<TransferStarted> for Transfer {
    fn apply(&mut self, event: &TransferStarted) {
        self.status = TransferStatus::Started;
        self.from.clone_from(&event.from);
        self.to.clone_from(&event.to);
        self.amount = event.amount;
    }
}

impl Apply<TransferDebited> for Transfer {
    fn apply(&mut self, _: &TransferDebited) {
        self.status = TransferStatus::Debited;
    }
}

impl Apply<TransferCompleted> for Transfer {
    fn apply(&mut self, _: &TransferCompleted) {
        self.status = TransferStatus::Completed;
    }
}

impl Apply<TransferFailed> for Transfer {
    fn apply(&mut self, event: &TransferFailed) {
        self.status = TransferStatus::Failed;
        self.reason = Some(event.reason.clone());
    }
}

impl Apply<TransferCreditRefused> for Transfer {
    fn apply(&mut self, event: &TransferCreditRefused) {
        self.status = TransferStatus::CreditRefused;
        self.reason = Some(event.reason.clone());
    }
}

impl Apply<TransferRefunded> for Transfer {
    fn apply(&mut self, _: &TransferRefunded) {
        self.status = TransferStatus::Refunded;
    }
}
