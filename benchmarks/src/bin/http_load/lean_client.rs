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
    addr: String,
    stream: BufReader<TcpStream>,
    request: Vec<u8>,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    /// Connects to `addr` (`host:port`) for `POST path` with `body` as JSON.
    pub(crate) async fn open(addr: &str, path: &str, body: &str) -> anyhow::Result<Self> {
        let stream = connect(addr).await?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Ok(Self { addr: addr.to_owned(), stream, request, line: String::new(), body: Vec::new() })
    }

    /// Sends the request and reads the whole response; an error unless
    /// its status is 2xx. A response saying `connection: close` makes the
    /// next request open a new connection.
    pub(crate) async fn post(&mut self) -> anyhow::Result<()> {
        self.stream.get_mut().write_all(&self.request).await?;
        let mut status = self.status_line().await?;
        let (mut length, mut close) = self.headers().await?;
        // Interim answers (100 Continue) come before the real one.
        while (100..200).contains(&status) {
            status = self.status_line().await?;
            (length, close) = self.headers().await?;
        }
        let length = match status {
            204 | 304 => 0,
            _ => length.context("a response without content-length")?,
        };
        self.body.resize(length, 0);
        self.stream.read_exact(&mut self.body).await?;
        if close {
            self.stream = connect(&self.addr).await?;
        }
        ensure!((200..300).contains(&status), "status {status}: {}", String::from_utf8_lossy(&self.body));
        Ok(())
    }

    /// Reads header lines up to the empty one: the content length, if
    /// given, and whether the server closes the connection after this.
    async fn headers(&mut self) -> anyhow::Result<(Option<usize>, bool)> {
        let (mut length, mut close) = (None, false);
        loop {
            self.line.clear();
            ensure!(self.stream.read_line(&mut self.line).await? > 0, "the connection closed mid-response");
            let header = self.line.trim_end();
            if header.is_empty() {
                return Ok((length, close));
            }
            let Some((name, value)) = header.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("a content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("a chunked response, which this client does not read");
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }

    async fn status_line(&mut self) -> anyhow::Result<u16> {
        self.line.clear();
        ensure!(self.stream.read_line(&mut self.line).await? > 0, "the connection closed");
        let code = self.line.split(' ').nth(1).context("a status line")?;
        code.parse().with_context(|| format!("a status code in {:?}", self.line))
    }
}

async fn connect(addr: &str) -> anyhow::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(BufReader::new(stream))
}
