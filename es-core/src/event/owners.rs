//! Which aggregates list an event type: one link-time record per event in
//! each `#[derive(Aggregate)]`'s `events(..)`.
//!
//! Events are routed by aggregate type and event type together (two
//! aggregates may both have an `Opened`). A subscriber names the Rust type
//! of the event it handles; these records tell the read side which
//! aggregates record that type, so it can route by both and refuse a
//! subscription that would be ambiguous.
//!
//! inventory collects the records when the program starts; it promises no
//! order and does not see duplicates, so [`owners_of`] sorts and
//! deduplicates what it returns.

use std::any::TypeId;

/// One aggregate listing one event type: what `#[derive(Aggregate)]`
/// registers per listed event, through `es_core::__private`.
#[derive(Debug)]
pub struct EventOwner {
    aggregate: &'static str,
    event_type: &'static str,
    type_id: TypeId,
}

impl EventOwner {
    /// The record that aggregate `aggregate` (its `Aggregate::NAME`) lists
    /// the event stored as `event_type`, whose Rust type `type_id` names
    /// (`TypeId::of::<E>()`, a const fn: inventory needs a static
    /// initializer).
    pub const fn new(aggregate: &'static str, event_type: &'static str, type_id: TypeId) -> Self {
        Self { aggregate, event_type, type_id }
    }

    /// The aggregate's name.
    pub(crate) fn aggregate(&self) -> &'static str {
        self.aggregate
    }

    /// The event's stored type name.
    pub(crate) fn event_type(&self) -> &'static str {
        self.event_type
    }

    /// Whether the record is about the Rust type `type_id`.
    fn is_of(&self, type_id: TypeId) -> bool {
        self.type_id == type_id
    }
}

inventory::collect!(EventOwner);

/// Every record of the program, in no particular order.
pub(crate) fn all() -> impl Iterator<Item = &'static EventOwner> {
    inventory::iter::<EventOwner>.into_iter()
}

/// The names of the aggregates whose `events(..)` list the event type
/// `type_id` (`TypeId::of::<E>()`), sorted, each once. Empty when no
/// aggregate of the program lists it.
pub(crate) fn owners_of(type_id: TypeId) -> Vec<&'static str> {
    let mut owners: Vec<&'static str> =
        all().filter(|owner| owner.is_of(type_id)).map(EventOwner::aggregate).collect();
    owners.sort_unstable();
    owners.dedup();
    owners
}

#[cfg(test)]
mod tests;
