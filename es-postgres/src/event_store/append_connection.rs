//! Which connection an append runs on, the pool's or one the store keeps
//! (`writers.rs`), and what a call on either that got no answer means for
//! the append's outcome. The statement itself is `append.rs`'s.

use es_core::error::AppendError;
use es_core::store::{AppendOutcome, ExpectedVersion, NewEvent};
use es_core::StreamId;
use sqlx::PgConnection;

use super::outcome;
use super::writers::Ran;
use super::PgEventStore;
use crate::bounded::CallFailed;

impl PgEventStore {
    /// Appends through a pooled connection, the append statement being its
    /// own transaction. A connection that cannot be had is
    /// [`AppendError::Backend`] (nothing was sent); a statement whose reply
    /// is lost, or an append that overran the call timeout, is
    /// [`AppendError::OutcomeUnknown`] (see `outcome.rs`).
    pub(super) async fn append_pooled(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, AppendError> {
        let deadline = tokio::time::Instant::now() + self.inner.calls.get();
        self.append_pooled_by(deadline, stream, expected, events).await
    }

    /// [`append_pooled`](Self::append_pooled) by `deadline`.
    async fn append_pooled_by(
        &self,
        deadline: tokio::time::Instant,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, AppendError> {
        let append =
            async |conn: &mut PgConnection| self.append_on(conn, false, stream, expected, events).await;
        self.inner
            .calls
            .run_until(deadline, append)
            .await
            .unwrap_or_else(|failed| Err(unanswered(stream, failed)))
    }

    /// Appends on one of the store's own connections (`writers.rs`), for an
    /// append that holds a group slot (through the pool when
    /// [`GroupCommit::own_connections`](super::GroupCommit::own_connections)
    /// is off). Errors as [`append_pooled`](Self::append_pooled).
    ///
    /// A connection kept from an earlier append can have broken while idle.
    /// An append that fails so on one is made again, once, on a new
    /// connection, by the same deadline: the same events under the same
    /// ids, so if the first try did commit, the second finds its events
    /// and answers with their positions (an exact retry), and if it did
    /// not, the second stores them. A second try that wrote nothing does
    /// not hide the first's unknown outcome.
    ///
    /// When the server refuses to open a connection for the store (it has
    /// too many clients, say), the append goes through the pool instead,
    /// by the same deadline.
    pub(super) async fn append_kept(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, AppendError> {
        if !self.inner.groups.own_connections() {
            return self.append_pooled(stream, expected, events).await;
        }
        let calls = &self.inner.calls;
        let deadline = tokio::time::Instant::now() + calls.get();
        let keep = self.inner.groups.max_in_flight();
        let mut first_try: Option<AppendError> = None;
        loop {
            let append =
                async |conn: &mut PgConnection| self.append_on(conn, false, stream, expected, events).await;
            let broke = |answer: &Result<AppendOutcome, AppendError>| {
                answer.as_ref().is_err_and(outcome::connection_lost)
            };
            let answer = match self.inner.writers.run(calls, deadline, keep, append, broke).await {
                Ok(Ran { answer: Err(error), reused: true })
                    if first_try.is_none() && outcome::connection_lost(&error) =>
                {
                    tracing::debug!(%error, stream = %stream, "a kept connection broke while idle; appending again");
                    first_try = Some(error);
                    continue;
                }
                Ok(ran) => ran.answer,
                // The server would not open another connection (too many
                // clients, say) but may still serve the pool's: nothing
                // was sent on this one, so the pool's connection makes it.
                Err(CallFailed::NoConnection(e)) if outcome::refused_to_connect(&e) => {
                    tracing::debug!(error = %e, stream = %stream, "no connection of the store's own; appending through the pool");
                    self.append_pooled_by(deadline, stream, expected, events).await
                }
                Err(failed) => Err(unanswered(stream, failed)),
            };
            return match (answer, first_try) {
                (Err(AppendError::Backend { .. }), Some(first @ AppendError::OutcomeUnknown { .. })) => {
                    Err(first)
                }
                (answer, _) => answer,
            };
        }
    }
}

/// The error of an append whose call got no answer: no connection means
/// nothing was sent; an overrun may have committed.
fn unanswered(stream: &StreamId, failed: CallFailed) -> AppendError {
    let stream = stream.clone();
    match failed {
        CallFailed::NoConnection(e) => AppendError::Backend { stream, source: Box::new(e) },
        CallFailed::TimedOut(e) => AppendError::OutcomeUnknown { stream, source: Box::new(e) },
    }
}
