//! The snapshot store port.

use async_trait::async_trait;

use crate::envelope::Snapshot;
use crate::error::StoreError;
use crate::version::StreamId;

/// Where aggregate snapshots are kept.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// The newest snapshot of `stream`, if any.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Stores a snapshot, replacing an older one of the same stream. A
    /// snapshot older than the stored one is ignored.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError>;
}
