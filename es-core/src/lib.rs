//! # es: event sourcing and CQRS for Rust
//!
//! Annotate your domain types, pick a storage adapter, and get command
//! dispatch, persistence, time travel and a test kit:
//!
//! - `#[event]` makes a struct a stored event (type name, schema version,
//!   serde derives);
//! - `#[command(aggregate = T)]` makes a struct a command routed by its
//!   `#[id]` field;
//! - `#[derive(Aggregate)]` ties an aggregate's events and commands
//!   together, generating the event enum and the dispatch to your
//!   [`Handle`] and [`Apply`] impls;
//! - `#[event_handler]` and `#[projection]` register read-side
//!   subscribers at link time, which a [`ReadSide`] runs;
//! - [`Es`] executes commands against any [`EventStore`] adapter
//!   (`es-memory` for tests and play, `es-postgres` for production).
//!
//! Storage sits behind ports ([`EventStore`], [`SnapshotStore`],
//! [`ProjectionStore`]) that every adapter implements and checks with the
//! shared conformance suite (feature `conformance`). The read side
//! ([`ReadSide`]) feeds handlers and projections from the global stream.
//!
//! ```
//! use es_core::{command, event, Aggregate, Apply, Es, Events, ExecuteError, Handle, StreamVersion};
//! use serde::{Deserialize, Serialize};
//!
//! #[event]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct Deposited { pub amount: u64 }
//!
//! #[event]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct Withdrawn { pub amount: u64 }
//!
//! #[command(aggregate = Wallet)]
//! #[derive(Debug, Clone)]
//! pub struct Deposit { #[id] pub wallet: String, #[validate(min = 1)] pub amount: u64 }
//!
//! #[command(aggregate = Wallet)]
//! #[derive(Debug, Clone)]
//! pub struct Withdraw { #[id] pub wallet: String, pub amount: u64 }
//!
//! #[derive(Debug, thiserror::Error)]
//! pub enum WalletError {
//!     #[error("balance {balance} is below {requested}")]
//!     Insufficient { balance: u64, requested: u64 },
//! }
//!
//! #[derive(Aggregate, Default, Serialize, Deserialize)]
//! #[aggregate(name = "wallet", error = WalletError,
//!             events(Deposited, Withdrawn), commands(Deposit, Withdraw))]
//! pub struct Wallet { balance: u64 }
//!
//! impl Handle<Deposit> for Wallet {
//!     fn handle(&self, cmd: Deposit) -> Result<Events<Self>, WalletError> {
//!         Ok(Events::one(Deposited { amount: cmd.amount }))
//!     }
//! }
//! impl Handle<Withdraw> for Wallet {
//!     fn handle(&self, cmd: Withdraw) -> Result<Events<Self>, WalletError> {
//!         if cmd.amount > self.balance {
//!             return Err(WalletError::Insufficient { balance: self.balance, requested: cmd.amount });
//!         }
//!         Ok(Events::one(Withdrawn { amount: cmd.amount }))
//!     }
//! }
//! impl Apply<Deposited> for Wallet {
//!     fn apply(&mut self, e: &Deposited) { self.balance += e.amount; }
//! }
//! impl Apply<Withdrawn> for Wallet {
//!     fn apply(&mut self, e: &Withdrawn) { self.balance -= e.amount; }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let es = Es::builder().event_store(es_memory::InMemoryEventStore::new()).build().await?;
//! es.execute(Deposit { wallet: "w1".into(), amount: 50 }).await?;
//! es.execute(Withdraw { wallet: "w1".into(), amount: 20 }).await?;
//! let refused = es.execute(Withdraw { wallet: "w1".into(), amount: 100 }).await;
//! assert!(matches!(refused, Err(ExecuteError::Rejected(WalletError::Insufficient { balance: 30, .. }))));
//!
//! assert_eq!(es.load::<Wallet>("w1").await?.balance, 30);
//! assert_eq!(es.load_at::<Wallet>("w1", StreamVersion(1)).await?.balance, 50); // time travel
//! # Ok(())
//! # }
//! ```

mod aggregate;
mod clock;
mod envelope;
mod error;
mod event;
mod macro_support;
mod readside;
mod runtime;
mod store;
mod version;

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod testkit;

pub use aggregate::{Aggregate, Apply, Command, Events, Handle};
pub use envelope::{AppendOutcome, Committed, Metadata, NewEvent, RecordedEvent, Snapshot, Timestamp};
pub use error::{
    AppendError, BoxError, DecodeError, DecodeErrorKind, EncodeError, ExecuteError, LoadError,
    ProjectionError, StoreError, ValidationError, Violation,
};
pub use event::{Event, EventSet};
pub use readside::{
    Consistency, ConsistencyError, Failure, HandleEvent, HandlerBuilder, HandlerCtx, HandlerError,
    InMemoryLeaseStore, Lease, LeaseError, LeaseStore, Project, ProjectionBuilder, ProjectionTx, ReadSide,
    ReadSideBuilder, ReadSideConfig, ReadSideError, Recorded, Registration, Registry, RegistryError, Replay,
    RetryPolicy, Selection, Subscriber, SubscriptionKind, SubscriptionState, SubscriptionStatus,
};
pub use runtime::{
    AggregateConfig, BuildError, CommandOutcome, CommandPath, Es, EsBuilder, EsConfig, EsStats, Loaded,
};
pub use store::{
    json_contains, Direction, DocumentChange, DocumentQuery, EventStore, ProjectionStore, ReadBlocker,
    SnapshotStore, UnitOfWork,
};
pub use version::{EventId, ExpectedVersion, GlobalPosition, StreamId, StreamVersion};

pub use es_macros::{command, event, event_handler, projection, Aggregate};

/// Used by code that es-macros generates. Not public API: it may change in
/// any release without notice.
#[doc(hidden)]
pub mod __private {
    pub use ::async_trait;
    pub use ::inventory;
    pub use ::serde;
    pub use ::serde_json;
    pub use ::std::clone::Clone;
    pub use ::std::cmp::PartialEq;
    pub use ::std::convert::From;
    pub use ::std::default::Default;
    pub use ::std::fmt::Debug;
    pub use ::std::future::Future;
    pub use ::std::marker::Send;
    pub use ::std::option::Option;
    pub use ::std::primitive::{str, u32};
    pub use ::std::result::Result;
    pub use ::std::string::{String, ToString};
    pub use ::std::vec::Vec;
    pub use ::std::{panic, unreachable};

    pub use crate::event::decode_event;
    pub use crate::macro_support::{event_payload, str_eq};
    pub use crate::readside::Registration;
}
