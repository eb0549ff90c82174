//! The OpenAPI document, generated from the handlers and types.

use utoipa::OpenApi;

use super::{commands, problem, queries};
use crate::{
    Account, AccountSummary, Transaction, TransactionHistory, TransactionKind, Transfer, TransferStatus,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "es bank", description = "The es bank example as an HTTP service: accounts, deposits, withdrawals, transfers. Errors are RFC 9457 problem documents."),
    paths(
        commands::open,
        commands::verify,
        commands::deposit,
        commands::withdraw,
        commands::close,
        commands::transfer,
        queries::summary,
        queries::transactions,
        queries::events,
        queries::state,
        queries::transfer,
    ),
    components(schemas(
        problem::Problem,
        problem::FieldError,
        commands::CommandResponse,
        AccountSummary,
        TransactionHistory,
        Transaction,
        TransactionKind,
        Account,
        Transfer,
        TransferStatus,
    )),
    tags((name = "commands", description = "Change an account or start a transfer"),
         (name = "queries", description = "Read models, events, time travel"))
)]
struct BankApi;

/// The service's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    BankApi::openapi()
}
