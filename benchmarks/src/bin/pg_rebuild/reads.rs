//! The read rates a rebuild is compared with: `EventStore::read_all`, and
//! a plain query of the same rows, decoding nothing or the payload JSON.

use std::time::{Duration, Instant};

use es_benchmarks::rate;
use es_core::store::EventStore;
use es_core::GlobalPosition;
use es_postgres::{PgEventStore, PgSchema};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Row};

/// Events per second of one run of `read` (which returns its time and
/// the events it read), checking it read them all.
pub(crate) async fn read_rate<Fut>(read: Fut, total: u64) -> anyhow::Result<f64>
where
    Fut: std::future::Future<Output = anyhow::Result<(Duration, u64)>>,
{
    let (time, count) = read.await?;
    anyhow::ensure!(count == total, "read {count} events, stored {total}");
    Ok(rate(count, time))
}

/// `read_all` over every event in pages of `page`; returns the time and
/// the number of events read.
pub(crate) async fn read_all(store: &PgEventStore, page: usize) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut after = GlobalPosition::START;
    let mut count = 0u64;
    loop {
        let events = store.read_all(after, page).await?;
        let Some(last) = events.last() else { break };
        after = last.global_position;
        count += events.len() as u64;
    }
    Ok((started.elapsed(), count))
}

/// The same rows through a plain query, paged by position; `decode`: also
/// parse each payload into a JSON value.
pub(crate) async fn raw_read(
    pool: &PgPool,
    schema: &PgSchema,
    page: usize,
    decode: bool,
) -> anyhow::Result<(Duration, u64)> {
    let sql = format!(
        "SELECT global_position, event_id, stream_id, stream_version, aggregate_type, event_type,
                schema_version, payload, metadata, recorded_at
         FROM {schema}.events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
    );
    let started = Instant::now();
    let mut after = 0i64;
    let mut count = 0u64;
    let mut amounts = 0u64;
    loop {
        let rows =
            sqlx::query(AssertSqlSafe(sql.as_str())).bind(after).bind(page as i64).fetch_all(pool).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("global_position")?;
        count += rows.len() as u64;
        if decode {
            for row in &rows {
                let Json(payload): Json<serde_json::Value> = row.try_get("payload")?;
                amounts += payload["amount"].as_u64().unwrap_or(0);
            }
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(!decode || amounts > 0, "decoded no amounts");
    Ok((elapsed, count))
}
