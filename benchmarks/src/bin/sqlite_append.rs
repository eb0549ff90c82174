//! Append throughput of the SQLite event store against raw SQLite INSERT
//! transactions of the same rows, at 1 and 8 writers, single events and
//! 100-event batches.
//!
//! Run: `cargo run --release -p es-benchmarks --bin sqlite_append`
//!
//! Everything runs in one temporary file (WAL mode), removed at the end,
//! once with `synchronous = FULL` (es-sqlite's default: every commit is
//! flushed to disk) and once with `synchronous = NORMAL`; es and raw use the
//! same setting, the same file and the same single writer connection
//! (es-sqlite queues a process's writes on one connection; raw writers share
//! it too, so neither side pays for SQLite's busy-wait between connections).
//! Each writer appends to its own stream.
//!
//! Raw baselines: a single event is one `INSERT` statement (its own
//! transaction, one round trip, as es-sqlite appends one event); a batch is
//! `BEGIN IMMEDIATE; INSERT ...; COMMIT` with one INSERT per event. Into:
//! - `raw minimal`: a table of (rowid, payload text);
//! - `raw es columns`: a table with es_events' columns, keys and unique
//!   indexes, STRICT, without es's version check or triggers.
//!
//! Each figure is the median of 5 runs with the min and max; es and raw
//! runs alternate, so drifting background load hits both alike, and each
//! ratio is of the medians of this run.

use std::time::{Duration, Instant};

use es_benchmarks::run_writers;
use es_core::store::{EventStore, ExpectedVersion, NewEvent, Timestamp};
use es_core::{StreamId, StreamVersion};
use es_sqlite::{SqliteDatabase, SqliteEventStore, SqliteOptions, Synchronous};
use serde_json::json;
use sqlx::SqliteConnection;

/// Timed runs per figure.
const RUNS: usize = 5;
/// Events per append in the batched cases.
const BATCH: usize = 100;
/// Appends per run (over all writers): single events with `synchronous =
/// FULL` (each commit waits for the disk), single events with `NORMAL`,
/// and batches.
const SINGLE_APPENDS_FULL: usize = 300;
const SINGLE_APPENDS_NORMAL: usize = 1000;
const BATCH_APPENDS: usize = 60;

const RAW_TABLES: &str = "
CREATE TABLE raw_minimal (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);
CREATE TABLE raw_es (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        BLOB    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    aggregate_type  TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL DEFAULT '{}',
    recorded_at     INTEGER NOT NULL,
    UNIQUE (stream_id, stream_version)
) STRICT;
";

const RAW_MINIMAL_INSERT: &str = "INSERT INTO raw_minimal (payload) VALUES (?1)";
const RAW_ES_INSERT: &str =
    "INSERT INTO raw_es (event_id, stream_id, stream_version, aggregate_type, event_type,
    schema_version, payload, metadata, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

fn event(n: usize) -> NewEvent {
    NewEvent::new(
        "account",
        "MoneyDeposited",
        1,
        json!({ "account": "acc-0001", "amount": n, "reference": format!("ref-{n:08}") }),
    )
}

/// What one run appends through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Es,
    RawMinimal,
    RawEs,
}

impl Side {
    const ALL: [Side; 3] = [Side::Es, Side::RawEs, Side::RawMinimal];

    fn label(self, batch: usize) -> String {
        let unit = if batch == 1 { "1 event".to_owned() } else { format!("{batch} events") };
        match self {
            Side::Es => format!("EventStore::append ({unit})"),
            Side::RawEs => format!("raw INSERT, es columns ({unit}/tx)"),
            Side::RawMinimal => format!("raw INSERT, minimal ({unit}/tx)"),
        }
    }
}

/// One raw insert of `event` as version `version` of `stream`.
async fn raw_insert(
    conn: &mut SqliteConnection,
    side: Side,
    stream: &str,
    version: usize,
    event: &NewEvent,
    recorded_at: i64,
) -> anyhow::Result<()> {
    let statement = match side {
        Side::RawMinimal => sqlx::query(RAW_MINIMAL_INSERT).bind(event.payload.as_str()),
        _ => sqlx::query(RAW_ES_INSERT)
            .bind(event.event_id.as_uuid().as_bytes().as_slice())
            .bind(stream)
            .bind(version as i64)
            .bind(event.aggregate_type.as_str())
            .bind(event.event_type.as_str())
            .bind(i64::from(event.schema_version))
            .bind(event.payload.as_str())
            .bind(serde_json::to_string(&event.metadata)?)
            .bind(recorded_at),
    };
    statement.execute(&mut *conn).await?;
    Ok(())
}

/// One raw transaction: `events` as versions `first_version..` of
/// `stream`; a single event is one statement.
async fn raw_transaction(
    db: &SqliteDatabase,
    side: Side,
    stream: &str,
    first_version: usize,
    events: &[NewEvent],
) -> anyhow::Result<()> {
    let recorded_at = Timestamp::now().as_micros();
    if let [event] = events {
        let mut conn = db.writer().await?;
        return raw_insert(&mut conn, side, stream, first_version, event, recorded_at).await;
    }
    let mut tx = db.begin_write().await?;
    for (event, version) in events.iter().zip(first_version..) {
        raw_insert(&mut tx, side, stream, version, event, recorded_at).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One timed run of `writers` writers on `side`: events per second.
async fn run(
    db: &SqliteDatabase,
    store: &SqliteEventStore,
    side: Side,
    writers: usize,
    batch: usize,
    appends: usize,
    tag: &str,
) -> anyhow::Result<f64> {
    let (db, store, tag) = (db.clone(), store.clone(), tag.to_owned());
    let per_writer = appends / writers;
    let run = run_writers(writers, per_writer, batch, move |w, i| {
        let (db, store) = (db.clone(), store.clone());
        let stream = format!("{tag}-{w}");
        async move {
            let events: Vec<NewEvent> = (0..batch).map(|n| event(i * batch + n)).collect();
            match side {
                Side::Es => {
                    let expected = match i * batch {
                        0 => ExpectedVersion::NoStream,
                        v => ExpectedVersion::Exact(StreamVersion(v as u64)),
                    };
                    store.append(&StreamId::new(stream), expected, events).await?;
                }
                raw => raw_transaction(&db, raw, &stream, i * batch + 1, &events).await?,
            }
            Ok(())
        }
    })
    .await?;
    Ok(run.rate())
}

/// Median, min and max of `rates` (sorted in place).
fn spread(rates: &mut [f64]) -> (f64, f64, f64) {
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], rates[0], rates[rates.len() - 1])
}

async fn case(
    db: &SqliteDatabase,
    store: &SqliteEventStore,
    writers: usize,
    batch: usize,
    appends: usize,
) -> anyhow::Result<()> {
    let tag = |side: Side, round: &str| format!("w{writers}b{batch}{}{round}", side as u8);
    // Warm up: the writer's prepared statements, the file's first pages.
    for side in Side::ALL {
        run(db, store, side, writers, batch, writers.max(8), &tag(side, "warm")).await?;
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); Side::ALL.len()];
    for round in 0..RUNS {
        for (side, rates) in Side::ALL.into_iter().zip(&mut rates) {
            rates.push(run(db, store, side, writers, batch, appends, &tag(side, &round.to_string())).await?);
        }
    }
    println!(" {writers} writer(s), {batch} event(s) per append, {appends} appends per run:");
    let mut medians = Vec::new();
    for (side, rates) in Side::ALL.into_iter().zip(&mut rates) {
        let (median, min, max) = spread(rates);
        medians.push(median);
        println!(
            "  {:<40} {median:>9.0} events/s  (min {min:.0}, max {max:.0}; {:.0} appends/s)",
            side.label(batch),
            median / batch as f64
        );
    }
    println!(
        "  {:<40} {:>8.0} % of raw INSERT with es columns, {:.0} % of minimal",
        "ratio (medians)",
        100.0 * medians[0] / medians[1],
        100.0 * medians[0] / medians[2]
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let version: String = {
        let db = SqliteDatabase::temporary().await?;
        sqlx::query_scalar("SELECT sqlite_version()").fetch_one(db.readers()).await?
    };
    println!("sqlite_append: SQLite {version} (bundled), WAL, file under {}", std::env::temp_dir().display());
    println!("median of {RUNS} runs per figure; es and raw alternate; ratios of the medians of this run");
    let started = Instant::now();
    for synchronous in [Synchronous::Full, Synchronous::Normal] {
        let options = SqliteOptions::new().synchronous(synchronous).busy_timeout(Duration::from_secs(30));
        let db = SqliteDatabase::temporary_with(options).await?;
        db.migrate().await?;
        let mut tx = db.begin_write().await?;
        sqlx::raw_sql(RAW_TABLES).execute(&mut *tx).await?;
        tx.commit().await?;
        let store = SqliteEventStore::new(db.clone());
        println!("synchronous = {synchronous}");
        let single_appends = match synchronous {
            Synchronous::Full => SINGLE_APPENDS_FULL,
            _ => SINGLE_APPENDS_NORMAL,
        };
        for writers in [1, 8] {
            case(&db, &store, writers, 1, single_appends).await?;
        }
        for writers in [1, 8] {
            case(&db, &store, writers, BATCH, BATCH_APPENDS).await?;
        }
        db.close().await;
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
