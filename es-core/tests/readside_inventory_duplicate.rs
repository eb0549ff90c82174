//! Two link-time registrations under one name: `inventory` cannot catch
//! it, so the registry refuses it with a typed error.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use es_core::{
    Event, HandleEvent, HandlerCtx, HandlerError, ReadSide, ReadSideError, Recorded, Registry, RegistryError,
    Subscriber,
};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pinged;

impl Event for Pinged {
    const TYPE: &'static str = "Pinged";
}

struct Quiet;

impl HandleEvent<Pinged> for Quiet {
    async fn handle(&self, _: &Recorded<Pinged>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn quiet() -> Subscriber {
    Subscriber::handler(Quiet).on::<Pinged>().build()
}

es_core::__private::inventory::submit! { es_core::__private::Registration::new("twice", quiet) }
es_core::__private::inventory::submit! { es_core::__private::Registration::new("twice", quiet) }
es_core::__private::inventory::submit! { es_core::__private::Registration::new("once", quiet) }

#[test]
fn a_name_registered_twice_at_link_time_is_a_typed_error() {
    let error = Registry::from_inventory().unwrap_err();
    assert_eq!(error, RegistryError::DuplicateName { name: "twice".into() });
    assert_eq!(error.to_string(), "a subscriber named `twice` is already registered");
    let built = ReadSide::builder()
        .event_store(InMemoryEventStore::new())
        .projection_store(InMemoryProjectionStore::new())
        .build();
    assert!(
        matches!(built, Err(ReadSideError::Registry(RegistryError::DuplicateName { name })) if name == "twice")
    );
}
