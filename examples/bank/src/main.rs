//! The bank: a narrated demo (the default), an HTTP service (`serve`) and a
//! command line inspector (`inspect`), on an SQLite file by default (see
//! `bank::store` for the choice of store).
//!
//! ```text
//! cargo run -p bank                       # the demo; run it twice: the second run finds the first's accounts
//! cargo run -p bank -- --memory           # the demo on the in-memory store
//! cargo run -p bank -- serve              # the HTTP API on 127.0.0.1:8080
//! cargo run -p bank -- inspect streams    # what the store holds (also: events STREAM, subscriptions, rebuild NAME)
//! ```

mod cli;

use std::path::PathBuf;

use bank::store::StoreChoice;
use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: see the crate's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The es bank: accounts, deposits, withdrawals and transfers, event sourced.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Keep everything in memory (also `BANK_STORE=memory`); nothing survives the process.
    #[arg(long, global = true)]
    memory: bool,
    /// The SQLite file (also `BANK_DB`; default: bank.db in the user's data directory).
    /// `DATABASE_URL` picks Postgres instead.
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the narrated demo (the default).
    Demo,
    /// Serve the HTTP API (and /openapi.json, /metrics) until Ctrl-C or SIGTERM.
    Serve {
        /// The address to listen on.
        #[arg(long, env = "BANK_ADDR", default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Mount the es inspector under /inspector.
        #[arg(long)]
        inspector: bool,
        /// Guard the inspector with this bearer token (implies --inspector).
        #[arg(long, env = "BANK_INSPECTOR_TOKEN", value_name = "TOKEN")]
        inspector_token: Option<String>,
    },
    /// Look into the store: streams, events, subscriptions; rebuild a projection.
    Inspect {
        #[command(subcommand)]
        what: cli::inspect::What,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let choice = StoreChoice::select(args.memory, args.db);
    match args.command.unwrap_or(Command::Demo) {
        Command::Demo => cli::demo::demo(&choice).await,
        Command::Serve { addr, inspector, inspector_token } => {
            let inspect = match (inspector, inspector_token) {
                (_, Some(token)) => cli::serve::Inspect::Guarded(token),
                (true, None) => cli::serve::Inspect::Open,
                (false, None) => cli::serve::Inspect::Off,
            };
            cli::serve::serve(&choice, addr, inspect).await
        }
        Command::Inspect { what } => cli::inspect::inspect(&choice, what).await,
    }
}
