//! Waking readers when events land: one blocking reader per store, on a
//! connection of its own, that publishes the head position to every waiter
//! in the process.
//!
//! Why one watcher and not a blocking read per waiter: a blocked command
//! holds up everything queued behind it on a connection, so each blocking
//! read needs a connection of its own; one watcher needs one connection
//! however many subscriptions wait. It loops: read the head position
//! (`GET {ns}:position`), publish it, then `XREAD BLOCK` on the global log
//! from that position, which returns as soon as an entry above it exists
//! (also one added between the two commands, so nothing is missed). Appends
//! made through this store publish their position at once as well, so
//! waiters in the same process do not wait for the watcher's round trip.
//!
//! The watcher starts with the first wait and stops when the store (its
//! last clone) is dropped. While Redis cannot be reached it retries with a
//! capped backoff; waiters then wait out their `max_wait` and read again,
//! as with polling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::GlobalPosition;
use redis::aio::MultiplexedConnection;
use tokio::sync::{oneshot, watch};

use crate::connection::RedisConnection;

/// How long one `XREAD BLOCK` of the watcher lasts before it re-reads the
/// head and blocks again.
const BLOCK: Duration = Duration::from_secs(5);

/// The first and the longest pause before the watcher reconnects.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The head position as this process knows it, and the watcher keeping it
/// current.
pub(crate) struct Wakeups {
    head: watch::Sender<GlobalPosition>,
    /// The running watcher: dropping its stop signal (with the store) stops
    /// it. `None` until the first wait.
    watcher: Mutex<Option<Running>>,
}

struct Running {
    _stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Wakeups {
    pub(crate) fn new() -> Self {
        let (head, _) = watch::channel(GlobalPosition::START);
        Self { head, watcher: Mutex::new(None) }
    }

    /// Records that events up to `position` are readable.
    pub(crate) fn publish(&self, position: GlobalPosition) {
        self.head.send_if_modified(|head| {
            let newer = position > *head;
            if newer {
                *head = position;
            }
            newer
        });
    }

    /// Waits until a position above `after` is published, at most
    /// `max_wait`; starts the watcher first if it is not running.
    pub(crate) async fn wait(
        self: &Arc<Self>,
        redis: &RedisConnection,
        events: &str,
        counter: &str,
        after: GlobalPosition,
        max_wait: Duration,
    ) {
        self.start(redis, events, counter);
        let mut head = self.head.subscribe();
        let _ = tokio::time::timeout(max_wait, head.wait_for(|h| *h > after)).await;
    }

    fn start(self: &Arc<Self>, redis: &RedisConnection, events: &str, counter: &str) {
        let Ok(mut running) = self.watcher.lock() else { return };
        // A watcher whose runtime shut down (the store outlived it) is gone:
        // start another on the current one.
        if running.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return;
        }
        let (tx, rx) = oneshot::channel();
        let watcher = Watcher {
            wakeups: Arc::downgrade(self),
            redis: redis.clone(),
            events: events.to_owned(),
            counter: counter.to_owned(),
        };
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = rx => {}
                () = watcher.run() => {}
            }
        });
        *running = Some(Running { _stop: tx, task });
    }
}

struct Watcher {
    wakeups: std::sync::Weak<Wakeups>,
    redis: RedisConnection,
    events: String,
    counter: String,
}

impl Watcher {
    async fn run(self) {
        let mut pause = RETRY_MIN;
        loop {
            match self.redis.dedicated(BLOCK + Duration::from_secs(5)).await {
                Ok(conn) => match self.watch(conn, &mut pause).await {
                    Some(error) => {
                        tracing::debug!(%error, key = %self.events, "es-redis: the wake-up reader lost its connection");
                    }
                    None => return,
                },
                Err(error) => {
                    tracing::debug!(%error, key = %self.events, "es-redis: the wake-up reader cannot connect");
                }
            }
            if self.wakeups.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Publishes the head and blocks for more, until a command fails (its
    /// error) or the store is dropped (`None`).
    async fn watch(
        &self,
        mut conn: MultiplexedConnection,
        pause: &mut Duration,
    ) -> Option<redis::RedisError> {
        loop {
            let head: Result<Option<u64>, _> =
                redis::cmd("GET").arg(&self.counter).query_async(&mut conn).await;
            let head = match head {
                Ok(head) => GlobalPosition(head.unwrap_or(0)),
                Err(error) => return Some(error),
            };
            *pause = RETRY_MIN;
            let wakeups = self.wakeups.upgrade()?;
            wakeups.publish(head);
            drop(wakeups);
            let blocked: Result<redis::Value, _> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.events)
                .arg(format!("{head}-0"))
                .query_async(&mut conn)
                .await;
            if let Err(error) = blocked {
                return Some(error);
            }
        }
    }
}
