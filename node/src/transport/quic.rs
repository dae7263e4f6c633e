//! QUIC + mutual TLS transport: one quinn endpoint per node; per link one bidirectional control
//! stream (opened by the dialer, high priority) and one unidirectional bulk stream each way
//! (opened on first use, low priority), so keep-alives and acks never wait behind bulk data.
//!
//! Every connection authenticates both ends with certificates from the federation CA
//! ([`crate::tls`]). The dialer names the node it expects (`peer.dns_name()` is the TLS server
//! name, and the verified certificate is read back and compared); the acceptor learns the dialer's
//! node id from its verified certificate, never from anything the dialer says.
//!
//! Framing on the stream: a 4-byte big-endian length, then that many bytes. Frames above
//! [`FRAME_BYTES_MAX`] are refused by the sender and, without allocating, by the receiver.
//!
//! Handshakes of incoming connections run concurrently in a background task (bounded), so one slow
//! or silent dialer cannot stall [`Transport::accept`] for everyone else.
//!
//! TLS 1.3 gotcha: a dialer whose certificate the server rejects still sees its handshake
//! succeed; the rejection shows as an error on its first `recv` (or `send`). The application's
//! hello/ack is what proves a link is up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::wire::FRAME_BYTES_MAX;
use quinn::{ConnectError, ConnectionError, ReadError, VarInt, WriteError};
use rustls::pki_types::CertificateDer;
use tokio::sync::{Mutex, mpsc, watch};
use topology::NodeId;
use tracing::warn;

use super::{BoxFuture, Connection, FrameReceiver, FrameSender, StickyEnd, Transport, TransportError, TurnedAway};
use crate::tls::{self, NodeCredentials};

/// Time an incoming connection gets to finish its TLS handshake (a real peer needs a few round
/// trips; an abandoned attempt must not hold its slot for long).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Time an authenticated connection then gets to open its stream (its dialer sends the first frame
/// at once). No handshake slot is held while waiting for it.
const FIRST_STREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Incoming handshakes in progress at once; more are refused at once (the dialer retries).
const HANDSHAKES_IN_FLIGHT: usize = 64;
/// Incoming handshakes in progress at once from one IP address.
const HANDSHAKES_PER_SOURCE: usize = 8;
/// With more handshakes than this in progress, a source must first prove it owns its address
/// (a QUIC Retry, which costs this node no state): spoofed or abandoned Initials then take no slot.
const RETRY_ABOVE: usize = 4;
/// Incoming attempts quinn buffers before this node has looked at them, and their bytes.
const QUINN_INCOMING_MAX: usize = 1024;
const QUINN_INCOMING_BYTES: u64 = 64 * 1024;
const QUINN_INCOMING_BYTES_TOTAL: u64 = 8 * 1024 * 1024;
/// Under a flood, the accept loop logs what it turned away at most this often.
const FLOOD_LOG_EVERY: Duration = Duration::from_secs(10);
/// Accepted connections waiting for [`Transport::accept`].
const ACCEPTED_QUEUE: usize = 16;

/// Application close codes.
const CLOSE_SHUTDOWN: u32 = 0;
const CLOSE_BY_APP: u32 = 1;
const CLOSE_IDENTITY: u32 = 2;
const CLOSE_REVOKED: u32 = 3;
/// Close reasons are cut to this many bytes so the close frame fits in one packet.
const CLOSE_REASON_MAX: usize = 512;

/// Length prefix size.
const PREFIX: usize = 4;

/// Stream priorities (quinn sends higher first): control frames overtake queued bulk data.
const CONTROL_PRIORITY: i32 = 1;
const BULK_PRIORITY: i32 = 0;
/// The unidirectional streams a peer opens: bulk and files.
const UNI_STREAMS: usize = 2;
/// Frames read ahead per lane before the reader waits for the link to take them.
const LANE_QUEUE: usize = 16;

/// The production [`Transport`]: QUIC with mutual TLS on one UDP socket, dialing and accepting.
pub struct QuicTransport {
    node: NodeId,
    endpoint: quinn::Endpoint,
    accepted: Mutex<mpsc::Receiver<Result<Connection, TransportError>>>,
    shutdown: watch::Sender<bool>,
    acceptor: tokio::task::JoinHandle<()>,
    counts: Arc<Counts>,
    revoked: Arc<std::sync::Mutex<Revoked>>,
}

/// Certificates refused on sight (fingerprints), and the live connections by the fingerprint of
/// the certificate their peer presented, so that revoking one closes them.
#[derive(Default)]
struct Revoked {
    set: std::collections::HashSet<String>,
    live: HashMap<String, Vec<quinn::Connection>>,
}

impl Revoked {
    /// Refuses a revoked peer; otherwise remembers its connection under the fingerprint.
    fn admit(this: &std::sync::Mutex<Revoked>, conn: &quinn::Connection, peer: NodeId) -> Result<(), TransportError> {
        let Some(fp) = leaf_fingerprint(conn) else { return Ok(()) };
        let mut r = this.lock().unwrap_or_else(|e| e.into_inner());
        if r.set.contains(&fp) {
            conn.close(VarInt::from_u32(CLOSE_REVOKED), b"certificate revoked");
            return Err(TransportError::Identity(format!(
                "{peer} at {}: 证书已吊销（certificate {} revoked）",
                conn.remote_address(),
                &fp[..16]
            )));
        }
        let live = r.live.entry(fp).or_default();
        live.retain(|c| c.close_reason().is_none());
        live.push(conn.clone());
        Ok(())
    }
}

/// The SHA-256 fingerprint of the peer's leaf certificate.
fn leaf_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let chain = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.first().map(|leaf| tls::cert_fingerprint(leaf))
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("node", &self.node)
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// Binds one endpoint on `addr` that both accepts (client certificate required) and dials
    /// (presenting `creds`). Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, creds: &NodeCredentials) -> Result<QuicTransport, TransportError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| TransportError::Io("QuicTransport::bind needs a tokio runtime".into()))?;
        let tls_err = |e: tls::TlsError| TransportError::Io(e.to_string());
        let mut server = tls::server_config(creds).map_err(tls_err)?;
        server
            .max_incoming(QUINN_INCOMING_MAX)
            .incoming_buffer_size(QUINN_INCOMING_BYTES)
            .incoming_buffer_size_total(QUINN_INCOMING_BYTES_TOTAL);
        let client = tls::client_config(creds).map_err(tls_err)?;
        let mut endpoint = quinn::Endpoint::server(server, addr)
            .map_err(|e| TransportError::Io(format!("cannot bind {addr}: {e}")))?;
        endpoint.set_default_client_config(client);

        let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
        let counts = Arc::new(Counts::default());
        let revoked = Arc::new(std::sync::Mutex::new(Revoked::default()));
        let acceptor = runtime.spawn(accept_loop(endpoint.clone(), tx, counts.clone(), revoked.clone()));
        Ok(QuicTransport {
            node: creds.node(),
            endpoint,
            accepted: Mutex::new(rx),
            shutdown: watch::Sender::new(false),
            acceptor,
            counts,
            revoked,
        })
    }

    /// The node this endpoint authenticates as.
    pub fn node(&self) -> NodeId {
        self.node
    }

    fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        // Stops taking new connections; established ones live on with their handles (and so does
        // the socket, until the last of them is gone).
        self.endpoint.set_server_config(None);
        self.acceptor.abort();
    }
}

impl Transport for QuicTransport {
    fn dial(&self, peer: NodeId, addr: SocketAddr) -> BoxFuture<'static, Result<Connection, TransportError>> {
        let endpoint = self.endpoint.clone();
        let revoked = self.revoked.clone();
        let shut_down = self.is_shut_down();
        Box::pin(async move {
            if shut_down {
                return Err(TransportError::EndpointClosed);
            }
            let connecting = endpoint.connect(addr, &peer.dns_name()).map_err(|e| match e {
                ConnectError::EndpointStopping => TransportError::EndpointClosed,
                other => TransportError::Handshake(format!("dialing {peer} at {addr}: {other}")),
            })?;
            let conn =
                connecting.await.map_err(|e| TransportError::Handshake(format!("dialing {peer} at {addr}: {e}")))?;
            // The TLS layer already checked the server's certificate against `peer.dns_name()`;
            // read the identity back anyway so a verifier mistake cannot go unnoticed.
            let found = match peer_node(&conn) {
                Ok(found) => found,
                Err(e) => {
                    conn.close(VarInt::from_u32(CLOSE_IDENTITY), b"peer identity refused");
                    return Err(e);
                }
            };
            if found != peer {
                conn.close(VarInt::from_u32(CLOSE_IDENTITY), b"unexpected peer identity");
                return Err(TransportError::Identity(format!(
                    "dialed {peer} at {addr} but the certificate names {found}"
                )));
            }
            Revoked::admit(&revoked, &conn, peer)?;
            let (send, recv) = conn.open_bi().await.map_err(|e| connection_error(&e))?;
            Ok(link(peer, conn, send, recv))
        })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Connection, TransportError>> {
        Box::pin(async move {
            let mut shutdown = self.shutdown.subscribe();
            if *shutdown.borrow_and_update() {
                return Err(TransportError::EndpointClosed);
            }
            let mut accepted = tokio::select! {
                guard = self.accepted.lock() => guard,
                _ = shutdown.wait_for(|down| *down) => return Err(TransportError::EndpointClosed),
            };
            tokio::select! {
                next = accepted.recv() => match next {
                    Some(result) if !self.is_shut_down() => result,
                    _ => Err(TransportError::EndpointClosed),
                },
                _ = shutdown.wait_for(|down| *down) => Err(TransportError::EndpointClosed),
            }
        })
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    fn turned_away(&self) -> TurnedAway {
        self.counts.snapshot()
    }

    fn revoke(&self, fingerprints: &[String]) {
        let mut r = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        for fp in fingerprints {
            r.set.insert(fp.clone());
            for conn in r.live.remove(fp).unwrap_or_default() {
                if conn.close_reason().is_none() {
                    warn!(node = %self.node, remote = %conn.remote_address(), "closing a link whose certificate was revoked");
                    self.counts.revoked.fetch_add(1, Ordering::Relaxed);
                    conn.close(VarInt::from_u32(CLOSE_REVOKED), b"certificate revoked");
                }
            }
        }
    }

    fn shutdown(&self) {
        self.shutdown.send_replace(true);
        self.acceptor.abort();
        self.endpoint.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"endpoint shut down");
    }
}

/// Handshakes in progress, in all and per source address.
#[derive(Default)]
struct Gate {
    in_flight: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// A handshake's slot at the [`Gate`], given back when dropped.
struct Ticket {
    gate: Arc<std::sync::Mutex<Gate>>,
    source: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        g.in_flight -= 1;
        if let Some(n) = g.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                g.per_source.remove(&self.source);
            }
        }
    }
}

/// What the gate decides for one incoming attempt.
enum Admit {
    Go(Ticket),
    Retry,
    Busy,
    PerSource,
}

fn admit(gate: &Arc<std::sync::Mutex<Gate>>, incoming: &quinn::Incoming) -> Admit {
    let source = incoming.remote_address().ip();
    let mut g = gate.lock().unwrap_or_else(|e| e.into_inner());
    if g.in_flight >= RETRY_ABOVE && !incoming.remote_address_validated() && incoming.may_retry() {
        return Admit::Retry;
    }
    if g.in_flight >= HANDSHAKES_IN_FLIGHT {
        return Admit::Busy;
    }
    let n = g.per_source.entry(source).or_default();
    if *n >= HANDSHAKES_PER_SOURCE {
        return Admit::PerSource;
    }
    *n += 1;
    g.in_flight += 1;
    Admit::Go(Ticket { gate: gate.clone(), source })
}

/// Takes incoming connections off the endpoint and handshakes them concurrently. Nothing waits
/// in a queue: with many handshakes in progress an unproven address is asked to prove itself
/// (Retry), and past the limits (in all, and per address) an attempt is refused at once, so a
/// flood costs this node a bounded amount of state and the dialers it refused simply try again.
/// Only authenticated connections are queued for [`Transport::accept`].
async fn accept_loop(
    endpoint: quinn::Endpoint,
    tx: mpsc::Sender<Result<Connection, TransportError>>,
    counts: Arc<Counts>,
    revoked: Arc<std::sync::Mutex<Revoked>>,
) {
    let gate = Arc::new(std::sync::Mutex::new(Gate::default()));
    let mut logged = (tokio::time::Instant::now(), TurnedAway::default());
    while let Some(incoming) = endpoint.accept().await {
        match admit(&gate, &incoming) {
            Admit::Go(ticket) => {
                let tx = tx.clone();
                let counts = counts.clone();
                let revoked = revoked.clone();
                tokio::spawn(async move {
                    let result = accept_one(incoming, ticket, &counts, &revoked).await;
                    match result {
                        Ok(conn) => {
                            let _ = tx.send(Ok(conn)).await;
                        }
                        // A failure is reported if there is room; under a flood it is counted only.
                        Err(e) => {
                            let _ = tx.try_send(Err(e));
                        }
                    }
                });
            }
            Admit::Retry => {
                counts.retried.fetch_add(1, Ordering::Relaxed);
                if incoming.retry().is_err() {
                    counts.busy.fetch_add(1, Ordering::Relaxed);
                }
            }
            Admit::Busy => {
                counts.busy.fetch_add(1, Ordering::Relaxed);
                incoming.refuse();
            }
            Admit::PerSource => {
                counts.per_source.fetch_add(1, Ordering::Relaxed);
                incoming.refuse();
            }
        }
        let now = tokio::time::Instant::now();
        if now.duration_since(logged.0) >= FLOOD_LOG_EVERY {
            let total = counts.snapshot();
            let since = TurnedAway {
                retried: total.retried - logged.1.retried,
                busy: total.busy - logged.1.busy,
                per_source: total.per_source - logged.1.per_source,
                timed_out: total.timed_out - logged.1.timed_out,
                failed: total.failed - logged.1.failed,
                revoked: total.revoked - logged.1.revoked,
            };
            if since.busy + since.per_source + since.timed_out > 0 {
                warn!(
                    retried = since.retried,
                    refused_busy = since.busy,
                    refused_per_source = since.per_source,
                    timed_out = since.timed_out,
                    failed = since.failed,
                    "many incoming handshakes: turned away since the last report"
                );
            }
            logged = (now, total);
        }
    }
}

/// One incoming attempt: the TLS handshake within [`HANDSHAKE_TIMEOUT`] holding `ticket`, the
/// identity from the verified certificate, then (the slot given back) the dialer's stream
/// within [`FIRST_STREAM_TIMEOUT`] (it sends its first frame right away, which is what makes
/// the stream appear).
async fn accept_one(
    incoming: quinn::Incoming,
    ticket: Ticket,
    counts: &Counts,
    revoked: &std::sync::Mutex<Revoked>,
) -> Result<Connection, TransportError> {
    let remote = incoming.remote_address();
    let handshake = async {
        let conn = incoming
            .accept()
            .map_err(|e| TransportError::Handshake(format!("incoming from {remote}: {e}")))?
            .await
            .map_err(|e| TransportError::Handshake(format!("incoming from {remote}: {e}")))?;
        match peer_node(&conn) {
            Ok(peer) => Ok((conn, peer)),
            Err(e) => {
                conn.close(VarInt::from_u32(CLOSE_IDENTITY), b"peer identity refused");
                Err(e)
            }
        }
    };
    // Dropping an unfinished handshake closes it.
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
    drop(ticket);
    let (conn, peer) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        Err(_) => {
            counts.timed_out.fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::Handshake(format!(
                "incoming from {remote}: no handshake within {HANDSHAKE_TIMEOUT:?}"
            )));
        }
    };
    if let Err(e) = Revoked::admit(revoked, &conn, peer) {
        counts.revoked.fetch_add(1, Ordering::Relaxed);
        return Err(e);
    }
    match tokio::time::timeout(FIRST_STREAM_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok((send, recv))) => Ok(link(peer, conn, send, recv)),
        Ok(Err(e)) => {
            Err(with_context(connection_error(&e), &format!("{peer} at {remote}, before opening its stream")))
        }
        Err(_) => {
            conn.close(VarInt::from_u32(CLOSE_BY_APP), b"no stream opened");
            Err(TransportError::Handshake(format!(
                "{peer} at {remote}: no stream opened within {FIRST_STREAM_TIMEOUT:?}"
            )))
        }
    }
}

/// What the accept loop turned away, counted as it happens.
#[derive(Default)]
struct Counts {
    retried: AtomicU64,
    busy: AtomicU64,
    per_source: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
    revoked: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> TurnedAway {
        TurnedAway {
            retried: self.retried.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            per_source: self.per_source.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            revoked: self.revoked.load(Ordering::Relaxed),
        }
    }
}

/// The node named by the peer's verified certificate chain (its leaf).
fn peer_node(conn: &quinn::Connection) -> Result<NodeId, TransportError> {
    let remote = conn.remote_address();
    let refused = |why: String| TransportError::Identity(format!("{remote}: {why}"));
    let identity = conn.peer_identity().ok_or_else(|| refused("no peer certificate".into()))?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| refused("peer identity is not a certificate chain".into()))?;
    let leaf = chain.first().ok_or_else(|| refused("empty certificate chain".into()))?;
    tls::node_id_from_cert(leaf).map_err(|e| refused(e.to_string()))
}

fn link(peer: NodeId, conn: quinn::Connection, send: quinn::SendStream, recv: quinn::RecvStream) -> Connection {
    // Fails only on a stream already closed, which the first send then reports.
    let _ = send.set_priority(CONTROL_PRIORITY);
    Connection {
        peer,
        sender: Box::new(QuicSender { conn: conn.clone(), send: Some(send), interrupted: false }),
        bulk: Box::new(QuicSender { conn: conn.clone(), send: None, interrupted: false }),
        files: Box::new(QuicSender { conn: conn.clone(), send: None, interrupted: false }),
        receiver: Box::new(LaneReceiver::start(conn, QuicReceiver::new(recv))),
    }
}

/// Sending half of one lane: the connection (for `close`) and the lane's stream (the bulk lane's
/// is opened on its first frame).
struct QuicSender {
    conn: quinn::Connection,
    send: Option<quinn::SendStream>,
    /// Set while a frame is being written; still set if that `send` future was dropped midway,
    /// in which case the stream holds half a frame and every later send is refused.
    interrupted: bool,
}

impl FrameSender for QuicSender {
    fn send(&mut self, frame: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if frame.len() > FRAME_BYTES_MAX {
                return Err(TransportError::FrameTooLarge { len: frame.len() as u64, max: FRAME_BYTES_MAX });
            }
            if self.interrupted {
                return Err(TransportError::Io(
                    "an earlier send was cancelled midway: the stream is out of sync".into(),
                ));
            }
            let send = match &mut self.send {
                Some(send) => send,
                None => {
                    let send = self.conn.open_uni().await.map_err(|e| connection_error(&e))?;
                    let _ = send.set_priority(BULK_PRIORITY);
                    self.send.insert(send)
                }
            };
            // FRAME_BYTES_MAX < 4 GiB, so the length fits the prefix.
            let prefix = (frame.len() as u32).to_be_bytes();
            self.interrupted = true;
            let result = async {
                send.write_all(&prefix).await?;
                send.write_all(&frame).await
            }
            .await;
            self.interrupted = false;
            result.map_err(|e| write_error(&e))
        })
    }

    fn close(&mut self, reason: &str) {
        self.conn.close(VarInt::from_u32(CLOSE_BY_APP), truncate(reason, CLOSE_REASON_MAX).as_bytes());
    }
}

/// Receiving half. Partial progress lives in `self`, so `recv` is cancel-safe: a `recv` future
/// dropped midway (e.g. losing a `select!`) loses nothing, the next call resumes the frame.
struct QuicReceiver {
    recv: quinn::RecvStream,
    prefix: [u8; PREFIX],
    prefix_got: usize,
    /// The frame being read and how many of its bytes have arrived.
    body: Option<(Vec<u8>, usize)>,
    /// Set once the stream ended or failed: every later call returns the same outcome.
    done: StickyEnd,
}

impl QuicReceiver {
    fn new(recv: quinn::RecvStream) -> QuicReceiver {
        QuicReceiver { recv, prefix: [0; PREFIX], prefix_got: 0, body: None, done: StickyEnd::default() }
    }

    async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        if self.body.is_none() {
            while self.prefix_got < PREFIX {
                match self.recv.read(&mut self.prefix[self.prefix_got..]).await.map_err(|e| read_error(&e))? {
                    Some(n) => self.prefix_got += n,
                    None if self.prefix_got == 0 => return Ok(None),
                    None => {
                        return Err(TransportError::Truncated { got: self.prefix_got, want: PREFIX });
                    }
                }
            }
            let len = u32::from_be_bytes(self.prefix);
            if len as usize > FRAME_BYTES_MAX {
                return Err(TransportError::FrameTooLarge { len: u64::from(len), max: FRAME_BYTES_MAX });
            }
            self.body = Some((vec![0; len as usize], 0));
        }
        if let Some((buf, got)) = self.body.as_mut() {
            while *got < buf.len() {
                match self.recv.read(&mut buf[*got..]).await.map_err(|e| read_error(&e))? {
                    Some(n) => *got += n,
                    None => {
                        return Err(TransportError::Truncated { got: *got, want: buf.len() });
                    }
                }
            }
        }
        self.prefix_got = 0;
        Ok(self.body.take().map(|(buf, _)| buf))
    }
}

impl FrameReceiver for QuicReceiver {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, TransportError>> {
        Box::pin(async move {
            let mut done = std::mem::take(&mut self.done);
            let result = done.recv(self.next_frame()).await;
            self.done = done;
            result
        })
    }
}

/// Both lanes of a link as one [`FrameReceiver`]: a task per stream reads frames ahead (the bulk
/// one first waits for the peer to open its stream); `recv` takes control frames first. The link
/// ends with the control stream; the bulk stream ending on its own is not an end.
struct LaneReceiver {
    control: mpsc::Receiver<Result<Option<Vec<u8>>, TransportError>>,
    bulk: mpsc::Receiver<Result<Vec<u8>, TransportError>>,
    bulk_open: bool,
    tasks: [tokio::task::JoinHandle<()>; 2],
    done: StickyEnd,
}

impl LaneReceiver {
    fn start(conn: quinn::Connection, mut control: QuicReceiver) -> LaneReceiver {
        let (ctx, crx) = mpsc::channel(LANE_QUEUE);
        let (btx, brx) = mpsc::channel(LANE_QUEUE);
        let control_task = tokio::spawn(async move {
            loop {
                let next = control.recv().await;
                let more = matches!(next, Ok(Some(_)));
                if ctx.send(next).await.is_err() || !more {
                    break;
                }
            }
        });
        // The peer's unidirectional streams (bulk, files), each opened on its first frame, in any
        // order: a reader per stream, all into one queue (the frames say what they are).
        let bulk_task = tokio::spawn(async move {
            let mut readers = Vec::new();
            for _ in 0..UNI_STREAMS {
                let mut uni = match conn.accept_uni().await {
                    Ok(recv) => QuicReceiver::new(recv),
                    Err(e) => {
                        let _ = btx.send(Err(connection_error(&e))).await;
                        break;
                    }
                };
                let btx = btx.clone();
                readers.push(tokio::spawn(async move {
                    loop {
                        let item = match uni.recv().await {
                            Ok(Some(frame)) => Ok(frame),
                            Ok(None) => break,
                            Err(e) => Err(e),
                        };
                        let failed = item.is_err();
                        if btx.send(item).await.is_err() || failed {
                            break;
                        }
                    }
                }));
            }
            // The readers end with the connection, or at their next frame once the link dropped
            // its receiver (the queue is closed then).
            for r in readers {
                let _ = r.await;
            }
        });
        LaneReceiver {
            control: crx,
            bulk: brx,
            bulk_open: true,
            tasks: [control_task, bulk_task],
            done: StickyEnd::default(),
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            tokio::select! {
                biased;
                c = self.control.recv() => return c.unwrap_or(Ok(None)),
                b = self.bulk.recv(), if self.bulk_open => match b {
                    Some(Ok(frame)) => return Ok(Some(frame)),
                    Some(Err(e)) => return Err(e),
                    None => self.bulk_open = false,
                },
            }
        }
    }
}

impl FrameReceiver for LaneReceiver {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, TransportError>> {
        Box::pin(async move {
            let mut done = std::mem::take(&mut self.done);
            let result = done.recv(self.next()).await;
            self.done = done;
            result
        })
    }
}

impl Drop for LaneReceiver {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// QUIC transport error codes 0x100..=0x1ff carry a TLS alert: the handshake failed.
fn is_crypto_code(code: u64) -> bool {
    (0x100..0x200).contains(&code)
}

fn connection_error(e: &ConnectionError) -> TransportError {
    match e {
        ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            if reason.is_empty() {
                TransportError::Closed(format!("closed by peer (code {})", close.error_code))
            } else {
                TransportError::Closed(reason.into_owned())
            }
        }
        ConnectionError::ConnectionClosed(close) if is_crypto_code(u64::from(close.error_code)) => {
            TransportError::Handshake(format!("refused by peer: {close}"))
        }
        ConnectionError::ConnectionClosed(close) => TransportError::Closed(format!("aborted by peer: {close}")),
        ConnectionError::TransportError(err) if is_crypto_code(u64::from(err.code)) => {
            TransportError::Handshake(err.to_string())
        }
        ConnectionError::VersionMismatch => TransportError::Handshake(e.to_string()),
        ConnectionError::LocallyClosed => TransportError::Closed("connection closed locally".into()),
        ConnectionError::TimedOut => TransportError::Closed("connection timed out".into()),
        ConnectionError::Reset => TransportError::Closed("connection reset by peer".into()),
        other => TransportError::Closed(other.to_string()),
    }
}

fn read_error(e: &ReadError) -> TransportError {
    match e {
        ReadError::ConnectionLost(conn) => connection_error(conn),
        ReadError::Reset(code) => TransportError::Closed(format!("stream reset by peer (code {code})")),
        ReadError::ZeroRttRejected => TransportError::Handshake(e.to_string()),
        other => TransportError::Io(other.to_string()),
    }
}

fn write_error(e: &WriteError) -> TransportError {
    match e {
        WriteError::ConnectionLost(conn) => connection_error(conn),
        WriteError::Stopped(code) => TransportError::Closed(format!("peer stopped reading (code {code})")),
        WriteError::ZeroRttRejected => TransportError::Handshake(e.to_string()),
        other => TransportError::Io(other.to_string()),
    }
}

fn with_context(e: TransportError, context: &str) -> TransportError {
    match e {
        TransportError::Closed(s) => TransportError::Closed(format!("{context}: {s}")),
        TransportError::Handshake(s) => TransportError::Handshake(format!("{context}: {s}")),
        TransportError::Identity(s) => TransportError::Identity(format!("{context}: {s}")),
        TransportError::Io(s) => TransportError::Io(format!("{context}: {s}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::path::Path;

    use super::*;

    const LOOPBACK: &str = "127.0.0.1:0";

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn county() -> NodeId {
        id("130102")
    }

    fn school() -> NodeId {
        id("130102-S0001")
    }

    /// A CA in a temporary directory with certificates for `nodes`.
    fn pki(nodes: &[NodeId]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        tls::ca_init(dir.path()).unwrap();
        for &node in nodes {
            tls::ca_issue(dir.path(), node).unwrap();
        }
        dir
    }

    fn creds(dir: &Path, node: NodeId) -> NodeCredentials {
        NodeCredentials::load(dir, node).unwrap()
    }

    fn bind(creds: &NodeCredentials) -> QuicTransport {
        QuicTransport::bind(LOOPBACK.parse().unwrap(), creds).unwrap()
    }

    /// Every network step of these tests takes milliseconds; a hang is a failure, not a wait.
    async fn soon<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), f).await.expect("timed out")
    }

    /// Dials `peer` on `server` from `client`, sends `first`, and returns both ends.
    async fn connect(
        client: &QuicTransport,
        server: &QuicTransport,
        peer: NodeId,
        first: &[u8],
    ) -> (Connection, Connection) {
        let dial = client.dial(peer, server.local_addr().unwrap());
        let (dialed, accepted) = soon(async {
            tokio::join!(
                async {
                    let mut conn = dial.await?;
                    conn.sender.send(first.to_vec()).await?;
                    Ok::<_, TransportError>(conn)
                },
                server.accept()
            )
        })
        .await;
        (dialed.unwrap(), accepted.unwrap())
    }

    /// A raw QUIC connection with a valid client certificate: its stream carries whatever bytes
    /// the test writes.
    async fn raw_stream(
        creds: &NodeCredentials,
        server: &QuicTransport,
        peer: NodeId,
    ) -> (quinn::Endpoint, quinn::Connection, quinn::SendStream) {
        let mut endpoint = quinn::Endpoint::client(LOOPBACK.parse().unwrap()).unwrap();
        endpoint.set_default_client_config(tls::client_config(creds).unwrap());
        let conn = soon(endpoint.connect(server.local_addr().unwrap(), &peer.dns_name()).unwrap()).await.unwrap();
        let (send, _recv) = soon(conn.open_bi()).await.unwrap();
        (endpoint, conn, send)
    }

    #[tokio::test]
    async fn mutual_tls_link_between_county_and_school() {
        let dir = pki(&[county(), school()]);
        let server = bind(&creds(dir.path(), county()));
        let client = bind(&creds(dir.path(), school()));
        assert_eq!(server.node(), county());

        let (mut at_school, mut at_county) = connect(&client, &server, county(), b"hello").await;
        assert_eq!(at_school.peer, county());
        assert_eq!(at_county.peer, school());
        assert_eq!(soon(at_county.receiver.recv()).await.unwrap().as_deref(), Some(&b"hello"[..]));
        soon(at_county.sender.send(b"ack".to_vec())).await.unwrap();
        soon(at_county.sender.send(Vec::new())).await.unwrap();
        assert_eq!(soon(at_school.receiver.recv()).await.unwrap().as_deref(), Some(&b"ack"[..]));
        assert_eq!(soon(at_school.receiver.recv()).await.unwrap(), Some(Vec::new()));

        // The peer sees the close reason.
        at_school.sender.close("going away");
        let err = soon(at_county.receiver.recv()).await.unwrap_err();
        assert_eq!(err, TransportError::Closed("going away".into()));
        assert_eq!(soon(at_county.receiver.recv()).await.unwrap_err(), err, "errors are sticky");

        // A sender dropped between frames ends the stream cleanly: Ok(None) at the peer.
        let (at_school, mut at_county) = connect(&client, &server, county(), b"again").await;
        let Connection { sender, receiver: _keep_open, .. } = at_school;
        drop(sender);
        assert_eq!(soon(at_county.receiver.recv()).await.unwrap().as_deref(), Some(&b"again"[..]));
        assert_eq!(soon(at_county.receiver.recv()).await.unwrap(), None);
        assert_eq!(soon(at_county.receiver.recv()).await.unwrap(), None);

        server.shutdown();
        assert_eq!(soon(server.accept()).await.unwrap_err(), TransportError::EndpointClosed);
        let err = soon(server.dial(school(), client.local_addr().unwrap())).await.unwrap_err();
        assert_eq!(err, TransportError::EndpointClosed);
    }

    #[tokio::test]
    async fn client_certificate_from_another_ca_is_refused() {
        let dir = pki(&[county(), school()]);
        let rogue_dir = pki(&[school()]);
        let server = bind(&creds(dir.path(), county()));
        // Trusts the real CA (so it accepts the server) but presents a certificate from another CA.
        let rogue = creds(rogue_dir.path(), school());
        let mixed = NodeCredentials { ca: creds(dir.path(), school()).ca, ..rogue };
        let client = bind(&mixed);

        let dial = client.dial(county(), server.local_addr().unwrap());
        let (dialed, accepted) = soon(async { tokio::join!(dial, server.accept()) }).await;
        let err = accepted.unwrap_err();
        assert!(matches!(err, TransportError::Handshake(_)), "{err}");
        // TLS 1.3: the client may finish its handshake before the server refuses it; then the
        // refusal shows on the first recv.
        if let Ok(mut conn) = dialed {
            let _ = soon(conn.sender.send(b"hello".to_vec())).await;
            let err = soon(conn.receiver.recv()).await.unwrap_err();
            assert!(matches!(err, TransportError::Handshake(_)), "{err}");
        }

        // The server keeps serving legitimate clients.
        let honest = bind(&creds(dir.path(), school()));
        let (_at_school, mut at_county) = connect(&honest, &server, county(), b"hi").await;
        assert_eq!(at_county.peer, school());
        assert_eq!(soon(at_county.receiver.recv()).await.unwrap().as_deref(), Some(&b"hi"[..]));
    }

    #[tokio::test]
    async fn dialing_the_wrong_node_fails() {
        let dir = pki(&[county(), school()]);
        let server = bind(&creds(dir.path(), county()));
        let client = bind(&creds(dir.path(), school()));
        let expected = id("130104");
        let err = soon(client.dial(expected, server.local_addr().unwrap())).await.unwrap_err();
        assert!(matches!(err, TransportError::Handshake(_)), "{err}");
        assert!(err.to_string().contains("130104"), "{err}");
        // The server saw a failed attempt, not a connection.
        assert!(soon(server.accept()).await.is_err());
    }

    #[tokio::test]
    async fn malformed_streams_fail_at_the_receiver_and_the_server_keeps_accepting() {
        let dir = pki(&[county(), school()]);
        let server = bind(&creds(dir.path(), county()));
        let school_creds = creds(dir.path(), school());
        let max = FRAME_BYTES_MAX;

        // A valid frame, then a length prefix of 4 GiB - 1.
        let (_ep, _conn, mut send) = raw_stream(&school_creds, &server, county()).await;
        send.write_all(&[0, 0, 0, 2, b'o', b'k', 0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await.unwrap();
        let mut conn = soon(server.accept()).await.unwrap();
        assert_eq!(conn.peer, school());
        assert_eq!(soon(conn.receiver.recv()).await.unwrap().as_deref(), Some(&b"ok"[..]));
        let err = soon(conn.receiver.recv()).await.unwrap_err();
        assert_eq!(err, TransportError::FrameTooLarge { len: u64::from(u32::MAX), max });

        // A length prefix just above the limit.
        let (_ep, _conn, mut send) = raw_stream(&school_creds, &server, county()).await;
        send.write_all(&(max as u32 + 1).to_be_bytes()).await.unwrap();
        let mut conn = soon(server.accept()).await.unwrap();
        let err = soon(conn.receiver.recv()).await.unwrap_err();
        assert_eq!(err, TransportError::FrameTooLarge { len: max as u64 + 1, max });

        // A frame announcing 100 bytes, 10 sent, then the stream ends.
        let (_ep, _conn, mut send) = raw_stream(&school_creds, &server, county()).await;
        send.write_all(&100u32.to_be_bytes()).await.unwrap();
        send.write_all(&[7; 10]).await.unwrap();
        send.finish().unwrap();
        let mut conn = soon(server.accept()).await.unwrap();
        assert_eq!(soon(conn.receiver.recv()).await.unwrap_err(), TransportError::Truncated { got: 10, want: 100 });

        // The stream ends inside a length prefix.
        let (_ep, _conn, mut send) = raw_stream(&school_creds, &server, county()).await;
        send.write_all(&[0, 0]).await.unwrap();
        send.finish().unwrap();
        let mut conn = soon(server.accept()).await.unwrap();
        assert_eq!(soon(conn.receiver.recv()).await.unwrap_err(), TransportError::Truncated { got: 2, want: 4 });

        // The same endpoint still accepts and serves a fresh connection.
        let client = bind(&school_creds);
        let (mut at_school, mut at_county) = connect(&client, &server, county(), b"fresh").await;
        assert_eq!(soon(at_county.receiver.recv()).await.unwrap().as_deref(), Some(&b"fresh"[..]));
        soon(at_county.sender.send(b"served".to_vec())).await.unwrap();
        assert_eq!(soon(at_school.receiver.recv()).await.unwrap().as_deref(), Some(&b"served"[..]));
    }

    #[tokio::test]
    async fn sender_refuses_frames_above_the_limit() {
        let dir = pki(&[county(), school()]);
        let server = bind(&creds(dir.path(), county()));
        let client = bind(&creds(dir.path(), school()));
        let (mut at_school, mut at_county) = connect(&client, &server, county(), b"first").await;

        let max = FRAME_BYTES_MAX;
        let err = soon(at_school.sender.send(vec![0; max + 1])).await.unwrap_err();
        assert_eq!(err, TransportError::FrameTooLarge { len: max as u64 + 1, max });
        // Nothing of it was sent: the next frames arrive intact, the largest allowed one included
        // (received concurrently: 1 MiB exceeds the flow-control windows).
        let sending = async {
            at_school.sender.send(vec![9; max]).await.unwrap();
            at_school.sender.send(b"last".to_vec()).await.unwrap();
        };
        let receiving = async {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(at_county.receiver.recv().await.unwrap().unwrap());
            }
            got
        };
        let ((), got) = soon(async { tokio::join!(sending, receiving) }).await;
        assert_eq!(got, vec![b"first".to_vec(), vec![9; max], b"last".to_vec()]);
    }

    /// A control frame sent while megabytes of bulk frames are still queued arrives long before
    /// the bulk lane drains: keep-alives and acks never wait behind bulk data.
    #[tokio::test]
    async fn control_frames_overtake_queued_bulk_frames() {
        let dir = pki(&[county(), school()]);
        let server = bind(&creds(dir.path(), county()));
        let client = bind(&creds(dir.path(), school()));
        let (at_school, mut at_county) = connect(&client, &server, county(), b"hello").await;
        assert_eq!(soon(at_county.receiver.recv()).await.unwrap().as_deref(), Some(&b"hello"[..]));
        let Connection { sender: mut control, mut bulk, receiver: _keep, .. } = at_school;
        const BULK_FRAMES: usize = 64;
        let writer = tokio::spawn(async move {
            for i in 0..BULK_FRAMES {
                bulk.send(vec![i as u8; 512 * 1024]).await.unwrap();
            }
            bulk
        });
        // Once bulk data flows, send one control frame; count the bulk frames that beat it.
        let first = soon(at_county.receiver.recv()).await.unwrap().unwrap();
        assert_eq!(first.len(), 512 * 1024);
        soon(control.send(b"ping".to_vec())).await.unwrap();
        let mut bulk_before = 1;
        loop {
            let frame = soon(at_county.receiver.recv()).await.unwrap().unwrap();
            if frame == b"ping" {
                break;
            }
            bulk_before += 1;
        }
        assert!(bulk_before < BULK_FRAMES / 2, "the control frame waited behind {bulk_before} bulk frames");
        for _ in bulk_before..BULK_FRAMES {
            assert_eq!(soon(at_county.receiver.recv()).await.unwrap().map(|f| f.len()), Some(512 * 1024));
        }
        let _bulk = writer.await.unwrap();
    }

    #[tokio::test]
    async fn recv_is_cancel_safe() {
        let dir = pki(&[county(), school()]);
        let server = bind(&creds(dir.path(), county()));
        let school_creds = creds(dir.path(), school());
        let (_ep, _conn, mut send) = raw_stream(&school_creds, &server, county()).await;
        send.write_all(&[0, 0, 0, 6, b'h', b'a']).await.unwrap();
        let mut conn = soon(server.accept()).await.unwrap();
        // Half a frame: the recv is abandoned while waiting for the rest.
        let pending = tokio::time::timeout(Duration::from_millis(50), conn.receiver.recv()).await;
        assert!(pending.is_err());
        send.write_all(b"lves").await.unwrap();
        assert_eq!(soon(conn.receiver.recv()).await.unwrap().as_deref(), Some(&b"halves"[..]));
    }
}
