//! Typed state for handlers and projections: the values an application
//! gives its read side (a mailer, an HTTP client, a pool), handed to the
//! subscribers that declared them.
//!
//! A subscriber declares what it uses when it is built
//! ([`HandlerBuilder::uses`](crate::readside::HandlerBuilder::uses), and the
//! same on the projection builders; `uses(..)` in the macros); the
//! application registers the values with
//! [`ReadSideBuilder::state`](crate::readside::ReadSideBuilder::state). A
//! declared value the application did not register fails
//! [`ReadSideBuilder::build`](crate::readside::ReadSideBuilder::build),
//! naming the subscriber and the type, so it can never be missing at the
//! first event. Asking for a type one did not declare is refused too
//! ([`HandlerError::UndeclaredState`]), so the check at build time covers
//! every lookup.

use std::any::{type_name, Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use super::handler::HandlerError;

/// The values registered on a read side, by type.
#[derive(Clone, Default)]
pub(crate) struct StateMap {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for StateMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMap").field("values", &self.values.len()).finish()
    }
}

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    pub(crate) fn contains(&self, used: &Used) -> bool {
        self.values.contains_key(&used.id)
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

/// One type of state a subscriber declared it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Used {
    id: TypeId,
    pub(crate) name: &'static str,
}

impl Used {
    pub(crate) fn of<T: Send + Sync + 'static>() -> Self {
        Self { id: TypeId::of::<T>(), name: type_name::<T>() }
    }
}

/// What one subscriber may read: the read side's values, limited to the
/// types it declared.
#[derive(Clone, Default)]
pub(crate) struct SubscriberState {
    values: Arc<StateMap>,
    used: Arc<[Used]>,
}

impl std::fmt::Debug for SubscriberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.used.iter().map(|used| used.name)).finish()
    }
}

impl SubscriberState {
    pub(crate) fn new(values: Arc<StateMap>, used: Arc<[Used]>) -> Self {
        Self { values, used }
    }

    /// The value of type `T`.
    ///
    /// # Errors
    /// [`HandlerError::UndeclaredState`] if the subscriber did not declare
    /// that it uses `T` (a declared one is there: the build checked it).
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Result<&T, HandlerError> {
        let declared = self.used.contains(&Used::of::<T>());
        match self.values.get::<T>() {
            Some(value) if declared => Ok(value),
            _ => Err(HandlerError::UndeclaredState { type_name: type_name::<T>() }),
        }
    }
}
