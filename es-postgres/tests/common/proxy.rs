//! A loopback TCP proxy between sqlx and the test server, to make network
//! faults on demand: drop a connection the moment the server replies
//! ([`Proxy::arm`]), or cut every connection and refuse new ones for a
//! while, as a server restart or a network partition would
//! ([`Proxy::outage`]).

use std::sync::atomic::{AtomicBool, Ordering};
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
        let (armed_in, cut_in, down_in) = (armed.clone(), cut.clone(), down.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *down_in.borrow() {
                    // Refused: the client sees its connection closed.
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                tokio::spawn(relay(client, server, armed_in.clone(), cut_in.clone(), down_in.subscribe()));
            }
        });
        Self { port, armed, cut, down, accept }
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

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    cut: Arc<Notify>,
    mut down: watch::Receiver<bool>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let upstream = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
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
        if to_client.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}
