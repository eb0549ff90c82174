//! Several applications sharing one SQLite file (a fresh one per case).

mod common;

es_core::nodes_conformance!(common::fresh_event_store());
