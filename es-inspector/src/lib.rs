//! A web inspector any es application can mount: its streams (searched by
//! name prefix), one stream's events with payload and metadata, the global
//! log as it grows (server-sent events), an aggregate's state at any
//! version (time travel), and every subscription of the read side with its
//! state, position, lag, error and the event it stopped at, with buttons to
//! stop, start and rebuild it (and the rebuild's progress).
//!
//! It is a plain axum [`Router`](axum::Router) with a server-rendered page
//! and a little JavaScript, off unless the application mounts it:
//!
//! ```no_run
//! # async fn run(es: es_core::Es) -> Result<(), Box<dyn std::error::Error>> {
//! # #[derive(es_core::Aggregate, Default, serde::Serialize, serde::Deserialize)]
//! # #[aggregate(name = "account", error = Never, events(Opened), commands(Open))]
//! # pub struct Account { open: bool }
//! # #[es_core::event] #[derive(Debug, Clone, PartialEq)] pub struct Opened;
//! # #[es_core::command(aggregate = Account)] #[derive(Debug, Clone)] pub struct Open { #[id] pub id: String }
//! # #[derive(Debug, thiserror::Error)] #[error("never")] pub struct Never;
//! # impl es_core::Handle<Open> for Account { fn handle(&self, _: Open) -> Result<es_core::Events<Self>, Never> { Ok(es_core::Events::one(Opened)) } }
//! # impl es_core::Apply<Opened> for Account { fn apply(&mut self, _: &Opened) { self.open = true; } }
//! let inspector = es_inspector::Inspector::new(es)
//!     .aggregate::<Account>()          // streams `account-…` can be folded to any version
//!     .token("s3cret");                // it can rebuild projections: guard it
//! let app = axum::Router::new().nest("/inspector", inspector.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;   // open http://127.0.0.1:8080/inspector?token=s3cret
//! # Ok(())
//! # }
//! ```
//!
//! The JSON endpoints behind the page (see [`Inspector::router`]) answer
//! with the types of this crate, and the same operations are methods of
//! [`Inspector`], for a command line or tests.

mod error;
mod extract;
mod inspect;
mod live;
mod routes;
mod view;

pub use error::InspectorError;
pub use inspect::{Inspector, MAX_PAGE};
pub use view::{EventView, FailedEvent, RebuildProgress, StateView, StreamView, SubscriptionView};
