//! [`CommandOutcome`]: what a successful command did.

use crate::aggregate::Aggregate;
use crate::envelope::Committed;
use crate::version::{CommandId, GlobalPosition, StreamVersion};

/// What a successful command did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CommandOutcome<A: Aggregate> {
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The command's id: the caller's, or the one `execute` made. Executing
    /// it again returns this outcome and stores nothing.
    pub command_id: CommandId,
    /// The aggregate's version after the command (`None`: the command
    /// produced no events on an aggregate that has none).
    pub version: Option<StreamVersion>,
    /// The global position of the last appended event; wait for a read
    /// model to reach it to read your own writes. `None` if no event was
    /// appended.
    pub position: Option<GlobalPosition>,
    /// The events the command produced, in order.
    pub events: Vec<A::Event>,
    /// Where each event landed.
    pub committed: Vec<Committed>,
}

impl<A: Aggregate> CommandOutcome<A> {
    pub(crate) fn new(
        aggregate_id: &str,
        command_id: CommandId,
        version: Option<StreamVersion>,
        events: Vec<A::Event>,
        committed: Vec<Committed>,
    ) -> Self {
        let position = committed.last().map(|c| c.global_position);
        Self { aggregate_id: aggregate_id.to_owned(), command_id, version, position, events, committed }
    }
}
