//! What each subscription reports: state, position, lag.

use super::subscriber::{Consistency, SubscriptionKind};
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
    /// Stopped at an event that kept failing; restart it to retry.
    Failed(Failure),
}

impl SubscriptionState {
    /// Whether this node is processing the subscription.
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Running | Self::CaughtUp)
    }
}

/// A snapshot of one subscription, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The head of the global stream when the status was taken.
    pub head: GlobalPosition,
    /// `head - position`: how many positions it is behind. Positions may
    /// have holes, so this is an upper bound on the number of events.
    pub lag: u64,
    /// The transaction that has kept committed events hidden from this
    /// caught-up subscription for longer than
    /// [`ReadSideConfig::held_back_warning`](crate::readside::ReadSideConfig::held_back_warning),
    /// as the event store describes it (see
    /// [`EventStore::read_blocker`](crate::store::EventStore::read_blocker));
    /// `None` when nothing holds it back that long.
    pub held_back_by: Option<String>,
}
