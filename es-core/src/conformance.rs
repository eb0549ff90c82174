//! The store conformance suite: the behaviour every storage adapter must show.
//!
//! The runtime, the read side and users' code rely on the ports in
//! [`EventStore`](crate::store::EventStore), [`SnapshotStore`](crate::store::SnapshotStore),
//! [`ProjectionStore`](crate::store::ProjectionStore) and
//! [`LeaseStore`](crate::store::LeaseStore) behaving exactly as their
//! docs say, whichever adapter sits behind them. This module holds one public
//! async fn per rule (a *case*), grouped in four families:
//!
//! - [`event_store`]: expected versions, atomic and idempotent appends,
//!   duplicate ids, what a store keeps (limits, NUL characters), reading
//!   streams and the global stream, envelope round trips, concurrent
//!   writers, waking waiters, and a poison row in the global stream (a
//!   case of its own, stamped by [`poison_row_conformance!`](crate::poison_row_conformance), since the
//!   adapter must plant the row);
//! - [`snapshot_store`]: loading and replacing snapshots;
//! - [`projection_store`]: documents, queries, checkpoints and units of work;
//! - [`lease_store`]: acquiring, renewing, expiring and releasing leases,
//!   their tokens, and fenced commits refused once the lease is lost.
//!
//! Three more families check what the runtime and the read side promise on
//! an adapter's stores: [`nodes`] (several `Es` on one store),
//! [`readside`] (leases handed over when a read side goes away) and
//! [`faults`] (commands and a projection while the adapter's calls fail,
//! run by the adapter's own test beside its own source of faults).
//!
//! Every case takes a **fresh, empty** store and panics with a message that
//! names the rule when the store breaks it. The suite assumes nothing an
//! adapter does not promise: global positions strictly increase but may have
//! holes, and an event may become visible to
//! [`read_all`](crate::store::EventStore::read_all) a moment after its append
//! returned (the suite then waits with
//! [`wait_for_events`](crate::store::EventStore::wait_for_events)).
//!
//! # Running the suite on an adapter
//!
//! Enable the `conformance` feature of `es-core` in the adapter's
//! dev-dependencies, and put one invocation per family in a file under the
//! adapter's `tests/`. Each macro stamps one `#[test]` per case, named after
//! the case, so a failure names both the case and the adapter:
//!
//! ```toml
//! [dev-dependencies]
//! es-core = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! The in-memory adapter's `tests/conformance.rs` is the whole of it:
//!
//! ```
//! # // A doc test is compiled without `--test`, so the stamped tests are
//! # // left out; run one case by hand to show that the cases run.
//! # mod stamped {
//! es_core::event_store_conformance!(async { es_memory::InMemoryEventStore::new() });
//! es_core::snapshot_store_conformance!(async { es_memory::InMemoryEventStore::new() });
//! es_core::projection_store_conformance!(async { es_memory::InMemoryProjectionStore::new() });
//! es_core::lease_store_conformance!(async { es_memory::InMemoryLeaseStore::new() });
//! # }
//! # es_core::conformance::run_case(async {
//! #     es_core::conformance::event_store::versions_are_one_based_and_gap_free(
//! #         es_memory::InMemoryEventStore::new(),
//! #     )
//! #     .await;
//! # });
//! ```
//!
//! The argument is an expression evaluating to a future that yields a fresh,
//! empty store; it is evaluated once per case, inside the case's runtime. An
//! adapter backed by a database passes a call to its own async fn there,
//! one that creates a new schema (or database), runs the migrations in it
//! and returns a store bound to it, so cases never see each other's data.
//!
//! Each test builds its own multi-threaded tokio runtime (two workers), so
//! the adapter's test crate needs no tokio test macros of its own.
//!
//! The cases are plain async fns, so an adapter can also call one directly,
//! for instance to run it against a store configured in an unusual way.

// This module is a test suite that ships in the library: a store breaking a
// rule must fail the adapter's test, and a failed assertion, `unwrap` or
// `expect` is how a test fails with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod event_store;
pub mod faults;
pub mod lease_store;
pub mod nodes;
pub mod projection_store;
pub mod readside;
pub mod snapshot_store;

use std::future::Future;
use std::time::Duration;

/// The longest one case may run. Every wait inside a case has its own,
/// shorter bound; this one catches a store call that never returns (a
/// deadlock, a lost wake-up in the store itself), so that a broken store
/// fails the case instead of hanging the test run.
pub const CASE_LIMIT: Duration = Duration::from_secs(180);

/// Runs one case to completion on a fresh multi-threaded tokio runtime,
/// within [`CASE_LIMIT`].
///
/// Used by the macros of this module; not meant to be called otherwise, but
/// harmless if it is.
///
/// # Panics
/// If the runtime cannot be built, the case panics (the case's panic is
/// propagated unchanged) or it runs longer than [`CASE_LIMIT`].
#[doc(hidden)]
pub fn run_case<F: Future<Output = ()>>(case: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("conformance: building the tokio runtime for a case failed");
    runtime.block_on(async {
        if tokio::time::timeout(CASE_LIMIT, case).await.is_err() {
            panic!("conformance: the case did not finish within {CASE_LIMIT:?}; a store call never returned");
        }
    });
}

/// Awaits a spawned task, re-raising its panic so the case fails with the
/// task's own message.
async fn join<T>(handle: tokio::task::JoinHandle<T>) -> T {
    match handle.await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("conformance: a spawned task did not finish: {error}"),
    }
}

/// Stamps one `#[test]` per case of [`conformance::event_store`](crate::conformance::event_store).
///
/// The argument is an expression evaluating to a future that yields a fresh,
/// empty store implementing [`EventStore`](crate::store::EventStore) + `Clone`
/// (clones must share the same data, as an `Arc` does). See the
/// [module docs](crate::conformance) for an example.
#[macro_export]
macro_rules! event_store_conformance {
    ($make:expr $(,)?) => {
        $crate::__conformance_cases!(event_store, $make;
            append_to_new_stream_with_no_stream,
            no_stream_on_existing_stream_fails,
            stream_exists_fails_on_missing_and_succeeds_on_existing,
            exact_version_must_match,
            any_version_always_appends,
            wrong_expected_version_writes_nothing,
            append_is_all_or_nothing,
            exact_retry_returns_original_outcome,
            exact_retry_after_stream_moved_on_returns_original_outcome,
            exact_retry_with_other_content_is_a_duplicate,
            exact_zero_appends_to_a_missing_stream_only,
            reused_event_id_is_rejected,
            duplicate_id_in_one_batch_is_rejected,
            versions_are_one_based_and_gap_free,
            read_stream_forward_from_version_with_limit,
            read_stream_backward_with_limit,
            reading_missing_stream_is_empty,
            nul_characters_are_refused_alike,
            stream_id_length_is_limited_alike,
            type_name_length_is_limited_alike,
            payload_and_metadata_size_is_limited_alike,
            json_nesting_is_limited_alike,
            batch_size_is_limited_alike,
            read_replay_matches_read_stream,
            replay_hands_over_a_range_oldest_first,
            replay_stops_when_the_visitor_breaks,
            read_all_pages_after_position,
            head_position_is_last_position_read,
            envelope_fields_round_trip,
            empty_append_stores_nothing,
            concurrent_appends_to_one_stream,
            concurrent_appends_to_many_streams,
            a_tailing_reader_sees_every_event_of_concurrent_writers_once_in_order,
            concurrent_reuse_of_an_event_id_stores_it_once,
            concurrent_identical_appends_store_once,
            wait_for_events_wakes_when_an_event_lands,
            subscription_catches_up_then_goes_live,
        );
    };
}

/// Stamps one `#[test]` per case of [`conformance::snapshot_store`](crate::conformance::snapshot_store).
///
/// The argument is an expression evaluating to a future that yields a fresh,
/// empty store implementing [`SnapshotStore`](crate::store::SnapshotStore). See the
/// [module docs](crate::conformance) for an example.
#[macro_export]
macro_rules! snapshot_store_conformance {
    ($make:expr $(,)?) => {
        $crate::__conformance_cases!(snapshot_store, $make;
            snapshot_missing_is_none,
            snapshot_round_trips,
            newer_snapshot_replaces_older,
            older_snapshot_does_not_replace_newer,
            snapshots_are_per_stream,
        );
    };
}

/// Stamps one `#[test]` per case of [`conformance::projection_store`](crate::conformance::projection_store).
///
/// The argument is an expression evaluating to a future that yields a fresh,
/// empty store implementing [`ProjectionStore`](crate::store::ProjectionStore) +
/// `Clone` (clones must share the same data). See the
/// [module docs](crate::conformance) for an example.
#[macro_export]
macro_rules! projection_store_conformance {
    ($make:expr $(,)?) => {
        $crate::__conformance_cases!(projection_store, $make;
            projection_get_missing_is_none,
            projection_get_many_returns_the_stored_documents_among_the_ids,
            projection_put_get_delete,
            projection_delete_missing_is_ok,
            projection_query_orders_by_id_with_offset_and_limit,
            projection_query_by_json_containment,
            projection_query_containment_compares_like_postgres,
            projections_are_isolated,
            projection_checkpoint_is_none_until_committed,
            projection_commit_applies_changes_in_order,
            projection_commit_without_checkpoint_keeps_checkpoint,
            projection_reset_clears_only_that_projection,
            concurrent_commits_to_different_projections,
            checkpoint_keeps_the_end_of_a_replay,
        );
    };
}

/// Stamps one `#[test]` per case of [`conformance::nodes`](crate::conformance::nodes):
/// several applications sharing one event store. The argument is as for
/// [`event_store_conformance!`](crate::event_store_conformance).
#[macro_export]
macro_rules! nodes_conformance {
    ($make:expr $(,)?) => {
        $crate::__conformance_cases!(nodes, $make;
            a_stale_actor_does_not_refuse_what_the_store_allows,
            nodes_hammering_one_aggregate_lose_no_command,
            a_busy_node_still_gets_its_commands_through,
            the_reload_path_queues_commands_of_one_aggregate,
            a_command_id_executed_again_returns_its_original_outcome,
            events_are_caused_by_their_command,
        );
    };
}

/// Stamps one `#[test]` per case of [`conformance::lease_store`](crate::conformance::lease_store)
/// (all but the fencing cases, which
/// [`lease_fencing_conformance!`](crate::lease_fencing_conformance) stamps).
///
/// The argument is an expression evaluating to a future that yields a fresh
/// store implementing [`LeaseStore`](crate::store::LeaseStore) + `Clone`
/// (clones must share their leases) that holds no lease yet.
///
/// ```
/// # mod stamped {
/// es_core::lease_store_conformance!(async { es_memory::InMemoryLeaseStore::new() });
/// # }
/// ```
#[macro_export]
macro_rules! lease_store_conformance {
    ($make:expr $(,)?) => {
        $crate::__conformance_cases!(lease_store, $make;
            lease_acquire_a_free_name,
            lease_is_exclusive_while_held,
            lease_reacquire_by_its_owner_gets_a_larger_token_and_extends,
            lease_renew_extends_a_held_lease,
            lease_expires_unless_renewed,
            lease_expired_is_lost_even_without_takeover,
            lease_release_frees_at_once_and_is_idempotent,
            lease_tokens_strictly_increase_per_name,
            lease_concurrent_acquires_grant_one_holder,
            lease_for_ever_is_granted_and_renewed,
        );
    };
}

/// Stamps the fencing cases of [`conformance::lease_store`](crate::conformance::lease_store):
/// a projection store refuses a commit fenced with a lease that was released,
/// taken over, acquired again by its owner or expired, or with a token never
/// issued.
///
/// The argument is an expression evaluating to a future that yields a pair
/// `(lease store, projection store)`, fresh, that share one database, so
/// that the projection store can check a fence against the lease store's
/// leases. Adapters whose projection store ignores fences (the in-memory
/// one, by design) do not stamp it.
#[macro_export]
macro_rules! lease_fencing_conformance {
    ($make:expr $(,)?) => {
        $crate::__conformance_cases!(lease_store, $make;
            fenced_commit_is_refused_after_takeover,
            fenced_commit_is_refused_after_its_owner_reacquired,
            fenced_commit_is_refused_once_its_lease_expired,
            fence_on_a_lease_never_taken_lands_and_a_token_never_issued_is_refused,
        );
    };
}

/// Stamps the poison-row cases of [`conformance::event_store`](crate::conformance::event_store):
/// [`poison_row_stops_read_all_at_the_row`](crate::conformance::event_store::poison_row_stops_read_all_at_the_row)
/// for the store, and for its readers
/// [`poison_row_stops_a_subscription_at_the_row`](crate::conformance::event_store::poison_row_stops_a_subscription_at_the_row)
/// (an `EventSubscription`) and
/// [`poison_row_stops_a_read_side_at_the_row`](crate::conformance::event_store::poison_row_stops_a_read_side_at_the_row)
/// (a read side's handler, its skip).
///
/// The first argument is as for [`event_store_conformance!`]; the second is
/// a function (or closure) `(store, stream) -> impl Future<Output = GlobalPosition>`
/// that stores, behind the store's back and after everything stored so
/// far, a row of `stream` that no envelope can be made of, and returns its
/// position. An adapter backed by a database inserts one by hand (such as a
/// row with stream version 0); the in-memory store has a hidden test hook.
///
/// ```
/// # mod stamped {
/// es_core::poison_row_conformance!(async { es_memory::InMemoryEventStore::new() }, |store: es_memory::InMemoryEventStore, stream| async move {
///     store.plant_corrupt_row(&stream).expect("planting a corrupt row")
/// });
/// # }
/// ```
#[macro_export]
macro_rules! poison_row_conformance {
    ($make:expr, $plant:expr $(,)?) => {
        $crate::__poison_row_cases!($make, $plant;
            poison_row_stops_read_all_at_the_row,
            poison_row_stops_a_subscription_at_the_row,
            poison_row_stops_a_read_side_at_the_row,
        );
    };
}

/// Stamps the `#[test]` fns of the poison-row cases. Used by
/// [`poison_row_conformance!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __poison_row_cases {
    ($make:expr, $plant:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case(async {
                    let store = ($make).await;
                    $crate::conformance::event_store::$case(store, $plant).await;
                });
            }
        )*
    };
}

/// Stamps the `#[test]` fns of one family. Used by the family macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($family:ident, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case(async {
                    let store = ($make).await;
                    $crate::conformance::$family::$case(store).await;
                });
            }
        )*
    };
}
