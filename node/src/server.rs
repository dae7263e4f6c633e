//! Running one production node: load its config, topology and certificates, open sled, bind QUIC,
//! start the actors and the admin API, and shut down cleanly on a signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use protocol::SessionConfig;
use ractor::Actor;
use serde::{Deserialize, Serialize};
use topology::{NodeId, Topology};
use tracing::info;

use crate::admin::{AdminState, router};
use crate::clock::SystemClock;
use crate::root::{NodeActor, NodeArgs, NodeMsg, RedialConfig};
use crate::storage::sled_store::SledStorage;
use crate::tls::NodeCredentials;
use crate::transport::Transport;
use crate::transport::quic::QuicTransport;

/// A node's configuration file (`mingchu node run --config FILE`). Relative paths are resolved
/// against the file's folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node: NodeId,
    pub topology: PathBuf,
    pub data_dir: PathBuf,
    pub cert_dir: PathBuf,
    /// Send a keep-alive after this long without sending (ms).
    #[serde(default = "default_keepalive_ms")]
    pub keepalive_ms: u64,
    /// Declare a peer gone after this long without hearing from it (ms).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Bind the QUIC endpoint here instead of at the topology's address (a node behind a port
    /// forward or NAT, where peers dial the public address the topology lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_bind: Option<SocketAddr>,
    /// Fail over to the next ancestor after this long without hearing from the parent (ms).
    #[serde(default = "default_failover_after_ms")]
    pub failover_after_ms: u64,
    /// Send fresh events ahead of a backlog on the priority lane (off only to measure it).
    #[serde(default = "default_true")]
    pub priority_lane: bool,
    /// How often a supervising node looks for overdue cases to mark and escalate (ms).
    #[serde(default = "default_case_scan_ms")]
    pub case_scan_ms: u64,
    /// Let `POST /api/clock/advance` move this node's wall clock forward. For tests of deadlines
    /// only: never in production.
    #[serde(default)]
    pub clock_control: bool,
    /// For a node the topology file does not list (a school registered at run time): where it
    /// listens for QUIC. Used only when the node is absent from the topology and its parent is
    /// present (see `crate::registry::add_joining_node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_addr: Option<SocketAddr>,
    /// With `quic_addr`: the admin API address of a node the topology file does not list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<SocketAddr>,
}

fn default_case_scan_ms() -> u64 {
    crate::cases::CASE_SCAN_MS_DEFAULT
}

fn default_true() -> bool {
    true
}

fn default_failover_after_ms() -> u64 {
    crate::root::FAILOVER_AFTER_MS_DEFAULT
}

fn default_keepalive_ms() -> u64 {
    SessionConfig::default().keepalive_ms
}

fn default_idle_timeout_ms() -> u64 {
    SessionConfig::default().idle_timeout_ms
}

impl NodeConfig {
    pub fn new(node: NodeId, topology: PathBuf, data_dir: PathBuf, cert_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            node,
            topology,
            data_dir,
            cert_dir,
            keepalive_ms: default_keepalive_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            failover_after_ms: default_failover_after_ms(),
            quic_bind: None,
            priority_lane: true,
            case_scan_ms: default_case_scan_ms(),
            clock_control: false,
            quic_addr: None,
            admin_addr: None,
        }
    }

    pub fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg: NodeConfig = toml::from_str(&text).with_context(|| format!("bad config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.topology, &mut cfg.data_dir, &mut cfg.cert_dir] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if cfg.keepalive_ms == 0 || cfg.idle_timeout_ms <= cfg.keepalive_ms {
            bail!("bad config {}: need 0 < keepalive_ms < idle_timeout_ms", path.display());
        }
        Ok(cfg)
    }

    pub fn session(&self) -> SessionConfig {
        SessionConfig {
            keepalive_ms: self.keepalive_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            priority_lane: self.priority_lane,
            ..SessionConfig::default()
        }
    }
}

/// A running node; dropping it does not stop it — call [`RunningNode::shutdown`].
pub struct RunningNode {
    pub me: NodeId,
    pub admin_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    node: ractor::ActorRef<NodeMsg>,
    node_task: tokio::task::JoinHandle<()>,
    admin_task: tokio::task::JoinHandle<()>,
    admin_stop: tokio::sync::oneshot::Sender<()>,
    storage: SledStorage,
    scheduler: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// Stops the actors, flushes storage and closes the endpoint.
    pub async fn shutdown(self) {
        let _ = self.admin_stop.send(());
        self.scheduler.abort();
        self.node.stop(Some("shutdown".into()));
        let _ = self.node_task.await;
        let _ = self.admin_task.await;
        let _ = crate::storage::Storage::flush(&self.storage).await;
        info!(node = %self.me, "node stopped");
    }

    /// Resolves when the node stops by itself (e.g. its storage failed).
    pub fn is_finished(&self) -> bool {
        self.node_task.is_finished()
    }
}

/// Starts a node from its config: everything is checked before anything listens.
pub async fn start(cfg: &NodeConfig) -> anyhow::Result<RunningNode> {
    let mut topology = Topology::load(&cfg.topology).with_context(|| format!("topology {}", cfg.topology.display()))?;
    crate::registry::add_joining_node(&mut topology, cfg)?;
    let me = cfg.node;
    let entry =
        topology.get(me).with_context(|| format!("node {me} is not in the topology {}", cfg.topology.display()))?;
    if !entry.admin.ip().is_loopback() {
        bail!("node {me}: the admin API must listen on loopback, not {}", entry.admin);
    }
    let creds = NodeCredentials::load(&cfg.cert_dir, me)
        .with_context(|| format!("certificates for {me} in {}", cfg.cert_dir.display()))?;
    let storage = SledStorage::open(&cfg.data_dir).with_context(|| format!("data dir {}", cfg.data_dir.display()))?;
    let bind = cfg.quic_bind.unwrap_or(entry.quic);
    let transport = QuicTransport::bind(bind, &creds).with_context(|| format!("QUIC endpoint on {bind}"))?;
    let quic_addr = transport.local_addr().unwrap_or(entry.quic);
    let admin_listener =
        tokio::net::TcpListener::bind(entry.admin).await.with_context(|| format!("admin API on {}", entry.admin))?;
    let admin_addr = admin_listener.local_addr()?;
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(SystemClock::new());
    let storage_seam: Arc<dyn crate::storage::Storage> = Arc::new(storage.clone());
    let args = NodeArgs {
        me,
        topology: Arc::new(topology),
        storage: Arc::new(storage.clone()),
        transport: Arc::new(transport),
        clock: clock.clone(),
        session: cfg.session(),
        redial: RedialConfig::default(),
        failover_after_ms: cfg.failover_after_ms,
    };
    let (node, node_task) = Actor::spawn(None, NodeActor, args).await.context("node actors failed to start")?;
    let store = ractor::call_t!(node, NodeMsg::Store, 5_000).context("store actor")?;
    let (admin_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let scan_now = Arc::new(tokio::sync::Notify::new());
    let scheduler = crate::cases::spawn_scheduler(me, store.clone(), clock.clone(), cfg.case_scan_ms, scan_now.clone());
    let recent_alerts = crate::admin::recent_alerts_from_store(me, &store, crate::clock::unix_ms())
        .await
        .map_err(|e| anyhow::anyhow!("reading the school's recent alerts: {e}"))?;
    let app = router(AdminState {
        me,
        node: node.clone(),
        store,
        storage: storage_seam,
        clock,
        clock_control: cfg.clock_control,
        scan_now,
        recent_alerts,
    });
    let admin_task = tokio::spawn(async move {
        let _ = axum::serve(admin_listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
    });
    info!(node = %me, quic = %quic_addr, admin = %admin_addr, "listening");
    Ok(RunningNode { me, admin_addr, quic_addr, node, node_task, admin_task, admin_stop, storage, scheduler })
}

/// Runs a node until Ctrl-C / SIGTERM (or until it stops by itself).
pub async fn run_until_signal(cfg: &NodeConfig) -> anyhow::Result<()> {
    run_until(cfg, std::future::pending::<()>()).await
}

/// Runs a node until Ctrl-C, SIGTERM, `stop` resolving, or the node stopping by itself.
pub async fn run_until(cfg: &NodeConfig, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(cfg).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => info!("interrupted"),
        _ = term.recv() => info!("terminated"),
        _ = stop => info!("asked to stop"),
        _ = wait_finished(&running) => bail!("node {} stopped on its own (see the log above)", running.me),
    }
    running.shutdown().await;
    Ok(())
}

async fn wait_finished(r: &RunningNode) {
    while !r.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
