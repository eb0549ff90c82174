//! The actor registry: finds the live actor of an aggregate instance, starts
//! one when there is none, and keeps the number of live actors under a cap.
//!
//! One std mutex guards the map. It is held only for map work (a lookup, a
//! non-blocking `try_send`, an insert), never across an `.await` and never
//! while user code runs, so commands to different aggregates barely contend
//! on it.
//!
//! Every aggregate instance has at most one slot. A slot is *live* (it holds
//! the actor's mailbox sender) or *stopping* (its actor was passivated,
//! evicted or shut down: the registry dropped the sender, and the actor
//! drains what is already in its mailbox, then exits). A command for a
//! stopping slot starts a fresh actor, which waits for the old one to exit
//! before it reads the store: there is never more than one actor working on
//! an aggregate in one process. Generations tell a slot's actor from a
//! stale one, so an old actor never removes its successor's slot.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

use super::actor::{Actor, Msg};
use super::es::Shared;
use crate::aggregate::Aggregate;

/// The runtime no longer takes commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShutDown;

/// A handle on the end of an actor's task: `changed()` fails once the actor
/// has exited (its sender half is dropped when the task ends, also by panic).
pub(crate) type ExitSignal = watch::Receiver<()>;

/// Waits until the actor behind `exit` has exited.
pub(crate) async fn exited(mut exit: ExitSignal) {
    while exit.changed().await.is_ok() {}
}

struct Slot {
    generation: u64,
    /// The actor's `mpsc::Sender<Msg<A>>` while the actor is live; `None`
    /// once it is stopping.
    sender: Option<Box<dyn Any + Send + Sync>>,
    exit: ExitSignal,
    /// When the actor was last used; its key in [`State::lru`].
    tick: u64,
}

#[derive(Default)]
struct State {
    slots: HashMap<TypeId, HashMap<Arc<str>, Slot>>,
    /// Live actors by last use, oldest first.
    lru: BTreeMap<u64, (TypeId, Arc<str>)>,
    live: usize,
    tick: u64,
    next_generation: u64,
    shut_down: bool,
}

/// What `State::route` found.
enum Route<A: Aggregate> {
    Delivered,
    /// The mailbox is full: send with this sender, waiting for room.
    Full(mpsc::Sender<Msg<A>>, Msg<A>),
    /// No live actor: start one, after the stopping one (if any) exits.
    Start(Msg<A>, Option<ExitSignal>),
}

/// The live actors of one [`Es`](super::Es).
pub(crate) struct Registry {
    state: Mutex<State>,
    max_live: usize,
    mailbox: usize,
}

impl Registry {
    pub(crate) fn new(max_live: usize, mailbox: usize) -> Self {
        Self { state: Mutex::new(State::default()), max_live, mailbox }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections below run no user code and leave the map
        // consistent at every step, so a poisoned lock (a panic elsewhere
        // while holding it, which none of them can cause) holds valid data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many actors are live (stopping ones are not counted).
    pub(crate) fn live(&self) -> usize {
        self.lock().live
    }

    /// Puts `msg` in the mailbox of the actor of aggregate `A` with id `id`,
    /// starting the actor if it is not live.
    pub(crate) async fn deliver<A: Aggregate>(
        &self,
        shared: &Arc<Shared>,
        id: &str,
        mut msg: Msg<A>,
    ) -> Result<(), ShutDown> {
        loop {
            let (sender, pending) = {
                let mut state = self.lock();
                if state.shut_down {
                    return Err(ShutDown);
                }
                match state.route::<A>(id, msg) {
                    Route::Delivered => return Ok(()),
                    Route::Full(sender, pending) => (sender, pending),
                    Route::Start(first, previous) => {
                        self.start::<A>(&mut state, shared, id, first, previous);
                        return Ok(());
                    }
                }
            };
            match sender.send(pending).await {
                Ok(()) => return Ok(()),
                // The actor stopped while we waited for room; route again.
                Err(mpsc::error::SendError(returned)) => msg = returned,
            }
        }
    }

    /// Starts an actor for `id` with `first` as its first message, evicting
    /// the least recently used live actor if the cap is reached.
    fn start<A: Aggregate>(
        &self,
        state: &mut State,
        shared: &Arc<Shared>,
        id: &str,
        first: Msg<A>,
        previous: Option<ExitSignal>,
    ) {
        while state.live >= self.max_live {
            if !state.evict_oldest() {
                break;
            }
            shared.stats.evictions.fetch_add(1, Ordering::Relaxed);
        }
        let generation = state.next_generation;
        state.next_generation += 1;
        state.tick += 1;
        let tick = state.tick;
        let id: Arc<str> = Arc::from(id);
        let (sender, receiver) = mpsc::channel::<Msg<A>>(self.mailbox);
        let (exit_tx, exit) = watch::channel(());
        let slot = Slot { generation, sender: Some(Box::new(sender)), exit, tick };
        state.slots.entry(TypeId::of::<A>()).or_default().insert(Arc::clone(&id), slot);
        state.lru.insert(tick, (TypeId::of::<A>(), Arc::clone(&id)));
        state.live += 1;
        shared.stats.actors_started.fetch_add(1, Ordering::Relaxed);
        shared.stats.live_actors(state.live);
        let actor = Actor::<A>::new(shared, id, generation, receiver, exit_tx);
        tokio::spawn(actor.run(first, previous));
    }

    /// Marks the actor's slot stopping if it is still the live one of that
    /// generation (passivation), and counts it in `passivations` under the
    /// same lock, so whoever sees the live count drop also sees the
    /// passivation counted. Returns whether it was.
    pub(crate) fn stop_if_current<A: Aggregate>(
        &self,
        id: &str,
        generation: u64,
        passivations: &AtomicU64,
    ) -> bool {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(slot) = state.slots.get_mut(&TypeId::of::<A>()).and_then(|s| s.get_mut(id)) else {
            return false;
        };
        if slot.generation != generation || slot.sender.is_none() {
            return false;
        }
        slot.sender = None;
        state.lru.remove(&slot.tick);
        state.live -= 1;
        passivations.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Removes the actor's slot if it still belongs to that generation (the
    /// actor is exiting).
    pub(crate) fn remove<A: Aggregate>(&self, id: &str, generation: u64) {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(slots) = state.slots.get_mut(&TypeId::of::<A>()) else { return };
        if slots.get(id).is_none_or(|slot| slot.generation != generation) {
            return;
        }
        if let Some(slot) = slots.remove(id) {
            if slot.sender.is_some() {
                state.lru.remove(&slot.tick);
                state.live -= 1;
            }
        }
    }

    /// Refuses new commands and stops every actor: each finishes the
    /// commands already in its mailbox, then exits. Returns the signals to
    /// wait on.
    pub(crate) fn shut_down(&self) -> Vec<ExitSignal> {
        let mut state = self.lock();
        state.shut_down = true;
        state.lru.clear();
        state.live = 0;
        let mut exits = Vec::new();
        for slot in state.slots.values_mut().flat_map(HashMap::values_mut) {
            slot.sender = None;
            exits.push(slot.exit.clone());
        }
        exits
    }

    /// Whether [`shut_down`](Registry::shut_down) was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.lock().shut_down
    }
}

impl State {
    fn route<A: Aggregate>(&mut self, id: &str, msg: Msg<A>) -> Route<A> {
        let Self { slots, lru, live, tick, .. } = self;
        let Some(slot) = slots.get_mut(&TypeId::of::<A>()).and_then(|s| s.get_mut(id)) else {
            return Route::Start(msg, None);
        };
        let Some(boxed) = slot.sender.as_ref() else {
            return Route::Start(msg, Some(slot.exit.clone()));
        };
        // The slot map is keyed by `TypeId::of::<A>()`, so the downcast holds;
        // were it ever to fail, the slot is retired like a closed one.
        let attempt = match boxed.downcast_ref::<mpsc::Sender<Msg<A>>>() {
            Some(sender) => match sender.try_send(msg) {
                Ok(()) => Ok(Route::Delivered),
                Err(TrySendError::Full(msg)) => Ok(Route::Full(sender.clone(), msg)),
                Err(TrySendError::Closed(msg)) => Err(msg),
            },
            None => Err(msg),
        };
        let route = match attempt {
            Ok(route) => route,
            Err(msg) => {
                // The actor is exiting and has not left the registry yet:
                // treat it as stopping, and start its successor behind it.
                slot.sender = None;
                lru.remove(&slot.tick);
                *live -= 1;
                return Route::Start(msg, Some(slot.exit.clone()));
            }
        };
        // Touch: the most recently used actor moves to the back of the LRU
        // order. A hot actor already there costs nothing.
        if slot.tick != *tick {
            *tick += 1;
            if let Some(key) = lru.remove(&slot.tick) {
                lru.insert(*tick, key);
            }
            slot.tick = *tick;
        }
        route
    }

    /// Stops the least recently used live actor. Returns false if none is live.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, (type_id, id))) = self.lru.pop_first() else { return false };
        if let Some(slot) = self.slots.get_mut(&type_id).and_then(|s| s.get_mut(&id)) {
            slot.sender = None;
        }
        self.live -= 1;
        true
    }
}
