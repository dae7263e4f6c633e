//! Running one production node: load its config, topology and certificates, open its store
//! (redb), bind QUIC, start the actors and the admin API, and shut down cleanly on a signal.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use ractor::Actor;
use topology::{NodeId, Topology};
use tracing::info;

use crate::api::alerts::recent_alerts_from_store;
use crate::api::{AdminState, router};
use crate::clock::SystemClock;
use crate::config::NodeConfig;
use crate::runtime::reads::Reads;
use crate::runtime::root::{NodeActor, NodeArgs, NodeMsg, RedialConfig};
use crate::runtime::scheduler::spawn_scheduler;
use crate::storage::Storage;
use crate::tls::NodeCredentials;
use crate::transport::Transport;
use crate::transport::quic::QuicTransport;

/// A running node; dropping it does not stop it — call [`RunningNode::shutdown`].
pub struct RunningNode {
    pub me: NodeId,
    pub admin_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    /// The web console's address, if the config has a `[console]`.
    pub console_addr: Option<SocketAddr>,
    console: Option<crate::console::serve::ConsoleServer>,
    /// The device intake's address, if the config has a `[devices]` (a school).
    pub devices_addr: Option<SocketAddr>,
    devices: Option<crate::console::serve::ConsoleServer>,
    node: ractor::ActorRef<NodeMsg>,
    node_task: tokio::task::JoinHandle<()>,
    admin_task: tokio::task::JoinHandle<()>,
    admin_stop: tokio::sync::oneshot::Sender<()>,
    storage: Arc<dyn Storage>,
    scheduler: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// Stops the actors, flushes storage and closes the endpoint.
    pub async fn shutdown(self) {
        let _ = self.admin_stop.send(());
        if let Some(console) = self.console {
            console.shutdown().await;
        }
        if let Some(devices) = self.devices {
            devices.shutdown().await;
        }
        self.scheduler.abort();
        self.node.stop(Some("shutdown".into()));
        let _ = self.node_task.await;
        let _ = self.admin_task.await;
        let _ = self.storage.flush().await;
        // The token dies with the node (a node that crashes leaves it; its next start replaces it).
        let _ = std::fs::remove_file(crate::config::admin_token_path(self.admin_addr));
        info!(node = %self.me, "node stopped");
    }

    /// Resolves when the node stops by itself (e.g. its storage failed).
    pub fn is_finished(&self) -> bool {
        self.node_task.is_finished()
    }
}

/// A new random token for the admin API, written to [`crate::config::admin_token_path`] (folder
/// 0700, file 0600, replaced atomically).
fn write_admin_token(admin: SocketAddr) -> anyhow::Result<String> {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = crate::config::admin_token_path(admin);
    let dir = path.parent().context("token path has no folder")?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| dir.display().to_string())?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| dir.display().to_string())?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| tmp.display().to_string())?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
    Ok(token)
}

/// Starts a node from its config: everything is checked before anything listens.
pub async fn start(cfg: &NodeConfig) -> anyhow::Result<RunningNode> {
    let mut topology = Topology::load(&cfg.topology).with_context(|| format!("topology {}", cfg.topology.display()))?;
    crate::config::add_joining_node(&mut topology, cfg)?;
    let me = cfg.node;
    let entry =
        topology.get(me).with_context(|| format!("node {me} is not in the topology {}", cfg.topology.display()))?;
    if !entry.admin.ip().is_loopback() {
        bail!("node {me}: the admin API must listen on loopback, not {}", entry.admin);
    }
    let creds = NodeCredentials::load(&cfg.cert_dir, me)
        .with_context(|| format!("certificates for {me} in {}", cfg.cert_dir.display()))?;
    cfg.video.check().with_context(|| format!("node {me}: [video]"))?;
    // The console's plan and certificate are checked before anything listens.
    let console_plan = match &cfg.console {
        Some(c) => {
            let plan = c.plan(&cfg.cert_dir).with_context(|| format!("node {me}: the web console"))?;
            let tls = match &plan.tls {
                Some((cert, key)) => Some(Arc::new(
                    crate::tls::web_server_config(cert, key)
                        .with_context(|| format!("node {me}: the web console's certificate"))?,
                )),
                None => None,
            };
            Some((plan, tls))
        }
        None => None,
    };
    // And the big screen's settings (its map file read and checked once, here).
    let screen = match &cfg.console {
        Some(c) => crate::config::ScreenSetup::load(c.screen_refresh_s, c.screen_map.as_deref())
            .map_err(|e| anyhow::anyhow!("node {me}: {e}"))?,
        None => Default::default(),
    };
    // So are the device intake's (a school's only).
    let devices_plan = match &cfg.devices {
        Some(d) => {
            let plan = d.plan(&cfg.cert_dir, me).with_context(|| format!("node {me}: the device intake"))?;
            let tls = match &plan.tls {
                Some((cert, key)) => Some(Arc::new(
                    crate::tls::web_server_config(cert, key)
                        .with_context(|| format!("node {me}: the device intake's certificate"))?,
                )),
                None => None,
            };
            Some((plan, tls, d.rate_per_s, d.burst))
        }
        None => None,
    };
    let backend = crate::storage::Backend::for_data_dir(&cfg.data_dir, cfg.storage)
        .with_context(|| format!("node {me}: its store"))?;
    let storage = backend.open(&cfg.data_dir).with_context(|| format!("data dir {}", cfg.data_dir.display()))?;
    info!(node = %me, storage = %backend, dir = %cfg.data_dir.display(), "store opened");
    let bind = cfg.quic_bind.unwrap_or(entry.quic);
    let transport = QuicTransport::bind(bind, &creds).with_context(|| format!("QUIC endpoint on {bind}"))?;
    let quic_addr = transport.local_addr().unwrap_or(entry.quic);
    let admin_listener =
        tokio::net::TcpListener::bind(entry.admin).await.with_context(|| format!("admin API on {}", entry.admin))?;
    let admin_addr = admin_listener.local_addr()?;
    let console_listener = match &console_plan {
        Some((plan, _)) => Some(
            tokio::net::TcpListener::bind(plan.listen)
                .await
                .with_context(|| format!("node {me}: the web console on {}", plan.listen))?,
        ),
        None => None,
    };
    let devices_listener = match &devices_plan {
        Some((plan, ..)) => Some(
            tokio::net::TcpListener::bind(plan.listen)
                .await
                .with_context(|| format!("node {me}: the device intake on {}", plan.listen))?,
        ),
        None => None,
    };
    let token = write_admin_token(admin_addr).context("the admin API's token file")?;
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(SystemClock::new());
    let storage_seam: Arc<dyn crate::storage::Storage> = storage.clone();
    let reads = Reads::blocking_pool(storage_seam.clone());
    let topology = Arc::new(topology);
    let revoked = crate::runtime::store::revoked_certificates(storage_seam.as_ref())
        .map_err(|e| anyhow::anyhow!("node {me}: reading revoked certificates: {e}"))?;
    let (seal_keys, own_cert) = crate::runtime::seal_keys::seal_keys(&creds, &revoked)
        .map_err(|e| anyhow::anyhow!("node {me}: 签名密钥：{e}"))?;
    let args = NodeArgs {
        me,
        topology: topology.clone(),
        storage: storage_seam,
        reads: reads.clone(),
        transport: Arc::new(transport),
        clock: clock.clone(),
        session: cfg.session(),
        redial: RedialConfig::default(),
        failover_after_ms: cfg.failover_after_ms,
        health: cfg.health(),
        cert_not_after_ms: node_cert_not_after(&cfg.cert_dir, me),
        seal_keys,
        own_cert: Some(own_cert),
    };
    let (node, node_task) = Actor::spawn(None, NodeActor, args).await.context("node actors failed to start")?;
    let store = ractor::call_t!(node, NodeMsg::Store, 5_000).context("store actor")?;
    let (admin_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let scan_now = Arc::new(tokio::sync::Notify::new());
    let cameras = ractor::call_t!(node, NodeMsg::Cameras, 5_000).context("the cameras' heartbeats")?;
    let engine = crate::runtime::warnings::Engine {
        me,
        store: store.clone(),
        node: node.clone(),
        reads: reads.clone(),
        clock: clock.clone(),
        topology: topology.clone(),
        cameras: Some(cameras.clone()),
        lock: Default::default(),
        files: cfg.files,
    };
    let scheduler = spawn_scheduler(engine.clone(), cfg.case_scan_ms, scan_now.clone(), cfg.retention_days());
    let recent_alerts = recent_alerts_from_store(me, &reads, clock.wall_ms())
        .await
        .map_err(|e| anyhow::anyhow!("reading the school's recent alerts: {e}"))?;
    let devices = crate::api::devices::Devices::load(storage.as_ref()).context("reading the school's devices")?;
    let state = AdminState::new(crate::api::AdminShared {
        me,
        node: node.clone(),
        store,
        reads,
        topology,
        clock,
        clock_control: cfg.clock_control,
        scan_now,
        recent_alerts,
        sign_in_failures: Default::default(),
        // In memory only: a restart signs everyone out of the console.
        sessions: Default::default(),
        denied: Default::default(),
        token: Arc::new(token),
        started: std::time::Instant::now(),
        engine,
        devices,
        cameras,
        hls_base: cfg.video.hls_base.clone(),
        intake_url: devices_plan
            .as_ref()
            .map(|(plan, tls, ..)| format!("{}://{}", if tls.is_some() { "https" } else { "http" }, plan.listen)),
        screen,
    });
    let app = router(state.clone());
    let admin_task = tokio::spawn(async move {
        let _ = axum::serve(admin_listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
    });
    let console = match (console_plan, console_listener) {
        (Some((_, tls)), Some(listener)) => {
            let server =
                crate::console::serve::ConsoleServer::start(listener, tls, crate::console::router(state.clone()))
                    .context("the web console")?;
            let scheme = if server.https() { "https" } else { "http" };
            if !server.https() {
                tracing::warn!(node = %me, console = %server.local_addr(), "web console over plain HTTP (loopback only)");
            }
            info!(node = %me, console = %format!("{scheme}://{}", server.local_addr()), "web console");
            Some(server)
        }
        _ => None,
    };
    let console_addr = console.as_ref().map(|c| c.local_addr());
    let devices = match (devices_plan, devices_listener) {
        (Some((_, tls, rate, burst)), Some(listener)) => {
            let app = crate::api::intake::router(state.clone(), rate, burst);
            let server = crate::console::serve::ConsoleServer::start_named(listener, tls, app, "device intake")
                .context("the device intake")?;
            let scheme = if server.https() { "https" } else { "http" };
            if !server.https() {
                tracing::warn!(node = %me, devices = %server.local_addr(), "device intake over plain HTTP (loopback only)");
            }
            info!(node = %me, devices = %format!("{scheme}://{}", server.local_addr()), "device intake");
            Some(server)
        }
        _ => None,
    };
    let devices_addr = devices.as_ref().map(|d| d.local_addr());
    info!(node = %me, quic = %quic_addr, admin = %admin_addr, "listening");
    Ok(RunningNode {
        me,
        admin_addr,
        quic_addr,
        console_addr,
        console,
        devices_addr,
        devices,
        node,
        node_task,
        admin_task,
        admin_stop,
        storage,
        scheduler,
    })
}

/// When the first of the certificates this node runs on (its own, the CA's, the console's)
/// expires.
fn node_cert_not_after(dir: &std::path::Path, me: topology::NodeId) -> Option<u64> {
    let me = me.to_string();
    crate::tls::cert_expiries(dir)
        .ok()?
        .into_iter()
        .filter(|c| c.what == "CA" || c.what == "web" || c.what == me)
        .map(|c| c.not_after_ms)
        .min()
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
