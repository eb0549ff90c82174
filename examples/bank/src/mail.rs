//! The welcome mail: a side effect of opening an account, written to an
//! outbox that a mailer would send from.
//!
//! The handler runs with `replay = "skip"`, so replaying history never
//! writes a mail again, and each mail's id is the id of the event that
//! caused it, so a redelivered event (delivery is at least once) rewrites
//! the same mail instead of adding a second one.

use es_core::error::ProjectionError;
use es_core::store::ProjectionStore;
use es_core::{event_handler, Es, HandlerCtx, HandlerError, Recorded};
use serde::{Deserialize, Serialize};

use crate::projections;
use crate::AccountOpened;

/// The projection store namespace of the outbox.
pub const MAIL_OUTBOX: &str = "mail-outbox";

/// A mail waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    /// The id of the event that caused it (also its document id).
    pub id: String,
    /// The recipient.
    pub to: String,
    /// The account it is about.
    pub account_id: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
}

/// Every mail in the outbox of `store`, ordered by id (which is also the
/// order the accounts were opened in: event ids are UUID v7).
///
/// # Errors
/// [`ProjectionError`] if the store fails or a document is not a mail.
pub async fn outbox(store: &dyn ProjectionStore) -> Result<Vec<OutboxMail>, ProjectionError> {
    projections::all(store, MAIL_OUTBOX).await
}

/// Welcomes the owner of a new account and sends the verification code.
///
/// # Errors
/// [`HandlerError::Failed`] when the application has no projection store
/// to hold the outbox; [`HandlerError::Projection`] when writing fails.
#[event_handler(name = "welcome-mail", replay = "skip")]
pub async fn welcome_mail(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let store = ctx.es().and_then(Es::projection_store).ok_or_else(|| {
        HandlerError::msg(
            "the welcome mail needs an application (`Es`) with a projection store for its outbox",
        )
    })?;
    let id = e.event_id.to_string();
    let mail = OutboxMail {
        id: id.clone(),
        to: e.owner.clone(),
        account_id: e.account_id.clone(),
        subject: format!("Welcome, {}", e.owner),
        body: format!(
            "Your account {} is open. Confirm it with the code {} to move money out of it.",
            e.account_number, e.verification_code
        ),
    };
    let document = serde_json::to_value(&mail).map_err(|source| ProjectionError::Serde {
        projection: MAIL_OUTBOX.to_owned(),
        id: id.clone(),
        source,
    })?;
    store.put(MAIL_OUTBOX, &id, document).await?;
    Ok(())
}
