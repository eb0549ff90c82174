//! The shared store conformance suite, run on the in-memory adapters.

es_core::event_store_conformance!(async { es_memory::InMemoryEventStore::new() });
es_core::snapshot_store_conformance!(async { es_memory::InMemoryEventStore::new() });
es_core::projection_store_conformance!(async { es_memory::InMemoryProjectionStore::new() });
