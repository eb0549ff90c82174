//! One endpoint per command: open, verify, deposit, withdraw, close, and
//! start a transfer. Each answers with the global position its events
//! reached, for `?after=` on the queries (read your writes).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use es_core::{Aggregate, Command, Es, EventSet};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{check_id, Body, IdempotencyKey, PathParam};
use super::problem::Problem;
use super::Api;
use crate::{
    AccountError, CloseAccount, Deposit, OpenAccount, StartTransfer, TransferError, VerifyAccount, Withdraw,
};

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommandResponse {
    /// The command's id (the `Idempotency-Key`, when one was sent).
    pub command_id: String,
    /// The account or transfer.
    pub aggregate_id: String,
    /// Its version after the command (`null`: it has no events).
    pub version: Option<u64>,
    /// The global position of the last event stored (`null`: none); pass it
    /// as `?after=` to a query to read this write.
    pub position: Option<u64>,
    /// The type names of the events the command stored, in order.
    pub events: Vec<String>,
}

/// `POST /accounts`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct OpenAccountRequest {
    /// The new account's id.
    pub account_id: String,
    /// Who owns it.
    pub owner: String,
}

/// `POST /accounts/{account_id}/verification`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct VerifyRequest {
    /// The code sent to the owner.
    pub code: String,
}

/// `POST /accounts/{account_id}/deposits`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct DepositRequest {
    /// Amount in cents, at least 1.
    pub amount: u64,
}

/// `POST /accounts/{account_id}/withdrawals`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct WithdrawRequest {
    /// Amount in cents, at least 1.
    pub amount: u64,
    /// What it is for, at most 140 characters.
    #[serde(default)]
    pub reference: Option<String>,
}

/// `POST /transfers`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct TransferRequest {
    /// A fresh id for the transfer.
    pub transfer_id: String,
    /// The account to debit.
    pub from: String,
    /// The account to credit.
    pub to: String,
    /// Amount in cents, at least 1.
    pub amount: u64,
}

/// Executes `command` with the request's idempotency key and answers with
/// what it stored, or a problem.
async fn run<C: Command>(
    api: &Api,
    command: C,
    key: IdempotencyKey,
    refusal: fn(&<C::Aggregate as Aggregate>::Error) -> Problem,
) -> Result<CommandResponse, Problem> {
    let execute = run_on(&api.es, command, key);
    let outcome = execute.timeout(api.config.command_timeout).await;
    let outcome = outcome.map_err(|error| Problem::from_execute(error, refusal))?;
    Ok(CommandResponse {
        command_id: outcome.command_id.to_string(),
        aggregate_id: outcome.aggregate_id,
        version: outcome.version.map(|v| v.get()),
        position: outcome.position.map(|p| p.get()),
        events: outcome.events.iter().map(|e| e.event_type().to_owned()).collect(),
    })
}

fn run_on<C: Command>(es: &Es, command: C, key: IdempotencyKey) -> es_core::runtime::Execute<'_, C> {
    match key.0 {
        Some(id) => es.execute(command).id(id),
        None => es.execute(command),
    }
}

/// An account's refusal: 404 for an account that was never opened, 409
/// with the reason else.
fn account_refusal(error: &AccountError) -> Problem {
    let reason = match error {
        AccountError::NotOpen => return Problem::not_found(error.to_string()),
        AccountError::AlreadyOpen => "already_open",
        AccountError::Closed => "closed",
        AccountError::WrongVerificationCode => "wrong_verification_code",
        AccountError::NotVerified => "not_verified",
        AccountError::InsufficientFunds { .. } => "insufficient_funds",
        AccountError::BalanceNotZero { .. } => "balance_not_zero",
        AccountError::BalanceLimit { .. } => "balance_limit",
    };
    Problem::refused(reason, error.to_string())
}

fn transfer_refusal(error: &TransferError) -> Problem {
    let reason = match error {
        TransferError::AlreadyStarted => "already_started",
        TransferError::WrongStep { .. } => "wrong_step",
    };
    Problem::refused(reason, error.to_string())
}

/// Open an account.
#[utoipa::path(post, path = "/accounts", tag = "commands",
    params(("Idempotency-Key" = Option<String>, Header, description = "A UUID: sending the command again with it returns the first outcome")),
    request_body = OpenAccountRequest,
    responses(
        (status = 201, description = "Opened", body = CommandResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already open", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn open(
    State(api): State<Api>,
    key: IdempotencyKey,
    Body(request): Body<OpenAccountRequest>,
) -> Result<(StatusCode, Json<CommandResponse>), Problem> {
    check_id("account_id", &request.account_id)?;
    let command = OpenAccount { account_id: request.account_id, owner: request.owner };
    Ok((StatusCode::CREATED, Json(run(&api, command, key, account_refusal).await?)))
}

/// Verify an account with the code its owner received.
#[utoipa::path(post, path = "/accounts/{account_id}/verification", tag = "commands",
    params(("account_id" = String, Path, description = "The account"),
           ("Idempotency-Key" = Option<String>, Header, description = "A UUID: sending the command again with it returns the first outcome")),
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Verified", body = CommandResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Refused (wrong code, closed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn verify(
    State(api): State<Api>,
    PathParam(account_id): PathParam<String>,
    key: IdempotencyKey,
    Body(request): Body<VerifyRequest>,
) -> Result<Json<CommandResponse>, Problem> {
    check_id("account_id", &account_id)?;
    let command = VerifyAccount { account_id, code: request.code };
    Ok(Json(run(&api, command, key, account_refusal).await?))
}

/// Put money into an account.
#[utoipa::path(post, path = "/accounts/{account_id}/deposits", tag = "commands",
    params(("account_id" = String, Path, description = "The account"),
           ("Idempotency-Key" = Option<String>, Header, description = "A UUID: sending the command again with it returns the first outcome")),
    request_body = DepositRequest,
    responses(
        (status = 200, description = "Deposited", body = CommandResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Refused (closed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid (amount 0)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn deposit(
    State(api): State<Api>,
    PathParam(account_id): PathParam<String>,
    key: IdempotencyKey,
    Body(request): Body<DepositRequest>,
) -> Result<Json<CommandResponse>, Problem> {
    check_id("account_id", &account_id)?;
    let command = Deposit { account_id, amount: request.amount };
    Ok(Json(run(&api, command, key, account_refusal).await?))
}

/// Take money out of a verified account.
#[utoipa::path(post, path = "/accounts/{account_id}/withdrawals", tag = "commands",
    params(("account_id" = String, Path, description = "The account"),
           ("Idempotency-Key" = Option<String>, Header, description = "A UUID: sending the command again with it returns the first outcome")),
    request_body = WithdrawRequest,
    responses(
        (status = 200, description = "Withdrawn", body = CommandResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Refused (funds, not verified, closed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid (amount 0, reference too long)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn withdraw(
    State(api): State<Api>,
    PathParam(account_id): PathParam<String>,
    key: IdempotencyKey,
    Body(request): Body<WithdrawRequest>,
) -> Result<Json<CommandResponse>, Problem> {
    check_id("account_id", &account_id)?;
    let command = Withdraw { account_id, amount: request.amount, reference: request.reference };
    Ok(Json(run(&api, command, key, account_refusal).await?))
}

/// Close an account whose balance is zero.
#[utoipa::path(post, path = "/accounts/{account_id}/closure", tag = "commands",
    params(("account_id" = String, Path, description = "The account"),
           ("Idempotency-Key" = Option<String>, Header, description = "A UUID: sending the command again with it returns the first outcome")),
    responses(
        (status = 200, description = "Closed", body = CommandResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Refused (balance not zero, closed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn close(
    State(api): State<Api>,
    PathParam(account_id): PathParam<String>,
    key: IdempotencyKey,
) -> Result<Json<CommandResponse>, Problem> {
    check_id("account_id", &account_id)?;
    Ok(Json(run(&api, CloseAccount { account_id }, key, account_refusal).await?))
}

/// Move money between two accounts. The transfer runs as a process
/// manager and has finished when this answers: see `GET /transfers/{id}`.
#[utoipa::path(post, path = "/transfers", tag = "commands",
    params(("Idempotency-Key" = Option<String>, Header, description = "A UUID: sending the command again with it returns the first outcome")),
    request_body = TransferRequest,
    responses(
        (status = 201, description = "Started (and finished: completed, failed or refunded)", body = CommandResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Transfer id already used", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid (same account, amount 0)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn transfer(
    State(api): State<Api>,
    key: IdempotencyKey,
    Body(request): Body<TransferRequest>,
) -> Result<(StatusCode, Json<CommandResponse>), Problem> {
    check_id("transfer_id", &request.transfer_id)?;
    check_id("from", &request.from)?;
    check_id("to", &request.to)?;
    let command = StartTransfer {
        transfer_id: request.transfer_id,
        from: request.from,
        to: request.to,
        amount: request.amount,
    };
    Ok((StatusCode::CREATED, Json(run(&api, command, key, transfer_refusal).await?)))
}
