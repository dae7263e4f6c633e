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
    /// Dial the next ancestor beside the parent when the parent has said nothing for this long
    /// while a batch to it waits unacked as long (ms; 0: only fail over once the link ends).
    #[serde(default = "default_suspect_after_ms")]
    pub suspect_after_ms: u64,
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
    /// The health plane: re-report every `refresh_ms` (also on every change, at most once per
    /// `flush_ms`); a node not heard of for `stale_after_ms` is stale (ms).
    #[serde(default = "default_health_refresh_ms")]
    pub health_refresh_ms: u64,
    #[serde(default = "default_health_flush_ms")]
    pub health_flush_ms: u64,
    #[serde(default = "default_health_stale_after_ms")]
    pub health_stale_after_ms: u64,
    /// For a node the topology file does not list (a school registered at run time): where it
    /// listens for QUIC. Used only when the node is absent from the topology and its parent is
    /// present (see [`add_joining_node`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_addr: Option<SocketAddr>,
    /// With `quic_addr`: the admin API address of a node the topology file does not list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<SocketAddr>,
    /// The web console (`[console]`); without it the node serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleConfig>,
    /// The device intake of a school (`[devices]`): where its AI boxes and video recorders post
    /// detections and heartbeats. Without it the node serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<DevicesConfig>,
    /// How long files are kept (`[files]`): snapshots uploaded here, and the cache of files
    /// fetched from below.
    #[serde(default)]
    pub files: FilesConfig,
    /// Where the console plays cameras' live pictures from (`[video]`): the media server's HLS
    /// base address. Without it only cameras with their own HLS address can be watched.
    #[serde(default, skip_serializing_if = "VideoConfig::is_empty")]
    pub video: VideoConfig,
    /// How long a school keeps its events (`[retention]`); counties, cities and the province keep
    /// everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionConfig>,
    /// The store a new data directory is made in: `"redb"` (the default) or `"sled"`. A directory
    /// that already holds a store keeps it; one holding the other store than asked is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::storage::Backend>,
}

/// A school's retention of events (`[retention]` in its config):
///
/// ```toml
/// [retention]
/// days = 400   # alerts, ledgers and warnings older than this, once the county holds them
/// ```
///
/// Without the section a school keeps [`RETENTION_DAYS_DEFAULT`] days. What is kept regardless
/// (registry, cases, what a case names, what the county does not hold yet) is in
/// [`crate::runtime::store::compact`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub days: u32,
}

pub use crate::runtime::store::compact::{RETENTION_DAYS_DEFAULT, RETENTION_DAYS_MIN};

pub use crate::runtime::files::FilesConfig;

/// The media server the console's live pictures come from (`[video]` in the node's config):
///
/// ```toml
/// [video]
/// hls_base = "http://192.168.10.8:8080/hls"   # a camera's stream `cam1` plays from …/hls/cam1.m3u8
/// ```
///
/// The browser fetches the HLS playlist and its segments from there itself (the media server must
/// allow the console's origin by CORS); the node never touches the video. A camera's own HLS
/// address in the registry (`camera-stream`) wins over this.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hls_base: Option<String>,
}

impl VideoConfig {
    fn is_empty(&self) -> bool {
        self.hls_base.is_none()
    }

    /// Checks `hls_base`: an `http(s)` address with a host, no spaces or quotes.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(b) = &self.hls_base {
            let plain = b.bytes().all(|c| c.is_ascii_graphic() && !matches!(c, b'"' | b'\'' | b'<' | b'>' | b'\\'));
            if protocol::registry::http_origin(b).is_none() || !plain {
                bail!(
                    "[video] hls_base “{b}” 须是 http:// 或 https:// 开头、带主机名且不含空格或引号的地址，\
                     如 http://192.168.10.8:8080/hls / hls_base must be an http(s) URL"
                );
            }
        }
        Ok(())
    }
}

/// The web console's listener (`[console]` in the node's config):
///
/// ```toml
/// [console]
/// listen = "192.168.10.5:8443"
/// # cert = "certs/web.pem"   # default: web.pem and web.key in the cert_dir, if there
/// # key = "certs/web.key"
/// # screen_map = "maps/hebei.json"   # the big screen's GeoJSON; without it a schematic grid
/// # screen_refresh_s = 10            # how often the big screen redraws (5–3600 s)
/// ```
///
/// With a certificate the console is HTTPS. Plain HTTP only on a loopback address and only when no
/// certificate is found; a LAN address without one is refused at start ([`ConsoleConfig::plan`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    /// The certificate chain (PEM, leaf first); with `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM); with `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The big screen's map: a GeoJSON of the region (e.g. the province's cities, or a city's
    /// counties), features named or coded (`adcode`) like the units. Without it the screen draws a
    /// schematic grid of the units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_map: Option<PathBuf>,
    /// How often the big screen asks for fresh data (seconds, 5–3600; 10 when not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_refresh_s: Option<u32>,
}

/// How a listener of the web certificate's (the console, the device intake) will listen:
/// [`ConsoleConfig::plan`]'s and [`DevicesConfig::plan`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenPlan {
    pub listen: SocketAddr,
    /// The certificate and key to serve HTTPS with; `None`: plain HTTP (loopback only).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The console's plan (the name it had before the device intake shared it).
pub type ConsolePlan = ListenPlan;

/// Which listener a plan is for, as its refusals name it.
struct Listener<'a> {
    /// The config section: `console`.
    section: &'a str,
    /// What a person calls it: `控制台`.
    zh: &'a str,
    /// And in English: `the console`.
    en: &'a str,
}

/// Decides HTTPS or HTTP for a listener on `listen` with the web certificate, refusing a bad
/// combination with a message that says what to do: `cert` without `key` (or the reverse), a
/// named file that is missing, half of the web certificate in `cert_dir`, or a non-loopback
/// address without a certificate.
fn plan_listener(
    l: &Listener<'_>,
    listen: SocketAddr,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    cert_dir: &Path,
) -> anyhow::Result<ListenPlan> {
    let Listener { section, zh, en } = l;
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => {
            for (p, what) in [(cert, "cert"), (key, "key")] {
                if !p.is_file() {
                    bail!("[{section}] {what} = {}：文件不存在 / {en}'s {what} file does not exist", p.display());
                }
            }
            Some((cert.clone(), key.clone()))
        }
        (Some(_), None) | (None, Some(_)) => bail!(
            "[{section}] 的 cert 与 key 须同时给出（或都不写，使用 {} 中的 {} 与 {}） / {en}'s cert and key go together",
            cert_dir.display(),
            crate::tls::WEB_CERT_FILE,
            crate::tls::WEB_KEY_FILE
        ),
        (None, None) => {
            let (cert, key) = crate::tls::web_paths(cert_dir);
            match (cert.is_file(), key.is_file()) {
                (true, true) => Some((cert, key)),
                (false, false) => None,
                _ => bail!(
                    "{} 中只有网页证书的一半（{} 与 {} 须同时存在；可用 mingchu ca issue --web --force 重新签发） / \
                     half of the web certificate ({en}'s) is in {}",
                    cert_dir.display(),
                    crate::tls::WEB_CERT_FILE,
                    crate::tls::WEB_KEY_FILE,
                    cert_dir.display()
                ),
            }
        }
    };
    if tls.is_none() && !listen.ip().is_loopback() {
        bail!(
            "{zh}监听 {listen} 不是本机回环地址，必须使用 HTTPS：请先运行 mingchu ca issue --web --host <主机名或IP> \
             --dir {}，或在 [{section}] 中给出 cert 与 key / {en} on {listen} must use HTTPS: issue a web certificate \
             first (plain HTTP only on loopback)",
            cert_dir.display()
        );
    }
    Ok(ListenPlan { listen, tls })
}

impl ConsoleConfig {
    /// A console on `listen` with the web certificate of the cert dir (if any) and the big
    /// screen's defaults.
    pub fn new(listen: SocketAddr) -> ConsoleConfig {
        ConsoleConfig { listen, cert: None, key: None, screen_map: None, screen_refresh_s: None }
    }

    /// Decides HTTPS or HTTP (see [`plan_listener`]): with the web certificate, HTTPS; without
    /// one, plain HTTP on loopback only.
    pub fn plan(&self, cert_dir: &Path) -> anyhow::Result<ConsolePlan> {
        let l = Listener { section: "console", zh: "控制台", en: "the console" };
        plan_listener(&l, self.listen, &self.cert, &self.key, cert_dir)
    }
}

/// A school's device intake (`[devices]` in the node's config): the listener on the school's LAN
/// where its AI boxes and video recorders (NVRs) post detections and camera heartbeats with their
/// device tokens (`mingchu device add`).
///
/// ```toml
/// [devices]
/// listen = "192.168.10.5:8444"
/// # cert = "certs/web.pem"   # default: web.pem and web.key in the cert_dir, as the console
/// # key = "certs/web.key"
/// # rate_per_s = 20          # each device's requests per second, on average
/// # burst = 100              # and at most this many at once
/// ```
///
/// The same HTTPS rule as the console: with the web certificate HTTPS, without one plain HTTP on
/// loopback only. Only a school serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    pub listen: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Each device's requests per second, on average (its token bucket's refill).
    #[serde(default = "default_device_rate_per_s")]
    pub rate_per_s: u32,
    /// Each device's requests at once (its token bucket's size).
    #[serde(default = "default_device_burst")]
    pub burst: u32,
}

/// Default: a device may send 20 requests a second on average…
pub const DEVICE_RATE_PER_S_DEFAULT: u32 = 20;
/// …and 100 at once.
pub const DEVICE_BURST_DEFAULT: u32 = 100;

fn default_device_rate_per_s() -> u32 {
    DEVICE_RATE_PER_S_DEFAULT
}

fn default_device_burst() -> u32 {
    DEVICE_BURST_DEFAULT
}

impl DevicesConfig {
    pub fn new(listen: SocketAddr) -> DevicesConfig {
        DevicesConfig {
            listen,
            cert: None,
            key: None,
            rate_per_s: DEVICE_RATE_PER_S_DEFAULT,
            burst: DEVICE_BURST_DEFAULT,
        }
    }

    /// Decides HTTPS or HTTP by the console's rule ([`plan_listener`]), for school `me` only: a
    /// province, city or county has no devices of its own, and a rate or burst that lets nothing
    /// through is refused.
    pub fn plan(&self, cert_dir: &Path, me: NodeId) -> anyhow::Result<ListenPlan> {
        if me.tier() != topology::Tier::School {
            bail!(
                "[devices] 只能配置在学校节点上；{me} 是{}级节点，它的设备接入由下辖学校各自提供，请删去这一节 / \
                 the device intake is a school's: {me} is a {}, remove [devices] from its config",
                tier_zh(me.tier()),
                me.tier()
            );
        }
        if self.rate_per_s == 0 || self.burst == 0 {
            bail!(
                "[devices] 的 rate_per_s 与 burst 都须至少为 1（现为 {} 与 {}） / the device rate limit needs \
                 rate_per_s >= 1 and burst >= 1",
                self.rate_per_s,
                self.burst
            );
        }
        let l = Listener { section: "devices", zh: "设备接入", en: "the device intake" };
        plan_listener(&l, self.listen, &self.cert, &self.key, cert_dir)
    }
}

fn tier_zh(t: topology::Tier) -> &'static str {
    match t {
        topology::Tier::Province => "省",
        topology::Tier::City => "市",
        topology::Tier::County => "县",
        topology::Tier::School => "学校",
    }
}

fn default_case_scan_ms() -> u64 {
    crate::runtime::scheduler::CASE_SCAN_MS_DEFAULT
}

fn default_health_refresh_ms() -> u64 {
    protocol::health::HealthTiming::default().refresh_ms
}

fn default_health_flush_ms() -> u64 {
    protocol::health::HealthTiming::default().flush_ms
}

fn default_health_stale_after_ms() -> u64 {
    protocol::health::HealthTiming::default().stale_after_ms
}

fn default_true() -> bool {
    true
}

fn default_failover_after_ms() -> u64 {
    crate::runtime::root::FAILOVER_AFTER_MS_DEFAULT
}

fn default_suspect_after_ms() -> u64 {
    SessionConfig::default().suspect_after_ms
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
            suspect_after_ms: default_suspect_after_ms(),
            quic_bind: None,
            priority_lane: true,
            case_scan_ms: default_case_scan_ms(),
            clock_control: false,
            health_refresh_ms: default_health_refresh_ms(),
            health_flush_ms: default_health_flush_ms(),
            health_stale_after_ms: default_health_stale_after_ms(),
            quic_addr: None,
            admin_addr: None,
            console: None,
            devices: None,
            files: FilesConfig::default(),
            storage: None,
            video: VideoConfig::default(),
            retention: None,
        }
    }

    /// How many days this node keeps its events: `Some` at a school, `None` (everything) above.
    pub fn retention_days(&self) -> Option<u32> {
        (self.node.tier() == topology::Tier::School).then(|| self.retention.map_or(RETENTION_DAYS_DEFAULT, |r| r.days))
    }

    pub fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        NodeConfig::parse(&text, path)
    }

    /// The config in `text`, read from the file at `path` (named in errors; relative paths are
    /// resolved against its folder), checked: a pure function of the text, which reads no file.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<NodeConfig> {
        let mut cfg: NodeConfig = toml::from_str(text).with_context(|| format!("bad config {}", path.display()))?;
        if cfg.files.snapshot_days < 30 {
            bail!(
                "{}: [files] snapshot_days = {}：监控截图至少保存 30 天 / snapshots are kept at least 30 days",
                path.display(),
                cfg.files.snapshot_days
            );
        }
        cfg.video.check().with_context(|| path.display().to_string())?;
        if let Some(r) = cfg.retention {
            if cfg.node.tier() != topology::Tier::School {
                bail!(
                    "{}: [retention] 只用于学校节点：区县、市和省保留全部数据 / only a school drops old events",
                    path.display()
                );
            }
            if r.days < RETENTION_DAYS_MIN {
                bail!(
                    "{}: [retention] days = {}：学校至少保留 {RETENTION_DAYS_MIN} 天（预警规则要看 62 天的台账，监控数据至少保存 30 天）",
                    path.display(),
                    r.days
                );
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let console_paths = cfg.console.iter_mut().flat_map(|c| [c.cert.as_mut(), c.key.as_mut()]).flatten();
        let device_paths = cfg.devices.iter_mut().flat_map(|c| [c.cert.as_mut(), c.key.as_mut()]).flatten();
        let paths = [&mut cfg.topology, &mut cfg.data_dir, &mut cfg.cert_dir].into_iter();
        for p in paths.chain(console_paths).chain(device_paths) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if cfg.keepalive_ms == 0 || cfg.idle_timeout_ms <= cfg.keepalive_ms {
            bail!("bad config {}: need 0 < keepalive_ms < idle_timeout_ms", path.display());
        }
        if cfg.suspect_after_ms >= cfg.idle_timeout_ms {
            bail!(
                "配置文件 {} 有误：suspect_after_ms 须小于 idle_timeout_ms（为 0 时不启用）(bad config: need suspect_after_ms < idle_timeout_ms, or 0)",
                path.display()
            );
        }
        if cfg.storage == Some(crate::storage::Backend::Memory) {
            bail!(
                "配置文件 {} 有误：storage 只能是 \"redb\" 或 \"sled\"（memory 不落盘）(bad config: storage must be redb or sled)",
                path.display()
            );
        }
        if cfg.health_flush_ms == 0 || cfg.health_refresh_ms < cfg.health_flush_ms {
            bail!("bad config {}: need 0 < health_flush_ms <= health_refresh_ms", path.display());
        }
        if cfg.health_stale_after_ms <= cfg.health_refresh_ms {
            bail!("bad config {}: need health_stale_after_ms > health_refresh_ms", path.display());
        }
        Ok(cfg)
    }

    pub fn health(&self) -> protocol::health::HealthTiming {
        protocol::health::HealthTiming {
            refresh_ms: self.health_refresh_ms,
            flush_ms: self.health_flush_ms,
            stale_after_ms: self.health_stale_after_ms,
            ..protocol::health::HealthTiming::default()
        }
    }

    pub fn session(&self) -> SessionConfig {
        SessionConfig {
            keepalive_ms: self.keepalive_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            priority_lane: self.priority_lane,
            suspect_after_ms: self.suspect_after_ms,
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

// The big screen (监管大屏): its settings as loaded at start (see `[console] screen_map`).

/// The refresh when the config names none, and its bounds.
pub const SCREEN_REFRESH_S_DEFAULT: u32 = 10;
pub const SCREEN_REFRESH_S_MIN: u32 = 5;
pub const SCREEN_REFRESH_S_MAX: u32 = 3600;
/// The largest GeoJSON file the node loads.
pub const SCREEN_MAP_BYTES_MAX: u64 = 64 << 20;

/// The big screen's settings, loaded at start from `[console] screen_refresh_s` and `screen_map`.
#[derive(Clone, Debug)]
pub struct ScreenSetup {
    pub refresh_s: u32,
    /// The region's GeoJSON, checked at start, served as it is.
    pub map: Option<std::sync::Arc<Vec<u8>>>,
}

impl Default for ScreenSetup {
    fn default() -> ScreenSetup {
        ScreenSetup { refresh_s: SCREEN_REFRESH_S_DEFAULT, map: None }
    }
}

impl ScreenSetup {
    /// Loads and checks the settings; a refusal says in Chinese what is wrong and what to do.
    pub fn load(refresh_s: Option<u32>, map: Option<&Path>) -> Result<ScreenSetup, String> {
        let refresh_s = refresh_s.unwrap_or(SCREEN_REFRESH_S_DEFAULT);
        if !(SCREEN_REFRESH_S_MIN..=SCREEN_REFRESH_S_MAX).contains(&refresh_s) {
            return Err(format!(
                "[console] screen_refresh_s = {refresh_s}：大屏刷新间隔须在 {SCREEN_REFRESH_S_MIN} 到 {SCREEN_REFRESH_S_MAX} 秒之间"
            ));
        }
        let map = match map {
            None => None,
            Some(p) => Some(std::sync::Arc::new(check_map(p)?)),
        };
        Ok(ScreenSetup { refresh_s, map })
    }
}

/// Reads a GeoJSON file and checks that ECharts can draw it: a `FeatureCollection` whose features
/// have a name or an administrative code (`adcode`) to match the units by.
pub fn check_map(p: &Path) -> Result<Vec<u8>, String> {
    let at = p.display();
    let meta = std::fs::metadata(p).map_err(|e| format!("[console] screen_map = {at}：无法读取地图文件（{e}）"))?;
    if meta.len() > SCREEN_MAP_BYTES_MAX {
        return Err(format!("[console] screen_map = {at}：地图文件超过 {} MiB 的上限", SCREEN_MAP_BYTES_MAX >> 20));
    }
    let bytes = std::fs::read(p).map_err(|e| format!("[console] screen_map = {at}：无法读取地图文件（{e}）"))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("[console] screen_map = {at}：不是有效的 GeoJSON（JSON 格式错误：{e}）"))?;
    if v.get("type").and_then(|t| t.as_str()) != Some("FeatureCollection") {
        return Err(format!("[console] screen_map = {at}：GeoJSON 的 type 须为 FeatureCollection"));
    }
    let features = v.get("features").and_then(|f| f.as_array()).filter(|f| !f.is_empty());
    let Some(features) = features else {
        return Err(format!("[console] screen_map = {at}：GeoJSON 中没有任何区域（features 为空）"));
    };
    for (i, f) in features.iter().enumerate() {
        let props = f.get("properties");
        let named = props.and_then(|p| p.get("name")).and_then(|n| n.as_str()).is_some_and(|n| !n.is_empty());
        let coded = props.and_then(|p| p.get("adcode")).is_some_and(|c| c.is_number() || c.is_string());
        if !named && !coded {
            return Err(format!(
                "[console] screen_map = {at}：第 {} 个区域没有 properties.name 或 properties.adcode，无法与单位对应",
                i + 1
            ));
        }
        if f.get("geometry").and_then(|g| g.get("type")).is_none() {
            return Err(format!("[console] screen_map = {at}：第 {} 个区域没有 geometry", i + 1));
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(listen: &str, cert: Option<&Path>, key: Option<&Path>) -> ConsoleConfig {
        ConsoleConfig {
            listen: listen.parse().unwrap(),
            cert: cert.map(Path::to_path_buf),
            key: key.map(Path::to_path_buf),
            screen_map: None,
            screen_refresh_s: None,
        }
    }

    /// A school keeps 400 days by default and at least 90; above a school the section is refused.
    #[test]
    fn retention_is_a_schools_and_has_a_floor_of_ninety_days() {
        let base = "topology = \"t.toml\"\ndata_dir = \"d\"\ncert_dir = \"c\"\n";
        let parse = |node: &str, extra: &str| {
            NodeConfig::parse(&format!("node = \"{node}\"\n{base}{extra}"), Path::new("/etc/mingchu/n.toml"))
        };
        assert_eq!(parse("130102-S0001", "").unwrap().retention_days(), Some(RETENTION_DAYS_DEFAULT));
        assert_eq!(parse("130102", "").unwrap().retention_days(), None);
        let cfg = parse("130102-S0001", "[retention]\ndays = 120\n").unwrap();
        assert_eq!(cfg.retention_days(), Some(120));
        let err = format!("{:#}", parse("130102-S0001", "[retention]\ndays = 30\n").unwrap_err());
        assert!(err.contains("学校至少保留 90 天"), "{err}");
        let err = format!("{:#}", parse("130102", "[retention]\ndays = 400\n").unwrap_err());
        assert!(err.contains("只用于学校节点"), "{err}");
    }

    /// The store is redb unless a new directory is asked to be sled; a directory keeps the store
    /// it holds, and one holding the other store than asked is refused before anything opens.
    #[test]
    fn the_store_is_chosen_by_the_directory_then_the_config() {
        use crate::storage::Backend;
        let base = "node = \"130102\"\ntopology = \"t.toml\"\ndata_dir = \"d\"\ncert_dir = \"c\"\n";
        let parse = |extra: &str| NodeConfig::parse(&format!("{base}{extra}"), Path::new("/etc/mingchu/n.toml"));
        assert_eq!(parse("").unwrap().storage, None);
        assert_eq!(parse("storage = \"sled\"\n").unwrap().storage, Some(Backend::Sled));
        let err = format!("{:#}", parse("storage = \"memory\"\n").unwrap_err());
        assert!(err.contains("storage 只能是"), "{err}");
        let err = format!("{:#}", parse("storage = \"rocks\"\n").unwrap_err());
        assert!(err.contains("未知的存储类型"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(Backend::for_data_dir(d, None).unwrap(), Backend::Redb);
        assert_eq!(Backend::for_data_dir(d, Some(Backend::Sled)).unwrap(), Backend::Sled);
        std::fs::write(d.join("conf"), "").unwrap();
        std::fs::write(d.join("db"), "").unwrap();
        assert_eq!(Backend::for_data_dir(d, None).unwrap(), Backend::Sled, "a directory made before redb");
        let err = Backend::for_data_dir(d, Some(Backend::Redb)).unwrap_err().to_string();
        assert!(err.contains("migrate-store"), "{err}");
    }

    #[test]
    fn the_console_is_https_off_loopback_and_refuses_bad_combinations() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path();
        // No certificate: HTTP on loopback only.
        assert_eq!(console("127.0.0.1:8443", None, None).plan(certs).unwrap().tls, None);
        assert_eq!(console("[::1]:8443", None, None).plan(certs).unwrap().tls, None);
        let err = console("192.168.10.5:8443", None, None).plan(certs).unwrap_err().to_string();
        assert!(err.contains("必须使用 HTTPS") && err.contains("ca issue --web"), "{err}");
        let err = console("0.0.0.0:8443", None, None).plan(certs).unwrap_err().to_string();
        assert!(err.contains("必须使用 HTTPS"), "{err}");

        // Half of the web certificate in the folder is refused; both make it HTTPS, loopback too.
        let (cert, key) = crate::tls::web_paths(certs);
        std::fs::write(&cert, "x").unwrap();
        let err = console("127.0.0.1:8443", None, None).plan(certs).unwrap_err().to_string();
        assert!(err.contains("只有网页证书的一半"), "{err}");
        std::fs::write(&key, "x").unwrap();
        for listen in ["127.0.0.1:8443", "192.168.10.5:8443"] {
            assert_eq!(console(listen, None, None).plan(certs).unwrap().tls, Some((cert.clone(), key.clone())));
        }

        // Named files: both or neither, and they must exist.
        let err = console("127.0.0.1:8443", Some(&cert), None).plan(certs).unwrap_err().to_string();
        assert!(err.contains("须同时给出"), "{err}");
        let err = console("127.0.0.1:8443", None, Some(&key)).plan(certs).unwrap_err().to_string();
        assert!(err.contains("须同时给出"), "{err}");
        let missing = certs.join("nope.pem");
        let err = console("10.0.0.1:443", Some(&missing), Some(&key)).plan(certs).unwrap_err().to_string();
        assert!(err.contains("文件不存在") && err.contains("nope.pem"), "{err}");
        let plan = console("10.0.0.1:443", Some(&key), Some(&cert)).plan(certs).unwrap();
        assert_eq!(plan.tls, Some((key.clone(), cert.clone())));
    }

    #[test]
    fn the_video_section_takes_an_http_base_address_only() {
        let cfg: NodeConfig = toml::from_str(
            "node = \"130102\"\ntopology = \"t.toml\"\ndata_dir = \"d\"\ncert_dir = \"c\"\n\
             [video]\nhls_base = \"http://192.168.10.8:8080/hls\"\n",
        )
        .unwrap();
        assert_eq!(cfg.video.hls_base.as_deref(), Some("http://192.168.10.8:8080/hls"));
        assert!(cfg.video.check().is_ok());
        assert!(VideoConfig::default().check().is_ok());
        for bad in ["rtmp://x/live", "http://", "http://x/a b", "http://x/\"><script>"] {
            let err = VideoConfig { hls_base: Some(bad.into()) }.check().unwrap_err().to_string();
            assert!(err.contains("hls_base"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_device_intake_is_a_schools_and_follows_the_consoles_https_rule() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path();
        let school: NodeId = "130102-S0001".parse().unwrap();
        let devices = |listen: &str| DevicesConfig::new(listen.parse().unwrap());
        assert_eq!(devices("127.0.0.1:8444").plan(certs, school).unwrap().tls, None);
        let err = devices("192.168.10.5:8444").plan(certs, school).unwrap_err().to_string();
        assert!(err.contains("设备接入监听") && err.contains("必须使用 HTTPS") && err.contains("[devices]"), "{err}");
        for other in ["13", "1301", "130102"] {
            let err = devices("127.0.0.1:8444").plan(certs, other.parse().unwrap()).unwrap_err().to_string();
            assert!(err.contains("只能配置在学校节点上") && err.contains(other), "{err}");
        }
        let err = DevicesConfig { burst: 0, ..devices("127.0.0.1:8444") }.plan(certs, school).unwrap_err();
        assert!(err.to_string().contains("burst"), "{err}");
        let (cert, key) = crate::tls::web_paths(certs);
        std::fs::write(&cert, "x").unwrap();
        std::fs::write(&key, "x").unwrap();
        assert_eq!(devices("192.168.10.5:8444").plan(certs, school).unwrap().tls, Some((cert, key)));

        // In the file: relative paths, and the defaults of the rate limit.
        let text = "node = \"130102-S0001\"\ntopology = \"t.toml\"\ndata_dir = \"d\"\ncert_dir = \"c\"\n\n[devices]\nlisten \
                    = \"127.0.0.1:8444\"\ncert = \"c/web.pem\"\nkey = \"c/web.key\"\n";
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        let d = NodeConfig::load(&path).unwrap().devices.unwrap();
        assert_eq!(d.cert.unwrap(), dir.path().join("c/web.pem"));
        assert_eq!((d.rate_per_s, d.burst), (DEVICE_RATE_PER_S_DEFAULT, DEVICE_BURST_DEFAULT));
    }

    #[test]
    fn console_paths_in_the_config_file_are_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let text = "node = \"130102\"\ntopology = \"t.toml\"\ndata_dir = \"d\"\ncert_dir = \"c\"\n\n[console]\nlisten = \
                    \"127.0.0.1:8443\"\ncert = \"c/web.pem\"\nkey = \"/etc/mingchu/web.key\"\n";
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = NodeConfig::load(&path).unwrap();
        let c = cfg.console.clone().unwrap();
        assert_eq!(c.cert.unwrap(), dir.path().join("c/web.pem"));
        assert_eq!(c.key.unwrap(), PathBuf::from("/etc/mingchu/web.key"));
        // And it survives a round trip through the file (the harness writes configs this way).
        let again: NodeConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(again, cfg);
        std::fs::write(&path, text.replace("listen", "lisen")).unwrap();
        assert!(format!("{:#}", NodeConfig::load(&path).unwrap_err()).contains("lisen"));
    }
}

#[cfg(test)]
mod screen_tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("map.json");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn a_map_file_is_checked_with_chinese_reasons() {
        let good = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"adcode":130100,"name":"石家庄市"},"geometry":{"type":"Polygon","coordinates":[[[114,38],[115,38],[115,39],[114,38]]]}}]}"#;
        let (_d, p) = write(good);
        assert!(ScreenSetup::load(None, Some(&p)).unwrap().map.is_some());
        for (text, says) in [
            ("not json", "JSON 格式错误"),
            (r#"{"type":"Feature"}"#, "FeatureCollection"),
            (r#"{"type":"FeatureCollection","features":[]}"#, "features 为空"),
            (r#"{"type":"FeatureCollection","features":[{"properties":{},"geometry":{"type":"Point"}}]}"#, "adcode"),
            (r#"{"type":"FeatureCollection","features":[{"properties":{"name":"x"}}]}"#, "geometry"),
        ] {
            let (_d, p) = write(text);
            let e = ScreenSetup::load(None, Some(&p)).unwrap_err();
            assert!(e.contains(says) && e.contains("screen_map"), "{text}: {e}");
        }
        let e = ScreenSetup::load(None, Some(Path::new("/nonexistent/map.json"))).unwrap_err();
        assert!(e.contains("无法读取"), "{e}");
        assert!(ScreenSetup::load(Some(2), None).unwrap_err().contains("刷新间隔"));
        assert_eq!(ScreenSetup::load(None, None).unwrap().refresh_s, SCREEN_REFRESH_S_DEFAULT);
    }
}
