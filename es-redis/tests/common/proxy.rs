//! A loopback TCP proxy between the stores and the test server, for
//! faults: it can stop forwarding replies (a server that stops answering,
//! connections left open), cut a connection at the server's reply
//! without forwarding that reply (a network failure after the server
//! acted), or hold everything both ways on every connection until told
//! to go on (a network partition that heals: what was sent arrives late).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Which reply the proxy cuts.
enum Trigger {
    Off,
    /// The next reply on any connection.
    NextReply,
    /// The reply to the next request that contains these bytes.
    After(Vec<u8>),
}

pub(crate) struct Proxy {
    pub(crate) port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    mute: AtomicBool,
    /// While set, nothing passes either way (see [`Proxy::partition`]).
    partitioned: watch::Sender<bool>,
    trigger: Mutex<Trigger>,
    /// Notified when the proxy cut a connection.
    cut: Notify,
}

impl Proxy {
    /// A proxy to the server of [`super::redis_url`], forwarding everything.
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = super::redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
        let shared = Arc::new(Shared {
            mute: AtomicBool::new(false),
            partitioned: watch::Sender::new(false),
            trigger: Mutex::new(Trigger::Off),
            cut: Notify::new(),
        });
        let relayed = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { return };
                tokio::spawn(relay(client, server, relayed.clone()));
            }
        });
        Self { port, shared }
    }

    /// The URL to connect to the server through the proxy.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on, replies are read from the server and dropped.
    pub(crate) fn mute(&self) {
        self.shared.mute.store(true, Ordering::SeqCst);
    }

    /// From now on nothing passes either way, on the connections open now
    /// and on new ones (accepted, but their first bytes wait), and
    /// connections stay open: what is sent waits in the proxy.
    pub(crate) fn partition(&self) {
        self.shared.partitioned.send_replace(true);
    }

    /// What waited passes, and everything after it, as a partition heals.
    pub(crate) fn heal(&self) {
        self.shared.partitioned.send_replace(false);
    }

    /// Cuts (closes both sides of) the connection on which the server next
    /// replies, without forwarding the reply; later connections are
    /// forwarded as before.
    pub(crate) fn arm(&self) {
        *self.shared.trigger.lock().unwrap() = Trigger::NextReply;
    }

    /// Like [`arm`](Proxy::arm), for the reply to the next request that
    /// contains `marker` (requests before it pass).
    pub(crate) fn arm_after(&self, marker: &[u8]) {
        *self.shared.trigger.lock().unwrap() = Trigger::After(marker.to_vec());
    }

    /// Waits (at most `limit`) until the proxy cut a connection.
    pub(crate) async fn until_cut(&self, limit: std::time::Duration) {
        assert!(self.cut_within(limit).await, "the proxy never cut a reply");
    }

    /// Whether the proxy cut a connection within `limit`.
    pub(crate) async fn cut_within(&self, limit: std::time::Duration) -> bool {
        tokio::time::timeout(limit, self.shared.cut.notified()).await.is_ok()
    }
}

/// Returns once no partition holds the proxy's connections.
async fn passable(partitioned: &mut watch::Receiver<bool>) {
    // An error: the proxy is gone, and so is the partition.
    let _ = partitioned.wait_for(|held| !held).await;
}

async fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Set (before the request goes on) when this connection's next reply
    // is to be cut.
    let pending = Arc::new(AtomicBool::new(false));
    let (watch, marked) = (shared.clone(), pending.clone());
    let (mut held_up, mut held_down) = (shared.partitioned.subscribe(), shared.partitioned.subscribe());
    let upstream = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buffer).await {
            passable(&mut held_up).await;
            {
                let mut trigger = watch.trigger.lock().unwrap();
                if let Trigger::After(marker) = &*trigger {
                    if buffer[..n].windows(marker.len()).any(|w| w == marker.as_slice()) {
                        *trigger = Trigger::Off;
                        marked.store(true, Ordering::SeqCst);
                    }
                }
            }
            if to_server.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from_server.read(&mut buffer).await {
        let cut_here = pending.load(Ordering::SeqCst) || {
            let mut trigger = shared.trigger.lock().unwrap();
            let next = matches!(*trigger, Trigger::NextReply);
            if next {
                *trigger = Trigger::Off;
            }
            next
        };
        if cut_here {
            // Dropping both halves closes the connection on both sides.
            upstream.abort();
            shared.cut.notify_one();
            return;
        }
        passable(&mut held_down).await;
        if !shared.mute.load(Ordering::SeqCst) && to_client.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}
