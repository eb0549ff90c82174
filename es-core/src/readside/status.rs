//! What each subscription reports: state, position, how far behind.
//!
//! A status is read from memory: the runner publishes its progress as it
//! goes, so [`ReadSide::status`](crate::ReadSide::status) never waits on a
//! store (also not while the store is down). How far behind a subscription
//! is comes as a number of events ([`Backlog`]) and as time
//! ([`SubscriptionStatus::behind_for`]), never as a difference of
//! positions: positions are opaque, only their order means something.

use std::time::Duration;

use super::subscriber::{Consistency, SubscriptionKind};
use crate::envelope::Timestamp;
use crate::error::Failure;
use crate::version::GlobalPosition;

/// What a subscription is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionState {
    /// Not running on this node: never started, or stopped by
    /// [`ReadSide::stop`](crate::ReadSide::stop) or shutdown.
    Stopped,
    /// Waiting for the lease: another node runs it.
    Standby,
    /// Reading and handling events behind the head.
    Running,
    /// Handled everything there was; waiting for new events.
    CaughtUp,
    /// A store it needs (events, documents, leases) is failing: an outage,
    /// or a pool with no free connection. It retries with capped, jittered
    /// backoff for as long as it takes and goes on by itself when the store
    /// answers again; the outage never counts against the event at hand.
    /// A projection store whose commit panics is waited out too (the commit
    /// may have landed, as after a lost reply), but only up to eight
    /// commits in a row: then the subscription fails, naming the panic.
    WaitingForStore(StoreOutage),
    /// Stopped at an event that kept failing (restart it to retry), or at
    /// a stored row that is not an event (fix the row and restart, or skip
    /// it with [`ReadSide::skip`](crate::ReadSide::skip)).
    Failed(Failure),
}

impl SubscriptionState {
    /// Whether this node is processing the subscription (also while it
    /// waits for a failing store: it holds the lease and will go on).
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Running | Self::CaughtUp | Self::WaitingForStore(_))
    }
}

/// A store failing under a running subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOutage {
    /// The latest error, with its causes.
    pub error: String,
    /// When the first failure of this outage happened.
    pub since: Timestamp,
    /// How many tries have failed so far.
    pub attempts: u32,
}

/// How many events a subscription has not handled yet, as of its latest
/// read of the global stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backlog {
    /// This many events were read and are not handled yet, and the read
    /// found none after them (0: caught up).
    Exactly(u64),
    /// At least this many: the read filled a whole batch, so more may
    /// wait behind them.
    AtLeast(u64),
    /// Not processing on this node, so not known here.
    Unknown,
}

/// A snapshot of one subscription, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionStatus {
    /// The subscriber's registered name.
    pub name: String,
    /// Handler or projection.
    pub kind: SubscriptionKind,
    /// Its consistency.
    pub consistency: Consistency,
    /// What it is doing.
    pub state: SubscriptionState,
    /// The position it has reached on this node: every event up to it is
    /// handled (or filtered out) and its effects are committed.
    pub position: GlobalPosition,
    /// The checkpoint it last committed to the projection store (the
    /// durable position a restart resumes from; may lag `position` by
    /// filtered-out events not yet committed).
    pub checkpoint: Option<GlobalPosition>,
    /// How many events it is behind.
    pub behind: Backlog,
    /// How long ago the oldest event it has read and not handled yet was
    /// recorded (zero when it has none pending).
    pub behind_for: Duration,
    /// How long committed events have been hidden from this caught-up
    /// subscription by a running transaction, once that is longer than
    /// [`ReadSideConfig::held_back_warning`](crate::readside::ReadSideConfig::held_back_warning).
    pub hidden_for: Option<Duration>,
    /// The transaction that has kept committed events hidden from this
    /// caught-up subscription for longer than
    /// [`ReadSideConfig::held_back_warning`](crate::readside::ReadSideConfig::held_back_warning),
    /// as the event store describes it (see
    /// [`EventStore::read_blocker`](crate::store::EventStore::read_blocker));
    /// `None` when nothing holds it back that long.
    pub held_back_by: Option<String>,
}
