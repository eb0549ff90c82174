//! A minimal HTTP/1.1 keep-alive client for the load: one connection per
//! client, the request's bytes built once, the response read by its
//! `Content-Length`. A load generator in the measured process should cost
//! as little as `wrk` does, so that the figure is the service's, not the
//! client library's (hyper's pooled client spent about as much CPU per
//! request as the service).

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One client's connection and the request it sends again and again.
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
    request: Vec<u8>,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    /// Connects to `addr` (`host:port`) for `POST path` with `body` as JSON.
    pub(crate) async fn open(addr: &str, path: &str, body: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Ok(Self { stream: BufReader::new(stream), request, line: String::new(), body: Vec::new() })
    }

    /// Sends the request and reads the whole response; an error unless
    /// its status is 2xx.
    pub(crate) async fn post(&mut self) -> anyhow::Result<()> {
        self.stream.get_mut().write_all(&self.request).await?;
        let status = self.status_line().await?;
        let mut length = None;
        loop {
            self.line.clear();
            ensure!(self.stream.read_line(&mut self.line).await? > 0, "the connection closed mid-response");
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>().context("a content-length")?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("a chunked response, which this client does not read");
                }
            }
        }
        let length = length.context("a response without content-length")?;
        self.body.resize(length, 0);
        self.stream.read_exact(&mut self.body).await?;
        ensure!((200..300).contains(&status), "status {status}: {}", String::from_utf8_lossy(&self.body));
        Ok(())
    }

    async fn status_line(&mut self) -> anyhow::Result<u16> {
        self.line.clear();
        ensure!(self.stream.read_line(&mut self.line).await? > 0, "the connection closed");
        let code = self.line.split(' ').nth(1).context("a status line")?;
        code.parse().with_context(|| format!("a status code in {:?}", self.line))
    }
}
