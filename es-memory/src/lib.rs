//! In-memory adapters for es: an [`InMemoryEventStore`] (also a
//! [`SnapshotStore`]), an [`InMemoryProjectionStore`] and an
//! [`InMemoryLeaseStore`].
//!
//! For play, tests and demos: everything lives in the process and is gone
//! when it exits. Both stores are cheap to clone (clones share data) and safe
//! to use from many tasks at once. They pass the same conformance suite as
//! the Postgres adapter, so code tested here behaves the same in production.
//!
//! ```
//! use es_core::store::{EventStore, ExpectedVersion, NewEvent};
//! use es_core::StreamId;
//! use es_memory::InMemoryEventStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = InMemoryEventStore::new();
//! let stream = StreamId::new("account-1");
//! let event = NewEvent::new("account", "AccountOpened", 1, serde_json::json!({"owner": "ada"}));
//! let outcome = store.append(&stream, ExpectedVersion::NoStream, vec![event]).await?;
//! assert_eq!(outcome.stream_version.map(|v| v.get()), Some(1));
//! # Ok::<(), es_core::error::AppendError>(())
//! # }).unwrap();
//! ```

mod event_store;
mod lease_store;
mod projection_store;

pub use event_store::InMemoryEventStore;
pub use lease_store::InMemoryLeaseStore;
pub use projection_store::InMemoryProjectionStore;

#[cfg(doc)]
use es_core::store::SnapshotStore;
