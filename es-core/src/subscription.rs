//! Reading the global stream from a position: catch-up, then live.
//!
//! [`EventSubscription`] is the plain reader under the read side: no
//! checkpoint, no lease, no handler. It reads history in pages with
//! [`EventStore::read_all`] (so it honours the store's gap-free order),
//! and once caught up waits with [`EventStore::wait_for_events`] (a
//! broadcast in memory, LISTEN/NOTIFY on Postgres) for what comes next.
//! Every event after the starting position is delivered once, in position
//! order; keep [`position`](EventSubscription::position) to resume later.
//!
//! A stored row that cannot become an event (a poison row) stops it at the
//! row: it returns the events before the row, then
//! [`StoreError::Corrupt`] naming the row's stream, version and position
//! (again on each call, in case the row was fixed meanwhile), and moves on
//! only when the caller says so with
//! [`skip_corrupt_row`](EventSubscription::skip_corrupt_row).

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
    /// The position of the corrupt row the last read stopped at.
    corrupt_row: Option<GlobalPosition>,
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
            corrupt_row: None,
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
    /// was, so calling again retries. [`StoreError::Corrupt`] once every
    /// event before a corrupt row is handed out: see
    /// [`skip_corrupt_row`](EventSubscription::skip_corrupt_row).
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

    /// Moves past the corrupt row the last call stopped at (its
    /// [`StoreError::Corrupt`]): the event stored there is not delivered.
    /// A deliberate step, logged as a warning. Returns the row's position,
    /// or `None` (and changes nothing) if the last call did not stop at a
    /// corrupt row.
    pub fn skip_corrupt_row(&mut self) -> Option<GlobalPosition> {
        let row = self.corrupt_row.take()?;
        tracing::warn!(position = %row, "skipping a corrupt row of the global stream, as the caller asked");
        self.position = row;
        Some(row)
    }

    /// Reads the next page into the buffer; whether it found any event.
    async fn fill(&mut self) -> Result<bool, StoreError> {
        let page = match self.store.read_all(self.position, self.page).await {
            Ok(page) => page,
            Err(error) => {
                // Only a row at which a read starts can be skipped.
                self.corrupt_row = match &error {
                    StoreError::Corrupt { position, .. } => *position,
                    _ => None,
                };
                return Err(error);
            }
        };
        self.corrupt_row = None;
        self.buffer.extend(page);
        Ok(!self.buffer.is_empty())
    }
}
