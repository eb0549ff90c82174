//! Lease store cases: what every [`LeaseStore`] must do, and how a
//! projection store that shares the lease store's database fences commits.
//!
//! Run the lease cases with [`lease_store_conformance!`](crate::lease_store_conformance)
//! and the fencing cases with
//! [`lease_fencing_conformance!`](crate::lease_fencing_conformance). Each
//! case takes a fresh store with no leases; the concurrent one clones it
//! into tasks, so clones must share their leases.
//!
//! Expiry is tested with short TTLs ([`SHORT_TTL`]). A case that needs a
//! lease to expire polls until it has (at most [`EXPIRY_WAIT`]); a case that
//! needs a lease *not* to have expired lets a short TTL run out three times
//! over first ([`outlive_short_ttl`]), so a store that forgot to extend the
//! lease is caught, and one that did extend it passes however long the wait.

mod fencing;

use std::time::Duration;

use super::join;
use crate::store::{Lease, LeaseStore};

pub use fencing::{
    fence_on_a_lease_never_taken_lands_and_a_token_never_issued_is_refused,
    fenced_commit_is_refused_after_its_owner_reacquired, fenced_commit_is_refused_after_takeover,
    fenced_commit_is_refused_once_its_lease_expired,
};

/// A TTL that runs out within the case.
pub const SHORT_TTL: Duration = Duration::from_millis(300);

/// A TTL that does not run out within the case.
pub const LONG_TTL: Duration = Duration::from_secs(120);

/// The longest a case waits for a short-TTL lease to expire.
pub const EXPIRY_WAIT: Duration = Duration::from_secs(30);

/// The pause between two polls while waiting for a lease to expire.
const POLL: Duration = Duration::from_millis(20);

async fn acquire<S: LeaseStore>(store: &S, name: &str, owner: &str, ttl: Duration) -> Option<Lease> {
    store
        .try_acquire(name, owner, ttl)
        .await
        .unwrap_or_else(|e| panic!("try_acquire of `{name}` by `{owner}` failed: {e:?}"))
}

/// Acquires a lease that must be free, failing the case with `what` if not.
async fn acquire_free<S: LeaseStore>(store: &S, name: &str, owner: &str, ttl: Duration, what: &str) -> Lease {
    let Some(lease) = acquire(store, name, owner, ttl).await else {
        panic!("{what}: `{owner}` could not acquire the free lease `{name}`");
    };
    assert_eq!(
        (lease.name.as_str(), lease.owner.as_str()),
        (name, owner),
        "{what}: a lease names its name and owner"
    );
    lease
}

async fn renew<S: LeaseStore>(store: &S, lease: &Lease, ttl: Duration) -> bool {
    store.renew(lease, ttl).await.unwrap_or_else(|e| panic!("renew of {lease:?} failed: {e:?}"))
}

async fn release<S: LeaseStore>(store: &S, lease: &Lease) {
    store.release(lease).await.unwrap_or_else(|e| panic!("release of {lease:?} failed: {e:?}"));
}

/// Waits until `owner` acquires `name` (a lease held with a short TTL that
/// expires), polling; fails the case after [`EXPIRY_WAIT`].
async fn acquire_after_expiry<S: LeaseStore>(store: &S, name: &str, owner: &str, what: &str) -> Lease {
    let deadline = tokio::time::Instant::now() + EXPIRY_WAIT;
    loop {
        if let Some(lease) = acquire(store, name, owner, LONG_TTL).await {
            return lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: a lease on `{name}` taken for {SHORT_TTL:?} and never renewed was still held after \
             {EXPIRY_WAIT:?}; an unrenewed lease must expire"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits, on the store's own clock, until every lease taken (or renewed)
/// with [`SHORT_TTL`] before this call has expired, without taking any of
/// them over: takes a lease on `probe` with the same TTL and waits until
/// another owner can acquire it.
async fn outlive_short_leases<S: LeaseStore>(store: &S, probe: &str) {
    acquire_free(store, probe, "node-1", SHORT_TTL, "a probe lease").await;
    acquire_after_expiry(store, probe, "node-2", "waiting for the probe lease to expire").await;
}

/// Lets [`SHORT_TTL`] run out three times over: a lease taken with it and
/// not extended has expired by then.
pub async fn outlive_short_ttl() {
    tokio::time::sleep(SHORT_TTL * 3).await;
}

/// A free name is acquired: the lease names its name and owner and has a
/// positive token.
pub async fn lease_acquire_a_free_name<S: LeaseStore>(store: S) {
    let lease = acquire_free(&store, "projection-a", "node-1", LONG_TTL, "acquiring a free name").await;
    assert!(lease.token > 0, "a lease's token is positive, got {}", lease.token);
}

/// While a lease is held, no other owner acquires it; other names stay
/// free.
pub async fn lease_is_exclusive_while_held<S: LeaseStore>(store: S) {
    let held = acquire_free(&store, "projection-a", "node-1", LONG_TTL, "the first holder").await;
    for other in ["node-2", "node-3"] {
        assert_eq!(
            acquire(&store, "projection-a", other, LONG_TTL).await,
            None,
            "`{other}` acquired `projection-a` while `node-1` held it"
        );
    }
    let elsewhere = acquire_free(&store, "projection-b", "node-2", LONG_TTL, "another name").await;
    assert_eq!(elsewhere.name, "projection-b");
    assert!(renew(&store, &held, LONG_TTL).await, "the first holder still holds its lease");
}

/// Acquiring a lease one already holds is a new acquisition: it gets a
/// larger token and extends the lease (after the first TTL has run out,
/// others are still refused). The lease as acquired before is lost: its
/// `renew` returns false and its `release` leaves the new one held. (A node
/// restarted under a stable owner id must not inherit the token its earlier
/// run may still commit under; the fencing case
/// [`fenced_commit_is_refused_after_its_owner_reacquired`] checks the
/// commits.)
pub async fn lease_reacquire_by_its_owner_gets_a_larger_token_and_extends<S: LeaseStore>(store: S) {
    let first = acquire_free(&store, "projection-a", "node-1", SHORT_TTL, "the first acquisition").await;
    let again =
        acquire_free(&store, "projection-a", "node-1", LONG_TTL, "re-acquiring one's own lease").await;
    assert!(
        again.token > first.token,
        "re-acquiring one's own lease gets a larger token: {} after {}",
        again.token,
        first.token
    );
    assert!(
        !renew(&store, &first, LONG_TTL).await,
        "renew of the lease as acquired before must return false"
    );
    release(&store, &first).await;
    assert_eq!(
        acquire(&store, "projection-a", "node-2", LONG_TTL).await,
        None,
        "releasing the lease as acquired before must not free the re-acquired lease"
    );
    outlive_short_ttl().await;
    assert_eq!(
        acquire(&store, "projection-a", "node-2", LONG_TTL).await,
        None,
        "re-acquiring must extend the lease: another owner took it once the first TTL ran out"
    );
    assert!(renew(&store, &again, LONG_TTL).await, "the owner holds the re-acquired lease");
    assert!(!renew(&store, &first, LONG_TTL).await, "the lease as acquired before stays lost");
}

/// `renew` of a held lease returns true and extends it (after the first
/// TTL ran out, others are still refused).
pub async fn lease_renew_extends_a_held_lease<S: LeaseStore>(store: S) {
    let lease = acquire_free(&store, "projection-a", "node-1", SHORT_TTL, "acquiring").await;
    assert!(renew(&store, &lease, LONG_TTL).await, "renewing a held lease returns true");
    outlive_short_ttl().await;
    assert_eq!(
        acquire(&store, "projection-a", "node-2", LONG_TTL).await,
        None,
        "renew must extend the lease: another owner took it once the first TTL ran out"
    );
    assert!(renew(&store, &lease, LONG_TTL).await, "a renewed lease is still held");
}

/// A lease not renewed within its TTL expires: another owner then acquires
/// it with a larger token, and the old holder's `renew` returns false from
/// then on (a lost lease is not won back by renewing), and its `release`
/// leaves the new holder's lease alone.
pub async fn lease_expires_unless_renewed<S: LeaseStore>(store: S) {
    let old = acquire_free(&store, "projection-a", "node-1", SHORT_TTL, "a short lease").await;
    let new = acquire_after_expiry(&store, "projection-a", "node-2", "taking over an expired lease").await;
    assert!(new.token > old.token, "a takeover gets a larger token: {} after {}", new.token, old.token);
    assert!(!renew(&store, &old, LONG_TTL).await, "renew of a lease taken over must return false");
    assert!(!renew(&store, &old, LONG_TTL).await, "renew of a lost lease keeps returning false");
    release(&store, &old).await;
    assert_eq!(
        acquire(&store, "projection-a", "node-3", LONG_TTL).await,
        None,
        "the old holder's release must not free the new holder's lease"
    );
    assert!(renew(&store, &new, LONG_TTL).await, "the new holder keeps its lease");
}

/// An expired lease that nobody took over is lost too: `renew` returns
/// false, and re-acquiring it (even by the same owner) gets a new, larger
/// token.
pub async fn lease_expired_is_lost_even_without_takeover<S: LeaseStore>(store: S) {
    let old = acquire_free(&store, "projection-a", "node-1", SHORT_TTL, "a short lease").await;
    outlive_short_leases(&store, "probe").await;
    assert!(!renew(&store, &old, LONG_TTL).await, "renew of an expired lease must return false");
    let again =
        acquire_free(&store, "projection-a", "node-1", LONG_TTL, "re-acquiring an expired lease").await;
    assert!(again.token > old.token, "re-acquiring an expired lease gets a larger token");
}

/// `release` frees a lease at once (another owner acquires it right away),
/// and releasing again, or releasing a lease that is no longer held, does
/// nothing.
pub async fn lease_release_frees_at_once_and_is_idempotent<S: LeaseStore>(store: S) {
    let first = acquire_free(&store, "projection-a", "node-1", LONG_TTL, "the first holder").await;
    release(&store, &first).await;
    release(&store, &first).await;
    let second = acquire_free(&store, "projection-a", "node-2", LONG_TTL, "acquiring after a release").await;
    assert!(second.token > first.token, "the next holder gets a larger token");
    release(&store, &first).await;
    assert_eq!(
        acquire(&store, "projection-a", "node-3", LONG_TTL).await,
        None,
        "releasing a lease no longer held must not free the current holder's lease"
    );
    assert!(!renew(&store, &first, LONG_TTL).await, "a released lease cannot be renewed");
    release(&store, &second).await;
    release(&store, &second).await;
}

/// Tokens of one name strictly increase with every acquisition: across
/// owners, by the same owner after a release, and by the owner that holds
/// it; renewing keeps the token. A lease with the right name and owner but
/// another token is not held, nor is one with the right token but another
/// owner.
pub async fn lease_tokens_strictly_increase_per_name<S: LeaseStore>(store: S) {
    let mut tokens = Vec::new();
    for owner in ["node-1", "node-2", "node-1", "node-3", "node-3"] {
        let lease = acquire_free(&store, "projection-a", owner, LONG_TTL, "a new acquisition").await;
        assert!(renew(&store, &lease, LONG_TTL).await, "renewing keeps a held lease and its token");
        let again = acquire_free(&store, "projection-a", owner, LONG_TTL, "re-acquiring a held lease").await;
        tokens.extend([lease.token, again.token]);
        let forged = Lease { token: again.token + 1, ..again.clone() };
        assert!(!renew(&store, &forged, LONG_TTL).await, "a lease with another token is not held");
        let stolen = Lease { owner: "intruder".to_owned(), ..again.clone() };
        assert!(!renew(&store, &stolen, LONG_TTL).await, "another owner with the right token renews nothing");
        assert!(!renew(&store, &lease, LONG_TTL).await, "a lease acquired again since is not held");
        release(&store, &again).await;
    }
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens of one name must strictly increase with every acquisition: {tokens:?}"
    );
}

/// A lease taken or renewed for as long as a `Duration` can say
/// (`Duration::MAX`, "for ever") is granted and held, not refused as an
/// overflowing expiry; a token never handed out renews and releases
/// nothing.
pub async fn lease_for_ever_is_granted_and_renewed<S: LeaseStore>(store: S) {
    let held = acquire_free(&store, "projection-a", "node-1", Duration::MAX, "a lease for ever").await;
    assert!(renew(&store, &held, Duration::MAX).await, "renewing a lease for ever must keep it");
    assert!(
        acquire(&store, "projection-a", "node-2", LONG_TTL).await.is_none(),
        "a lease held for ever is exclusive"
    );
    let forged = Lease { token: u64::MAX, ..held.clone() };
    assert!(!renew(&store, &forged, LONG_TTL).await, "a token never handed out renews nothing");
    release(&store, &forged).await;
    assert!(
        acquire(&store, "projection-a", "node-2", LONG_TTL).await.is_none(),
        "releasing with a token never handed out must not free the lease"
    );
}

/// Many owners racing for one free name, round after round on new names:
/// exactly one gets it each time.
pub async fn lease_concurrent_acquires_grant_one_holder<S: LeaseStore + Clone>(store: S) {
    const OWNERS: usize = 8;
    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        let name = format!("race-{round}");
        let mut tasks = Vec::new();
        for n in 0..OWNERS {
            let (store, name) = (store.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                let owner = format!("node-{n}");
                acquire(&store, &name, &owner, LONG_TTL).await
            }));
        }
        let mut holders = Vec::new();
        for task in tasks {
            holders.extend(join(task).await);
        }
        assert_eq!(
            holders.len(),
            1,
            "exactly one of {OWNERS} racing owners may acquire a lease (round {round}): {holders:?}"
        );
    }
}

/// `holder` names the current lease: none before it is taken, the lease
/// while held (under its new token once its owner acquired it again), none
/// once released or expired, and a stale release by an expired holder
/// leaves the new holder in place. `holder` is the
/// adapter's own method (it is not on the port), called with a name.
pub async fn lease_holder_follows_acquire_release_and_expiry<S, H, F>(store: S, holder: H)
where
    S: LeaseStore,
    H: Fn(&'static str) -> F,
    F: std::future::Future<Output = Option<Lease>>,
{
    assert_eq!(holder("p").await, None, "never taken");
    let a = acquire_free(&store, "p", "a", LONG_TTL, "a free name").await;
    assert_eq!(holder("p").await, Some(a.clone()), "held");
    release(&store, &a).await;
    assert_eq!(holder("p").await, None, "released");

    let b = acquire_free(&store, "p", "b", LONG_TTL, "free after release").await;
    assert_eq!(holder("p").await, Some(b.clone()));
    // Re-acquired by its holder with a short TTL (a new token), it expires.
    let again = acquire_free(&store, "p", "b", SHORT_TTL, "re-acquired by its holder").await;
    assert!(again.token > b.token, "a re-acquisition gets a larger token");
    assert_eq!(holder("p").await, Some(again.clone()), "held under the new token");
    let deadline = tokio::time::Instant::now() + EXPIRY_WAIT;
    while holder("p").await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lease on `p` never expired");
        tokio::time::sleep(POLL).await;
    }
    let c = acquire_free(&store, "p", "c", LONG_TTL, "expired, so free").await;
    release(&store, &b).await;
    release(&store, &again).await;
    assert_eq!(holder("p").await, Some(c), "a stale release leaves the new holder");
}
