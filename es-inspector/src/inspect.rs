//! [`Inspector`]: what the page, its JSON endpoints and a command line ask
//! of an application.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use es_core::readside::{Backlog, SubscriptionState, SubscriptionStatus};
use es_core::store::{Direction, EventStore};
use es_core::{Aggregate, Es, GlobalPosition, ReadSide, StreamId, StreamVersion};
use serde::Serialize;

use crate::error::InspectorError;
use crate::view::{EventView, FailedEvent, RebuildProgress, StateView, StreamView, SubscriptionView};

/// The most a page of streams or events lists.
pub const MAX_PAGE: usize = 1_000;

type Folded = Result<(Option<StreamVersion>, serde_json::Value), InspectorError>;
type Fold = Arc<
    dyn Fn(Es, String, Option<StreamVersion>) -> Pin<Box<dyn Future<Output = Folded> + Send>> + Send + Sync,
>;

/// An aggregate type the inspector can fold to any version.
#[derive(Clone)]
struct Registered {
    name: &'static str,
    fold: Fold,
}

/// Inspects an es application: its streams and events, the global log,
/// aggregates at any version, and its read side's subscriptions (which it
/// can stop, start and rebuild).
///
/// Cheap to clone. Mount [`router`](Inspector::router) in the application's
/// axum router, or call the methods directly (a command line does).
///
/// ```
/// # use es_core::{command, event, Aggregate, Apply, Es, Events, Handle};
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
/// let es = Es::builder().event_store(es_memory::InMemoryEventStore::new()).build().await?;
/// es.execute(Ping { id: "p".into() }).await?;
/// es.execute(Ping { id: "p".into() }).await?;
///
/// let inspector = es_inspector::Inspector::new(es.clone()).aggregate::<Pinger>();
/// let then = inspector.state_at("pinger-p", Some(1)).await?;   // time travel
/// assert_eq!(then.state["pings"], 1);
/// let app: axum::Router = axum::Router::new().nest("/inspector", inspector.token("s3cret").router());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Inspector {
    pub(crate) es: Es,
    aggregates: Arc<Vec<Registered>>,
    pub(crate) token: Option<Arc<str>>,
    /// The head each subscription's last rebuild from here must reach.
    rebuilds: Arc<Mutex<HashMap<String, GlobalPosition>>>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("aggregates", &self.aggregates.iter().map(|a| a.name).collect::<Vec<_>>())
            .field("guarded", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Inspector {
    /// An inspector of `es`, with no aggregate registered for time travel
    /// and no token.
    pub fn new(es: Es) -> Self {
        Self { es, aggregates: Arc::new(Vec::new()), token: None, rebuilds: Arc::default() }
    }

    /// Lets the inspector fold streams of aggregate `A` (named
    /// `{A::NAME}-{id}`) to any version and show the state as JSON.
    pub fn aggregate<A: Aggregate + Serialize>(mut self) -> Self {
        let fold: Fold = Arc::new(|es: Es, id: String, version: Option<StreamVersion>| {
            Box::pin(async move {
                let loaded = es.load_versioned::<A>(&id, version).await?;
                let state = serde_json::to_value(&loaded.state)
                    .map_err(|e| InspectorError::BadRequest(format!("the state does not serialize: {e}")))?;
                Ok((loaded.version, state))
            })
        });
        Arc::make_mut(&mut self.aggregates).push(Registered { name: A::NAME, fold });
        self
    }

    /// Guards every page and endpoint with `token`: requests must carry
    /// `Authorization: Bearer TOKEN` (or `?token=TOKEN`, which the page
    /// passes on to its own requests). The inspector can stop and rebuild
    /// projections, so guard it wherever others can reach it.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Arc::from(token.into()));
        self
    }

    /// The application inspected.
    pub fn es(&self) -> &Es {
        &self.es
    }

    fn store(&self) -> &dyn EventStore {
        self.es.event_store().as_ref()
    }

    fn read_side(&self) -> Result<&ReadSide, InspectorError> {
        self.es.read_side().ok_or(InspectorError::NoReadSide)
    }

    /// Up to `limit` streams whose name starts with `prefix`, after `after`.
    ///
    /// # Errors
    /// [`InspectorError::BadRequest`] for a limit over [`MAX_PAGE`] or 0;
    /// [`InspectorError::Store`].
    pub async fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamView>, InspectorError> {
        check_limit(limit)?;
        let after = after.map(StreamId::new);
        let page = self.store().streams(prefix, after.as_ref(), limit).await?;
        Ok(page
            .into_iter()
            .map(|s| StreamView { stream_id: s.stream_id.to_string(), version: s.version.get() })
            .collect())
    }

    /// Up to `limit` events of `stream` from version `from` on.
    ///
    /// # Errors
    /// [`InspectorError::NotFound`] for a stream with no events;
    /// [`InspectorError::BadRequest`]; [`InspectorError::Store`].
    pub async fn events(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventView>, InspectorError> {
        check_limit(limit)?;
        let stream = StreamId::new(stream);
        let events =
            self.store().read_stream(&stream, StreamVersion(from.max(1)), Direction::Forward, limit).await?;
        if events.is_empty() && self.store().stream_version(&stream).await?.is_none() {
            return Err(InspectorError::NotFound(format!("no stream `{stream}`")));
        }
        Ok(events.iter().map(EventView::from).collect())
    }

    /// Up to `limit` events of the global log after `after`.
    ///
    /// # Errors
    /// [`InspectorError::BadRequest`]; [`InspectorError::Store`].
    pub async fn log(&self, after: u64, limit: usize) -> Result<Vec<EventView>, InspectorError> {
        check_limit(limit)?;
        let events = self.store().read_all(GlobalPosition(after), limit).await?;
        Ok(events.iter().map(EventView::from).collect())
    }

    /// The last `count` events of the global log, oldest first.
    ///
    /// # Errors
    /// As [`log`](Inspector::log).
    pub async fn tail(&self, count: usize) -> Result<Vec<EventView>, InspectorError> {
        let head = self.store().head_position().await?.get();
        let mut after = head.saturating_sub(count as u64);
        // Positions may have holes: step back until `count` show up, or the start.
        loop {
            let events = self.log(after, count.max(1)).await?;
            if events.len() >= count || after == 0 {
                let skip = events.len().saturating_sub(count);
                return Ok(events.into_iter().skip(skip).collect());
            }
            after = after.saturating_sub((count as u64).max(1) * 4);
        }
    }

    /// The state of the aggregate behind `stream` after `version` (`None`:
    /// the newest), folded by the aggregate type registered for the
    /// stream's prefix.
    ///
    /// # Errors
    /// [`InspectorError::NotFound`] when no registered aggregate owns the
    /// stream, or the stream has no events; [`InspectorError::Load`].
    pub async fn state_at(&self, stream: &str, version: Option<u64>) -> Result<StateView, InspectorError> {
        let (registered, id) = self
            .aggregates
            .iter()
            .find_map(|a| {
                stream.strip_prefix(a.name).and_then(|rest| rest.strip_prefix('-')).map(|id| (a, id))
            })
            .ok_or_else(|| {
                InspectorError::NotFound(format!("no aggregate type registered for stream `{stream}`"))
            })?;
        let head = self.store().stream_version(&StreamId::new(stream)).await?;
        let (version, state) =
            (registered.fold)(self.es.clone(), id.to_owned(), version.map(StreamVersion)).await?;
        Ok(StateView {
            stream_id: stream.to_owned(),
            aggregate: registered.name.to_owned(),
            version: version.map(StreamVersion::get),
            head: head.map(StreamVersion::get),
            state,
        })
    }

    /// Every subscription of the read side, with its lag and, after a
    /// rebuild started here, the rebuild's progress.
    ///
    /// # Errors
    /// [`InspectorError::NoReadSide`]; [`InspectorError::Store`].
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionView>, InspectorError> {
        let statuses = self.read_side()?.statuses();
        let head = self.store().head_position().await?;
        Ok(statuses.into_iter().map(|status| self.view(status, head)).collect())
    }

    fn view(&self, status: SubscriptionStatus, head: GlobalPosition) -> SubscriptionView {
        let (state, error, failed_event) = match &status.state {
            SubscriptionState::Failed(failure) => (
                "Failed".to_owned(),
                Some(failure.error.clone()),
                Some(FailedEvent {
                    position: failure.position.get(),
                    event_id: failure.event_id.map(|id| id.to_string()),
                    event_type: failure.event_type.clone(),
                    attempts: failure.attempts,
                }),
            ),
            state => (format!("{state:?}"), None, None),
        };
        let target = match self.rebuilds.lock() {
            Ok(rebuilds) => rebuilds.get(&status.name).copied(),
            Err(poisoned) => poisoned.into_inner().get(&status.name).copied(),
        };
        let rebuild = target.map(|target| RebuildProgress {
            target: target.get(),
            position: status.position.get(),
            done: status.position >= target && status.state.is_active(),
        });
        SubscriptionView {
            name: status.name,
            kind: format!("{:?}", status.kind),
            consistency: format!("{:?}", status.consistency),
            state,
            position: status.position.get(),
            position_label: self.store().describe_position(status.position),
            checkpoint: status.checkpoint.map(GlobalPosition::get),
            head: head.get(),
            head_label: self.store().describe_position(head),
            lag_events: match status.behind {
                Backlog::Exactly(events) | Backlog::AtLeast(events) => events,
                _ => 0,
            },
            lag_seconds: status.behind_for.as_secs_f64(),
            error,
            failed_event,
            held_back_by: status.held_back_by,
            rebuild,
        }
    }

    /// The subscription named `name`.
    ///
    /// # Errors
    /// As [`subscriptions`](Inspector::subscriptions), and
    /// [`InspectorError::NotFound`].
    pub async fn subscription(&self, name: &str) -> Result<SubscriptionView, InspectorError> {
        let status = self.read_side()?.status(name)?;
        let head = self.store().head_position().await?;
        Ok(self.view(status, head))
    }

    /// Stops subscription `name` on this node (it commits and releases its lease).
    ///
    /// # Errors
    /// [`InspectorError::NotFound`]; [`InspectorError::NoReadSide`].
    pub async fn stop(&self, name: &str) -> Result<(), InspectorError> {
        Ok(self.read_side()?.stop(name).await?)
    }

    /// Starts subscription `name` again from its checkpoint (after a
    /// failure: retries the failing event).
    ///
    /// # Errors
    /// As [`stop`](Inspector::stop).
    pub async fn start(&self, name: &str) -> Result<(), InspectorError> {
        Ok(self.read_side()?.restart(name).await?)
    }

    /// Rebuilds subscription `name` from the first event; its progress
    /// shows in [`subscriptions`](Inspector::subscriptions) until it reaches
    /// the head it had when the rebuild started.
    ///
    /// # Errors
    /// As [`stop`](Inspector::stop), and [`InspectorError::Store`].
    pub async fn rebuild(&self, name: &str) -> Result<RebuildProgress, InspectorError> {
        let read_side = self.read_side()?;
        read_side.status(name)?;
        let target = self.store().head_position().await?;
        match self.rebuilds.lock() {
            Ok(mut rebuilds) => rebuilds.insert(name.to_owned(), target),
            Err(poisoned) => poisoned.into_inner().insert(name.to_owned(), target),
        };
        read_side.rebuild(name).await?;
        Ok(RebuildProgress { target: target.get(), position: 0, done: target == GlobalPosition::START })
    }
}

fn check_limit(limit: usize) -> Result<(), InspectorError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(InspectorError::BadRequest(format!("limit must be between 1 and {MAX_PAGE}, not {limit}")))
    }
}
