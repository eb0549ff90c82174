//! Two read models of the faults family's tallies for the fault tests: the
//! family's document projection and a table projection with incremental
//! SQL (which must not run twice for one event), on one read side per node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_core::conformance::faults::{self, Added, FaultReport};
use es_core::readside::{ReadSideConfig, Registry, RetryPolicy, Subscriber};
use es_core::store::EventStore;
use es_core::{HandlerError, ProjectRows, ReadSide, Recorded, TableProjection, TableTx};
use es_postgres::{sql_failure, PgEventStore, PgLeaseStore, PgProjectionStore, PgSchema, PgTransaction};
use sqlx::PgPool;

/// How long a read model may take to reach the head.
const CATCH_UP: Duration = Duration::from_secs(90);

/// The table read model: `total = total + by` per event, SQL that must not
/// run twice for one event. Counts its resets.
#[derive(Clone, Default)]
pub(crate) struct TallyRows(pub(crate) Arc<AtomicUsize>);

/// The qualified name of the table `TallyRows` writes.
pub(crate) struct Table(pub(crate) String);

impl TableProjection for TallyRows {
    type Transaction = PgTransaction;
    type Batch = ();

    async fn reset(&self, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let sql = format!("TRUNCATE {}", tx.state::<Table>()?.0);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut **tx.transaction()).await.map_err(sql_failure)?;
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl ProjectRows<Added> for TallyRows {
    async fn project(&self, e: &Recorded<Added>, tx: &mut TableTx<Self>) -> Result<(), HandlerError> {
        let sql = format!(
            "INSERT INTO {table} AS t (tally, total) VALUES ($1, $2)
             ON CONFLICT (tally) DO UPDATE SET total = t.total + excluded.total",
            table = tx.state::<Table>()?.0
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(e.stream_id.as_str())
            .bind(e.by)
            .execute(&mut **tx.transaction())
            .await
            .map_err(sql_failure)?;
        Ok(())
    }
}

/// Creates the table [`TallyRows`] writes, in `schema`.
pub(crate) async fn create_tally_table(admin: &PgPool, schema: &PgSchema) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".tallies (tally text PRIMARY KEY, total bigint NOT NULL)"
    )))
    .execute(admin)
    .await
    .unwrap();
}

/// A read side of node `owner` with both read models, its stores on `pool`
/// with `call_timeout`.
pub(crate) fn start_read_side(
    pool: &PgPool,
    schema: &PgSchema,
    owner: &str,
    rows: TallyRows,
    call_timeout: Duration,
) -> ReadSide {
    let events = PgEventStore::with_schema(pool.clone(), schema.clone());
    let documents = PgProjectionStore::with_schema(pool.clone(), schema.clone());
    let leases = PgLeaseStore::with_schema(pool.clone(), schema.clone());
    events.set_call_timeout(call_timeout);
    documents.set_call_timeout(call_timeout);
    leases.set_call_timeout(call_timeout);
    let mut registry = Registry::new();
    registry.register(faults::TOTALS, faults::totals()).unwrap();
    registry
        .register("tally-rows", Subscriber::table_projection(rows).on::<Added>().uses::<Table>().build())
        .unwrap();
    ReadSide::builder()
        .event_store(events)
        .projection_store(documents)
        .lease_store(leases)
        .owner(owner)
        .registry(registry)
        .state(Table(format!("\"{schema}\".tallies")))
        .config(ReadSideConfig {
            batch_size: 16,
            catch_up_batch_size: 64,
            idle_wait: Duration::from_millis(100),
            lease_ttl: Duration::from_millis(600),
            lease_retry: Duration::from_millis(50),
            store_retry: RetryPolicy::new(u32::MAX, Duration::from_millis(10)),
            ..ReadSideConfig::default()
        })
        .start()
        .unwrap()
}

/// Waits (bounded) until both read models reached the head, and checks
/// that they hold the report's fold.
pub(crate) async fn read_models_equal(
    read_sides: &[&ReadSide],
    admin: &PgPool,
    schema: &PgSchema,
    report: &FaultReport,
) {
    let (events, documents) = (
        PgEventStore::with_schema(admin.clone(), schema.clone()),
        PgProjectionStore::with_schema(admin.clone(), schema.clone()),
    );
    faults::totals_equal_the_fold(read_sides, &events, &documents, report).await;
    let head = events.head_position().await.unwrap();
    read_sides[0].wait_for("tally-rows", head, CATCH_UP).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT tally, total FROM \"{schema}\".tallies")))
            .fetch_all(admin)
            .await
            .unwrap();
    let totals: BTreeMap<String, i64> =
        report.fold.iter().map(|(stream, (_, total))| (stream.to_string(), *total)).collect();
    assert_eq!(rows.into_iter().collect::<BTreeMap<_, _>>(), totals, "the table projection, each event once");
}
