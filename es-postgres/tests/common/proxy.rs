//! A loopback TCP proxy between sqlx and the test server, to make network
//! faults on demand: drop a connection the moment the server replies
//! ([`Proxy::arm`]), cut every connection and refuse new ones for a
//! while, as a server restart would ([`Proxy::outage`]), stop passing
//! anything on the connections open now without closing them, as a
//! stalled middlebox would ([`Proxy::stall`]), or that and the same for new
//! connections, as a network partition would ([`Proxy::partition`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// See the module docs. Dropping it stops accepting connections.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    armed: Arc<AtomicBool>,
    /// Notified when an armed proxy cut a connection.
    pub(crate) cut: Arc<Notify>,
    down: watch::Sender<bool>,
    /// How many connections were accepted so far (numbered from 1).
    opened: Arc<AtomicU64>,
    /// Connections numbered below this pass nothing (see [`Proxy::stall`]).
    stalled_below: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.down.send_replace(true);
    }
}

impl Proxy {
    /// A proxy to `upstream` (`host:port`) on a free loopback port.
    pub(crate) async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(Notify::new());
        let (down, _) = watch::channel(false);
        let (stalled_below, _) = watch::channel(0);
        let (armed_in, cut_in, down_in, stalled_in) =
            (armed.clone(), cut.clone(), down.clone(), stalled_below.clone());
        let opened = Arc::new(AtomicU64::new(0));
        let opened_in = opened.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let number = opened_in.fetch_add(1, Ordering::SeqCst) + 1;
                if *down_in.borrow() {
                    // Refused: the client sees its connection closed.
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let faults = Faults {
                    armed: armed_in.clone(),
                    cut: cut_in.clone(),
                    down: down_in.subscribe(),
                    stalled: Stalled { number, below: stalled_in.subscribe() },
                };
                tokio::spawn(relay(client, server, faults));
            }
        });
        Self { port, armed, cut, down, opened, stalled_below, accept }
    }

    /// A proxy to the server tests run against.
    pub(crate) async fn to_test_server() -> Self {
        let options: PgConnectOptions = super::database_url().parse().unwrap();
        Self::start(format!("{}:{}", options.get_host(), options.get_port())).await
    }

    /// Cuts the connection on which the server next replies.
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// While `down`: every open connection is closed and new ones are
    /// closed as soon as they are accepted.
    pub(crate) fn outage(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// From now on the connections open now pass nothing either way and
    /// stay open; bytes sent on them wait in the proxy. Connections opened
    /// later work.
    pub(crate) fn stall(&self) {
        let opened = self.opened.load(Ordering::SeqCst);
        self.stalled_below.send_replace(opened + 1);
    }

    /// From now on every connection, open or opened later, passes nothing
    /// either way and stays open, as behind a network partition: a new
    /// connection is accepted, but its greeting never reaches the server.
    pub(crate) fn partition(&self) {
        self.stalled_below.send_replace(u64::MAX);
    }

    /// Stalled connections pass again what waited and what follows, as a
    /// partition that heals.
    pub(crate) fn heal(&self) {
        self.stalled_below.send_replace(0);
    }

    /// Connect options for the test server through this proxy.
    pub(crate) fn options(&self) -> PgConnectOptions {
        let direct: PgConnectOptions = super::database_url().parse().unwrap();
        direct.host("127.0.0.1").port(self.port)
    }

    /// A pool of `max` connections through this proxy, giving up on a
    /// connection after `acquire` (no ping before each use: a statement is
    /// the first message on a reused connection).
    pub(crate) async fn pool(&self, max: u32, acquire: Duration) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max)
            .test_before_acquire(false)
            .acquire_timeout(acquire)
            .connect_with(self.options())
            .await
            .unwrap()
    }
}

/// What a relay is told by its proxy.
struct Faults {
    armed: Arc<AtomicBool>,
    cut: Arc<Notify>,
    down: watch::Receiver<bool>,
    stalled: Stalled,
}

/// Whether the connection numbered `number` is stalled.
#[derive(Clone)]
struct Stalled {
    number: u64,
    below: watch::Receiver<u64>,
}

impl Stalled {
    /// Returns once the connection may pass bytes (at once if not stalled).
    async fn passable(&mut self) {
        let number = self.number;
        // An error: the proxy is gone, and so is the stall.
        let _ = self.below.wait_for(|below| number >= *below).await;
    }
}

async fn relay(client: TcpStream, server: TcpStream, faults: Faults) {
    let Faults { armed, cut, mut down, mut stalled } = faults;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let mut upstream_stall = stalled.clone();
    let upstream = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
            upstream_stall.passable().await;
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if *down.borrow_and_update() {
            break;
        }
        let n = tokio::select! {
            read = from_server.read(&mut buf) => match read {
                Ok(n @ 1..) => n,
                _ => break,
            },
            changed = down.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        if armed.swap(false, Ordering::SeqCst) {
            // Drop everything of this connection without forwarding.
            cut.notify_one();
            break;
        }
        stalled.passable().await;
        if to_client.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}
