//! The intake mode's load generator: one alert per HTTP request, `in_flight` keep-alive
//! connections per school, all driven by tasks on one tokio thread — so the load itself costs a
//! fraction of a core, not a thread (and its stack and context switches) per connection.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use node::api::alerts::RaiseAlert;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection's share: alerts `from..to` of a school, one request after the other.
pub struct Share {
    pub addr: SocketAddr,
    pub from: usize,
    pub to: usize,
}

/// Sends every share's alerts over its own connection, all shares at once; fails on the first
/// request the node does not answer with 2xx.
pub fn run(shares: Vec<Share>, sample: fn(usize) -> RaiseAlert) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for s in shares {
            tasks.spawn(async move { send_share(s, sample).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.context("load task panicked")??;
        }
        Ok(())
    })
}

async fn send_share(s: Share, sample: fn(usize) -> RaiseAlert) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(node::config::admin_token_path(s.addr)).unwrap_or_default();
    let mut conn = TcpStream::connect(s.addr).await.with_context(|| format!("connecting to {}", s.addr))?;
    conn.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    for n in s.from..s.to {
        let body = serde_json::to_vec(&sample(n))?;
        let head = format!(
            "POST /api/alerts HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            s.addr,
            token.trim(),
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(&body);
        conn.write_all(&req).await?;
        let status = read_response(&mut conn, &mut buf).await?;
        if !(200..300).contains(&status) {
            bail!("{} answered {status}: {}", s.addr, String::from_utf8_lossy(&buf));
        }
    }
    Ok(())
}

/// Reads one HTTP/1.1 response with a `content-length` into `buf` (its body); its status.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("the node closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status line")?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no content-length")?;
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("the node closed the connection mid-answer");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..head_end);
    Ok(status)
}
