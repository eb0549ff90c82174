//! Several applications sharing one in-memory store.

es_core::nodes_conformance!(async { es_memory::InMemoryEventStore::new() });
