//! The hot-aggregate comparison: `Es::execute` with and without group
//! commit, `EventStore::append` of the same rows, the adapter's append
//! statement through plain sqlx, and raw single-row INSERTs.

use std::sync::Arc;

use es_benchmarks::counter::{Counter, Increment};
use es_benchmarks::pg::{raw_runs, RawTable};
use es_benchmarks::{ms, run_writers, Run, Runs, RUNS};
use es_core::store::{EventStore, ExpectedVersion};
use es_core::{Aggregate, Es, StreamId, StreamVersion};
use es_postgres::{PgEventStore, PgSchema};
use sqlx::postgres::PgPoolOptions;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::{aggregate_id, raw_event};

/// `writers` tasks, each sending `per_writer` increments to its own counter
/// `{tag}-{writer}` one after another.
pub(crate) async fn execute_runs(
    es: &Es,
    writers: usize,
    per_writer: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let es = es.clone();
    let tag = tag.to_owned();
    run_writers(writers, per_writer, 1, move |w, _| {
        let es = es.clone();
        let id = aggregate_id(&tag, w);
        async move {
            es.execute(Increment { id, by: 1 }).await?;
            Ok(())
        }
    })
    .await
}

/// `writers` tasks, each appending `per_writer` single events of the same
/// shape straight to the event store (no `Es`), into a new stream
/// `counter-{tag}-{writer}` with exact expected versions.
pub(crate) async fn append_runs(
    store: &PgEventStore,
    writers: usize,
    per_writer: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let store = store.clone();
    let tag = tag.to_owned();
    run_writers(writers, per_writer, 1, move |w, i| {
        let store = store.clone();
        let stream = StreamId::for_aggregate(Counter::NAME, &aggregate_id(&tag, w));
        async move {
            let expected = match i {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(StreamVersion(v as u64)),
            };
            store.append(&stream, expected, vec![raw_event(i)]).await?;
            Ok(())
        }
    })
    .await
}

/// The statement `PgEventStore::append` runs for one event, read from the
/// adapter's source so the figure follows it.
pub(crate) const STORE_APPEND_SQL: &str =
    include_str!("../../../../es-postgres/src/event_store/append_single.sql");

/// `writers` tasks running the event store's own single-event append
/// statement through plain sqlx (no adapter code around it, no `NOTIFY`
/// after it), into a new stream `counter-{tag}-{writer}` each.
pub(crate) async fn statement_runs(
    pool: &PgPool,
    schema: &PgSchema,
    writers: usize,
    per_writer: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let sql = Arc::new(STORE_APPEND_SQL.replace("{schema}", &format!("\"{schema}\"")));
    let pool = pool.clone();
    let tag = tag.to_owned();
    run_writers(writers, per_writer, 1, move |w, i| {
        let (pool, sql) = (pool.clone(), sql.clone());
        let stream = StreamId::for_aggregate(Counter::NAME, &aggregate_id(&tag, w));
        async move {
            // Expectation codes of the statement: 1 no stream, 3 exact.
            let (kind, exact) = if i == 0 { (1i32, 0i64) } else { (3, i as i64) };
            let event = raw_event(i);
            let row = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(stream.as_str())
                .bind(kind)
                .bind(exact)
                .bind(event.event_id.as_uuid())
                .bind(event.aggregate_type.as_str())
                .bind(event.event_type.as_str())
                .bind(i64::from(event.schema_version))
                .bind(Json(&event.payload))
                .bind(Json(&event.metadata))
                .fetch_one(&pool)
                .await?;
            let inserted: i64 = row.try_get("inserted")?;
            anyhow::ensure!(inserted == 1, "the append statement inserted {inserted} rows");
            Ok(())
        }
    })
    .await
}

/// The figures of one comparison.
pub(crate) struct Comparison {
    pub(crate) execute: Runs,
    ungrouped: Runs,
    append: Runs,
    statement: Runs,
    minimal: Runs,
    es_columns: Runs,
    minimal_unchecked: Runs,
}

impl Comparison {
    pub(crate) fn print(&self, label: &str) {
        self.execute.print(label, "commands");
        self.ungrouped.print("  the same, group commit off", "commands");
        self.append.print("EventStore::append, same rows", "events");
        self.statement.print("its append SQL via plain sqlx", "events");
        self.minimal.print(RawTable::Minimal.label(), "rows");
        self.es_columns.print(RawTable::EsColumns.label(), "rows");
        self.minimal_unchecked.print("  minimal, pool not checking connections", "rows");
        self.execute.print_ratio("execute / raw minimal", &self.minimal);
        self.execute.print_ratio("execute / raw es columns", &self.es_columns);
        self.execute.print_ratio("execute / raw minimal, unchecked pool", &self.minimal_unchecked);
        self.ungrouped.print_ratio("execute, group commit off / raw minimal", &self.minimal);
        self.append.print_ratio("append / raw es columns", &self.es_columns);
        self.statement.print_ratio("append SQL / raw es columns", &self.es_columns);
        if let (Some(ours), Some(raw)) = (&self.execute.latencies, &self.minimal.latencies) {
            println!(
                "  {:<40} {:>8.2} x   (p99 execute {} / raw minimal {})",
                "p99 latency, execute / raw minimal",
                ours.p99.as_secs_f64() / raw.p99.as_secs_f64().max(f64::MIN_POSITIVE),
                ms(ours.p99),
                ms(raw.p99)
            );
        }
    }
}

/// One comparison: `es` against the event store alone and against raw
/// single-row INSERTs, with `writers` writers and `commands` commands per
/// run, in [`RUNS`] alternating runs. Every aggregate gets one command
/// first, so its actor is live (on the actor path) and its stream exists.
pub(crate) async fn compare(
    es: &Es,
    ungrouped_es: &Es,
    store: &PgEventStore,
    pool: &PgPool,
    writers: usize,
    commands: usize,
    label: &str,
) -> anyhow::Result<Comparison> {
    let schema = store.schema();
    let tag = format!("{label}{writers}");
    execute_runs(es, writers, 1, &tag).await?;
    execute_runs(ungrouped_es, writers, 1, &format!("{tag}-off")).await?;
    append_runs(store, writers, 3, &format!("warm-{tag}")).await?;
    statement_runs(pool, schema, writers, 3, &format!("warm-s-{tag}")).await?;
    // The same server and size, without sqlx's check of each connection
    // before it is handed out (a round trip), as es's own append
    // connections go: shows how much of a ratio that check is.
    let unchecked = PgPoolOptions::new()
        .max_connections(pool.options().get_max_connections())
        .test_before_acquire(false)
        .connect_lazy_with((*pool.connect_options()).clone());
    for (table, pool) in
        [(RawTable::Minimal, pool), (RawTable::EsColumns, pool), (RawTable::Minimal, &unchecked)]
    {
        let warm = format!("warm-raw-{tag}-{table:?}");
        raw_runs(pool, schema, table, writers, 3, 1, move |w| aggregate_id(&warm, w), raw_event).await?;
    }
    let per_round = commands / writers;
    let (mut execute, mut ungrouped, mut append, mut statement) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut minimal, mut es_columns, mut minimal_unchecked) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..RUNS {
        execute.push(execute_runs(es, writers, per_round, &tag).await?);
        ungrouped.push(execute_runs(ungrouped_es, writers, per_round, &format!("{tag}-off")).await?);
        append.push(append_runs(store, writers, per_round, &format!("{tag}a{round}")).await?);
        statement.push(statement_runs(pool, schema, writers, per_round, &format!("{tag}s{round}")).await?);
        let raw_sides = [
            (RawTable::Minimal, pool, &mut minimal),
            (RawTable::EsColumns, pool, &mut es_columns),
            (RawTable::Minimal, &unchecked, &mut minimal_unchecked),
        ];
        for (side, (table, pool, runs)) in raw_sides.into_iter().enumerate() {
            // Same stream names as `Es` uses (`counter-<id>`).
            let tag = format!("{}-{tag}r{round}-{side}", Counter::NAME);
            runs.push(
                raw_runs(
                    pool,
                    schema,
                    table,
                    writers,
                    per_round,
                    1,
                    move |w| aggregate_id(&tag, w),
                    raw_event,
                )
                .await?,
            );
        }
    }
    Ok(Comparison {
        execute: Runs::of(execute),
        ungrouped: Runs::of(ungrouped),
        append: Runs::of(append),
        statement: Runs::of(statement),
        minimal: Runs::of(minimal),
        es_columns: Runs::of(es_columns),
        minimal_unchecked: Runs::of(minimal_unchecked),
    })
}
