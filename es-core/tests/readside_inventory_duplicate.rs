//! Two link-time registrations under one name: `inventory` cannot catch
//! it, so the registry refuses it with a typed error.

// Test helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use es_core::error::{ReadSideError, RegistryError};
use es_core::readside::Registry;
use es_core::{event, event_handler, HandlerCtx, HandlerError, ReadSide, Recorded};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Pinged;

#[event_handler(name = "twice")]
async fn quiet(_: &Recorded<Pinged>, _: &HandlerCtx) -> Result<(), HandlerError> {
    Ok(())
}

#[event_handler(name = "twice")]
async fn quiet_again(_: &Recorded<Pinged>, _: &HandlerCtx) -> Result<(), HandlerError> {
    Ok(())
}

#[event_handler(name = "once")]
async fn quiet_once(_: &Recorded<Pinged>, _: &HandlerCtx) -> Result<(), HandlerError> {
    Ok(())
}

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
