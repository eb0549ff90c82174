//! [`Subscriber`]: a handler or projection ready to run, with its settings.

use std::sync::Arc;
use std::time::Duration;

use super::handler::{HandlerBuilder, HandlerCtx, Replay};
use super::projection::{ProjectionBuilder, ProjectionTx};
use super::route::{Ambiguity, Routes};
use super::state::Used;
use super::table::{TableProjection, TableProjectionBuilder, TableRunner};

/// Whether `Es::execute` waits for a subscriber before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Consistency {
    /// The subscriber catches up in the background (the default).
    #[default]
    Eventual,
    /// A command returns only after the subscriber has handled its events
    /// (or the wait timed out, which the command reports as a typed error
    /// saying the events are stored). A command none of whose events the
    /// subscriber consumes does not wait for it.
    Strong,
}

/// How a failing event (or a failing checkpoint commit) is retried before
/// the subscription stops at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times the event is tried in all (at least 1).
    pub max_attempts: u32,
    /// The pause after the first failure.
    pub initial_backoff: Duration,
    /// The longest pause; each pause doubles up to it.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Tries `max_attempts` times with backoff starting at `initial_backoff`
    /// (doubling, at most ten seconds or `initial_backoff` if larger).
    pub fn new(max_attempts: u32, initial_backoff: Duration) -> Self {
        Self { max_attempts, initial_backoff, max_backoff: initial_backoff.max(Duration::from_secs(10)) }
    }

    /// The pause after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial_backoff.saturating_mul(1 << doublings).min(self.max_backoff)
    }
}

/// What kind of subscriber runs under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionKind {
    /// An event handler (side effects, process managers).
    Handler,
    /// A projection (a read model with documents).
    Projection,
}

pub(crate) enum SubscriberKind {
    Handler { routes: Routes<HandlerCtx>, replay: Replay },
    Projection { routes: Routes<ProjectionTx> },
    Table(Box<dyn TableRunner>),
}

/// A handler or projection with its settings, ready to be registered under
/// a name in a [`Registry`](crate::readside::Registry).
///
/// Make one with [`Subscriber::handler`] or [`Subscriber::projection`],
/// then adjust it with [`in_group`](Subscriber::in_group),
/// [`consistency`](Subscriber::consistency) and [`retry`](Subscriber::retry).
pub struct Subscriber {
    pub(crate) kind: SubscriberKind,
    pub(crate) group: Option<String>,
    pub(crate) consistency: Consistency,
    pub(crate) retry: RetryPolicy,
    /// The state types it declared it uses.
    pub(crate) uses: Arc<[Used]>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("kind", &self.kind())
            .field("events", &self.event_types())
            .field("group", &self.group)
            .field("consistency", &self.consistency)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Subscriber {
    pub(crate) fn new(kind: SubscriberKind) -> Self {
        Self {
            kind,
            group: None,
            consistency: Consistency::Eventual,
            retry: RetryPolicy::default(),
            uses: Arc::from([]),
        }
    }

    pub(crate) fn using(mut self, uses: Vec<Used>) -> Self {
        self.uses = uses.into();
        self
    }

    /// The Rust types of the state it declared it uses.
    pub fn uses(&self) -> Vec<&'static str> {
        self.uses.iter().map(|used| used.name).collect()
    }

    /// Starts building an event handler subscriber.
    pub fn handler<H: Send + Sync + 'static>(handler: H) -> HandlerBuilder<H> {
        HandlerBuilder::new(handler)
    }

    /// Starts building a projection subscriber.
    pub fn projection<P: Send + Sync + 'static>(projection: P) -> ProjectionBuilder<P> {
        ProjectionBuilder::new(projection)
    }

    /// Starts building a projection into the application's own tables
    /// (see [`TableProjection`](crate::TableProjection)).
    pub fn table_projection<P: TableProjection>(projection: P) -> TableProjectionBuilder<P> {
        TableProjectionBuilder::new(projection)
    }

    /// Puts the subscriber in a group, so an application can run a group.
    #[must_use]
    pub fn in_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Sets the consistency (default [`Consistency::Eventual`]).
    #[must_use]
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Sets the retry policy for failing events.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Whether it is a handler or a projection.
    pub fn kind(&self) -> SubscriptionKind {
        match self.kind {
            SubscriberKind::Handler { .. } => SubscriptionKind::Handler,
            SubscriberKind::Projection { .. } | SubscriberKind::Table(_) => SubscriptionKind::Projection,
        }
    }

    /// Its group, if any.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// Its consistency.
    pub fn consistency_level(&self) -> Consistency {
        self.consistency
    }

    /// Its retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Whether a handler runs during replays ([`Replay::Run`] for projections).
    pub fn replay_mode(&self) -> Replay {
        match self.kind {
            SubscriberKind::Handler { replay, .. } => replay,
            SubscriberKind::Projection { .. } | SubscriberKind::Table(_) => Replay::Run,
        }
    }

    /// The event type names it consumes, sorted.
    pub fn event_types(&self) -> Vec<&'static str> {
        match &self.kind {
            SubscriberKind::Handler { routes, .. } => routes.event_types(),
            SubscriberKind::Projection { routes } => routes.event_types(),
            SubscriberKind::Table(table) => table.event_types(),
        }
    }

    /// Whether it consumes events stored under the type name `event_type`.
    pub(crate) fn consumes(&self, event_type: &str) -> bool {
        match &self.kind {
            SubscriberKind::Handler { routes, .. } => routes.consumes(event_type),
            SubscriberKind::Projection { routes } => routes.consumes(event_type),
            SubscriberKind::Table(table) => table.consumes(event_type),
        }
    }

    /// The consumed event types several aggregates record, with none named.
    pub(crate) fn ambiguities(&self) -> &[Ambiguity] {
        match &self.kind {
            SubscriberKind::Handler { routes, .. } => routes.ambiguities(),
            SubscriberKind::Projection { routes } => routes.ambiguities(),
            SubscriberKind::Table(table) => table.ambiguities(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        let pauses: Vec<_> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 50, 50]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(50));
    }
}
