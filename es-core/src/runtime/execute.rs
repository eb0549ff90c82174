//! [`Execute`]: one command on its way, with its id, metadata and deadline.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::dispatch;
use super::outcome::CommandOutcome;
use super::request::{GaveUp, Progress, Request};
use crate::aggregate::{Aggregate, Command};
use crate::envelope::Metadata;
use crate::error::{ConsistencyError, ExecuteError, Unknown};
use crate::event::EventSet;
use crate::version::CommandId;
use crate::Es;

type Outcome<C> = Result<
    CommandOutcome<<C as Command>::Aggregate>,
    ExecuteError<<<C as Command>::Aggregate as Aggregate>::Error>,
>;

/// A command about to be executed: made by [`Es::execute`], adjusted with
/// [`id`](Execute::id), [`metadata`](Execute::metadata) and
/// [`timeout`](Execute::timeout), and run by `.await`.
///
/// ```
/// # use es_core::{command, event, Aggregate, Apply, Es, Events, Handle, CommandId, Metadata};
/// # #[event] #[derive(Debug, Clone, PartialEq)] pub struct Pinged;
/// # #[command(aggregate = Pinger)] #[derive(Debug, Clone)] pub struct Ping { #[id] pub id: String }
/// # #[derive(Debug, thiserror::Error)] #[error("never")] pub struct Never;
/// # #[derive(Aggregate, Default, serde::Serialize, serde::Deserialize)]
/// # #[aggregate(name = "pinger", error = Never, events(Pinged), commands(Ping))]
/// # pub struct Pinger { pings: u32 }
/// # impl Handle<Ping> for Pinger { fn handle(&self, _: Ping) -> Result<Events<Self>, Never> { Ok(Events::one(Pinged)) } }
/// # impl Apply<Pinged> for Pinger { fn apply(&mut self, _: &Pinged) { self.pings += 1; } }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let es = Es::builder().event_store(es_memory::InMemoryEventStore::new()).build().await?;
/// use std::time::Duration;
///
/// // An id from the caller (say, an HTTP idempotency key): running it again
/// // returns the first outcome and stores nothing twice.
/// let id = CommandId::new();
/// let first = es.execute(Ping { id: "p".into() }).id(id).timeout(Duration::from_secs(5)).await?;
/// let again = es.execute(Ping { id: "p".into() }).id(id).await?;
/// assert_eq!(again.committed, first.committed);
/// assert_eq!(es.load::<Pinger>("p").await?.pings, 1);
/// # Ok(())
/// # }
/// ```
#[must_use = "a command does nothing until it is awaited"]
pub struct Execute<'a, C: Command> {
    es: &'a Es,
    command: C,
    id: Option<CommandId>,
    metadata: Metadata,
    timeout: Option<Duration>,
}

impl<C: Command> std::fmt::Debug for Execute<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execute")
            .field("command", &self.command)
            .field("id", &self.id)
            .field("metadata", &self.metadata)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<'a, C: Command> Execute<'a, C> {
    pub(crate) fn new(es: &'a Es, command: C) -> Self {
        Self { es, command, id: None, metadata: Metadata::default(), timeout: None }
    }

    /// Gives the command its id (default: a fresh UUID v7). A command id
    /// that already ran is answered with its original outcome: retrying
    /// after [`ExecuteError::OutcomeUnknown`] is safe.
    pub fn id(mut self, id: CommandId) -> Self {
        self.id = Some(id);
        self
    }

    /// Records `metadata` (correlation, causation, user fields) on every
    /// event the command produces. Causation defaults to the command id, and
    /// so does correlation.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Answers within `timeout`: a command that has not sent its append by
    /// then is cancelled ([`ExecuteError::Timeout`], nothing stored); one
    /// whose append is in flight reports [`ExecuteError::OutcomeUnknown`].
    /// Overrides [`EsBuilder::command_timeout`](super::EsBuilder::command_timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    async fn run(self) -> Outcome<C> {
        let Self { es, command, id, metadata, timeout } = self;
        let shared = &es.shared;
        if let Err(invalid) = command.validate() {
            shared.stats.command::<C::Aggregate>("invalid");
            return Err(invalid.into());
        }
        let aggregate_id = command.aggregate_id();
        let timeout = timeout.or(shared.config.command_timeout);
        let progress = timeout.map(|_| Arc::new(Progress::default()));
        let request = Request {
            command: command.into_aggregate_command(),
            id: id.unwrap_or_default(),
            repeatable: id.is_some(),
            metadata: (!metadata.is_empty()).then(|| Box::new(metadata)),
            progress: progress.clone(),
        };
        let command_id = request.id;
        let span = tracing::debug_span!(
            "command",
            aggregate = <C::Aggregate as Aggregate>::NAME,
            command = C::NAME,
            id = %aggregate_id,
            command_id = %command_id,
            attempts = tracing::field::Empty,
        );
        let dispatched = dispatch::execute::<C::Aggregate>(shared, aggregate_id.clone(), request, span);
        let answered = match (timeout, progress) {
            (Some(timeout), Some(progress)) => match tokio::time::timeout(timeout, dispatched).await {
                Ok(answered) => answered,
                Err(_) => Err(match progress.give_up() {
                    GaveUp::NothingStored => ExecuteError::Timeout {
                        aggregate: <C::Aggregate as Aggregate>::NAME,
                        id: aggregate_id,
                        command_id,
                    },
                    GaveUp::Unknown => ExecuteError::OutcomeUnknown {
                        aggregate: <C::Aggregate as Aggregate>::NAME,
                        id: aggregate_id,
                        command_id,
                        cause: Unknown::Deadline,
                    },
                }),
            },
            _ => dispatched.await,
        };
        shared.stats.command::<C::Aggregate>(outcome_label(&answered));
        let outcome = answered?;
        if es.in_handler {
            return Ok(outcome);
        }
        if let (Some(read_side), Some(position)) = (shared.read_side.get(), outcome.position) {
            // Only the strong subscriptions the command's events go to have
            // anything of it to run (an outcome without its events, which
            // should not happen, waits for them all). Checked without
            // allocating: most commands wait for none.
            let waits = outcome.events.is_empty()
                || outcome.events.iter().any(|e| read_side.strong_consumes(&[e.event_type()]));
            if !waits {
                return Ok(outcome);
            }
            let types: Vec<&str> = outcome.events.iter().map(EventSet::event_type).collect();
            let types = (!types.is_empty()).then_some(types.as_slice());
            let timeout = shared.config.consistency_timeout;
            if let Err(error) = read_side.wait_for_strong(position, timeout, types).await {
                let waiting_for = error.name().to_owned();
                return Err(match error {
                    ConsistencyError::Timeout { .. } => {
                        ExecuteError::ConsistencyTimeout { position, waiting_for }
                    }
                    cause => {
                        ExecuteError::ConsistencyFailed { position, waiting_for, cause: Box::new(cause) }
                    }
                });
            }
        }
        Ok(outcome)
    }
}

/// The `outcome` label of `es_commands_total`.
fn outcome_label<A: Aggregate>(answered: &Result<CommandOutcome<A>, ExecuteError<A::Error>>) -> &'static str {
    match answered {
        Ok(_) => "ok",
        Err(ExecuteError::Rejected(_)) => "rejected",
        Err(ExecuteError::Validation(_)) => "invalid",
        Err(ExecuteError::Conflict { .. }) => "conflict",
        Err(ExecuteError::OutcomeUnknown { .. }) => "unknown",
        Err(ExecuteError::Timeout { .. }) => "timeout",
        Err(_) => "error",
    }
}

impl<'a, C: Command> IntoFuture for Execute<'a, C> {
    type Output = Outcome<C>;
    type IntoFuture = Pin<Box<dyn Future<Output = Outcome<C>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
