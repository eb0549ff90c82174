//! The bank service under load: deposits over HTTP against `Es::execute`
//! called directly, in the same process and the same run.
//!
//! For the in-memory store and Postgres, at 1, 16 and 64 concurrent
//! clients (each on its own account, keep-alive connections to the service
//! on 127.0.0.1), prints requests/s as the median of 5 rounds with min and
//! max, p50/p99 over all rounds, and the HTTP rate as a share of the direct
//! rate: the cost of the HTTP layer (routing, JSON, problem mapping, the
//! request log is off) with the load generator on the same cores. The
//! deposits go through a minimal keep-alive HTTP/1.1 client of ours
//! (`http_load/lean_client.rs`, one connection per client, as `wrk` would
//! load the service), so the client's own cost stays small. Every round
//! starts with the read side caught up (its projections keep working
//! during the round, on the same cores), so no round pays for the backlog
//! the round before left. Each round has two clocks: until the last
//! answer, and until the read side has also handled the round's events.
//! The ratio of the second is the one of equal work: callers that outrun
//! the read side (the direct path does) end a round with a backlog the
//! first clock leaves out and a sustained load would pay. At 64
//! clients it also runs HTTP with an inspector live feed (SSE) connected
//! and `/metrics` scraped every 250 ms, against plain HTTP, in pairs of
//! rounds (the cost is the median of the pairs' ratios).
//!
//! Run: `cargo run --release -p es-benchmarks --bin http_load`
//! (DATABASE_URL optional; default `postgres://postgres@127.0.0.1:5432/postgres`;
//! a fresh schema is used and dropped at the end). `memory` or `postgres`
//! as argument runs one store only.

#[path = "http_load/lean_client.rs"]
mod lean_client;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::{Request, StatusCode};
use bank::http::ServiceConfig;
use bank::store::StoreChoice;
use bank::{Deposit, OpenAccount, VerifyAccount};
use bytes::Bytes;
use es_benchmarks::pg::{admin_pool, database_url, drop_schema};
use es_benchmarks::{ms, run_writers, Run};
use es_core::Es;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lean_client::Connection;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The bank service's allocator (see `examples/bank/Cargo.toml`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rounds per comparison; the sides alternate within each round.
const ROUNDS: usize = 5;
/// Pairs of rounds (plain, observed) for the cost of observing: a few per
/// cent, which single rounds vary by more than, so it takes more pairs and
/// the median of each pair's ratio.
const OBSERVED_PAIRS: usize = 15;
const CLIENTS: [usize; 3] = [1, 16, 64];

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The service under test: its application, address and a client.
struct Service {
    es: Es,
    /// `host:port` of the listener.
    addr: String,
    base: String,
    client: HttpClient,
    server: tokio::task::JoinHandle<()>,
}

impl Service {
    async fn start(es: Es, metrics: PrometheusHandle) -> anyhow::Result<Self> {
        let config = ServiceConfig::default().metrics(metrics).inspector(bank::http::inspector(es.clone()));
        let app = bank::http::router(es.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let base = format!("http://{addr}");
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the server stopped: {error}");
            }
        });
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(128).build_http();
        Ok(Self { es, addr, base, client, server })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Bytes> {
        let request = Request::builder().uri(format!("{}{path}", self.base)).body(Full::default())?;
        let response = self.client.request(request).await?;
        anyhow::ensure!(response.status() == StatusCode::OK, "{path}: {}", response.status());
        Ok(response.into_body().collect().await?.to_bytes())
    }
}

/// Opens and verifies `count` accounts named `{run}-{n}`.
async fn open_accounts(es: &Es, run: &str, count: usize) -> anyhow::Result<()> {
    for n in 0..count {
        let account_id = format!("{run}-{n}");
        let opened = es.execute(OpenAccount { account_id: account_id.clone(), owner: "load".into() }).await?;
        let code = opened
            .events
            .iter()
            .find_map(|e| match e {
                bank::AccountEvent::AccountOpened(o) => Some(o.verification_code.clone()),
                _ => None,
            })
            .context("an AccountOpened event")?;
        es.execute(VerifyAccount { account_id, code }).await?;
    }
    Ok(())
}

/// Waits until every subscription has handled every stored event, so that
/// each round starts from the same quiet state and no round pays for the
/// read side's backlog of the one before.
async fn settle(es: &Es) -> anyhow::Result<()> {
    let head = es.event_store().head_position().await?;
    let Some(read_side) = es.read_side() else { return Ok(()) };
    for status in read_side.statuses() {
        read_side.wait_for(&status.name, head, Duration::from_secs(120)).await?;
    }
    Ok(())
}

async fn http_round(
    service: &Arc<Service>,
    run: &str,
    clients: usize,
    per_client: usize,
) -> anyhow::Result<Run> {
    let paths = (0..clients).map(|client| format!("/accounts/{run}-{client}/deposits")).collect();
    settle(&service.es).await?;
    post_round(&service.addr, paths, per_client).await
}

/// A round's clocks: until the last answer, and until the read side has
/// also handled the round's events.
struct Timed {
    answered: Run,
    caught_up: Run,
}

/// Stops a second clock for `answered` once the read side has handled
/// every event the round appended. A side whose callers outrun the read
/// side leaves it a backlog when the round ends (the direct path at 16 and
/// 64 callers left 10 to 115 ms in trials), which its answers' rate does
/// not pay for and a sustained load would.
async fn caught_up(es: &Es, answered: Run) -> anyhow::Result<Timed> {
    let settling = Instant::now();
    settle(es).await?;
    let caught_up = Run {
        events: answered.events,
        elapsed: answered.elapsed + settling.elapsed(),
        latencies: None,
        samples: Vec::new(),
    };
    Ok(Timed { answered, caught_up })
}

/// Each client POSTs a deposit's body to its path `per_client` times, one
/// request at a time over its own keep-alive connection.
async fn post_round(addr: &str, paths: Vec<String>, per_client: usize) -> anyhow::Result<Run> {
    // Connections are opened before the round's clock starts, one per client.
    let clients = paths.len();
    let mut connections = Vec::with_capacity(clients);
    for path in paths {
        connections.push(tokio::sync::Mutex::new(Connection::open(addr, &path, r#"{"amount":1}"#).await?));
    }
    let connections = Arc::new(connections);
    run_writers(clients, per_client, 1, move |client, _| {
        let connections = Arc::clone(&connections);
        async move { connections[client].lock().await.post().await }
    })
    .await
}

/// The HTTP floor of this machine: an axum server on 127.0.0.1 whose one
/// route answers at once with a body of a deposit's answer's size, loaded
/// by the same client. What it costs is the listener, hyper, routing, the
/// client and the kernel's loopback, with no command behind it; the share
/// of the direct rate it reaches bounds what the bank service could.
struct Floor {
    addr: String,
    server: tokio::task::JoinHandle<()>,
}

impl Floor {
    async fn start() -> anyhow::Result<Self> {
        let answer = format!(
            r#"{{"command_id":"{}","aggregate_id":"load-0","version":100,"position":100000,"events":["MoneyDeposited"]}}"#,
            uuid::Uuid::now_v7()
        );
        let app = axum::Router::new().route(
            "/floor/{id}",
            axum::routing::post(move || {
                let answer = answer.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], answer) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the floor server stopped: {error}");
            }
        });
        Ok(Self { addr, server })
    }

    async fn round(&self, clients: usize, per_client: usize) -> anyhow::Result<Run> {
        post_round(&self.addr, (0..clients).map(|client| format!("/floor/{client}")).collect(), per_client)
            .await
    }
}

async fn direct_round(es: &Es, run: &str, clients: usize, per_client: usize) -> anyhow::Result<Run> {
    settle(es).await?;
    let (es, run) = (es.clone(), run.to_owned());
    run_writers(clients, per_client, 1, move |client, _| {
        let (es, account_id) = (es.clone(), format!("{run}-{client}"));
        async move {
            es.execute(Deposit { account_id, amount: 1 }).await?;
            Ok(())
        }
    })
    .await
}

/// An inspector live feed and `/metrics` scrapes, until `stop` is set.
/// Returns how many body chunks of the feed arrived (each carries the events
/// of one read) and how many scrapes ran.
fn observe(
    service: &Arc<Service>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<anyhow::Result<(u64, u64)>> {
    let service = Arc::clone(service);
    tokio::spawn(async move {
        let request = Request::builder()
            .uri(format!("{}/inspector/api/log/live", service.base))
            .body(Full::default())?;
        let mut feed = service.client.request(request).await?.into_body();
        let (mut frames, mut scrapes) = (0u64, 0u64);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                frame = feed.frame() => match frame {
                    Some(frame) => { frame?; frames += 1; }
                    None => anyhow::bail!("the live feed ended"),
                },
                _ = tick.tick() => {
                    service.get("/metrics").await?;
                    scrapes += 1;
                }
            }
        }
        Ok((frames, scrapes))
    })
}

fn median_min_max(mut rates: Vec<f64>) -> (f64, f64, f64) {
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], rates[0], rates[rates.len() - 1])
}

fn line(label: &str, rounds: Vec<Run>) -> f64 {
    let rates: Vec<f64> = rounds.iter().map(Run::rate).collect();
    let (median, min, max) = median_min_max(rates);
    let merged = Run::merge(rounds);
    let latencies =
        merged.latencies.map(|l| format!("p50 {}   p99 {}", ms(l.p50), ms(l.p99))).unwrap_or_default();
    println!("  {label:<34} {median:>8.0} req/s (min {min:.0}, max {max:.0})   {latencies}");
    median
}

/// `floor`: also load a server that answers at once, beside the others.
async fn bench_store(
    name: &str,
    es: Es,
    metrics: PrometheusHandle,
    scale: usize,
    floor: bool,
) -> anyhow::Result<()> {
    println!("\n{name}");
    let service = Arc::new(Service::start(es.clone(), metrics).await?);
    let floor = if floor { Some(Floor::start().await?) } else { None };
    for clients in CLIENTS {
        let run = format!("load-{}-{clients}", uuid::Uuid::now_v7().simple());
        open_accounts(&es, &run, clients).await?;
        let per_client = (scale * clients.min(16) / clients).max(20);
        // Warm up: actors live, connections open.
        http_round(&service, &run, clients, 5).await?;
        direct_round(&es, &run, clients, 5).await?;
        let (mut http, mut direct, mut floors) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            http.push(caught_up(&es, http_round(&service, &run, clients, per_client).await?).await?);
            direct.push(caught_up(&es, direct_round(&es, &run, clients, per_client).await?).await?);
            if let Some(floor) = &floor {
                floors.push(floor.round(clients, per_client).await?);
            }
        }
        println!(" {clients} client(s), {per_client} deposits each per round, {ROUNDS} rounds:");
        let (http, http_caught_up): (Vec<Run>, Vec<Run>) =
            http.into_iter().map(|t| (t.answered, t.caught_up)).unzip();
        let (direct, direct_caught_up): (Vec<Run>, Vec<Run>) =
            direct.into_iter().map(|t| (t.answered, t.caught_up)).unzip();
        let http_rate = line("HTTP POST /deposits", http);
        let direct_rate = line("Es::execute directly", direct);
        println!("  {:<34} {:>7.0} %", "HTTP / direct, answers", 100.0 * http_rate / direct_rate);
        let http_rate = line("HTTP, read side caught up", http_caught_up);
        let direct_rate = line("direct, read side caught up", direct_caught_up);
        println!("  {:<34} {:>7.0} %", "HTTP / direct, read side caught up", 100.0 * http_rate / direct_rate);
        if !floors.is_empty() {
            let floor_rate = line("HTTP floor (a route answering at once)", floors);
            println!(
                "  {:<34} {:>7.0} %",
                "floor / direct, read side caught up",
                100.0 * floor_rate / direct_rate
            );
        }
        if clients == 64 {
            let (mut plain, mut observed) = (Vec::new(), Vec::new());
            let (mut frames, mut scrapes) = (0, 0);
            for pair in 0..OBSERVED_PAIRS {
                // Which round of a pair goes first alternates, so a drift of
                // the machine's speed within a pair does not count as cost.
                if pair % 2 == 0 {
                    plain.push(http_round(&service, &run, clients, per_client).await?);
                }
                let stop = Arc::new(AtomicBool::new(false));
                let observer = observe(&service, Arc::clone(&stop));
                observed.push(http_round(&service, &run, clients, per_client).await?);
                stop.store(true, Ordering::Relaxed);
                // The observer notices `stop` at its next frame or tick.
                let (f, s) = tokio::time::timeout(Duration::from_secs(5), observer).await???;
                frames += f;
                scrapes += s;
                if pair % 2 == 1 {
                    plain.push(http_round(&service, &run, clients, per_client).await?);
                }
            }
            let costs: Vec<f64> =
                plain.iter().zip(&observed).map(|(p, o)| 100.0 * (1.0 - o.rate() / p.rate())).collect();
            line("HTTP", plain);
            line("HTTP + live feed + /metrics scrapes", observed);
            let (median, min, max) = median_min_max(costs);
            println!(
                "  {:<34} {median:>7.1} % (min {min:.1}, max {max:.1}; median of {OBSERVED_PAIRS} pairs of rounds; {frames} feed chunks, {scrapes} scrapes)",
                "cost of observing",
            );
        }
    }
    service.server.abort();
    if let Some(floor) = floor {
        floor.server.abort();
    }
    service.es.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let only = std::env::args().nth(1);
    let metrics = PrometheusBuilder::new().install_recorder().context("the metrics recorder")?;
    println!(
        "deposits over HTTP vs Es::execute in the same process ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if only.as_deref().is_none_or(|s| s == "memory") {
        let es = bank::store::open(&StoreChoice::Memory, |read_side| read_side).await?.es;
        bench_store("in-memory store", es, metrics.clone(), 2_000, true).await?;
    }
    if only.as_deref().is_none_or(|s| s == "postgres") {
        let url = database_url();
        let admin = admin_pool(&url).await?;
        let schema = format!("es_bench_{}", uuid::Uuid::now_v7().simple());
        let choice = StoreChoice::Postgres { url, schema: schema.clone() };
        let es = bank::store::open(&choice, |read_side| read_side).await?.es;
        let result = bench_store("Postgres", es, metrics, 300, false).await;
        drop_schema(&admin, &es_postgres::PgSchema::new(schema)?).await?;
        result?;
    }
    Ok(())
}
