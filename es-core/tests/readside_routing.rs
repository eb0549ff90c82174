//! Events reach a subscriber by aggregate and event type together: two
//! aggregates may each store an `Opened`, and a subscriber of one never
//! sees the other's; an event type two aggregates share must be claimed
//! for one of them.
// A test-local domain: its types need no docs and are not exported.
#![allow(missing_docs, unreachable_pub)]
// A failed step must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::error::RegistryError;
use es_core::readside::{Registry, Subscriber};
use es_core::{
    command, event, Aggregate, Apply, Es, Events, HandleEvent, HandlerCtx, HandlerError, ReadSide, Recorded,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

/// A shared event type: both aggregates list it.
#[event]
#[derive(Debug, Clone)]
pub struct Noted {
    pub text: String,
}

mod account {
    use super::*;

    /// Stored as "Opened", like the vault's.
    #[event(name = "Opened")]
    #[derive(Debug, Clone)]
    pub struct Opened {
        pub owner: String,
    }

    #[command(aggregate = Account)]
    #[derive(Debug, Clone)]
    pub struct Open {
        #[id]
        pub id: String,
        pub owner: String,
    }

    #[command(aggregate = Account)]
    #[derive(Debug, Clone)]
    pub struct Note {
        #[id]
        pub id: String,
        pub text: String,
    }

    #[derive(Aggregate, Default, Serialize, Deserialize)]
    #[aggregate(name = "account", error = Never, events(Opened, Noted), commands(Open, Note))]
    pub struct Account;

    impl Handle<Open> for Account {
        fn handle(&self, cmd: Open) -> Result<Events<Self>, Never> {
            Ok(Events::one(Opened { owner: cmd.owner }))
        }
    }
    impl Handle<Note> for Account {
        fn handle(&self, cmd: Note) -> Result<Events<Self>, Never> {
            Ok(Events::one(Noted { text: cmd.text }))
        }
    }
    impl Apply<Opened> for Account {
        fn apply(&mut self, _: &Opened) {}
    }
    impl Apply<Noted> for Account {
        fn apply(&mut self, _: &Noted) {}
    }
    use es_core::Handle;
}

mod vault {
    use super::*;

    /// Stored as "Opened" too, with another shape.
    #[event(name = "Opened")]
    #[derive(Debug, Clone)]
    pub struct Opened {
        pub code: u32,
    }

    #[command(aggregate = Vault)]
    #[derive(Debug, Clone)]
    pub struct Open {
        #[id]
        pub id: String,
        pub code: u32,
    }

    #[command(aggregate = Vault)]
    #[derive(Debug, Clone)]
    pub struct Note {
        #[id]
        pub id: String,
        pub text: String,
    }

    #[derive(Aggregate, Default, Serialize, Deserialize)]
    #[aggregate(name = "vault", error = Never, events(Opened, Noted), commands(Open, Note))]
    pub struct Vault;

    impl Handle<Open> for Vault {
        fn handle(&self, cmd: Open) -> Result<Events<Self>, Never> {
            Ok(Events::one(Opened { code: cmd.code }))
        }
    }
    impl Handle<Note> for Vault {
        fn handle(&self, cmd: Note) -> Result<Events<Self>, Never> {
            Ok(Events::one(Noted { text: cmd.text }))
        }
    }
    impl Apply<Opened> for Vault {
        fn apply(&mut self, _: &Opened) {}
    }
    impl Apply<Noted> for Vault {
        fn apply(&mut self, _: &Noted) {}
    }
    use es_core::Handle;
}

/// Records the streams of what it was given.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn streams(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl HandleEvent<account::Opened> for Seen {
    async fn handle(&self, e: &Recorded<account::Opened>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(format!("{} opened by {}", e.stream_id, e.owner));
        Ok(())
    }
}

impl HandleEvent<Noted> for Seen {
    async fn handle(&self, e: &Recorded<Noted>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(format!("{} noted {}", e.stream_id, e.text));
        Ok(())
    }
}

async fn run(registry: Registry, seen: &Seen) -> Vec<String> {
    let events = InMemoryEventStore::new();
    let es = Es::builder().event_store(events.clone()).build().await.unwrap();
    es.execute(account::Open { id: "a".into(), owner: "Ada".into() }).await.unwrap();
    es.execute(vault::Open { id: "v".into(), code: 7 }).await.unwrap();
    es.execute(account::Note { id: "a".into(), text: "hi".into() }).await.unwrap();
    let last = es.execute(vault::Note { id: "v".into(), text: "psst".into() }).await.unwrap();
    let read_side = ReadSide::builder()
        .event_store(events)
        .projection_store(InMemoryProjectionStore::new())
        .registry(registry)
        .start()
        .unwrap();
    read_side.wait_for("seen", last.position.unwrap(), TIMEOUT).await.unwrap();
    read_side.shutdown().await;
    seen.streams()
}

#[tokio::test]
async fn a_subscriber_of_one_aggregates_event_never_sees_anothers_of_the_same_name() {
    let seen = Seen::default();
    let mut registry = Registry::new();
    registry.register("seen", Subscriber::handler(seen.clone()).on::<account::Opened>().build()).unwrap();
    // The vault's "Opened" (another shape) is neither delivered nor a
    // decode failure that stops the subscription.
    assert_eq!(run(registry, &seen).await, ["account-a opened by Ada"]);
}

#[test]
fn an_event_type_two_aggregates_record_is_refused_unless_the_subscriber_says_whose() {
    let mut registry = Registry::new();
    let error =
        registry.register("seen", Subscriber::handler(Seen::default()).on::<Noted>().build()).unwrap_err();
    match &error {
        RegistryError::AmbiguousEvent { name, event, aggregates } => {
            assert_eq!(name, "seen");
            assert!(event.ends_with("Noted"), "{event}");
            assert_eq!(aggregates, &["account", "vault"]);
        }
        other => panic!("expected AmbiguousEvent, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("`account` and `vault`") && message.contains("on_from"), "{message}");
}

#[tokio::test]
async fn a_shared_event_type_claimed_for_one_aggregate_comes_only_from_it() {
    let seen = Seen::default();
    let mut registry = Registry::new();
    let subscriber = Subscriber::handler(seen.clone()).on_from::<vault::Vault, Noted>().build();
    registry.register("seen", subscriber).unwrap();
    assert_eq!(run(registry, &seen).await, ["vault-v noted psst"]);

    // Claimed for both, it comes from both.
    let seen = Seen::default();
    let mut registry = Registry::new();
    let subscriber = Subscriber::handler(seen.clone())
        .on_from::<account::Account, Noted>()
        .on_from::<vault::Vault, Noted>()
        .build();
    registry.register("seen", subscriber).unwrap();
    assert_eq!(run(registry, &seen).await, ["account-a noted hi", "vault-v noted psst"]);
}
