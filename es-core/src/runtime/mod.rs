//! The runtime: the [`Es`](crate::Es) application handle, command execution
//! and aggregate loading.
//!
//! Commands run through aggregate actors (module `actor`) by default: one
//! task per live aggregate instance keeps its state in memory, so a hot
//! aggregate costs the same per command whatever its history. Actors are
//! found through the registry (module `registry`), which keeps their number
//! under a cap. The alternative [`CommandPath::Reload`] rebuilds the
//! aggregate from the store for every command; see [`CommandPath`] for when
//! to choose which.
//!
//! This module holds what configures and reports on the runtime; `Es` and
//! [`CommandOutcome`](crate::CommandOutcome) live at the crate root.

mod actor;
pub(crate) mod attached;
mod attempt;
pub(crate) mod backoff;
pub(crate) mod builder;
mod config;
mod dispatch;
pub(crate) mod es;
mod execute;
pub(crate) mod ids;
pub(crate) mod outcome;
mod registry;
mod rehydrate;
mod reload;
mod request;
mod snapshot;
mod stats;

pub use builder::EsBuilder;
pub use config::{AggregateConfig, CommandPath};
pub(crate) use es::WeakEs;
pub use execute::Execute;
pub use rehydrate::Loaded;
pub use stats::EsStats;
