//! Acceptance checks of the guarantees in DESIGN.md, written the way a user
//! would: a domain defined with the macros, driven through the public API
//! of `Es`, `ReadSide` and the in-memory adapters. One file per guarantee;
//! the domain, its read side and the shared helpers each in their own.
//!
//! Guarantees already pinned elsewhere (store conformance, actors,
//! snapshots, strong consistency, projection crash/resume) are not
//! repeated here; these cover the rest.

// Helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod domain;
mod helpers;
mod subscribers;

mod decoding;
mod delivery;
mod limits;
mod metadata;
mod one_node;
mod projections;
mod read_your_writes;
mod replay;
mod validation;
