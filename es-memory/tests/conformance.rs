//! The shared store conformance suite, run on the in-memory adapters.

es_core::event_store_conformance!(async { es_memory::InMemoryEventStore::new() });
