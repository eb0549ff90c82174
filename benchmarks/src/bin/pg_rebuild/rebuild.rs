//! Timed rebuilds of the document projections (with the projection store
//! calls in each) and of the table projection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use es_benchmarks::rate;
use es_core::readside::{ReadSideConfig, Registry, Selection};
use es_core::store::ProjectionStore;
use es_core::testkit::{StoreCall, TestStore};
use es_core::{GlobalPosition, ReadSide};
use es_postgres::{PgEventStore, PgProjectionStore};

use super::{
    account, sql_balances, Balance, LastDeposit, BALANCES, EVENTS_PER_STREAM, SQL_BALANCES, STREAMS,
};

/// A document cache smaller than the 2,000 balance documents.
const SMALL_CACHE_BYTES: usize = 16 * 1024;

/// How a rebuild runs: the runner's document cache as configured by
/// default, or smaller than the documents (cache misses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Variant {
    /// `ReadSideConfig::document_cache_bytes` of [`SMALL_CACHE_BYTES`].
    pub(crate) small_cache: bool,
}

impl Variant {
    pub(crate) fn label(self) -> &'static str {
        if self.small_cache {
            "cache < documents"
        } else {
            "default cache"
        }
    }
}

/// The batch sizes a rebuild runs with: `ReadSideConfig::batch_size` and
/// `ReadSideConfig::catch_up_batch_size`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batches {
    pub(crate) size: usize,
    pub(crate) catch_up: usize,
}

impl Batches {
    /// How many events each of a rebuild's reads asks for (all come back
    /// full but the last): the page size of the reads it is compared with.
    pub(crate) fn read_size(self) -> usize {
        self.size.max(self.catch_up)
    }

    fn config(self) -> ReadSideConfig {
        ReadSideConfig {
            batch_size: self.size,
            catch_up_batch_size: self.catch_up,
            ..ReadSideConfig::default()
        }
    }
}

impl std::fmt::Display for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let defaults = ReadSideConfig::default();
        write!(f, "batch {}, catch-up batch {}", self.size, self.catch_up)?;
        if (self.size, self.catch_up) == (defaults.batch_size, defaults.catch_up_batch_size) {
            write!(f, " (the defaults)")?;
        }
        Ok(())
    }
}

/// One rebuild: its time (from the rebuild call until the status reaches
/// the head) and the projection store calls in it.
pub(crate) struct Rebuilt {
    pub(crate) elapsed: Duration,
    pub(crate) gets: (u64, Duration),
    /// The batch reads of prefetched documents.
    pub(crate) get_manys: (u64, Duration),
    pub(crate) commits: (u64, Duration),
}

/// Rebuilds projection `name` with `batches`, then checks the document
/// of account 0.
pub(crate) async fn rebuild(
    store: &PgEventStore,
    projections: &PgProjectionStore,
    name: &str,
    batches: Batches,
    head: GlobalPosition,
    variant: Variant,
) -> anyhow::Result<Rebuilt> {
    // Times the calls a rebuild makes (`get` of documents outside the batch
    // and the cache, `get_many` of the documents a batch prefetches,
    // `commit` of each batch), to show where its time goes.
    let timed = TestStore::new(projections.clone());
    let defaults = batches.config();
    let document_cache_bytes =
        if variant.small_cache { SMALL_CACHE_BYTES } else { defaults.document_cache_bytes };
    let read_side = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(timed.clone())
        .select(Selection::names([name]))
        .config(ReadSideConfig { document_cache_bytes, ..defaults })
        .build()?;
    let started = Instant::now();
    read_side.rebuild(name).await?;
    read_side.wait_for(name, head, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    read_side.shutdown().await;
    // The fold must be right: account 0 got 1 + 2 + .. + 50.
    let doc = projections
        .get(name, &account(0))
        .await?
        .ok_or_else(|| anyhow::anyhow!("{name} has no document for {}", account(0)))?;
    let n = EVENTS_PER_STREAM as u64;
    if name == BALANCES {
        let balance: Balance = serde_json::from_value(doc)?;
        anyhow::ensure!(
            balance == Balance { balance: n * (n + 1) / 2, deposits: n },
            "wrong balance after rebuild: {balance:?}"
        );
    } else {
        let last: LastDeposit = serde_json::from_value(doc)?;
        anyhow::ensure!(last.amount == n, "wrong last deposit after rebuild: {last:?}");
    }
    Ok(Rebuilt {
        elapsed,
        gets: (timed.calls(StoreCall::Get), timed.busy(StoreCall::Get)),
        get_manys: (timed.calls(StoreCall::GetMany), timed.busy(StoreCall::GetMany)),
        commits: (timed.calls(StoreCall::Commit), timed.busy(StoreCall::Commit)),
    })
}

/// Rebuilds the table projection once with `batches`, checking the row
/// of account 0 after it; returns events per second.
pub(crate) async fn sql_rebuild(
    store: &PgEventStore,
    projections: &PgProjectionStore,
    table: &Arc<sql_balances::SqlBalances>,
    batches: Batches,
    head: GlobalPosition,
) -> anyhow::Result<f64> {
    let total = (STREAMS * EVENTS_PER_STREAM) as u64;
    let mut registry = Registry::new();
    registry.register(SQL_BALANCES, table.subscriber())?;
    let read_side = ReadSide::builder()
        .event_store(store.clone())
        .projection_store(projections.clone())
        .registry(registry)
        .config(batches.config())
        .build()?;
    let started = Instant::now();
    read_side.rebuild(SQL_BALANCES).await?;
    read_side.wait_for(SQL_BALANCES, head, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    read_side.shutdown().await;
    let n = EVENTS_PER_STREAM as i64;
    let row = table.balance(projections.pool(), &account(0)).await?;
    anyhow::ensure!(row == (n * (n + 1) / 2, n), "wrong row after the table rebuild: {row:?}");
    Ok(rate(total, elapsed))
}
