//! Append rates of the Redis event store against raw `RPUSH` and raw `XADD`
//! of the same events, on one shared multiplexed connection: 1 and 8
//! writers, single events and 100-event batches. Then, when this machine
//! has a `redis-server` binary, the same appends on a throwaway server with
//! `appendonly yes` and `appendfsync always`: what durability costs.
//!
//! Run: `cargo run --release -p es-benchmarks --bin redis_append`
//! (REDIS_URL optional; default `redis://127.0.0.1:6379`). Everything runs
//! in a fresh namespace `es_bench_<uuid>`, deleted at the end.
//!
//! Each figure is the median of [`ROUNDS`] rounds with the slowest and the
//! fastest round beside it. In each round the three contenders run back to
//! back, and each ratio is taken within one round (so drifting background
//! load hits both sides alike); the ratio shown is the median of those.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use es_benchmarks::{run_writers, Run};
use es_core::store::{EventStore, ExpectedVersion, NewEvent};
use es_core::{StreamId, StreamVersion};
use es_redis::{RedisConnection, RedisEventStore, RedisNamespace};
use serde_json::json;

/// Rounds per figure (the median is reported, with min and max).
const ROUNDS: usize = 5;
/// Single-event appends per round, over all writers.
const SINGLE_PER_ROUND: usize = 4_000;
/// Events per batched append.
const BATCH: usize = 100;
/// Batched appends per round, over all writers.
const BATCHES_PER_ROUND: usize = 80;
/// The same with `appendfsync always` (each append waits for an fsync).
const DURABLE_SINGLE_PER_ROUND: usize = 800;
const DURABLE_BATCHES_PER_ROUND: usize = 40;

fn event(n: usize) -> NewEvent {
    NewEvent::new(
        "account",
        "MoneyDeposited",
        1,
        json!({ "account": "acc-0001", "amount": n, "reference": format!("ref-{n:08}") }),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    /// `EventStore::append` with an exact expected version.
    Es,
    /// One `RPUSH` of the events' JSON per append (one command for a batch).
    Rpush,
    /// One `XADD` per event with the fields the store writes, pipelined for
    /// a batch (not atomic).
    Xadd,
}

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Self::Es => "EventStore::append",
            Self::Rpush => "raw RPUSH",
            Self::Xadd => "raw XADD",
        }
    }
}

/// One contender's run of `writers` writers, `ops` appends in all, `batch`
/// events each, into streams `{tag}-{writer}`.
async fn run(
    store: &RedisEventStore,
    contender: Contender,
    writers: usize,
    ops: usize,
    batch: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let store = store.clone();
    let tag = tag.to_owned();
    let namespace = store.namespace().as_str().to_owned();
    run_writers(writers, ops / writers, batch, move |w, i| {
        let store = store.clone();
        let stream = format!("{tag}-{w}");
        let namespace = namespace.clone();
        async move {
            let events: Vec<NewEvent> = (0..batch).map(|n| event(i * batch + n)).collect();
            let mut conn = store.connection().manager();
            match contender {
                Contender::Es => {
                    let expected = match i * batch {
                        0 => ExpectedVersion::NoStream,
                        v => ExpectedVersion::Exact(StreamVersion(v as u64)),
                    };
                    store.append(&StreamId::new(stream), expected, events).await?;
                }
                Contender::Rpush => {
                    let mut cmd = redis::cmd("RPUSH");
                    cmd.arg(format!("{{{namespace}}}:raw-list:{stream}"));
                    for e in &events {
                        cmd.arg(serde_json::to_string(e)?);
                    }
                    let _: i64 = cmd.query_async(&mut conn).await?;
                }
                Contender::Xadd => {
                    let key = format!("{{{namespace}}}:raw-stream:{stream}");
                    let mut pipe = redis::pipe();
                    for (n, e) in events.iter().enumerate() {
                        pipe.cmd("XADD")
                            .arg(&key)
                            .arg("*")
                            .arg("id")
                            .arg(e.event_id.to_string())
                            .arg("stream")
                            .arg(&stream)
                            .arg("version")
                            .arg(i * batch + n + 1)
                            .arg("aggregate")
                            .arg(&e.aggregate_type)
                            .arg("type")
                            .arg(&e.event_type)
                            .arg("schema")
                            .arg(e.schema_version)
                            .arg("payload")
                            .arg(e.payload.as_str())
                            .arg("metadata")
                            .arg("{}")
                            .arg("at")
                            .arg(0)
                            .ignore();
                    }
                    let () = pipe.query_async(&mut conn).await?;
                }
            }
            Ok(())
        }
    })
    .await
}

/// The median, the smallest and the largest of `values`.
fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    (median, values[0], values[values.len() - 1])
}

/// Runs every contender `ROUNDS` times (alternating within each round) and
/// prints rates and per-round ratios against the first contender.
async fn compare(
    store: &RedisEventStore,
    contenders: &[Contender],
    writers: usize,
    ops: usize,
    batch: usize,
    tag: &str,
) -> anyhow::Result<()> {
    // Warm up: the connection, the scripts' cache on the server.
    for &contender in contenders {
        run(store, contender, writers, writers * 2, batch, &format!("{tag}-warm")).await?;
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut p50s: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    for round in 0..ROUNDS {
        for (c, &contender) in contenders.iter().enumerate() {
            let result = run(store, contender, writers, ops, batch, &format!("{tag}-r{round}")).await?;
            rates[c].push(result.rate());
            if let Some(l) = result.latencies {
                p50s[c].push(l.p50);
            }
        }
    }
    let unit = if batch == 1 { "single events" } else { "100-event batches" };
    println!(" {writers} writer(s), {unit}, {ops} appends per round:");
    for (c, &contender) in contenders.iter().enumerate() {
        let (median, min, max) = spread(&mut rates[c].clone());
        p50s[c].sort_unstable();
        let p50 = p50s[c].get(p50s[c].len() / 2).copied().unwrap_or_default();
        println!(
            "  {:<22} {median:>9.0} events/s  (min {min:>7.0}, max {max:>7.0})  append p50 {:.3} ms",
            contender.label(),
            p50.as_secs_f64() * 1e3
        );
    }
    for (c, &contender) in contenders.iter().enumerate().skip(1) {
        let mut ratios: Vec<f64> = rates[0].iter().zip(&rates[c]).map(|(es, raw)| 100.0 * es / raw).collect();
        let (median, min, max) = spread(&mut ratios);
        println!(
            "  {:<22} {median:>9.0} %         (min {min:>7.0}, max {max:>7.0})",
            format!("es / {}", contender.label())
        );
    }
    Ok(())
}

async fn server_info(redis: &RedisConnection) -> anyhow::Result<String> {
    let mut conn = redis.manager();
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown version")
        .trim()
        .to_owned();
    let config: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("appendonly").query_async(&mut conn).await.unwrap_or_default();
    let fsync: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("appendfsync").query_async(&mut conn).await.unwrap_or_default();
    Ok(format!(
        "Redis {version}, appendonly {}, appendfsync {}",
        config.get(1).map_or("?", String::as_str),
        fsync.get(1).map_or("?", String::as_str)
    ))
}

/// The whole comparison on one server.
async fn suite(redis: RedisConnection, durable: bool) -> anyhow::Result<()> {
    let namespace = RedisNamespace::new(format!("es_bench_{}", uuid::Uuid::now_v7().simple()))?;
    println!("{} (namespace {namespace})", server_info(&redis).await?);
    let store = RedisEventStore::new(redis.clone(), namespace.clone());
    let all = [Contender::Es, Contender::Rpush, Contender::Xadd];
    let (single, batches) = if durable {
        (DURABLE_SINGLE_PER_ROUND, DURABLE_BATCHES_PER_ROUND)
    } else {
        (SINGLE_PER_ROUND, BATCHES_PER_ROUND)
    };
    let outcome = async {
        for writers in [1usize, 8] {
            compare(&store, &all, writers, single, 1, &format!("s{writers}")).await?;
        }
        for writers in [1usize, 8] {
            compare(&store, &all, writers, batches, BATCH, &format!("b{writers}")).await?;
        }
        anyhow::Ok(())
    }
    .await;
    es_redis::delete_namespace(&redis, &namespace).await?;
    outcome
}

/// A throwaway `redis-server` with `appendfsync always`, in a temporary
/// directory on disk; stopped and removed when dropped.
struct DurableServer {
    child: Child,
    dir: std::path::PathBuf,
    url: String,
}

impl DurableServer {
    fn start() -> anyhow::Result<Option<Self>> {
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
            return Ok(None);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("es-bench-redis-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Some(Self { child, dir, url: format!("redis://127.0.0.1:{port}") }))
    }

    /// Connects, retrying while the server starts (at most 10 s).
    async fn connect(&self) -> anyhow::Result<RedisConnection> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match RedisConnection::connect(&self.url).await {
                Ok(redis) => return Ok(redis),
                Err(e) if std::time::Instant::now() > deadline => {
                    anyhow::bail!("the throwaway redis-server at {} never answered: {e}", self.url)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

impl Drop for DurableServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = RedisConnection::connect(&url).await.map_err(|e| {
        anyhow::anyhow!("cannot reach Redis at {url} ({e}): set REDIS_URL or run a server on 127.0.0.1:6379")
    })?;
    println!("redis_append: {url}, one shared connection, median of {ROUNDS} rounds");
    suite(redis, false).await?;

    match DurableServer::start()? {
        None => println!("\nno redis-server binary here: the appendfsync always figures are left out"),
        Some(server) => {
            println!(
                "\nthe same on a throwaway server that fsyncs every write (AOF in {}):",
                server.dir.display()
            );
            let redis = server.connect().await?;
            suite(redis, true).await?;
        }
    }
    Ok(())
}
