//! [`ReadSideConfig`]: the settings every subscription of a read side shares.

use std::time::Duration;

use super::subscriber::RetryPolicy;

/// Settings shared by every subscription of a read side.
#[derive(Debug, Clone)]
pub struct ReadSideConfig {
    /// How many events one read of the global stream fetches (and one
    /// commit covers at most) while a subscription keeps up. While batches
    /// come full (a catch-up or rebuild), the next batch is read while one
    /// is processed, and a document projection's commit runs while the next
    /// batch is projected: a runner holds at most three batches.
    pub batch_size: usize,
    /// How many events a projection (document or table) reads and commits
    /// at once while it is behind: after a read that came back full, until
    /// one comes back short. Fewer, bigger commits write a document that
    /// many events change once per commit rather than once per batch, which
    /// is what makes a rebuild fast. Values under `batch_size` mean
    /// `batch_size`; handlers always use `batch_size` (their effects are
    /// not undone with a checkpoint, so a bigger batch would only mean more
    /// events delivered again after a crash). A runner holds at most three
    /// batches of this size while catching up, and a document projection
    /// the documents one such batch changes until its commit went through;
    /// a position counts as reached only once its batch committed, so
    /// [`ReadSide::wait_for`](crate::ReadSide::wait_for) moves in steps of
    /// up to this many events while a projection catches up.
    pub catch_up_batch_size: usize,
    /// How long a caught-up subscription waits for new events before it
    /// reads again anyway (adapters with wake-ups return earlier).
    pub idle_wait: Duration,
    /// How long a lease lasts without renewal; renewed every third of it,
    /// also while a handler's or a projection's call or a table
    /// projection's batch runs, however long it takes. Must exceed the
    /// time one call to the stores takes (a read of events, a commit).
    pub lease_ttl: Duration,
    /// How often a node in standby tries to take a lease.
    pub lease_retry: Duration,
    /// A subscription that only passes filtered-out events commits its
    /// checkpoint after this many of them (and whenever it catches up).
    pub checkpoint_every: usize,
    /// Backoff while a store fails under a subscription (reads of events,
    /// documents or the checkpoint, commits, pool timeouts): such calls are
    /// retried until they succeed (`max_attempts` is not used), with pauses
    /// jittered between half and all of [`RetryPolicy::backoff`], by
    /// default 100 ms doubling up to 2 s. They never count against the
    /// subscriber's own [`RetryPolicy`].
    pub store_retry: RetryPolicy,
    /// How often a waiter polls the stored checkpoint of a subscription
    /// that runs on another node.
    pub remote_poll: Duration,
    /// A caught-up subscription that committed events stay hidden from (a
    /// long-running transaction, see
    /// [`EventStore::read_blocker`](crate::store::EventStore::read_blocker)) for
    /// longer than this logs a warning naming the transaction and reports
    /// it in [`SubscriptionStatus::held_back_by`](crate::readside::SubscriptionStatus::held_back_by). It asks the store at most
    /// every half of this (and at most every `idle_wait`), only while
    /// caught up.
    pub held_back_warning: Duration,
    /// How many bytes (roughly) of documents a projection's runner keeps in
    /// memory (0: none). A projection that reads a document it read or
    /// wrote before gets it from memory instead of a store round trip, and
    /// a rebuild, which starts from an empty store, reads nothing back while
    /// its documents fit. The cache assumes the runner, under its lease, is
    /// the only writer of its projection's documents: documents changed
    /// from elsewhere (`ProjectionStore::put`, SQL) are not seen until the
    /// projection is restarted or rebuilt. It is emptied when the lease is
    /// taken again or a commit fails. Apart from it, while a full batch's
    /// commit is in flight and the next batch is projected, the documents
    /// that commit writes are held in memory and answer reads (the store
    /// does not have them yet), whatever this says.
    pub document_cache_bytes: usize,
}

impl Default for ReadSideConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            catch_up_batch_size: 4096,
            idle_wait: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(30),
            lease_retry: Duration::from_secs(1),
            checkpoint_every: 1000,
            store_retry: RetryPolicy {
                max_attempts: u32::MAX,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
            },
            remote_poll: Duration::from_millis(100),
            held_back_warning: Duration::from_secs(10),
            document_cache_bytes: 16 << 20,
        }
    }
}
