//! The welcome mail: a side effect of opening an account, written to an
//! outbox that a mailer would send from.
//!
//! The handler runs with `replay = "skip"`, so replaying history never
//! writes a mail again, and each mail's id is the id of the event that
//! caused it, so a redelivered event (delivery is at least once) rewrites
//! the same mail instead of adding a second one.

use std::sync::Arc;

use es_core::error::ProjectionError;
use es_core::readside::Documents;
use es_core::store::ProjectionStore;
use es_core::{event_handler, HandlerCtx, HandlerError, Recorded};
use serde::{Deserialize, Serialize};

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

/// Where mails wait for a mailer: documents in the application's projection
/// store. The read side gives it to the welcome mail handler as state.
#[derive(Debug, Clone)]
pub struct Outbox(Documents<OutboxMail>);

impl Outbox {
    /// The outbox kept in `store`.
    pub fn new(store: Arc<dyn ProjectionStore>) -> Self {
        Self(Documents::new(store, MAIL_OUTBOX))
    }

    /// Puts `mail` in the outbox (again: the same id replaces it).
    ///
    /// # Errors
    /// [`ProjectionError`] if the store fails.
    pub async fn put(&self, mail: &OutboxMail) -> Result<(), ProjectionError> {
        self.0.put(&mail.id, mail).await
    }

    /// Every mail, ordered by id (which is also the order the accounts were
    /// opened in: event ids are UUID v7).
    ///
    /// # Errors
    /// [`ProjectionError`] if the store fails or a document is not a mail.
    pub async fn mails(&self) -> Result<Vec<OutboxMail>, ProjectionError> {
        Ok(self.0.list().await?.into_iter().map(|(_, mail)| mail).collect())
    }
}

/// Welcomes the owner of a new account and sends the verification code,
/// through the [`Outbox`] the application gives its read side.
///
/// # Errors
/// [`HandlerError::Projection`] when writing fails.
#[event_handler(name = "welcome-mail", replay = "skip", uses(Outbox))]
pub async fn welcome_mail(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let mail = OutboxMail {
        id: e.event_id.to_string(),
        to: e.owner.clone(),
        account_id: e.account_id.clone(),
        subject: format!("Welcome, {}", e.owner),
        body: format!(
            "Your account {} is open. Confirm it with the code {} to move money out of it.",
            e.account_number, e.verification_code
        ),
    };
    ctx.state::<Outbox>()?.put(&mail).await?;
    Ok(())
}
