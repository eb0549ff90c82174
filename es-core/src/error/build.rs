//! Building an application failed.

use super::ReadSideError;
#[cfg(doc)]
use crate::runtime::EsBuilder;

/// Building an [`Es`](crate::Es) with [`EsBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No event store was given.
    #[error("no event store: call `EsBuilder::event_store` before `build`")]
    MissingEventStore,
    /// A snapshot interval of zero.
    #[error("aggregate `{aggregate}`: snapshot interval must be at least 1")]
    ZeroSnapshotInterval {
        /// The aggregate type.
        aggregate: &'static str,
    },
    /// `max_attempts` of zero.
    #[error("max_attempts must be at least 1")]
    ZeroAttempts,
    /// `max_live_actors` of zero.
    #[error("max_live_actors must be at least 1")]
    ZeroLiveActors,
    /// `mailbox_capacity` of zero.
    #[error("mailbox_capacity must be at least 1")]
    ZeroMailbox,
    /// The read side could not be built or started.
    #[error("the read side could not start: {0}")]
    ReadSide(ReadSideError),
}

impl From<ReadSideError> for BuildError {
    fn from(error: ReadSideError) -> Self {
        Self::ReadSide(error)
    }
}
