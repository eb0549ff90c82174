//! Ports: what the runtime needs from storage, and what an adapter author
//! works with.
//!
//! Applications pick an adapter crate (`es-memory`, `es-postgres`, ...) and
//! rarely name anything here. Adapter authors implement the ports
//! ([`EventStore`], [`SnapshotStore`], [`ProjectionStore`], [`LeaseStore`])
//! with the envelopes and errors below, and prove them with the shared
//! conformance suite (`es_core::conformance`, feature `conformance`), so
//! every adapter behaves alike. Two rules are written once here so that no
//! adapter has to decide them: what a store can keep ([`check_storable`])
//! and what an exact retry is ([`classify_stored`]).
//!
//! The errors of the ports live in [`crate::error`].
//!
//! Every port is implemented for `Arc<T>` too, so a store already shared
//! can be handed wherever a store is asked for.

mod containment;
mod events;
mod leases;
mod limits;
mod projections;
mod retry;
mod shared;
mod snapshots;
mod transactions;

pub use containment::json_contains;
pub use events::{Direction, EventStore, ReadBlocker, ReplayVisitor, StreamSummary, WakeupMark};
pub use leases::{lease_ttl_micros, Lease, LeaseStore, MAX_LEASE_TTL};
pub use limits::{
    check_storable, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_JSON_DEPTH, MAX_METADATA_BYTES, MAX_PAYLOAD_BYTES,
    MAX_STREAM_ID_BYTES, MAX_TYPE_NAME_BYTES,
};
pub use projections::{Checkpoint, DocumentChange, DocumentQuery, Fence, ProjectionStore, UnitOfWork};
pub use retry::classify_stored;
pub use snapshots::SnapshotStore;
pub use transactions::{ProjectionTransactions, StoreTransaction};

pub use crate::envelope::{
    AppendOutcome, Committed, NewEvent, Payload, RecordedEvent, ReplayEvent, Snapshot, Timestamp,
};
pub use crate::version::ExpectedVersion;
