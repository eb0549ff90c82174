//! The es-core store conformance suite on Postgres, each case in a fresh
//! schema (named `es_test_<uuid>`), so cases run in parallel.

mod common;

es_core::event_store_conformance!(common::fresh_event_store());
