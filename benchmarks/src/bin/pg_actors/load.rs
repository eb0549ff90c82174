//! `Es::load` of a long history, without and with a snapshot, beside the
//! raw query of the same columns, and the first load on a fresh application.

use std::time::{Duration, Instant};

use es_benchmarks::counter::{Counter, Increment, Incremented};
use es_benchmarks::pg::{analyze, pool};
use es_benchmarks::Spread;
use es_core::runtime::AggregateConfig;
use es_core::store::{EventStore, ExpectedVersion};
use es_core::{Aggregate, Es, StreamId};
use es_postgres::{PgEventStore, PgSchema};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::raw_event;

/// Events in the history the load benchmark reads.
const LOAD_EVENTS: u64 = 10_000;
/// Loads timed per variant.
const LOADS: usize = 20;
/// First loads on a fresh application, timed per variant.
const COLD: usize = 9;

/// Times `Es::load` of counter `id` [`LOADS`] times, in milliseconds.
async fn loads(es: &Es, id: &str, expect: u64) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let t = Instant::now();
        let counter = es.load::<Counter>(id).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(counter.count == expect, "loaded {} events, expected {expect}", counter.count);
    }
    Ok(samples)
}

/// Times the raw query of the columns a load reads, [`LOADS`] times, in
/// milliseconds: one statement fetching every row, decoding each payload.
async fn raw_loads(pool: &PgPool, schema: &PgSchema, stream: &StreamId) -> anyhow::Result<Vec<f64>> {
    let sql = format!(
        "SELECT stream_version, event_type, schema_version, payload
         FROM {schema}.events WHERE stream_id = $1 ORDER BY stream_version"
    );
    let mut samples = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let t = Instant::now();
        let rows = sqlx::query(AssertSqlSafe(sql.as_str())).bind(stream.as_str()).fetch_all(pool).await?;
        let mut total = 0u64;
        for row in &rows {
            let Json(payload): Json<Incremented> = row.try_get("payload")?;
            total += payload.by;
        }
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(total == LOAD_EVENTS, "summed {total} from {} rows", rows.len());
    }
    Ok(samples)
}

/// The first `Es::load` of a fresh application (new pool, store and `Es`
/// each time; the pool's connection is open, nothing else has run on it),
/// [`COLD`] times, in milliseconds; and, beside each, how long
/// `EsBuilder::build` took (it opens and primes two connections first).
async fn cold_loads(url: &str, schema: &PgSchema, snapshots: bool) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut samples, mut builds) = (Vec::with_capacity(COLD), Vec::with_capacity(COLD));
    for _ in 0..COLD {
        let pool = pool(url, 4).await?;
        let store = PgEventStore::with_schema(pool.clone(), schema.clone());
        let mut builder = Es::builder().event_store(store.clone());
        if snapshots {
            builder = builder.snapshot_store(store.clone());
        }
        let t = Instant::now();
        let es = builder.build().await?;
        builds.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let counter = es.load::<Counter>("big").await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(counter.count == LOAD_EVENTS, "loaded {} events", counter.count);
        es.shutdown().await;
        pool.close().await;
    }
    Ok((samples, builds))
}

/// The load figures: writes the history, takes the snapshot, then times
/// warm loads, the raw query and first loads on fresh applications.
pub(crate) async fn load_times(url: &str, store: &PgEventStore, admin: &PgPool) -> anyhow::Result<()> {
    // All but the last event straight into the store; the last one through
    // an application that snapshots every 1,000 events, so its append
    // crosses 10,000 and takes the snapshot.
    let stream = StreamId::for_aggregate(Counter::NAME, "big");
    let mut written = 0u64;
    while written < LOAD_EVENTS - 1 {
        let batch = (LOAD_EVENTS - 1 - written).min(1000);
        let events = (0..batch).map(|n| raw_event(n as usize)).collect();
        store.append(&stream, ExpectedVersion::Any, events).await?;
        written += batch;
    }
    analyze(admin, store.schema(), "events").await?;

    let plain = Es::builder().event_store(store.clone()).build().await?;
    let snapshotting = Es::builder()
        .event_store(store.clone())
        .snapshot_store(store.clone())
        .aggregate::<Counter>(AggregateConfig { snapshot_every: Some(1000) })
        .build()
        .await?;
    snapshotting.execute(Increment { id: "big".into(), by: 1 }).await?;
    // The actor saves the snapshot off the reply path: wait until it is in.
    let deadline = Instant::now() + Duration::from_secs(10);
    while snapshotting.stats().snapshots_saved == 0 {
        anyhow::ensure!(Instant::now() < deadline, "no snapshot saved within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    analyze(admin, store.schema(), "snapshots").await?;

    println!("Es::load of one counter with {LOAD_EVENTS} events (median of {LOADS} loads, min, max; ms)");
    let without = loads(&plain, "big", LOAD_EVENTS).await?;
    let raw = raw_loads(store.pool(), store.schema(), &stream).await?;
    let with = loads(&snapshotting, "big", LOAD_EVENTS).await?;
    let show = |samples: &[f64]| Spread::of(samples).map_or_else(String::new, |s| s.show(3));
    println!("  {:<40} {}", "without a snapshot (warm pool)", show(&without));
    println!("  {:<40} {}", "raw: the same 4 columns, one query", show(&raw));
    let ratios: Vec<f64> = without.iter().zip(&raw).map(|(a, b)| a / b).collect();
    println!("  {:<40} {}", "load / raw (per-sample ratios)", show(&ratios));
    println!("  {:<40} {}", "with a snapshot at 10,000 (warm pool)", show(&with));
    plain.shutdown().await;
    snapshotting.shutdown().await;
    println!(
        "first Es::load on a fresh application (new pool, store and Es; median of {COLD}, min, max; ms)"
    );
    let (with, build_with) = cold_loads(url, store.schema(), true).await?;
    let (without, build_without) = cold_loads(url, store.schema(), false).await?;
    println!("  {:<40} {}", "with a snapshot", show(&with));
    println!("  {:<40} {}", "without a snapshot", show(&without));
    let builds: Vec<f64> = build_with.into_iter().chain(build_without).collect();
    println!("  {:<40} {}", "EsBuilder::build before it (both)", show(&builds));
    Ok(())
}
