//! The reload-per-command path: every command loads its aggregate from the
//! store (snapshot plus later events), decides and appends.
//!
//! Commands to one aggregate inside one process take turns on a
//! per-aggregate lock, so they never race each other: conflicts only come
//! from other processes. The lock map holds an entry only while some
//! command holds or waits for it.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::attempt::{load_failed, Attempts};
use super::backoff::Contention;
use super::es::Shared;
use super::outcome::CommandOutcome;
use super::rehydrate;
use super::request::Request;
use super::snapshot;
use crate::aggregate::Aggregate;
use crate::error::{ExecuteError, Unknown};
use crate::unwind::Unwound;
use crate::version::StreamId;

/// The turn of one aggregate instance: held while one of its commands runs.
type Turn = Arc<tokio::sync::Mutex<()>>;

/// One async lock per aggregate instance with commands in flight.
#[derive(Default)]
pub(crate) struct Turns {
    locks: Mutex<HashMap<(TypeId, String), Turn>>,
}

impl Turns {
    /// The lock of `id` of aggregate `A`, made if none is held.
    fn lock_of<A: Aggregate>(&self, id: &str) -> Turn {
        // The map's critical sections run no user code and cannot leave it
        // half-changed: a poisoned lock still holds a valid map.
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry((TypeId::of::<A>(), id.to_owned())).or_default())
    }

    /// Forgets `id`'s lock once nobody else holds or waits for it.
    fn release<A: Aggregate>(&self, id: &str, lock: Turn) {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (TypeId::of::<A>(), id.to_owned());
        // Two references: the map's and ours. Anyone else waiting holds a third.
        if Arc::strong_count(&lock) == 2 && locks.get(&key).is_some_and(|held| Arc::ptr_eq(held, &lock)) {
            locks.remove(&key);
        }
    }
}

/// Executes `request` by loading aggregate `id`, deciding and appending.
pub(crate) async fn execute<A: Aggregate>(
    shared: &Shared,
    id: String,
    mut request: Request<A>,
) -> Result<CommandOutcome<A>, ExecuteError<A::Error>> {
    if shared.registry.is_shut_down() {
        return Err(ExecuteError::Shutdown);
    }
    let lock = shared.turns.lock_of::<A>(&id);
    let result = {
        let _turn = lock.lock().await;
        let (command_id, appending) = (request.id, AtomicBool::new(false));
        // The command runs in its caller's task: a store adapter that panics
        // is answered as the actor path answers it (the actor dies there),
        // not unwound through the caller.
        match Unwound(Box::pin(run(shared, &id, &mut request, &appending))).await {
            Ok(result) => result,
            Err(panic) => {
                tracing::error!(aggregate = A::NAME, %id, %panic, "the command panicked");
                let (aggregate, id) = (A::NAME, id.clone());
                Err(if appending.load(Ordering::Relaxed) {
                    ExecuteError::OutcomeUnknown { aggregate, id, command_id, cause: Unknown::Interrupted }
                } else {
                    ExecuteError::Panicked { aggregate, id, appended: false }
                })
            }
        }
    };
    shared.turns.release::<A>(&id, lock);
    result
}

async fn run<A: Aggregate>(
    shared: &Shared,
    id: &str,
    request: &mut Request<A>,
    appending: &AtomicBool,
) -> Result<CommandOutcome<A>, ExecuteError<A::Error>> {
    if !request.start() {
        // The caller gave up before its turn came.
        return Err(ExecuteError::Timeout { aggregate: A::NAME, id: id.to_owned(), command_id: request.id });
    }
    let stream = StreamId::for_aggregate(A::NAME, id);
    shared.stats.rehydration::<A>();
    let mut loaded =
        rehydrate::rehydrate::<A>(shared.events.as_ref(), shared.snapshots.as_deref(), &stream, id, None)
            .await
            .map_err(|error| load_failed::<A>(error, id))?;
    let before = loaded.version;
    let attempts = Attempts {
        events: shared.events.as_ref(),
        stream: &stream,
        id,
        stats: &shared.stats,
        backoff: shared.config.backoff,
        confirm: shared.config.confirm_decisions,
        assumed: false,
        appending: Some(appending),
    };
    // Each command loads the aggregate afresh: no window to keep.
    let ran = attempts.run(&mut loaded, request, &mut Contention::default()).await;
    if ran.result.is_ok() && !ran.state_unsure {
        snapshot::after_append(shared, &stream, &loaded, before);
    }
    ran.result
}
