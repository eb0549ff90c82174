//! The read side: handlers and projections fed by the global stream.
//!
//! Each subscriber (an event handler or a projection) is registered under a
//! unique name in a [`Registry`], explicitly or at link time through
//! `inventory`. A [`ReadSide`] runs the selected ones, one task each:
//!
//! - it reads the global stream after the subscriber's checkpoint
//!   (catch-up), then waits for new events (live), in one loop, so nothing
//!   slips through at the hand-over;
//! - it delivers every event at least once in position order, retrying a
//!   failing event with backoff and stopping at it (reported in its
//!   [`SubscriptionStatus`]) when the retries run out: nothing is skipped;
//! - a projection's document changes and its checkpoint commit together, in
//!   one [`ProjectionStore::commit`](crate::ProjectionStore::commit) per
//!   batch; a handler's checkpoint is stored in the projection store under
//!   the namespace `handler:<name>`;
//! - events a subscriber does not consume are skipped and still move the
//!   checkpoint (committed with the next batch that handles something, after
//!   [`ReadSideConfig::checkpoint_every`] of them, or when it catches up);
//! - it runs a subscription only while it holds that subscription's lease
//!   from a [`LeaseStore`] shared by all nodes, so each runs on one node at a
//!   time, and another node takes over from the checkpoint when it stops or
//!   dies;
//! - [`ReadSide::wait_for`] waits until a subscription reaches a position
//!   (read your own writes); [`ReadSide::wait_for_strong`] waits for every
//!   [`Consistency::Strong`] one, which is what command execution does.

mod cache;
mod handler;
mod lease;
mod projection;
mod read_side;
mod recorded;
mod registry;
mod runner;
mod status;
mod subscriber;

pub use handler::{HandleEvent, HandlerBuilder, HandlerCtx, HandlerError, Replay};
pub use lease::{InMemoryLeaseStore, Lease, LeaseError, LeaseStore};
pub use projection::{Project, ProjectionBuilder, ProjectionTx};
pub use read_side::{ConsistencyError, ReadSide, ReadSideBuilder, ReadSideConfig, ReadSideError};
pub use recorded::Recorded;
pub use registry::{Registration, Registry, RegistryError, Selection};
pub use status::{Failure, SubscriptionState, SubscriptionStatus};
pub use subscriber::{Consistency, RetryPolicy, Subscriber, SubscriptionKind};
