//! What a test runs when a call starts ([`TestStore::before`](super::TestStore::before)),
//! and the wake-ups of tests waiting for a call to start
//! ([`TestStore::reached`](super::TestStore::reached)).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::StoreCall;

type Hook = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The hooks of one [`TestStore`](super::TestStore) and its clones, at
/// most one per call kind.
#[derive(Default)]
pub(super) struct Hooks {
    hooks: Mutex<Vec<(StoreCall, Hook)>>,
    /// Notified each time a call starts.
    started: Notify,
}

impl Hooks {
    pub(super) fn set<F, Fut>(&self, call: StoreCall, hook: F)
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Arc::new(move |n| Box::pin(hook(n)));
        // A poisoned lock only means a test thread panicked while holding
        // it; the list itself is always whole.
        let mut hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
        hooks.retain(|(kind, _)| *kind != call);
        hooks.push((call, hook));
    }

    /// Says that call number `n` of kind `call` started, then runs its hook.
    pub(super) async fn started(&self, call: StoreCall, n: u64) {
        self.started.notify_waiters();
        let hook = {
            let hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
            hooks.iter().find(|(kind, _)| *kind == call).map(|(_, hook)| Arc::clone(hook))
        };
        if let Some(hook) = hook {
            hook(n).await;
        }
    }

    /// Waits until `done` says yes, asking again each time a call starts.
    pub(super) async fn until(&self, done: impl Fn() -> bool) {
        loop {
            let started = self.started.notified();
            let mut started = std::pin::pin!(started);
            // Registered before the check, so a call that starts between
            // the check and the wait still wakes it.
            started.as_mut().enable();
            if done() {
                return;
            }
            started.await;
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hooks = self.hooks.lock().map_or_else(|_| Vec::new(), |h| h.iter().map(|(c, _)| *c).collect());
        write!(f, "Hooks({hooks:?})")
    }
}
