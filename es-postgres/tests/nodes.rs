//! Several applications sharing one Postgres schema (each case in a fresh
//! one, named `es_test_<uuid>`).

mod common;

es_core::nodes_conformance!(common::fresh_event_store());
