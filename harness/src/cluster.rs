//! A federation of real `mingchu node run` processes on loopback, for the demo, the benchmark and
//! the integration tests: topology, CA and certificates in one folder, one OS process (own QUIC
//! endpoint, own redb store) per node, started, stopped, killed and queried individually. Every
//! node serves its web console over HTTPS on a free loopback port ([`Cluster::console_url`]), with
//! one web certificate for 127.0.0.1 from the federation CA ([`Cluster::ca_cert_path`]).
//!
//! Each child's standard input is a pipe held here: closing it stops the node cleanly, and if this
//! process dies the pipes close and the nodes stop too — nothing is left running.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use topology::generate::{AddrPlan, SmallSpec, generate_small};
use topology::{NodeId, Topology};

use client::AdminClient;
use node::config::{ConsoleConfig, NodeConfig};
use node::runtime::link::LinkState;
use node::runtime::root::NodeStatus;
use node::tls;

/// The cameras [`Cluster::register_cameras`] registers at each school, with the zone each watches.
pub const CAMERAS: [(&str, protocol::Zone); 8] = [
    ("cam-01", protocol::Zone::Cooking),
    ("cam-02", protocol::Zone::Cutting),
    ("cam-03", protocol::Zone::RoughProcessing),
    ("cam-04", protocol::Zone::SpecialRoom),
    ("cam-05", protocol::Zone::Washing),
    ("cam-06", protocol::Zone::Serving),
    ("cam-07", protocol::Zone::Sampling),
    ("cam-08", protocol::Zone::Cooking),
];

/// Starts one node outside a cluster (a benchmark's province on its own data dir) as a child of
/// `exe`: warnings only, no output kept; it stops when its stdin is closed.
pub fn spawn_lone_node(exe: &Path, cfg_path: &Path) -> std::io::Result<std::process::Child> {
    Command::new(exe)
        .args(["node", "run", "--stop-on-stdin-eof", "--config"])
        .arg(cfg_path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Finds a base port where every node's QUIC (UDP) and admin (TCP) port is free right now.
pub fn free_base_port(nodes: usize) -> anyhow::Result<u16> {
    let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    reserve_ports((nodes * 2) as u32, |base| {
        (0..nodes).all(|i| {
            let quic = base + 2 * i as u16;
            UdpSocket::bind(SocketAddr::new(host, quic)).is_ok()
                && TcpListener::bind(SocketAddr::new(host, quic + 1)).is_ok()
        })
    })
}

/// Finds `count` consecutive loopback TCP ports free right now (the nodes' web consoles).
pub fn free_tcp_ports(count: usize) -> anyhow::Result<u16> {
    let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    reserve_ports(count as u32, |base| {
        (0..count).all(|i| TcpListener::bind(SocketAddr::new(host, base + i as u16)).is_ok())
    })
}

/// Reserves `span` ports from `base` for which `all_free(base)` holds, never one handed out
/// before by this process.
fn reserve_ports(span: u32, all_free: impl Fn(u16) -> bool) -> anyhow::Result<u16> {
    // Ranges handed out by this process: two federations created at the same moment (parallel
    // tests) must not pick overlapping ports before either binds them.
    static TAKEN: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());
    let seed = std::process::id().wrapping_mul(7919) ^ (node::clock::unix_ms() as u32);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let (lo_port, hi_port) = fixed_port_window(span);
    for attempt in 0..200u32 {
        let base = (lo_port + seed.wrapping_add(attempt.wrapping_mul(1543)) % (hi_port - lo_port - span)) as u16;
        let (lo, hi) = (base as u32, base as u32 + span);
        if taken.iter().any(|&(a, b)| lo < b && a < hi) {
            continue;
        }
        if all_free(base) {
            taken.push((lo, hi));
            return Ok(base);
        }
    }
    bail!("no free range of {span} loopback ports found")
}

/// Ports to hand out: outside the kernel's ephemeral range, which every outgoing connection
/// (admin clients, QUIC dialers) draws from. A node restarted in a test binds its ports again;
/// inside that range some other client may have been given one of them meanwhile.
fn fixed_port_window(span: u32) -> (u32, u32) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok().and_then(|t| {
        let mut it = t.split_whitespace().map(|v| v.parse::<u32>().ok());
        Some((it.next()??, it.next()??))
    });
    const ROOM: u32 = 2_000;
    match ephemeral {
        Some((lo, _)) if lo >= 10_000 + span + ROOM => (10_000, lo),
        Some((_, hi)) if hi + 1 + span + ROOM <= 65_535 => (hi + 1, 65_535),
        // No room outside it (or not Linux): the old window, and hope.
        _ => (20_000, 60_000),
    }
}

/// One federation on this machine.
pub struct Cluster {
    pub dir: PathBuf,
    pub topology: Topology,
    pub topology_path: PathBuf,
    pub cert_dir: PathBuf,
    binary: PathBuf,
    /// Each node's web console (HTTPS with the web certificate for 127.0.0.1).
    consoles: BTreeMap<NodeId, SocketAddr>,
    procs: BTreeMap<NodeId, Child>,
    /// Nodes added at run time that the topology file does not list, with their admin address.
    joined: BTreeMap<NodeId, SocketAddr>,
    /// Extra `RUST_LOG` for the children.
    log: String,
}

impl Cluster {
    /// Generates a small tree in `dir` with free ports, a CA and a certificate per node.
    pub fn create(dir: &Path, spec: &SmallSpec, binary: &Path) -> anyhow::Result<Cluster> {
        let nodes = spec.node_count() as usize;
        let plan = AddrPlan { host: IpAddr::V4(Ipv4Addr::LOCALHOST), base_port: free_base_port(nodes)? };
        let topology = generate_small(spec, &plan)?;
        Cluster::from_topology(dir, topology, binary)
    }

    pub fn from_topology(dir: &Path, topology: Topology, binary: &Path) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir.join("logs"))?;
        let topology_path = dir.join("topology.toml");
        topology.save(&topology_path)?;
        let cert_dir = dir.join("certs");
        tls::ca_init(&cert_dir)?;
        for e in topology.nodes() {
            tls::ca_issue(&cert_dir, e.id)?;
        }
        // One web certificate for 127.0.0.1 in the shared folder: every node's console finds it.
        tls::ca_issue_web(&cert_dir, &[tls::WebHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))])?;
        let console_base = free_tcp_ports(topology.len())?;
        let mut consoles = BTreeMap::new();
        for (i, e) in topology.nodes().enumerate() {
            let mut cfg =
                NodeConfig::new(e.id, topology_path.clone(), dir.join("data").join(e.id.to_string()), cert_dir.clone());
            let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), console_base + i as u16);
            cfg.console = Some(ConsoleConfig::new(listen));
            consoles.insert(e.id, listen);
            std::fs::write(dir.join(format!("{}.toml", e.id)), toml::to_string(&cfg)?)?;
        }
        Ok(Cluster {
            dir: dir.to_path_buf(),
            topology,
            topology_path,
            cert_dir,
            binary: binary.to_path_buf(),
            consoles,
            procs: BTreeMap::new(),
            joined: BTreeMap::new(),
            log: "info".into(),
        })
    }

    /// Makes node `id` bind its QUIC endpoint at `addr` while peers keep dialing the topology's
    /// address (for putting a relay in front of it). Takes effect at its next start.
    pub fn set_quic_bind(&mut self, id: NodeId, addr: SocketAddr) -> anyhow::Result<()> {
        self.edit_config(id, |cfg| cfg.quic_bind = Some(addr))
    }

    /// Changes node `id`'s configuration file; takes effect at its next start.
    pub fn edit_config(&mut self, id: NodeId, edit: impl FnOnce(&mut NodeConfig)) -> anyhow::Result<()> {
        let mut cfg = NodeConfig::load(&self.config_path(id))?;
        edit(&mut cfg);
        std::fs::write(self.config_path(id), toml::to_string(&cfg)?)?;
        Ok(())
    }

    pub fn set_log(&mut self, filter: &str) {
        self.log = filter.to_string();
    }

    pub fn config_path(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("{id}.toml"))
    }

    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.dir.join("data").join(id.to_string())
    }

    pub fn log_path(&self, id: NodeId) -> PathBuf {
        self.dir.join("logs").join(format!("{id}.log"))
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.topology.nodes().map(|e| e.id).collect()
    }

    pub fn admin_addr(&self, id: NodeId) -> SocketAddr {
        self.joined
            .get(&id)
            .copied()
            .or_else(|| self.topology.get(id).map(|e| e.admin))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)))
    }

    /// Adds node `id`, which the topology file does not list (a school registered at run time by
    /// its county), listening at `quic` and `admin`: writes its config with those addresses. Its
    /// parent must be in the topology, and its certificate issued (`mingchu ca issue`) before
    /// [`Cluster::start`]. The topology file is not changed: nobody else restarts or reloads.
    pub fn add_joining(&mut self, id: NodeId, quic: SocketAddr, admin: SocketAddr) -> anyhow::Result<()> {
        if self.topology.contains(id) || self.joined.contains_key(&id) {
            bail!("node {id} is already part of this federation");
        }
        let mut cfg = NodeConfig::new(id, self.topology_path.clone(), self.data_dir(id), self.cert_dir.clone());
        (cfg.quic_addr, cfg.admin_addr) = (Some(quic), Some(admin));
        let console = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_tcp_ports(1)?);
        cfg.console = Some(ConsoleConfig::new(console));
        // The same check the node makes when it starts (the parent is there, the addresses are free).
        node::config::add_joining_node(&mut self.topology.clone(), &cfg)?;
        std::fs::write(self.config_path(id), toml::to_string(&cfg)?)?;
        self.joined.insert(id, admin);
        self.consoles.insert(id, console);
        Ok(())
    }

    /// Node `id`'s web console: `https://127.0.0.1:PORT` (its certificate chains to
    /// [`Cluster::ca_cert_path`] and names 127.0.0.1).
    pub fn console_url(&self, id: NodeId) -> String {
        match self.consoles.get(&id) {
            Some(addr) => format!("https://{addr}"),
            None => String::from("https://127.0.0.1:9"),
        }
    }

    /// The federation CA's certificate (PEM): what a browser or client must trust for the consoles.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.cert_dir.join(tls::CA_CERT_FILE)
    }

    /// A client of node `id`'s admin API; answers from any other node are refused.
    pub fn client(&self, id: NodeId) -> AdminClient {
        AdminClient::new(self.admin_addr(id)).expecting(id)
    }

    /// Registers the kitchen of every running school the way a school registers its own: canteen
    /// `main` and the cameras [`CAMERAS`] (`cam-01` … `cam-08`, one per zone of the kitchen), so
    /// their AI alerts are accepted.
    pub fn register_cameras(&self) -> anyhow::Result<()> {
        let schools: Vec<NodeId> = self.procs.keys().copied().filter(|n| n.tier() == topology::Tier::School).collect();
        for school in schools {
            self.register_cameras_at(school)?;
        }
        Ok(())
    }

    /// [`Cluster::register_cameras`] at one school.
    pub fn register_cameras_at(&self, school: NodeId) -> anyhow::Result<()> {
        use node::api::registry::RegistryRequest;
        use protocol::registry::{Camera, Canteen, EntityData, EntityKind, RegistryOp};
        let client = self.client(school);
        let write = |kind, id: &str, data| {
            client.registry_write(&RegistryRequest { kind, node: None, id: id.into(), op: RegistryOp::Upsert(data) })
        };
        write(
            EntityKind::Canteen,
            "main",
            EntityData::Canteen(Canteen { name: "学生食堂".into(), address: String::new() }),
        )?;
        for (i, (id, zone)) in CAMERAS.iter().enumerate() {
            let camera = Camera {
                canteen: "main".into(),
                name: format!("{} {}", zone.zh(), i + 1),
                zone: *zone,
                ai_enabled: true,
                parent_visible: i == 0,
            };
            write(EntityKind::Camera, id, EntityData::Camera(camera))?;
        }
        Ok(())
    }

    /// Starts node `id` as a child process (appending to its log).
    pub fn start(&mut self, id: NodeId) -> anyhow::Result<()> {
        if self.procs.contains_key(&id) {
            bail!("node {id} is already running");
        }
        let log = File::options().create(true).append(true).open(self.log_path(id))?;
        let child = Command::new(&self.binary)
            .args(["node", "run", "--stop-on-stdin-eof", "--config"])
            .arg(self.config_path(id))
            .env("RUST_LOG", &self.log)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        self.procs.insert(id, child);
        Ok(())
    }

    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(id)?;
        }
        Ok(())
    }

    pub fn is_running(&self, id: NodeId) -> bool {
        self.procs.contains_key(&id)
    }

    /// Stops node `id` cleanly (closes its stdin) and waits for it.
    pub fn stop(&mut self, id: NodeId) -> anyhow::Result<()> {
        let Some(mut child) = self.procs.remove(&id) else { return Ok(()) };
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {id} did not stop within 10 s; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills node `id` with SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self, id: NodeId) -> anyhow::Result<()> {
        if let Some(mut child) = self.procs.remove(&id) {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn stop_all(&mut self) {
        // Close every stdin first so the nodes shut down in parallel.
        for child in self.procs.values_mut() {
            drop(child.stdin.take());
        }
        for id in self.procs.keys().copied().collect::<Vec<_>>() {
            let _ = self.stop(id);
        }
    }

    /// Nodes whose process exited on its own, with the exit status.
    pub fn exited(&mut self) -> Vec<(NodeId, String)> {
        let mut out = Vec::new();
        for (id, child) in self.procs.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                out.push((*id, status.to_string()));
            }
        }
        out
    }

    pub fn status(&self, id: NodeId) -> anyhow::Result<NodeStatus> {
        self.client(id).status()
    }

    /// Waits until every running node answers and every link between running nodes is up.
    pub fn wait_links_up(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.exited();
            if let Some((id, status)) = exited.first() {
                bail!("node {id} exited ({status}); see {}", self.log_path(*id).display());
            }
            let mut waiting = Vec::new();
            for &id in self.procs.keys() {
                match self.status(id) {
                    Ok(s) => {
                        let parent_running = id.parent().is_some_and(|p| self.procs.contains_key(&p));
                        if parent_running && s.parent.as_ref().is_none_or(|l| l.state != LinkState::Up) {
                            waiting.push(format!("{id} → parent"));
                        } else if parent_running && s.store.restoring {
                            waiting.push(format!("{id} (restoring)"));
                        }
                    }
                    Err(_) => waiting.push(format!("{id} (not answering)")),
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("links not up after {timeout:?}: {}", waiting.join(", "));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// CPU seconds (user + system) node `id`'s process has used so far (Linux `/proc`).
    pub fn cpu_seconds(&self, id: NodeId) -> Option<f64> {
        let pid = self.procs.get(&id)?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    /// Resident memory of node `id`'s process now, in bytes (Linux `/proc`: `VmRSS`).
    pub fn rss_bytes(&self, id: NodeId) -> Option<u64> {
        self.proc_kb(id, "status", "VmRSS:").map(|kb| kb * 1024)
    }

    /// Memory node `id`'s process alone holds, in bytes (Linux `/proc`: anonymous pages; its RSS
    /// less the binary's and libraries' pages, which all nodes on a machine share).
    pub fn private_bytes(&self, id: NodeId) -> Option<u64> {
        self.proc_kb(id, "smaps_rollup", "Anonymous:").map(|kb| kb * 1024)
    }

    /// The kB figure of the line starting with `field` in `/proc/<node's pid>/<file>`.
    fn proc_kb(&self, id: NodeId, file: &str, field: &str) -> Option<u64> {
        let pid = self.procs.get(&id)?.id();
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        text.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
    }

    /// Bytes node `id`'s data directory takes (the files' lengths, summed).
    pub fn data_bytes(&self, id: NodeId) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(p) else { return 0 };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data_dir(id))
    }

    /// The last `lines` lines of a node's log, for error reports.
    pub fn log_tail(&self, id: NodeId, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Cluster {
    /// What a failed test needs to find out why: every running node's links as `topology show`
    /// prints them, and the end of every node's log. Printed to stderr (the test harness shows
    /// it with the failure).
    fn post_mortem(&self) {
        let now = node::clock::unix_ms();
        let mut out = String::from("\n==== cluster post-mortem: node status and log tails ====\n");
        for id in self.ids().into_iter().chain(self.joined.keys().copied()) {
            out.push_str(&format!(
                "---- {id} ({}) ----\n",
                if self.is_running(id) { "running" } else { "not running" }
            ));
            if self.is_running(id) {
                match self.client(id).status() {
                    Ok(st) => out.push_str(&client::render::render_status(&st, now)),
                    Err(e) => out.push_str(&format!("status: {e:#}\n")),
                }
            }
            out.push_str(&self.log_tail(id, 25));
            out.push('\n');
        }
        eprintln!("{out}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("MINGCHU_NO_POST_MORTEM").is_none() {
            self.post_mortem();
        }
        for child in self.procs.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
