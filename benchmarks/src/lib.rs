//! Measurement helpers shared by the benchmark programs in `src/bin/`.
//!
//! Benchmarks print figures; they never assert on time. Run them in release
//! mode: `cargo run --release -p es-benchmarks --bin <name>`.

use std::time::Duration;

/// Latency figures of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latencies {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latencies {
    /// Computes the figures of `samples` (sorted in place). `None` if empty.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((samples.len() as f64) * q).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Some(Self { p50: at(0.50), p99: at(0.99), max: samples[samples.len() - 1] })
    }
}

/// Operations per second.
pub fn rate(operations: u64, elapsed: Duration) -> f64 {
    operations as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Timed runs behind every figure: each is the median of this many runs,
/// printed with the min and the max (never the best run alone).
pub const RUNS: usize = 5;

/// The median, min and max of several runs of one figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median (of an even count, the upper middle value).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`. `None` if empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self { median: *sorted.get(sorted.len() / 2)?, min: *sorted.first()?, max: *sorted.last()? })
    }

    /// The spread of the per-run ratios `a[i] / b[i]` (runs of two sides
    /// that alternated, so each ratio is of runs taken side by side).
    pub fn of_ratios(a: &[f64], b: &[f64]) -> Option<Self> {
        let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b.max(f64::MIN_POSITIVE)).collect();
        Self::of(&ratios)
    }

    /// `median (min .., max ..)` with `decimals` decimals.
    pub fn show(&self, decimals: usize) -> String {
        format!("{:.decimals$} (min {:.decimals$}, max {:.decimals$})", self.median, self.min, self.max)
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.show(0))
    }
}

/// The rates of several runs of one figure, with the latencies of all
/// their operations taken together.
#[derive(Debug, Clone)]
pub struct Runs {
    /// Operations per second of each run.
    pub rates: Vec<f64>,
    /// Figures of every operation of every run.
    pub latencies: Option<Latencies>,
}

impl Runs {
    /// Gathers `runs`.
    pub fn of(runs: Vec<Run>) -> Self {
        let rates = runs.iter().map(Run::rate).collect();
        let merged = Run::merge(runs);
        Self { rates, latencies: merged.latencies }
    }

    /// Median, min and max of the rates.
    pub fn spread(&self) -> Spread {
        Spread::of(&self.rates).unwrap_or(Spread { median: 0.0, min: 0.0, max: 0.0 })
    }

    /// Prints one line: `label`, the median `unit`/s with min and max, and
    /// p50 and p99 over all runs.
    pub fn print(&self, label: &str, unit: &str) {
        let s = self.spread();
        let latency = match &self.latencies {
            Some(l) => format!("   p50 {}   p99 {}", ms(l.p50), ms(l.p99)),
            None => String::new(),
        };
        println!("  {label:<40} {:>8.0} {unit}/s (min {:.0}, max {:.0}){latency}", s.median, s.min, s.max);
    }

    /// Prints this run's ratio to `base` (per-run ratios, median with min
    /// and max), in percent.
    pub fn print_ratio(&self, label: &str, base: &Runs) {
        if let Some(r) = Spread::of_ratios(&self.rates, &base.rates) {
            println!(
                "  {label:<40} {:>8.0} %  (min {:.0} %, max {:.0} %)",
                100.0 * r.median,
                100.0 * r.min,
                100.0 * r.max
            );
        }
    }
}

/// Formats a duration in milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// One timed run of several writers: how many events they wrote, the wall
/// time, and the latency of each operation.
#[derive(Debug, Clone)]
pub struct Run {
    /// Events written.
    pub events: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Figures of `samples` (or of the merged samples).
    pub latencies: Option<Latencies>,
    /// Time of each operation; emptied by [`Run::merge`].
    pub samples: Vec<Duration>,
}

impl Run {
    /// The rounds of one side taken together.
    pub fn merge(runs: Vec<Run>) -> Run {
        let events = runs.iter().map(|r| r.events).sum();
        let elapsed = runs.iter().map(|r| r.elapsed).sum();
        let mut samples: Vec<Duration> = runs.into_iter().flat_map(|r| r.samples).collect();
        Run { events, elapsed, latencies: Latencies::of(&mut samples), samples: Vec::new() }
    }

    /// Events per second.
    pub fn rate(&self) -> f64 {
        rate(self.events, self.elapsed)
    }

    /// Prints one line: `label`, events/s, p50 and p99.
    pub fn print(&self, label: &str) {
        self.print_as(label, "events");
    }

    /// As [`print`](Run::print), counting `unit` (say `commands`) instead of events.
    pub fn print_as(&self, label: &str, unit: &str) {
        match &self.latencies {
            Some(l) => println!(
                "  {label:<38} {:>9.0} {unit}/s   p50 {}   p99 {}",
                self.rate(),
                ms(l.p50),
                ms(l.p99)
            ),
            None => println!("  {label:<38} {:>9.0} {unit}/s", self.rate()),
        }
    }
}

/// Runs `writers` tasks, each calling `op(writer, i)` `per_writer` times
/// one after another, timing every call; each call writes `events_per_op`
/// events.
///
/// # Errors
/// The first error of `op`, or a writer task that panicked.
pub async fn run_writers<F, Fut>(
    writers: usize,
    per_writer: usize,
    events_per_op: usize,
    op: F,
) -> anyhow::Result<Run>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = std::sync::Arc::new(op);
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let t = std::time::Instant::now();
                op(w, i).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let elapsed = start.elapsed();
    let latencies = Latencies::of(&mut samples);
    Ok(Run { events: (writers * per_writer * events_per_op) as u64, elapsed, latencies, samples })
}

/// The counter the runtime benchmarks drive, declared with the es macros
/// as users write an aggregate.
pub mod counter {
    use es_core::{command, event, Aggregate, Apply, Events, Handle};
    use serde::{Deserialize, Serialize};

    /// The counter went up.
    #[event]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Incremented {
        /// By how much.
        pub by: u64,
    }

    /// Adds to a counter.
    #[command(aggregate = Counter)]
    #[derive(Debug, Clone)]
    pub struct Increment {
        /// The counter.
        #[id]
        pub id: String,
        /// By how much.
        pub by: u64,
    }

    /// Decides nothing: starts (and keeps) an actor without appending.
    #[command(aggregate = Counter)]
    #[derive(Debug, Clone)]
    pub struct Touch {
        /// The counter.
        #[id]
        pub id: String,
    }

    /// Asks to take from a counter: refused when it holds less than `by`,
    /// otherwise decides nothing (the refusal path is what it measures).
    #[command(aggregate = Counter)]
    #[derive(Debug, Clone)]
    pub struct Take {
        /// The counter.
        #[id]
        pub id: String,
        /// How much.
        pub by: u64,
    }

    /// The refusal of [`Take`].
    #[derive(Debug, thiserror::Error)]
    #[error("the counter holds {total}, cannot take {wanted}")]
    pub struct CounterError {
        /// What the counter holds.
        pub total: u64,
        /// What was asked for.
        pub wanted: u64,
    }

    /// A counter: the sum of its increments.
    #[derive(Aggregate, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    #[aggregate(name = "counter", error = CounterError, events(Incremented), commands(Increment, Touch, Take))]
    pub struct Counter {
        /// The sum.
        pub total: u64,
        /// How many increments.
        pub count: u64,
    }

    impl Handle<Increment> for Counter {
        fn handle(&self, command: Increment) -> Result<Events<Self>, CounterError> {
            Ok(Events::one(Incremented { by: command.by }))
        }
    }

    impl Handle<Touch> for Counter {
        fn handle(&self, _: Touch) -> Result<Events<Self>, CounterError> {
            Ok(Events::none())
        }
    }

    impl Handle<Take> for Counter {
        fn handle(&self, command: Take) -> Result<Events<Self>, CounterError> {
            if command.by > self.total {
                return Err(CounterError { total: self.total, wanted: command.by });
            }
            Ok(Events::none())
        }
    }

    impl Apply<Incremented> for Counter {
        fn apply(&mut self, e: &Incremented) {
            self.total += e.by;
            self.count += 1;
        }
    }

    /// `Increment { id, by: 1 }`.
    pub fn increment(id: &str) -> Increment {
        Increment { id: id.to_owned(), by: 1 }
    }
}

/// Postgres helpers: connecting, a throwaway schema, and the raw-INSERT
/// baseline the event store is compared with.
pub mod pg {
    use std::sync::Arc;

    use es_core::store::NewEvent;
    use es_postgres::PgSchema;
    use sqlx::postgres::PgPoolOptions;
    use sqlx::types::Json;
    use sqlx::{AssertSqlSafe, PgPool};

    use super::{run_writers, Run};

    /// `DATABASE_URL`, or the local default
    /// `postgres://postgres@127.0.0.1:5432/postgres`.
    pub fn database_url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// A pool of at most `connections` connections to `url`.
    ///
    /// # Errors
    /// When Postgres cannot be reached.
    pub async fn pool(url: &str, connections: u32) -> anyhow::Result<PgPool> {
        Ok(PgPoolOptions::new().max_connections(connections).connect(url).await?)
    }

    /// A small pool for setup and teardown, with an error that says how to
    /// get a server.
    ///
    /// # Errors
    /// When Postgres cannot be reached.
    pub async fn admin_pool(url: &str) -> anyhow::Result<PgPool> {
        pool(url, 2).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach Postgres at {url} ({e}): set DATABASE_URL or run scripts/test.sh, which starts one"
            )
        })
    }

    /// Creates and migrates a fresh schema `es_bench_<uuid>`.
    ///
    /// # Errors
    /// When migrating fails.
    pub async fn fresh_schema(admin: &PgPool) -> anyhow::Result<PgSchema> {
        let schema = PgSchema::new(format!("es_bench_{}", uuid::Uuid::now_v7().simple()))?;
        es_postgres::migrate(admin, &schema).await?;
        Ok(schema)
    }

    /// Drops `schema` and everything in it.
    ///
    /// # Errors
    /// When the statement fails.
    pub async fn drop_schema(admin: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(admin).await?;
        Ok(())
    }

    /// The server version and its `synchronous_commit` setting.
    ///
    /// # Errors
    /// When the queries fail.
    pub async fn server(admin: &PgPool) -> anyhow::Result<(String, String)> {
        let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(admin).await?;
        let sync: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(admin).await?;
        Ok((server, sync))
    }

    /// Gives the planner the statistics a running database has (fresh
    /// tables have none until autovacuum gets to them).
    ///
    /// # Errors
    /// When the statement fails.
    pub async fn analyze(admin: &PgPool, schema: &PgSchema, table: &str) -> anyhow::Result<()> {
        sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE {schema}.{table}"))).execute(admin).await?;
        Ok(())
    }

    /// The two raw baselines es is compared with, so the cost of es's
    /// schema and the cost of its code show apart.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RawTable {
        /// `raw_minimal`: an identity key and a JSONB payload, nothing else:
        /// the way people usually write a row to Postgres.
        Minimal,
        /// `raw_events`: the columns, keys and unique indexes of es's
        /// `events` table, none of its position scheme, version check,
        /// trigger or notification.
        EsColumns,
    }

    impl RawTable {
        /// Both, minimal first.
        pub const BOTH: [RawTable; 2] = [RawTable::Minimal, RawTable::EsColumns];

        /// How the figures name it.
        pub fn label(self) -> &'static str {
            match self {
                RawTable::Minimal => "raw INSERT, minimal table",
                RawTable::EsColumns => "raw INSERT, es columns+indexes",
            }
        }

        /// The INSERT of `events` rows (one statement, its own transaction).
        pub fn sql(self, schema: &PgSchema, events: usize) -> String {
            match (self, events) {
                (RawTable::Minimal, 1) => format!("INSERT INTO {schema}.raw_minimal (payload) VALUES ($1)"),
                (RawTable::Minimal, _) => {
                    format!("INSERT INTO {schema}.raw_minimal (payload) SELECT unnest($1::jsonb[])")
                }
                (RawTable::EsColumns, 1) => format!(
                    "INSERT INTO {schema}.raw_events (event_id, stream_id, stream_version, aggregate_type, \
                     event_type, schema_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                (RawTable::EsColumns, _) => format!(
                    "INSERT INTO {schema}.raw_events (event_id, stream_id, stream_version, aggregate_type, \
                     event_type, schema_version, payload, metadata)
                     SELECT u.id, $2, u.v, u.a, u.t, u.s, u.p, u.m
                     FROM unnest($1::uuid[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::jsonb[], \
                     $8::jsonb[]) AS u(id, v, a, t, s, p, m)"
                ),
            }
        }
    }

    /// Creates both raw tables in `schema`.
    ///
    /// # Errors
    /// When a statement fails.
    pub async fn create_raw_tables(pool: &PgPool, schema: &PgSchema) -> anyhow::Result<()> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            r#"CREATE TABLE {schema}.raw_events (
            global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id uuid NOT NULL UNIQUE,
            stream_id text COLLATE "C" NOT NULL,
            stream_version bigint NOT NULL,
            aggregate_type text NOT NULL,
            event_type text NOT NULL,
            schema_version bigint NOT NULL,
            payload jsonb NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{{}}',
            recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
            UNIQUE (stream_id, stream_version)
        );
        CREATE TABLE {schema}.raw_minimal (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            payload jsonb NOT NULL
        )"#
        )))
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Inserts `events` into `table` as versions `first_version..` of
    /// `stream`, in one statement (its own transaction); `sql` is
    /// [`RawTable::sql`] for that many events.
    ///
    /// # Errors
    /// When the statement fails.
    pub async fn raw_insert(
        pool: &PgPool,
        table: RawTable,
        sql: &str,
        stream: &str,
        first_version: usize,
        events: &[NewEvent],
    ) -> anyhow::Result<()> {
        let payloads: Vec<Json<&es_core::store::Payload>> = events.iter().map(|e| Json(&e.payload)).collect();
        if table == RawTable::Minimal {
            let query = sqlx::query(AssertSqlSafe(sql));
            let query = if events.len() == 1 { query.bind(payloads[0]) } else { query.bind(&payloads) };
            query.execute(pool).await?;
            return Ok(());
        }
        let ids: Vec<_> = events.iter().map(|e| e.event_id.as_uuid()).collect();
        let versions: Vec<i64> = (0..events.len()).map(|i| (first_version + i) as i64).collect();
        let aggregate_types: Vec<&str> = events.iter().map(|e| e.aggregate_type.as_str()).collect();
        let event_types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let schema_versions: Vec<i64> = events.iter().map(|e| i64::from(e.schema_version)).collect();
        let metadata: Vec<Json<&es_core::Metadata>> = events.iter().map(|e| Json(&e.metadata)).collect();
        if events.len() == 1 {
            sqlx::query(AssertSqlSafe(sql))
                .bind(ids[0])
                .bind(stream)
                .bind(versions[0])
                .bind(aggregate_types[0])
                .bind(event_types[0])
                .bind(schema_versions[0])
                .bind(payloads[0])
                .bind(metadata[0])
                .execute(pool)
                .await?;
        } else {
            sqlx::query(AssertSqlSafe(sql))
                .bind(&ids)
                .bind(stream)
                .bind(&versions)
                .bind(&aggregate_types)
                .bind(&event_types)
                .bind(&schema_versions)
                .bind(&payloads)
                .bind(&metadata)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// `writers` tasks inserting into `table` in `schema`, each `per_writer` times
    /// `batch` events (`event(n)` is event `n` of the writer's stream,
    /// counted from 0) into its own stream `stream(writer)`.
    ///
    /// # Errors
    /// The first failed insert.
    #[allow(clippy::too_many_arguments)] // reason: each names one dimension of the run
    pub async fn raw_runs<S, E>(
        pool: &PgPool,
        schema: &PgSchema,
        table: RawTable,
        writers: usize,
        per_writer: usize,
        batch: usize,
        stream: S,
        event: E,
    ) -> anyhow::Result<Run>
    where
        S: Fn(usize) -> String + Send + Sync + 'static,
        E: Fn(usize) -> NewEvent + Send + Sync + 'static,
    {
        let pool = pool.clone();
        let sql: Arc<str> = table.sql(schema, batch).into();
        let event = Arc::new(event);
        run_writers(writers, per_writer, batch, move |w, i| {
            let (pool, sql, event) = (pool.clone(), sql.clone(), event.clone());
            let stream = stream(w);
            async move {
                let events: Vec<NewEvent> = (0..batch).map(|n| event(i * batch + n)).collect();
                raw_insert(&pool, table, &sql, &stream, i * batch + 1, &events).await
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let l = Latencies::of(&mut samples).unwrap();
        assert_eq!(l.p50, Duration::from_millis(50));
        assert_eq!(l.p99, Duration::from_millis(99));
        assert_eq!(l.max, Duration::from_millis(100));
        assert!(Latencies::of(&mut []).is_none());
    }

    #[test]
    fn a_spread_is_median_min_and_max() {
        let s = Spread::of(&[3.0, 1.0, 5.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        assert!(Spread::of(&[]).is_none());
        let r = Spread::of_ratios(&[2.0, 6.0, 3.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((r.median, r.min, r.max), (2.0, 1.0, 3.0));
    }

    #[test]
    fn rate_is_operations_per_second() {
        assert_eq!(rate(500, Duration::from_millis(250)), 2000.0);
    }
}
