//! The read side: handlers and projections fed by the global stream.
//!
//! What a handler or projection is written with ([`HandleEvent`](crate::HandleEvent),
//! [`Project`](crate::Project), [`Recorded`](crate::Recorded), [`HandlerCtx`](crate::HandlerCtx), [`ProjectionTx`](crate::ProjectionTx)) and the
//! [`ReadSide`](crate::ReadSide) handle live at the crate root; this module holds what
//! configures, registers and reports on them.
//!
//! Each subscriber (an event handler or a projection) is registered under a
//! unique name in a [`Registry`], explicitly or at link time through
//! `inventory`. A [`ReadSide`](crate::ReadSide) runs the selected ones, one task each:
//!
//! - it reads the global stream after the subscriber's checkpoint
//!   (catch-up), then waits for new events (live), in one loop, so nothing
//!   slips through at the hand-over;
//! - it delivers every event at least once in position order, retrying a
//!   failing event with backoff and stopping at it (reported in its
//!   [`SubscriptionStatus`]) when the retries run out: nothing is skipped;
//! - a store that fails under it (an outage, a pool timeout; a failed read
//!   of events, documents or the checkpoint, a failed commit) is not the
//!   event's fault: it is retried with capped, jittered backoff for as long
//!   as it lasts and never counts against the subscriber's [`RetryPolicy`];
//!   meanwhile the status says [`SubscriptionState::WaitingForStore`] (with
//!   the error and since when), and it goes on by itself when the store
//!   answers again. Only errors of the handler or projection itself stop it;
//! - a stored row that cannot become an event (a poison row) stops it at
//!   the row, loudly: every event before the row is delivered and
//!   checkpointed, and it stops `Failed` ([`FailureKind::CorruptRow`](crate::error::FailureKind::CorruptRow))
//!   naming the row's stream, version and position, until an operator fixes
//!   the row and restarts it, or skips the row with
//!   [`ReadSide::skip`](crate::ReadSide::skip) (logged);
//! - its status is kept in memory ([`ReadSide::status`](crate::ReadSide::status)
//!   never waits on a store) and says how far behind it is as a number of
//!   events ([`Backlog`]) and as time, never as a difference of positions;
//! - a projection's document changes and its checkpoint commit together, in
//!   one [`ProjectionStore::commit`](crate::store::ProjectionStore::commit)
//!   per batch; a handler's checkpoint is stored in the projection store
//!   under its name too;
//! - events a subscriber does not consume are skipped and still move the
//!   checkpoint (committed with the next batch that handles something, after
//!   [`ReadSideConfig::checkpoint_every`] of them, or when it catches up);
//! - it runs a subscription only while it holds that subscription's lease
//!   from a [`LeaseStore`](crate::store::LeaseStore) shared by all nodes, so each runs on one node at a
//!   time, and another node takes over from the checkpoint when it stops or
//!   dies;
//! - [`ReadSide::wait_for`](crate::ReadSide::wait_for) waits until a subscription reaches a position
//!   (read your own writes); [`ReadSide::wait_for_strong`](crate::ReadSide::wait_for_strong) waits for every
//!   [`Consistency::Strong`] one; `Es::execute` waits for the strong ones
//!   that consume one of the command's event types (the others have
//!   nothing of the command's to run).

mod attach;
mod builder;
mod cache;
mod config;
mod documents;
pub(crate) mod handler;
mod local_leases;
mod prefetch;
pub(crate) mod projection;
mod projection_tx;
pub(crate) mod read_side;
pub(crate) mod recorded;
mod registry;
mod route;
mod runner;
mod state;
mod status;
mod subscriber;
pub(crate) mod table;
mod wait;

pub use builder::ReadSideBuilder;
pub use config::ReadSideConfig;
pub use documents::Documents;
pub use handler::{HandlerBuilder, Replay};
pub use projection::ProjectionBuilder;
pub use registry::{Registration, Registry, Selection};
pub use status::{Backlog, StoreOutage, SubscriptionState, SubscriptionStatus};
pub use subscriber::{Consistency, RetryPolicy, Subscriber, SubscriptionKind};
pub use table::TableProjectionBuilder;
