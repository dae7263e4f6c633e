//! A node's configuration: the file `mingchu node run --config` reads, and the step that lets a node
//! absent from the topology file start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use protocol::SessionConfig;
use serde::{Deserialize, Serialize};
use topology::{NodeEntry, NodeId, Topology};

/// Lets a node absent from the topology file start (a school registered at run time): when the
/// config names its `quic_addr` and `admin_addr`, it is added to the in-memory topology under its
/// parent, which the file must hold. A node the file lists keeps the file's addresses.
pub fn add_joining_node(topology: &mut Topology, cfg: &NodeConfig) -> anyhow::Result<()> {
    let me = cfg.node;
    if topology.contains(me) {
        return Ok(());
    }
    let (Some(quic), Some(admin)) = (cfg.quic_addr, cfg.admin_addr) else {
        bail!(
            "node {me} is not in the topology {}; a node registered at run time needs its quic_addr and \
             admin_addr in its config (or --quic-addr and --admin-addr)",
            cfg.topology.display()
        );
    };
    topology
        .insert(NodeEntry { id: me, name: me.to_string(), quic, admin })
        .with_context(|| format!("node {me} joins the topology {} at run time", cfg.topology.display()))
}

/// The admin address of a node config: the topology's, or for a joining node its `admin_addr`.
pub fn config_admin_addr(cfg: &NodeConfig) -> anyhow::Result<SocketAddr> {
    let mut topo = Topology::load(&cfg.topology).with_context(|| format!("topology {}", cfg.topology.display()))?;
    add_joining_node(&mut topo, cfg)?;
    topo.get(cfg.node).map(|e| e.admin).with_context(|| format!("node {} is not in the topology", cfg.node))
}

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
    /// present (see [`add_joining_node`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_addr: Option<SocketAddr>,
    /// With `quic_addr`: the admin API address of a node the topology file does not list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<SocketAddr>,
}

fn default_case_scan_ms() -> u64 {
    crate::runtime::scheduler::CASE_SCAN_MS_DEFAULT
}

fn default_true() -> bool {
    true
}

fn default_failover_after_ms() -> u64 {
    crate::runtime::root::FAILOVER_AFTER_MS_DEFAULT
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

/// Where a node keeps the token of its loopback admin API: `$MINGCHU_RUN_DIR`, else `/run/mingchu`
/// for root, else `$XDG_RUNTIME_DIR/mingchu` or `/tmp/mingchu-<uid>`; the file is named after the
/// admin address, so the CLI finds it from the address alone. The folder is 0700 and the file
/// 0600: only root and the node's own user can read it, so another local user cannot act as the
/// node.
pub fn admin_token_path(admin: SocketAddr) -> PathBuf {
    let dir = match std::env::var_os("MINGCHU_RUN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let uid = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "0".into());
            if uid == "0" {
                PathBuf::from("/run/mingchu")
            } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
                PathBuf::from(x).join("mingchu")
            } else {
                std::env::temp_dir().join(format!("mingchu-{uid}"))
            }
        }
    };
    dir.join(format!("admin-{}-{}.token", admin.ip(), admin.port()))
}
