//! Reading the global stream from a position: catch-up, then live.
//!
//! [`EventSubscription`] is the plain reader under the read side: no
//! checkpoint, no lease, no handler. It reads history in pages with
//! [`EventStore::read_all`] (so it honours the store's gap-free order),
//! and once caught up waits with [`EventStore::wait_for_events`] (a
//! broadcast in memory, LISTEN/NOTIFY on Postgres) for what comes next.
//! Every event after the starting position is delivered once, in position
//! order; keep [`position`](EventSubscription::position) to resume later.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::store::EventStore;
use crate::version::GlobalPosition;

/// Events read per page while catching up, by default.
const DEFAULT_PAGE: usize = 256;
/// How long one wait for new events lasts before the store is read again,
/// by default (stores with wake-ups answer sooner).
const DEFAULT_IDLE_WAIT: Duration = Duration::from_secs(1);
/// The shortest wait: a store without wake-ups is not read in a busy loop.
const MIN_IDLE_WAIT: Duration = Duration::from_millis(1);

/// A reader of the global stream after a position: history first, then
/// events as they are committed.
///
/// ```
/// use std::time::Duration;
/// use es_core::store::{EventStore, ExpectedVersion, NewEvent};
/// use es_core::{EventSubscription, GlobalPosition, StreamId};
/// use es_memory::InMemoryEventStore;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = InMemoryEventStore::new();
/// let stream = StreamId::new("account-1");
/// let opened = NewEvent::new("account", "AccountOpened", 1, json!({"owner": "ada"}));
/// store.append(&stream, ExpectedVersion::NoStream, vec![opened]).await?;
///
/// let mut subscription = EventSubscription::new(store.clone(), GlobalPosition::START);
/// assert_eq!(subscription.next().await?.event_type, "AccountOpened"); // history
///
/// let writer = store.clone();
/// tokio::spawn(async move {
///     let deposited = NewEvent::new("account", "MoneyDeposited", 1, json!({"amount": 5}));
///     writer.append(&StreamId::new("account-1"), ExpectedVersion::Any, vec![deposited]).await
/// });
/// let live = subscription.next().await?; // waits until the deposit is committed
/// assert_eq!((live.event_type.as_str(), subscription.position()), ("MoneyDeposited", live.global_position));
/// # Ok(())
/// # }
/// ```
pub struct EventSubscription {
    store: Arc<dyn EventStore>,
    /// The position of the last event handed out (or the start).
    position: GlobalPosition,
    /// Read but not yet handed out, in position order.
    buffer: VecDeque<RecordedEvent>,
    page: usize,
    idle_wait: Duration,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription")
            .field("position", &self.position)
            .field("buffered", &self.buffer.len())
            .field("page", &self.page)
            .field("idle_wait", &self.idle_wait)
            .finish_non_exhaustive()
    }
}

impl EventSubscription {
    /// A subscription to `store` that delivers the events with a position
    /// strictly after `after` ([`GlobalPosition::START`]: all of them).
    pub fn new(store: impl EventStore, after: GlobalPosition) -> Self {
        Self::shared(Arc::new(store), after)
    }

    /// As [`new`](EventSubscription::new), on a store already shared.
    pub fn shared(store: Arc<dyn EventStore>, after: GlobalPosition) -> Self {
        Self {
            store,
            position: after,
            buffer: VecDeque::new(),
            page: DEFAULT_PAGE,
            idle_wait: DEFAULT_IDLE_WAIT,
        }
    }

    /// Reads `page` events at a time (at least 1; default 256).
    #[must_use]
    pub fn page_size(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    /// Reads the store again after this long without a wake-up (default
    /// 1 s, at least 1 ms): the fallback for stores that cannot wake
    /// waiters.
    #[must_use]
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait.max(MIN_IDLE_WAIT);
        self
    }

    /// The position of the last event handed out: start a new subscription
    /// there to go on where this one stopped.
    pub fn position(&self) -> GlobalPosition {
        self.position
    }

    /// The next event, waiting for one to be committed if the subscription
    /// has caught up. Cancel-safe: dropping the future loses no event.
    ///
    /// # Errors
    /// [`StoreError`] if reading fails; the subscription stays where it
    /// was, so calling again retries.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.position = event.global_position;
                return Ok(event);
            }
            if !self.fill().await? {
                self.store.wait_for_events(self.position, self.idle_wait).await;
            }
        }
    }

    /// The events readable now after the position (at most a page), without
    /// waiting: empty when caught up.
    ///
    /// # Errors
    /// As [`next`](EventSubscription::next).
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.buffer.is_empty() {
            self.fill().await?;
        }
        let batch: Vec<RecordedEvent> = self.buffer.drain(..).collect();
        if let Some(last) = batch.last() {
            self.position = last.global_position;
        }
        Ok(batch)
    }

    /// Reads the next page into the buffer; whether it found any event.
    async fn fill(&mut self) -> Result<bool, StoreError> {
        let page = self.store.read_all(self.position, self.page).await?;
        self.buffer.extend(page);
        Ok(!self.buffer.is_empty())
    }
}
