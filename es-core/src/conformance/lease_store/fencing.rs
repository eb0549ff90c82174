//! Fencing cases: a projection store that shares the lease store's database
//! refuses a commit fenced with a lease that is no longer held.
//!
//! Each case takes a fresh lease store and projection store of one database
//! ([`lease_fencing_conformance!`](crate::lease_fencing_conformance)).

use serde_json::json;

use super::{acquire_free, outlive_short_leases, release, renew, LONG_TTL, SHORT_TTL};
use crate::error::ProjectionError;
use crate::store::{Checkpoint, Fence, Lease, LeaseStore, ProjectionStore, UnitOfWork};
use crate::GlobalPosition;

/// A unit of work that puts `acc-1` with `balance`, deletes `acc-2` and
/// moves the checkpoint to `position`, fenced with `lease`.
fn fenced_work(lease: &Lease, balance: i64, position: u64) -> UnitOfWork {
    let mut work = UnitOfWork::new();
    work.put("acc-1", json!({ "balance": balance }))
        .delete("acc-2")
        .checkpoint(Checkpoint::at(GlobalPosition(position)))
        .fence(Fence::new(lease.name.clone(), lease.token));
    work
}

async fn commit<P: ProjectionStore>(projections: &P, work: UnitOfWork, what: &str) {
    projections.commit("balances", work).await.unwrap_or_else(|e| panic!("{what} must land: {e:?}"));
}

async fn document<P: ProjectionStore>(projections: &P, id: &str) -> Option<serde_json::Value> {
    projections.get("balances", id).await.unwrap_or_else(|e| panic!("reading `{id}` failed: {e:?}"))
}

async fn checkpoint<P: ProjectionStore>(projections: &P) -> Option<GlobalPosition> {
    let stored = projections.checkpoint("balances").await.expect("reading the checkpoint");
    stored.map(|c| c.position)
}

/// A commit fenced with a lease's token lands while the lease is held, and
/// is refused with `ProjectionError::Fenced` (storing nothing: no document,
/// checkpoint unchanged) once the lease was released, and after another
/// owner took it over; the new holder's fenced commit lands.
///
/// Takes a lease store and a projection store that share one database (the
/// projection store checks fences against the lease store's leases). An
/// in-memory projection store ignores fences by design (it documents so),
/// so this case runs only on adapters that keep both in one database.
pub async fn fenced_commit_is_refused_after_takeover<L: LeaseStore, P: ProjectionStore>(stores: (L, P)) {
    let (leases, projections) = stores;
    let work = |lease: &Lease, id: &str, position: u64| {
        let mut work = UnitOfWork::new();
        work.put(id, json!({ "by": lease.owner }))
            .checkpoint(Checkpoint::at(GlobalPosition(position)))
            .fence(Fence::new(lease.name.clone(), lease.token));
        work
    };
    let old = acquire_free(&leases, "balances", "node-1", LONG_TTL, "the first holder").await;
    commit(&projections, work(&old, "held", 1), "a commit fenced with a held lease").await;

    release(&leases, &old).await;
    let refused = projections.commit("balances", work(&old, "after-release", 2)).await;
    assert_fenced(refused, &old, "a commit fenced with a released lease");

    let new = acquire_free(&leases, "balances", "node-2", LONG_TTL, "the next holder").await;
    let refused = projections.commit("balances", work(&old, "after-takeover", 3)).await;
    assert_fenced(refused, &old, "a commit fenced with the lease's previous token, after a takeover");
    for id in ["after-release", "after-takeover"] {
        let stored = document(&projections, id).await;
        assert_eq!(stored, None, "a fenced-off commit must store nothing, yet `{id}` is stored");
    }
    assert_eq!(
        checkpoint(&projections).await,
        Some(GlobalPosition(1)),
        "a fenced-off commit must not move the checkpoint"
    );

    commit(&projections, work(&new, "new-holder", 4), "a commit fenced with the current holder's lease")
        .await;
    assert_eq!(document(&projections, "new-holder").await, Some(json!({ "by": "node-2" })));
}

/// Re-acquiring a held lease, by its own owner, fences off the acquisition
/// before: a commit fenced with the earlier token is refused with
/// `ProjectionError::Fenced` and stores nothing, and the new token's commit
/// lands. So a node restarted under a stable owner id is not overtaken by a
/// commit its earlier run still had in flight, which would land after the
/// new run read the old checkpoint and apply its events twice.
pub async fn fenced_commit_is_refused_after_its_owner_reacquired<L: LeaseStore, P: ProjectionStore>(
    stores: (L, P),
) {
    let (leases, projections) = stores;
    let first = acquire_free(&leases, "balances", "node-a", LONG_TTL, "the first acquisition").await;
    commit(&projections, fenced_work(&first, 10, 10), "a commit fenced with a held lease").await;

    let again = acquire_free(&leases, "balances", "node-a", LONG_TTL, "re-acquiring one's own lease").await;
    let stale = projections.commit("balances", fenced_work(&first, 20, 20)).await;
    assert_fenced(stale, &first, "a commit fenced with the token its owner held before re-acquiring");
    assert_still_at_the_first_commit(&projections).await;

    commit(&projections, fenced_work(&again, 30, 30), "a commit fenced with the re-acquired lease").await;
    assert_eq!(checkpoint(&projections).await, Some(GlobalPosition(30)));
    assert_eq!(document(&projections, "acc-1").await, Some(json!({ "balance": 30 })));
}

/// A lease that expired is no longer held even if nobody took it over: a
/// commit fenced with it is refused with `ProjectionError::Fenced` and
/// stores nothing (its puts, its deletes and its checkpoint alike); once
/// another owner took the lease over, the old token stays refused and the
/// new holder's commit lands.
pub async fn fenced_commit_is_refused_once_its_lease_expired<L: LeaseStore, P: ProjectionStore>(
    stores: (L, P),
) {
    let (leases, projections) = stores;
    let a = acquire_free(&leases, "balances", "node-a", LONG_TTL, "the first holder").await;
    let mut unfenced = UnitOfWork::new();
    unfenced.put("acc-2", json!({ "balance": 5 }));
    commit(&projections, unfenced, "an unfenced commit").await;
    assert_eq!(document(&projections, "acc-2").await, Some(json!({ "balance": 5 })));
    commit(&projections, fenced_work(&a, 10, 10), "a commit fenced with a held lease").await;
    assert_eq!(checkpoint(&projections).await, Some(GlobalPosition(10)));

    assert!(renew(&leases, &a, SHORT_TTL).await, "renewing a held lease, now for a short TTL");
    outlive_short_leases(&leases, "probe").await;
    let expired = projections.commit("balances", fenced_work(&a, 20, 20)).await;
    assert_fenced(expired, &a, "a commit fenced with an expired lease nobody took over");

    let b = acquire_free(&leases, "balances", "node-b", LONG_TTL, "taking over the expired lease").await;
    let stale = projections.commit("balances", fenced_work(&a, 30, 30)).await;
    assert_fenced(stale, &a, "a commit fenced with an expired lease, after a takeover");
    assert_still_at_the_first_commit(&projections).await;

    projections.put("balances", "acc-2", json!({ "balance": 7 })).await.expect("an unfenced put");
    commit(&projections, fenced_work(&b, 40, 40), "a commit fenced with the new holder's lease").await;
    assert_eq!(checkpoint(&projections).await, Some(GlobalPosition(40)));
    assert_eq!(document(&projections, "acc-1").await, Some(json!({ "balance": 40 })));
    assert_eq!(document(&projections, "acc-2").await, None, "the landed commit's delete applies");
}

/// A fence on a lease this database never saw (kept in another lease
/// store) cannot be checked, so the commit lands; a token of a known lease
/// that the store never issued (`u64::MAX`) is refused.
pub async fn fence_on_a_lease_never_taken_lands_and_a_token_never_issued_is_refused<
    L: LeaseStore,
    P: ProjectionStore,
>(
    stores: (L, P),
) {
    let (leases, projections) = stores;
    let held = acquire_free(&leases, "balances", "node-a", LONG_TTL, "a holder").await;
    commit(&projections, fenced_work(&held, 10, 10), "a commit fenced with a held lease").await;

    let elsewhere = Lease { name: "other".to_owned(), owner: "node-a".to_owned(), token: 7 };
    commit(&projections, fenced_work(&elsewhere, 50, 50), "a commit fenced with a lease never taken here")
        .await;
    assert_eq!(checkpoint(&projections).await, Some(GlobalPosition(50)));

    let never_issued = Lease { name: "balances".to_owned(), owner: "node-b".to_owned(), token: u64::MAX };
    let refused = projections.commit("balances", fenced_work(&never_issued, 60, 60)).await;
    assert_fenced(refused, &never_issued, "a commit fenced with a token never issued");
    assert_eq!(
        checkpoint(&projections).await,
        Some(GlobalPosition(50)),
        "a fenced-off commit must not move the checkpoint"
    );
    assert_eq!(document(&projections, "acc-1").await, Some(json!({ "balance": 50 })));
}

#[track_caller]
fn assert_fenced(result: Result<(), ProjectionError>, lease: &Lease, what: &str) {
    match result {
        Err(ProjectionError::Fenced { projection, lease: name, token }) => {
            assert_eq!(projection, "balances", "{what}: Fenced must name the projection");
            assert_eq!(
                (name.as_str(), token),
                (lease.name.as_str(), lease.token),
                "{what}: Fenced must name the lease and token"
            );
        }
        Err(other) => panic!("{what}: expected ProjectionError::Fenced, got {other:?}"),
        Ok(()) => panic!("{what}: expected ProjectionError::Fenced, but the commit landed"),
    }
}

/// The commit at position 10 (`acc-1` at balance 10) is the last that
/// landed: a fenced-off commit after it moved neither.
async fn assert_still_at_the_first_commit<P: ProjectionStore>(projections: &P) {
    assert_eq!(
        checkpoint(projections).await,
        Some(GlobalPosition(10)),
        "a fenced-off commit must not move the checkpoint"
    );
    assert_eq!(
        document(projections, "acc-1").await,
        Some(json!({ "balance": 10 })),
        "a fenced-off commit must not put"
    );
}
