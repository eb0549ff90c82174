//! The shared store conformance suite, run on the in-memory adapters.
//!
//! The lease fencing cases (`lease_fencing_conformance!`) are not stamped:
//! `InMemoryProjectionStore` ignores fences by design (see its docs), since
//! its documents and the leases do not share a database.

es_core::event_store_conformance!(async { es_memory::InMemoryEventStore::new() });
es_core::snapshot_store_conformance!(async { es_memory::InMemoryEventStore::new() });
es_core::projection_store_conformance!(async { es_memory::InMemoryProjectionStore::new() });
es_core::lease_store_conformance!(async { es_memory::InMemoryLeaseStore::new() });

es_core::poison_row_conformance!(
    async { es_memory::InMemoryEventStore::new() },
    |store: es_memory::InMemoryEventStore, stream| async move {
        store.plant_corrupt_row(&stream).expect("planting a corrupt row")
    }
);
