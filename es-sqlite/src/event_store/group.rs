//! Group commit: appends that wait for the writer at the same time share
//! one transaction, so they share its commit (with `synchronous = FULL`,
//! one flush to disk instead of one each).
//!
//! Every append queues its request, then waits for either its outcome or
//! the process's writer connection. Whoever gets the connection takes
//! every queued request (its own, or others' if another group took its
//! own already) and runs them as one group in a spawned task, which
//! answers each request: the group finishes even if the caller that
//! started it goes away. A lone append is a group of one and runs as
//! before, in one statement. No background task outlives an append, so a
//! store works across tokio runtimes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use es_core::error::AppendError;
use es_core::store::AppendOutcome;
use es_core::StreamId;
use tokio::sync::oneshot;

use super::append::{run_group, Request};
use super::SqliteEventStore;

/// The most appends one group commits together.
const MAX_GROUP_APPENDS: usize = 256;
/// The most events one group commits together (a group takes at least one
/// append, however large).
const MAX_GROUP_EVENTS: usize = 16_384;

type Outcome = Result<AppendOutcome, AppendError>;

/// The appends waiting for the writer.
#[derive(Default)]
pub(super) struct Queue {
    next_id: AtomicU64,
    waiting: Mutex<VecDeque<Waiting>>,
}

struct Waiting {
    id: u64,
    request: Request,
    reply: oneshot::Sender<Outcome>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiting>> {
        // Nothing panics while holding the lock, and a queue of requests
        // stays consistent whatever happened: go on with it.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, request: Request, reply: oneshot::Sender<Outcome>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push_back(Waiting { id, request, reply });
        id
    }

    /// Takes request `id` back if no group has taken it yet.
    fn withdraw(&self, id: u64) -> bool {
        let mut waiting = self.lock();
        let before = waiting.len();
        waiting.retain(|w| w.id != id);
        waiting.len() < before
    }

    /// The oldest waiting requests, as many as one group takes.
    fn take_group(&self) -> Vec<Waiting> {
        let mut waiting = self.lock();
        let mut group = Vec::new();
        let mut events = 0;
        while let Some(next) = waiting.front() {
            let more = next.request.events.len();
            if !group.is_empty() && (group.len() == MAX_GROUP_APPENDS || events + more > MAX_GROUP_EVENTS) {
                break;
            }
            events += more;
            group.extend(waiting.pop_front());
        }
        group
    }
}

/// The group that took a request ended without answering it (its task
/// panicked or its runtime shut down): the append may or may not be stored.
#[derive(Debug, thiserror::Error)]
#[error("the append's group commit ended without an answer; the events may or may not be stored")]
struct Unanswered;

fn unanswered(stream: &StreamId) -> AppendError {
    AppendError::OutcomeUnknown { stream: stream.clone(), source: Box::new(Unanswered) }
}

impl SqliteEventStore {
    /// Queues `request` and waits for its outcome, leading a group when the
    /// writer connection comes free first.
    pub(super) async fn submit(&self, request: Request) -> Outcome {
        let stream = request.stream.clone();
        let db = self.database().clone();
        let queue = self.queue();
        let (reply, mut outcome) = oneshot::channel();
        let id = queue.push(request, reply);
        loop {
            tokio::select! {
                biased;
                answer = &mut outcome => return answer.unwrap_or_else(|_| Err(unanswered(&stream))),
                conn = db.writer() => {
                    let mut conn = match conn {
                        Ok(conn) => conn,
                        Err(error) => {
                            if queue.withdraw(id) {
                                return Err(AppendError::Backend { stream, source: Box::new(error) });
                            }
                            // A group has it: its answer comes.
                            return outcome.await.unwrap_or_else(|_| Err(unanswered(&stream)));
                        }
                    };
                    let group = queue.take_group();
                    if group.is_empty() {
                        // Another group took ours; its answer comes.
                        continue;
                    }
                    let db = db.clone();
                    let task = tokio::spawn(async move {
                        let (requests, replies): (Vec<Request>, Vec<_>) =
                            group.into_iter().map(|w| (w.request, w.reply)).unzip();
                        let outcomes = run_group(&db, &mut conn, &requests).await;
                        // The connection goes back before the answers, so
                        // a caller that got one can append again at once.
                        drop(conn);
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            // A caller that went away needs no answer.
                            let _ = reply.send(outcome);
                        }
                    });
                    // A panic in the task drops its replies: every caller
                    // of the group learns that its outcome is unknown.
                    let _ = task.await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use es_core::store::{ExpectedVersion, NewEvent};

    use super::*;

    fn request(events: usize) -> Request {
        Request {
            stream: StreamId::new("s"),
            expected: ExpectedVersion::Any,
            events: (0..events).map(|_| NewEvent::new("t", "T", 1, serde_json::json!({}))).collect(),
            metadata: vec!["{}".to_owned(); events],
        }
    }

    #[test]
    fn a_group_takes_the_oldest_requests_up_to_its_limits() {
        let queue = Queue::default();
        for _ in 0..MAX_GROUP_APPENDS + 3 {
            queue.push(request(1), oneshot::channel().0);
        }
        let group = queue.take_group();
        assert_eq!(group.len(), MAX_GROUP_APPENDS);
        assert!(group.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        assert_eq!(queue.take_group().len(), 3);
        assert!(queue.take_group().is_empty());

        // A large append goes alone rather than never.
        queue.push(request(MAX_GROUP_EVENTS + 1), oneshot::channel().0);
        queue.push(request(1), oneshot::channel().0);
        assert_eq!(queue.take_group().len(), 1);
        assert_eq!(queue.take_group().len(), 1);
    }

    fn event(n: u64) -> NewEvent {
        NewEvent::new("t", "T", 1, serde_json::json!({ "n": n }))
    }

    /// Appends that queue while the writer is busy commit as one group,
    /// each decided as if alone, in queue order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_append_of_a_group_gets_its_own_outcome() {
        use es_core::store::{Direction, EventStore};
        use es_core::{GlobalPosition, StreamVersion};

        let db = crate::SqliteDatabase::temporary().await.unwrap();
        db.migrate().await.unwrap();
        let store = SqliteEventStore::new(db.clone());
        let (e1, e2, e3, e4, e5, e6) = (event(1), event(2), event(3), event(4), event(5), event(6));
        store.append(&StreamId::new("a"), ExpectedVersion::NoStream, vec![e1.clone()]).await.unwrap();

        let held = db.begin_write().await.unwrap();
        let mut other_content = e2.clone();
        other_content.payload = serde_json::json!({ "n": 99 }).into();
        let appends = [
            ("b", ExpectedVersion::NoStream, vec![e2.clone()]),
            ("b", ExpectedVersion::NoStream, vec![e3]),
            ("c", ExpectedVersion::Any, vec![other_content]),
            ("b", ExpectedVersion::NoStream, vec![e2.clone()]),
            ("d", ExpectedVersion::NoStream, vec![e4, e1.clone()]),
            ("a", ExpectedVersion::Exact(StreamVersion(1)), vec![e5, e6]),
        ];
        let mut tasks = Vec::new();
        for (n, (stream, expected, events)) in appends.into_iter().enumerate() {
            let appender = store.clone();
            tasks.push(tokio::spawn(async move {
                appender.append(&StreamId::new(stream), expected, events).await
            }));
            // Queue them in this order (a bounded wait for each).
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while store_queue_len(&store) < n + 1 {
                assert!(tokio::time::Instant::now() < deadline, "append {n} never queued");
                tokio::task::yield_now().await;
            }
        }
        held.rollback().await.unwrap();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }

        let placed = |n: usize| outcomes[n].as_ref().unwrap().committed.clone();
        assert_eq!(placed(0)[0].global_position, GlobalPosition(2));
        assert!(
            matches!(
                &outcomes[1],
                Err(AppendError::WrongExpectedVersion { actual: Some(StreamVersion(1)), .. })
            ),
            "the first append of the group moved the stream: {:?}",
            outcomes[1]
        );
        assert!(
            matches!(&outcomes[2], Err(AppendError::DuplicateEventId { event_id, .. }) if *event_id == e2.event_id)
        );
        assert_eq!(placed(3), placed(0), "an exact retry of an append earlier in the group");
        assert!(
            matches!(&outcomes[4], Err(AppendError::DuplicateEventId { event_id, .. }) if *event_id == e1.event_id)
        );
        let positions: Vec<u64> = placed(5).iter().map(|c| c.global_position.get()).collect();
        assert_eq!(positions, [3, 4], "the refused appends took no positions");

        assert_eq!(store.head_position().await.unwrap(), GlobalPosition(4));
        assert_eq!(
            store.stream_version(&StreamId::new("d")).await.unwrap(),
            None,
            "nothing of a refused batch"
        );
        let b =
            store.read_stream(&StreamId::new("b"), StreamVersion(1), Direction::Forward, 10).await.unwrap();
        assert_eq!(b.len(), 1);
    }

    fn store_queue_len(store: &SqliteEventStore) -> usize {
        store.queue().lock().len()
    }

    #[test]
    fn a_request_is_withdrawn_only_while_no_group_has_it() {
        let queue = Queue::default();
        let first = queue.push(request(1), oneshot::channel().0);
        let second = queue.push(request(1), oneshot::channel().0);
        assert!(queue.withdraw(second));
        assert!(!queue.withdraw(second));
        assert_eq!(queue.take_group().len(), 1);
        assert!(!queue.withdraw(first), "taken by a group");
    }
}
