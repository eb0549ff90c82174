//! The registry of named subscribers, fed explicitly or at link time.
//!
//! `#[event_handler]` and `#[projection]` submit a [`Registration`] with
//! `inventory`; [`Registry::from_inventory`] collects them. Iteration order
//! of `inventory` is unspecified and it cannot catch duplicates, so the
//! registry orders subscribers by name and refuses a name given twice.
//!
//! ```
//! use es_core::readside::{Registration, Registry, Selection, Subscriber};
//! # use es_core::{HandleEvent, HandlerCtx, HandlerError, Recorded};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! # struct Pinged;
//! # impl es_core::Event for Pinged { const TYPE: &'static str = "Pinged"; }
//! struct Log;
//! impl HandleEvent<Pinged> for Log {
//!     async fn handle(&self, _: &Recorded<Pinged>, _: &HandlerCtx) -> Result<(), HandlerError> { Ok(()) }
//! }
//!
//! fn log() -> Subscriber {
//!     Subscriber::handler(Log).on::<Pinged>().build().in_group("ops")
//! }
//! // What the macros emit, at item level:
//! es_core::__private::inventory::submit! { es_core::__private::Registration::new("log", log) }
//!
//! let mut registry = Registry::from_inventory()?;
//! assert!(registry.register("log", log()).is_err()); // duplicate name
//! assert_eq!(registry.select(&Selection::group("ops"))?.len(), 1);
//! # Ok::<(), es_core::error::RegistryError>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use super::subscriber::Subscriber;
use crate::error::RegistryError;

/// A link-time registration of one subscriber: what `#[event_handler]` and
/// `#[projection]` submit through `inventory`.
///
/// Built by a `const fn` from a name and a factory function, because
/// `inventory::submit!` is a static initializer.
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    name: &'static str,
    factory: fn() -> Subscriber,
}

impl Registration {
    /// Registers the subscriber `factory` builds under `name`.
    pub const fn new(name: &'static str, factory: fn() -> Subscriber) -> Self {
        Self { name, factory }
    }

    /// The registered name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Builds the subscriber.
    pub fn build(&self) -> Subscriber {
        (self.factory)()
    }
}

inventory::collect!(Registration);

/// Which registered subscribers an application runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Selection {
    /// Every registered subscriber.
    #[default]
    All,
    /// The subscribers with these names.
    Names(Vec<String>),
    /// The subscribers of this group.
    Group(String),
}

impl Selection {
    /// The subscribers with these names.
    pub fn names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Names(names.into_iter().map(Into::into).collect())
    }

    /// The subscribers of `group`.
    pub fn group(group: impl Into<String>) -> Self {
        Self::Group(group.into())
    }
}

/// Named subscribers, ordered by name; names are unique.
///
/// A subscriber's checkpoint is kept in the projection store under its
/// name, and a projection's documents too.
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<String, Arc<Subscriber>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every subscriber registered at link time with
    /// `inventory::submit!` (by `#[event_handler]` and `#[projection]`).
    ///
    /// # Errors
    /// [`RegistryError::DuplicateName`] if two registrations share a name;
    /// [`RegistryError::InvalidName`] for an empty name.
    pub fn from_inventory() -> Result<Self, RegistryError> {
        let mut registrations: Vec<&Registration> = inventory::iter::<Registration>.into_iter().collect();
        registrations.sort_by_key(|r| r.name);
        let mut registry = Self::new();
        for registration in registrations {
            registry.register_static(registration)?;
        }
        Ok(registry)
    }

    /// Registers `subscriber` under `name`.
    ///
    /// # Errors
    /// [`RegistryError::DuplicateName`] if the name is taken;
    /// [`RegistryError::InvalidName`] if it is empty.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        subscriber: Subscriber,
    ) -> Result<&mut Self, RegistryError> {
        let name = name.into();
        if name.is_empty() {
            return Err(RegistryError::InvalidName { name, reason: "it is empty" });
        }
        if self.entries.contains_key(&name) {
            return Err(RegistryError::DuplicateName { name });
        }
        if let Some(ambiguity) = subscriber.ambiguities().first() {
            return Err(RegistryError::AmbiguousEvent {
                name,
                event: ambiguity.event,
                aggregates: ambiguity.aggregates.clone(),
            });
        }
        self.entries.insert(name, Arc::new(subscriber));
        Ok(self)
    }

    /// Registers `subscriber` under `name` in place of the one registered
    /// there, if any: for an application that swaps a link-time subscriber
    /// for another on some stores (a table projection on Postgres for a
    /// document projection elsewhere, under the same name and checkpoint).
    ///
    /// # Errors
    /// As [`register`](Registry::register), except that a taken name is
    /// not one.
    pub fn replace(
        &mut self,
        name: impl Into<String>,
        subscriber: Subscriber,
    ) -> Result<&mut Self, RegistryError> {
        let name = name.into();
        let previous = self.entries.remove(&name);
        match self.register(name.clone(), subscriber) {
            Ok(_) => Ok(self),
            Err(error) => {
                if let Some(previous) = previous {
                    self.entries.insert(name, previous);
                }
                Err(error)
            }
        }
    }

    /// Registers a link-time [`Registration`].
    ///
    /// # Errors
    /// As [`register`](Registry::register).
    pub fn register_static(&mut self, registration: &Registration) -> Result<&mut Self, RegistryError> {
        self.register(registration.name(), registration.build())
    }

    /// The registered names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The subscriber registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Subscriber> {
        self.entries.get(name).map(|s| &**s)
    }

    /// How many subscribers are registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The selected subscribers with their names, ordered by name.
    ///
    /// # Errors
    /// [`RegistryError::UnknownName`] for a selected name that is not
    /// registered; [`RegistryError::UnknownGroup`] for a group no
    /// subscriber belongs to.
    pub fn select(&self, selection: &Selection) -> Result<Vec<(String, Arc<Subscriber>)>, RegistryError> {
        let picked: Vec<_> = match selection {
            Selection::All => self.entries.iter().map(|(n, s)| (n.clone(), Arc::clone(s))).collect(),
            Selection::Names(names) => {
                let mut picked = BTreeMap::new();
                for name in names {
                    let subscriber = self
                        .entries
                        .get(name)
                        .ok_or_else(|| RegistryError::UnknownName { name: name.clone() })?;
                    picked.insert(name.clone(), Arc::clone(subscriber));
                }
                picked.into_iter().collect()
            }
            Selection::Group(group) => {
                let picked: Vec<_> = self
                    .entries
                    .iter()
                    .filter(|(_, s)| s.group() == Some(group.as_str()))
                    .map(|(n, s)| (n.clone(), Arc::clone(s)))
                    .collect();
                if picked.is_empty() {
                    return Err(RegistryError::UnknownGroup { group: group.clone() });
                }
                picked
            }
        };
        Ok(picked)
    }
}
