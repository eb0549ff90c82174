//! The process manager that moves a transfer's money: see the
//! [module docs](super) for its steps and why it never moves money twice.

use es_core::error::ExecuteError;
use es_core::{event_handler, HandleEvent, HandlerCtx, HandlerError, Metadata, Recorded};

use super::{
    MarkCompleted, MarkCreditRefused, MarkDebited, MarkFailed, MarkRefunded, Transfer, TransferStarted,
    TransferStatus,
};
use crate::{AccountError, Deposit, Withdraw};

/// The metadata field that carries the transfer id on the account events a
/// transfer causes (a deposit has no reference of its own).
pub const TRANSFER_REFERENCE: &str = "reference";

/// The process manager: moves the money of every started transfer.
///
/// It never runs for replayed history (`replay = "skip"`): the money moved
/// when the transfer happened. It is strongly consistent, so an
/// application that waits for strong subscribers returns from
/// `StartTransfer` once the transfer has finished (the read models may
/// still be catching up with the account events it caused).
#[event_handler(name = "transfer-process", events(TransferStarted), replay = "skip", consistency = "strong")]
#[derive(Debug, Default)]
pub struct TransferProcess;

impl HandleEvent<TransferStarted> for TransferProcess {
    async fn handle(
        &self,
        started: &Recorded<TransferStarted>,
        ctx: &HandlerCtx,
    ) -> Result<(), HandlerError> {
        let es = ctx.es().ok_or(HandlerError::NoDispatcher)?;
        let step = Step { ctx, started };
        loop {
            let transfer: Transfer = es.load(&started.transfer_id).await.map_err(HandlerError::other)?;
            match transfer.status {
                TransferStatus::Started => step.debit().await?,
                TransferStatus::Debited => step.credit().await?,
                TransferStatus::CreditRefused => step.refund().await?,
                TransferStatus::Completed | TransferStatus::Failed | TransferStatus::Refunded => {
                    return Ok(())
                }
                TransferStatus::New => {
                    return Err(HandlerError::msg(format!(
                        "transfer `{}` has no events although it started",
                        started.transfer_id
                    )))
                }
            }
        }
    }
}

/// The steps of a transfer, in order. Each dispatches two commands (the
/// account's, then the transfer's record of its outcome), so the commands
/// of step `n` are numbered `2n` and `2n + 1`, whichever delivery of the
/// `TransferStarted` sends them.
const DEBIT: u32 = 0;
const CREDIT: u32 = 1;
const REFUND: u32 = 2;

/// One step of a transfer: the account command its state calls for, then
/// the transfer's own command.
struct Step<'a> {
    ctx: &'a HandlerCtx,
    started: &'a Recorded<TransferStarted>,
}

impl Step<'_> {
    fn id(&self) -> String {
        self.started.transfer_id.clone()
    }

    /// Account commands carry the transfer id as reference.
    fn account_metadata(&self) -> Metadata {
        self.ctx.command_metadata().with_field(TRANSFER_REFERENCE, self.started.transfer_id.clone())
    }

    async fn debit(&self) -> Result<(), HandlerError> {
        self.ctx.resume_at(2 * DEBIT);
        let withdraw = Withdraw {
            account_id: self.started.from.clone(),
            amount: self.started.amount,
            reference: Some(self.id()),
        };
        match refusal(self.ctx.execute_with(withdraw, self.account_metadata()).await)? {
            Some(reason) => self.transfer(MarkFailed { transfer_id: self.id(), reason }).await,
            None => self.transfer(MarkDebited { transfer_id: self.id() }).await,
        }
    }

    async fn credit(&self) -> Result<(), HandlerError> {
        self.ctx.resume_at(2 * CREDIT);
        let deposit = Deposit { account_id: self.started.to.clone(), amount: self.started.amount };
        match refusal(self.ctx.execute_with(deposit, self.account_metadata()).await)? {
            Some(reason) => self.transfer(MarkCreditRefused { transfer_id: self.id(), reason }).await,
            None => self.transfer(MarkCompleted { transfer_id: self.id() }).await,
        }
    }

    async fn refund(&self) -> Result<(), HandlerError> {
        self.ctx.resume_at(2 * REFUND);
        let deposit = Deposit { account_id: self.started.from.clone(), amount: self.started.amount };
        // A refused refund (the source was closed meanwhile) is an error:
        // the subscription stops here and reports it, since the money must
        // not vanish.
        self.ctx.execute_with(deposit, self.account_metadata()).await?;
        self.transfer(MarkRefunded { transfer_id: self.id() }).await
    }

    async fn transfer<C>(&self, command: C) -> Result<(), HandlerError>
    where
        C: es_core::Command<Aggregate = Transfer>,
    {
        self.ctx.execute(command).await?;
        Ok(())
    }
}

/// The account's refusal as a reason, or the error if the command failed
/// for another reason (then the event is retried).
fn refusal<T>(outcome: Result<T, HandlerError>) -> Result<Option<String>, HandlerError> {
    let error = match outcome {
        Ok(_) => return Ok(None),
        Err(error) => error,
    };
    if let HandlerError::Command { source, .. } = &error {
        match source.downcast_ref::<ExecuteError<AccountError>>() {
            Some(ExecuteError::Rejected(refusal)) => return Ok(Some(refusal.to_string())),
            Some(ExecuteError::Validation(invalid)) => return Ok(Some(invalid.to_string())),
            _ => {}
        }
    }
    Err(error)
}
