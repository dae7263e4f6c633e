//! The console's listener: TCP, then TLS (rustls with the ring provider, through tokio-rustls),
//! then HTTP/1.1 (hyper) into the console's axum router.
//!
//! - Each connection runs in its own task; its TLS handshake and its request headers must arrive
//!   within [`HANDSHAKE_TIMEOUT`] and [`HEADER_TIMEOUT`], and at most [`CONNECTIONS_MAX`] are open
//!   at once (more wait in the kernel's backlog), so a slow or greedy client cannot starve others.
//! - Every request gets a [`Peer`] extension (the client's address, and whether it came over
//!   HTTPS); the router adds the [`crate::api::principal::ConsoleRequest`] marker.
//! - [`ConsoleServer::shutdown`] stops accepting, lets requests in flight finish (up to
//!   [`DRAIN_TIMEOUT`]) and closes idle keep-alive connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this (slow-loris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections served at once.
pub const CONNECTIONS_MAX: usize = 512;
/// At shutdown, requests in flight get this long to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is on the other end of a console request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The request came over TLS (cookies are `Secure`).
    pub https: bool,
}

impl Peer {
    /// What a request that did not come through the listener (a test calling the router) gets.
    pub const UNKNOWN: Peer =
        Peer { addr: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0), https: false };
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Peer>().copied().unwrap_or(Peer::UNKNOWN))
    }
}

/// A running console listener (the device intake runs on one too).
pub struct ConsoleServer {
    addr: SocketAddr,
    https: bool,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ConsoleServer {
    /// Serves `app` on `listener` (bound beforehand, so a busy port fails the start before
    /// anything else runs), over TLS when `tls` is given.
    pub fn start(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        app: axum::Router,
    ) -> std::io::Result<ConsoleServer> {
        ConsoleServer::start_named(listener, tls, app, "console")
    }

    /// [`ConsoleServer::start`] for another listener of the same kind (the device intake), `name`
    /// naming it in the log.
    pub fn start_named(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        app: axum::Router,
        name: &'static str,
    ) -> std::io::Result<ConsoleServer> {
        let addr = listener.local_addr()?;
        let https = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, acceptor, app, stop_rx, name));
        Ok(ConsoleServer { addr, https, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn https(&self) -> bool {
        self.https
    }

    /// Stops accepting and drains (see the module's doc).
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    name: &'static str,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            _ = &mut stop => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, addr) = tokio::select! {
            biased;
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let peer = Peer { addr, https: acceptor.is_some() };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer);
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(64 * 1024);
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let _permit = permit;
            match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "{name}: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%addr, "{name}: TLS handshake timed out");
                            return;
                        }
                    };
                    let _ = watcher.watch(http.serve_connection(TokioIo::new(tls), service)).await;
                }
                None => {
                    let _ = watcher.watch(http.serve_connection(TokioIo::new(tcp), service)).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("{name}: requests still running after {DRAIN_TIMEOUT:?} at shutdown; ended");
    }
    conns.abort_all();
}
