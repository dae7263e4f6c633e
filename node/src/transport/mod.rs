//! The Transport seam: authenticated, ordered, reliable frame channels between nodes.
//!
//! The node's actors see only [`Transport`] and [`Connection`]: production plugs in QUIC + mTLS
//! ([`quic`]); the simulator plugs in a seeded in-memory network. A frame here is the
//! encoded bytes of one `protocol::wire::Frame`; decoding (and rejecting bad frames) is the link
//! actor's job, so every transport is checked by the same codec.

pub mod quic;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use topology::NodeId;

/// A boxed, sendable future: the seams are object-safe so one actor type serves every transport.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a connection could not be made or broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer or the endpoint closed the connection; the text says why, when known.
    #[error("connection closed: {0}")]
    Closed(String),
    /// A length prefix announced a frame above the hard limit; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge { len: u64, max: usize },
    /// The stream ended in the middle of a frame.
    #[error("truncated frame: stream ended after {got} of {want} bytes")]
    Truncated { got: usize, want: usize },
    /// TLS handshake or certificate failure.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The peer's certificate does not name a node we accept.
    #[error("peer identity refused: {0}")]
    Identity(String),
    /// The endpoint is shut down: no more connections.
    #[error("endpoint shut down")]
    EndpointClosed,
    #[error("i/o error: {0}")]
    Io(String),
}

/// One authenticated link to `peer`: its identity comes from the transport's authentication
/// (the verified certificate for QUIC), never from anything the peer says in a message.
///
/// Three lanes go out: `sender` (control: hello, acks, keep-alives, fresh events; sent ahead of
/// anything queued in bulk), `bulk` (batches) and `files` (parts of a file an ancestor asked for:
/// a stream of their own, so a snapshot neither waits behind a backlog nor holds one up). Frames of one lane arrive in order; frames of
/// different lanes may overtake each other. `receiver` yields both lanes' frames, control first
/// when both have some.
pub struct Connection {
    pub peer: NodeId,
    pub sender: Box<dyn FrameSender>,
    pub bulk: Box<dyn FrameSender>,
    pub files: Box<dyn FrameSender>,
    pub receiver: Box<dyn FrameReceiver>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("peer", &self.peer).finish()
    }
}

/// The sending half of a [`Connection`]. Frames arrive at the peer in the order sent.
pub trait FrameSender: Send + 'static {
    fn send(&mut self, frame: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>>;
    /// Whether a send never waits (an in-memory transport, such as the simulator's): then the
    /// link actor sends in place with [`FrameSender::send_now`] instead of through a writer task
    /// of the lane's own. `false` (the default, and QUIC's): a send may wait for flow control.
    fn never_waits(&self) -> bool {
        false
    }
    /// Sends `frame` in place; only called when [`FrameSender::never_waits`]. The default drives
    /// [`FrameSender::send`] once and fails if it would wait.
    fn send_now(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match self.send(frame).as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => Err(TransportError::Io("a send that never waits would wait".into())),
        }
    }
    /// Closes the whole connection, telling the peer `reason` where the transport can.
    fn close(&mut self, reason: &str);
}

/// The receiving half of a [`Connection`].
pub trait FrameReceiver: Send + 'static {
    /// The next frame; `Ok(None)` when the peer closed the connection cleanly.
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, TransportError>>;
}

/// The end of a receiver, made sticky: once a receive returned `Ok(None)` or an error, every
/// later one returns the same, as [`FrameReceiver`] promises.
#[derive(Debug, Default)]
pub struct StickyEnd(Option<Result<(), TransportError>>);

impl StickyEnd {
    /// Runs `next` unless the receiver already ended, and remembers an end.
    pub async fn recv(
        &mut self,
        next: impl Future<Output = Result<Option<Vec<u8>>, TransportError>>,
    ) -> Result<Option<Vec<u8>>, TransportError> {
        match &self.0 {
            Some(Ok(())) => return Ok(None),
            Some(Err(e)) => return Err(e.clone()),
            None => {}
        }
        let result = next.await;
        match &result {
            Ok(Some(_)) => {}
            Ok(None) => self.0 = Some(Ok(())),
            Err(e) => self.0 = Some(Err(e.clone())),
        }
        result
    }
}

/// Dials parents and accepts children.
pub trait Transport: Send + Sync + 'static {
    /// Connects to `peer` at `addr`; succeeds only once the peer proved it is `peer`.
    fn dial(&self, peer: NodeId, addr: SocketAddr) -> BoxFuture<'static, Result<Connection, TransportError>>;
    /// The next incoming connection with its authenticated peer id. `Err(EndpointClosed)` once the
    /// endpoint is shut down; other errors concern one failed incoming attempt only.
    fn accept(&self) -> BoxFuture<'_, Result<Connection, TransportError>>;
    /// The address the endpoint listens on.
    fn local_addr(&self) -> Option<SocketAddr>;
    /// Stops accepting and closes every connection.
    fn shutdown(&self);
    /// Certificates (SHA-256 of the DER, hex) no handshake may use from now on: connections
    /// presenting one are refused, and live ones are closed at once. Transports without
    /// certificates (the simulator's) ignore it.
    fn revoke(&self, _fingerprints: &[String]) {}
    /// Incoming attempts turned away before any peer was authenticated, since the start.
    fn turned_away(&self) -> TurnedAway {
        TurnedAway::default()
    }
}

/// Incoming attempts an endpoint turned away before authenticating anyone: what a flood of
/// handshakes costs it, and what it did about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TurnedAway {
    /// Asked to prove their address first (QUIC Retry) while handshakes were many.
    pub retried: u64,
    /// Refused at once: every handshake slot was taken.
    pub busy: u64,
    /// Refused at once: their address already had its share of handshakes in progress.
    pub per_source: u64,
    /// Started a handshake but did not finish it in time.
    pub timed_out: u64,
    /// Finished no handshake for another reason (bad certificate, garbage, closed).
    pub failed: u64,
    /// Presented a revoked certificate (in a handshake, or live when it was revoked).
    #[serde(default)]
    pub revoked: u64,
}
