//! The es-core store conformance suite on SQLite, each case in its own
//! temporary database file, so cases run in parallel.

mod common;

es_core::event_store_conformance!(common::fresh_event_store());

es_core::poison_row_conformance!(common::fresh_event_store(), common::plant_corrupt_row);

es_core::snapshot_store_conformance!(common::fresh_event_store());

mod projection {
    use super::common;

    es_core::projection_store_conformance!(common::fresh_projection_store());
}

mod lease {
    use super::common;

    es_core::lease_store_conformance!(common::fresh_lease_store());

    es_core::lease_fencing_conformance!(common::fresh_leases_and_projections());
}
