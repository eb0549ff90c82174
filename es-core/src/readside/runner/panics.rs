//! Panics under a subscription. In subscriber code, a panic is an error
//! of the event at hand (retried per the subscriber's policy). In a
//! projection store's call, it is taken as a backend failure: the call may
//! or may not have taken effect, as after a lost connection, so a commit is
//! tried again. But an adapter that panics at every try has a bug no wait
//! will mend: after [`PANICS_IN_A_ROW`] commits in a row panicked, the
//! subscription stops, naming the panic.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinError;

use super::{describe, Exit, Runner};
use crate::error::{Failure, FailureKind, ProjectionError};
use crate::readside::handler::HandlerError;
use crate::readside::route::RouteFuture;
use crate::unwind::{panic_message, Unwound};
use crate::version::GlobalPosition;

/// After this many commits in a row whose adapter panicked, a subscription
/// stops. Enough for panics that stand for lost replies (each such commit
/// may have landed, and the next try says so), few enough that a panic at
/// every try is reported within seconds of backoff.
pub(crate) const PANICS_IN_A_ROW: u32 = 8;

/// Turns a panic in a subscriber's future into an error.
pub(crate) struct CatchPanic<'a>(pub(crate) RouteFuture<'a>);

impl Future for CatchPanic<'_> {
    type Output = Result<(), HandlerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                Poll::Ready(Err(HandlerError::msg(format!("panicked: {}", panic_message(&*panic)))))
            }
        }
    }
}

/// A projection store call, a panic in it taken as a backend failure: the
/// call may or may not have taken effect, as after a lost connection (so
/// is a commit in flight that panicked, see `in_flight.rs`).
pub(crate) async fn store_call<T, F>(call: F) -> Result<T, ProjectionError>
where
    F: Future<Output = Result<T, ProjectionError>> + Unpin,
{
    match Unwound(call).await {
        Ok(result) => result,
        Err(panic) => Err(ProjectionError::Backend(Box::new(AdapterPanicked(panic)))),
    }
}

/// A projection store's call panicked.
#[derive(Debug, thiserror::Error)]
#[error("the projection store panicked: {0}")]
pub(super) struct AdapterPanicked(String);

impl AdapterPanicked {
    /// The error of a store call spawned on a task of its own that did not
    /// answer: its adapter panicked, or the task was cancelled.
    pub(super) fn or_cancelled(ended: JoinError) -> ProjectionError {
        match ended.try_into_panic() {
            Ok(panic) => ProjectionError::Backend(Box::new(Self(panic_message(&*panic)))),
            Err(cancelled) => ProjectionError::Backend(Box::new(cancelled)),
        }
    }
}

impl Runner<'_> {
    /// A commit of the batch ending at `at` failed with `error`: if its
    /// adapter panicked, counts the panic, and stops the subscription at the
    /// [`PANICS_IN_A_ROW`]th. Otherwise the caller waits the failure out as
    /// an outage. The count starts again at every stored checkpoint.
    pub(super) fn count_panic(&mut self, error: &ProjectionError, at: GlobalPosition) -> Result<(), Exit> {
        let ProjectionError::Backend(source) = error else { return Ok(()) };
        if !source.is::<AdapterPanicked>() {
            return Ok(());
        }
        self.panics = self.panics.saturating_add(1);
        if self.panics < PANICS_IN_A_ROW {
            return Ok(());
        }
        Err(Exit::Failed(Failure {
            kind: FailureKind::Commit,
            error: format!("committing failed at every try: {}", describe(error)),
            position: at,
            event_id: None,
            event_type: None,
            attempts: self.panics,
        }))
    }
}
