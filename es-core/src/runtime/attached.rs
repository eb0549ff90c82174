//! What the runtime needs of a read side it runs with, and nothing more.
//!
//! The runtime does not know the read side: the read side knows the runtime
//! (its handlers dispatch commands through an [`Es`](crate::Es)) and
//! attaches itself to an application through this trait. After an append
//! the runtime waits for the strongly consistent subscribers; on shutdown
//! it stops them.

use std::any::Any;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::ConsistencyError;
use crate::version::GlobalPosition;

/// A read side attached to an application.
#[async_trait]
pub(crate) trait Attached: Send + Sync + 'static {
    /// Whether a strongly consistent subscriber consumes any of
    /// `event_types` (a command that appended them waits only then).
    fn strong_consumes(&self, event_types: &[&str]) -> bool;

    /// Waits until every strongly consistent subscriber that consumes one
    /// of `event_types` (every one if `None`) has handled every event up to
    /// `position`.
    async fn wait_for_strong(
        &self,
        position: GlobalPosition,
        timeout: Duration,
        event_types: Option<&[&str]>,
    ) -> Result<(), ConsistencyError>;

    /// Stops every subscription cleanly.
    async fn shutdown(&self);

    /// The read side itself, for [`Es::read_side`](crate::Es::read_side).
    fn as_any(&self) -> &dyn Any;
}
