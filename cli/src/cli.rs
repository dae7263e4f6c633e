//! The `mingchu` command line: argument parsing and the small commands. Every query takes `--json`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use client::AdminClient;
use client::render::{render_alerts, render_status};
use node::api::alerts::{RaiseAlert, VerdictKind};
use node::api::directives::SendDirective;
use node::config::NodeConfig;
use node::server::run_until_signal;
use node::tls;
use topology::generate::{AddrPlan, SmallSpec, generate_hebei, generate_small};
use topology::{NodeId, Topology};

#[derive(Parser, Debug)]
#[command(
    name = "mingchu",
    version,
    about = "School-canteen food-safety supervision (互联网+明厨亮灶): one node of the province → city → county → school federation."
)]
pub struct Cli {
    /// Log lines as text (default) or one JSON object per line.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    /// Act as this account of the node (its name is recorded in every step; its role decides
    /// what it may do). Without it, the node's local operator (`本机操作员`).
    #[arg(long = "as", global = true, env = "MINGCHU_ACCOUNT", value_name = "ACCOUNT")]
    pub act_as: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The account every client of this run acts as (`--as`), set once in [`main`].
static ACT_AS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Log times in China time with the offset shown: `2026-12-05T17:00:00.000+08:00`.
struct ChinaTimer;

impl tracing_subscriber::fmt::time::FormatTime for ChinaTimer {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", protocol::calendar::rfc3339(node::clock::unix_ms()))
    }
}

/// The exit code of a failed command: what a script (or a monitoring system) can tell apart.
/// 1 other, 2 bad request (400), 3 no authority (401, 403), 4 not found (404), 5 conflict with the
/// current state (409), 6 node restoring or busy, or too many attempts (503, 429), 7 node unreachable, 8 node failure (500).
/// The outcome of a check-style command that found something (printed already): the exit code,
/// as monitoring systems read it — 1 a warning, 2 critical.
#[derive(Debug)]
pub struct CheckOutcome(pub u8);

impl std::fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "check found problems (exit code {})", self.0)
    }
}

impl std::error::Error for CheckOutcome {}

/// Input the command line refused before asking any node (a malformed number, a schedule that
/// does not validate): exit code 2, like a node's 400.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<BadInput>().is_some() {
        return 2;
    }
    match e.downcast_ref::<client::CallError>() {
        Some(client::CallError::Refused { status: 400, .. }) => 2,
        Some(client::CallError::Refused { status: 401 | 403, .. }) => 3,
        Some(client::CallError::Refused { status: 404, .. }) => 4,
        Some(client::CallError::Refused { status: 409, .. }) => 5,
        Some(client::CallError::Refused { status: 503 | 429, .. }) => 6,
        Some(client::CallError::Unreachable(_) | client::CallError::WrongNode(_)) => 7,
        Some(client::CallError::Refused { status: 500, .. }) => 8,
        _ => 1,
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Start a small real federation on loopback (23 processes, QUIC + mTLS, redb), raise alerts at
    /// every school, show them arrive at the province, and stop.
    Demo(harness::demo::DemoArgs),
    /// The federation CA and node certificates.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Generate topologies; show a running node's links.
    #[command(subcommand)]
    Topology(TopologyCmd),
    /// Run a node.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Raise and list alerts.
    #[command(subcommand)]
    Alert(AlertCmd),
    /// Send notices, directives and bulletins down the tree.
    #[command(subcommand)]
    Directive(DirectiveCmd),
    /// Cases: open, notice, ack, submit, review, close, cancel, escalate, list, show.
    #[command(subcommand)]
    Case(crate::cases::CaseCmd),
    /// Measure throughput and latency on a real 71-process federation (prints numbers).
    Bench(harness::bench::BenchArgs),
    /// Run the deterministic simulator (the same as `mingchu-sim`).
    ///
    /// The real node actors over a seeded in-memory network and storage with a paused clock,
    /// faults, checks, and a report headed by the complete command that reproduces the run.
    Sim(simulations::cli::SimArgs),
    /// The registry: schools, canteens, cameras, staff, health certificates (one owner writes each).
    #[command(subcommand)]
    Registry(crate::registry::RegistryCmd),
    /// Online spot checks (网络巡查): record one, list them, pass rates by unit.
    #[command(subcommand)]
    Spot(crate::spot::SpotCmd),
    /// Accounts: the people who sign in at this node (the first administrator is created here).
    #[command(subcommand)]
    User(crate::users::UserCmd),
    /// A school's devices (AI boxes, video recorders): add, list, revoke, rotate their tokens; and
    /// its cameras' online state.
    #[command(subcommand)]
    Device(crate::devices::DeviceCmd),
    /// Files: store a snapshot or a rectification photo at a node; fetch one through the tree.
    #[command(subcommand)]
    File(crate::files::FileCmd),
    /// 食品安全台账: a school's food-safety ledgers — morning checks (晨检), samples (留样),
    /// purchases with certificates (索证索票), accompanied meals (陪餐), hazard checks (隐患排查),
    /// disinfection (消毒), pesticide tests (农残快检); list them, and which schools filled them in.
    #[command(subcommand)]
    Ledger(crate::ledger::LedgerCmd),
    /// 预警: early warnings about schools (red, orange, yellow), the 约谈 / 问责 candidates, and a
    /// run of the warning engine now. Without a subcommand: `warnings list`.
    Warnings(crate::warnings::WarningsArgs),
    /// 通报: weekly and monthly bulletins ranking the units of a province or city — generate a
    /// draft, list, show, publish it down the tree (a 管理员).
    #[command(subcommand)]
    Bulletin(crate::bulletin::BulletinCmd),
}

#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Create the federation CA (ca.pem, ca.key) in DIR.
    Init {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
    /// Issue a node certificate (nodes/ID.pem, nodes/ID.key) from the CA in DIR, or with --web the
    /// web console's HTTPS certificate (web.pem, web.key).
    Issue {
        /// The node, e.g. 13, 1301, 130102 or 130102-S0001.
        #[arg(long, required_unless_present_any = ["topology", "web"])]
        node: Option<NodeId>,
        /// Issue one certificate for every node of this topology file instead.
        #[arg(long, conflicts_with = "node")]
        topology: Option<PathBuf>,
        /// The web console's server certificate instead (web.pem + web.key in DIR), for the host
        /// names and IP addresses browsers reach it by (--host, once or more).
        #[arg(long, conflicts_with_all = ["node", "topology"], requires = "host")]
        web: bool,
        /// With --web: a host name or IP address of the console (e.g. 192.168.10.5 or
        /// mingchu.lunan.edu.cn); repeat for several.
        #[arg(long, requires = "web")]
        host: Vec<String>,
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Replace a node's existing key and certificate (a running node keeps the old ones until
        /// it restarts). Without it, a node that already has a key is refused.
        #[arg(long)]
        force: bool,
        /// Node certificates valid for this many days instead of two years (1 to 3650).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650), conflicts_with = "web")]
        valid_days: Option<u32>,
    },
    /// Make a CA for a city or a county, signed by the CA in DIR (the province's root, or a city's
    /// delegated CA for one of its counties) and limited to that unit's subtree: with it the unit
    /// issues its own schools' (or counties') certificates, and can sign nothing outside. Writes
    /// OUT/ca.pem (the root certificate), OUT/sub-ca.pem and OUT/sub-ca.key; `ca issue --dir OUT`
    /// then signs with it.
    Delegate {
        /// The city or county, e.g. 1301 or 130102.
        #[arg(long)]
        node: NodeId,
        /// The issuing CA's directory.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Where the delegated CA goes (the unit's own certificate directory).
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke a node's certificate (a stolen school PC): written as an event at the node you name
    /// (a county, city or the province above the certificate's node), it reaches that unit's whole
    /// subtree and its ancestors; every node there refuses the certificate from then on and
    /// closes the links that use it. It cannot be undone: issue the node a new certificate
    /// (`ca issue --force`).
    Revoke {
        /// The certificate to revoke (e.g. certs/nodes/130102-S0001.pem, before re-issuing).
        #[arg(long)]
        cert: PathBuf,
        /// Why, for the registry (e.g. 学校电脑被盗).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// List the certificates in DIR (the CA, the console's, every node's) with the days each has
    /// left, soonest first. Exit code 0: none expires within --days; 1: some do; 2: some have
    /// expired — for a monitoring system to call.
    Expiring {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Warn about certificates valid for fewer days than this.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Every certificate, not only those expiring within --days.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TopologyCmd {
    /// Write a topology file: a small regular tree, or the full Hebei province with --hebei.
    Generate {
        /// The full province: 11 cities, 167 county-level units, 17,183 schools.
        #[arg(long)]
        hebei: bool,
        /// With --hebei: also the 23 development zones as county-level nodes.
        #[arg(long, requires = "hebei")]
        zones: bool,
        /// With --hebei: the seed that spreads schools over counties.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 2, conflicts_with = "hebei")]
        cities: u32,
        #[arg(long, default_value_t = 2, conflicts_with = "hebei")]
        counties_per_city: u32,
        #[arg(long, default_value_t = 4, conflicts_with = "hebei")]
        schools_per_county: u32,
        /// Address every node listens on.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        host: IpAddr,
        /// Node i gets QUIC port BASE+2i and admin port BASE+2i+1.
        #[arg(long, default_value_t = 20_000)]
        base_port: u16,
        /// Output file ("-" for standard output).
        #[arg(long, default_value = "topology.toml")]
        out: PathBuf,
    },
    /// Show the whole subtree of a running node as a tree: every node that should exist, its
    /// state (在线 live, 已转备援 failed over, 恢复中 restoring, 失联 stale, 从未连接 unseen,
    /// 下线 down), since when, when it last reported, when its parent last heard from it, its
    /// backlog and why. Exit code 0: all fine; 1: warnings; 2: something critical (down, an
    /// expired certificate, an unmet --expect); 3 or more: the check could not run (a bad
    /// --under, no authority, the node unreachable).
    Show {
        #[command(flatten)]
        target: Target,
        /// Only the nodes that are not fine (with the units above them, to place them).
        #[arg(long)]
        problems: bool,
        /// Only this unit's subtree, e.g. 1301 or 130102.
        #[arg(long)]
        under: Option<NodeId>,
        /// One row per school instead of one per county.
        #[arg(long)]
        schools: bool,
        /// Redraw every SECONDS (2 if not given) until Ctrl-C.
        #[arg(long, num_args = 0..=1, default_missing_value = "2", value_parser = clap::value_parser!(u64).range(1..=3600))]
        watch: Option<u64>,
        /// With --watch: stop after this many redraws.
        #[arg(long, requires = "watch")]
        rounds: Option<u64>,
        /// A state a node is expected in (a planned outage): NODE=STATE[,STATE], e.g. 130102=down;
        /// met, it counts as fine; unmet, as critical. Repeat for several.
        #[arg(long, value_parser = |s: &str| s.parse::<client::tree::Expectation>())]
        expect: Vec<client::tree::Expectation>,
        /// This node's own links instead (parent, failover, children: state, backlog, counters).
        #[arg(long, conflicts_with_all = ["problems", "under", "schools", "expect"])]
        links: bool,
        #[arg(long)]
        json: bool,
    },
    /// Check a topology file and print what it holds.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Run one node until Ctrl-C or SIGTERM.
    Run {
        /// A node config file (TOML: node, topology, data_dir, cert_dir).
        #[arg(long, conflicts_with_all = ["topology", "node", "data", "certs"])]
        config: Option<PathBuf>,
        #[arg(long, requires_all = ["node", "data", "certs"])]
        topology: Option<PathBuf>,
        #[arg(long)]
        node: Option<NodeId>,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        certs: Option<PathBuf>,
        /// Also stop when standard input closes (for a supervising process that owns the node).
        #[arg(long)]
        stop_on_stdin_eof: bool,
        /// A node the topology file does not list (a school registered at run time): its QUIC address.
        #[arg(long, requires = "admin_addr")]
        quic_addr: Option<SocketAddr>,
        /// With --quic-addr: its admin API address.
        #[arg(long, requires = "quic_addr")]
        admin_addr: Option<SocketAddr>,
    },
    /// Convert a stopped node's sled data directory to redb (the store new directories get):
    /// every key copied and counted, made durable, then put in place; sled's files are kept aside
    /// in the directory's `sled-before-redb` until you remove them.
    MigrateStore {
        /// The node's config file (its data_dir is converted).
        #[arg(long, conflicts_with = "data")]
        config: Option<PathBuf>,
        /// The data directory itself.
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// Which running node a query goes to.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The node's admin API address (loopback).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// A node config file; the admin address comes from its topology.
    #[arg(long, conflicts_with = "admin")]
    pub config: Option<PathBuf>,
    /// A topology file (with --node): the node's admin address is looked up there.
    #[arg(long, conflicts_with_all = ["admin", "config"], requires = "node")]
    pub topology: Option<PathBuf>,
    /// The node, e.g. 130102 or 130102-S0001: with --topology, where to find it; with --admin,
    /// checked to be the node that answers.
    #[arg(long)]
    pub node: Option<NodeId>,
}

impl Target {
    pub fn admin_addr(&self) -> anyhow::Result<SocketAddr> {
        if let Some(a) = self.admin {
            return Ok(a);
        }
        let (topo_path, node) = match (&self.config, &self.topology, self.node) {
            (Some(c), _, _) => return node::config::config_admin_addr(&NodeConfig::load(c)?),
            (None, Some(t), Some(n)) => (t.clone(), n),
            _ => bail!("say which node: --admin ADDR, --config FILE, or --topology FILE --node ID"),
        };
        let topo = Topology::load(&topo_path).with_context(|| format!("topology {}", topo_path.display()))?;
        let entry = topo.get(node).with_context(|| format!("node {node} is not in {}", topo_path.display()))?;
        Ok(entry.admin)
    }

    /// A client of the node; when the node was named (`--node`, or a `--config`), every answer
    /// must come from it.
    pub fn client(&self) -> anyhow::Result<AdminClient> {
        let mut client = AdminClient::new(self.admin_addr()?);
        if let Some(account) = ACT_AS.get() {
            client = client.acting_as(account);
        }
        let named = match (&self.config, self.node) {
            (Some(c), _) => Some(NodeConfig::load(c)?.node),
            (None, n) => n,
        };
        Ok(match named {
            Some(n) => client.expecting(n),
            None => client,
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum AlertCmd {
    /// Show one alert: where, what, its verdict with the note or reason, its case.
    Show {
        #[command(flatten)]
        target: Target,
        /// The alert, e.g. 130102-S0001#7.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Raise an alert at a school node (an AI camera detection).
    Raise {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        camera: String,
        /// NO_MASK, NO_CHEF_HAT, NO_UNIFORM, NO_GLOVES, SMOKING, PHONE, LEAVE_POST, STRANGER, RODENT,
        /// INSECT, BIN_UNCOVERED, BIN_OVERFLOW, FLOOR_WATER, FLOOR_DEBRIS, MISPLACED_FOOD, FIRE_SMOKE,
        /// VIDEO_LOST, OCCLUDED.
        #[arg(long = "type")]
        alert_type: String,
        /// general (一般), serious (较重) or severe (严重); default: the type's default.
        #[arg(long)]
        severity: Option<String>,
        /// rough-processing, cutting, cooking, special-room, washing, serving, sampling, storage,
        /// entrance, dining.
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        canteen: Option<String>,
        /// Detector confidence, 0..=1000 ‰.
        #[arg(long)]
        confidence: Option<u16>,
        /// Always a new alert, even when the same camera saw the same type within 30 min.
        #[arg(long)]
        no_merge: bool,
        #[arg(long)]
        json: bool,
    },
    /// Confirm an alert as a real problem; with --open-case a supervisor also opens a case and
    /// issues its rectification notice, drafted from the alert.
    Confirm {
        #[command(flatten)]
        target: Target,
        /// The alert's id, e.g. 130102-S0001#17.
        id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        open_case: bool,
        #[arg(long)]
        json: bool,
    },
    /// Dismiss an alert as a false positive (误报), with the reason.
    Dismiss {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Overturn a school's own dismissal (误报) of its alert: a supervisor (county and above)
    /// confirms it after all, with the reason; the school's dismissal stays on record.
    Overturn {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// List the alerts a node holds (newest first).
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        limit: Limit,
        /// Only alerts from this unit's subtree.
        #[arg(long)]
        under: Option<NodeId>,
        /// Only new, confirmed or dismissed alerts.
        #[arg(long, value_parser = ["new", "confirmed", "dismissed"])]
        status: Option<String>,
        /// The county's queue: alerts still unhandled this many hours after they were raised (24).
        #[arg(long)]
        unhandled_hours: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

/// `--limit`: how many rows a listing shows.
#[derive(Args, Debug, Clone, Copy)]
pub struct Limit {
    /// How many: 1 to 100000, or `all`.
    #[arg(long, default_value = "50", value_parser = parse_limit)]
    pub limit: usize,
}

#[derive(Subcommand, Debug)]
pub enum DirectiveCmd {
    /// Send a notice (to a school), directive (to a county or city) or bulletin (to the province)
    /// from a supervising node; it reaches exactly that unit's subtree and its ancestors.
    Send {
        #[command(flatten)]
        target: Target,
        /// The unit it is for.
        #[arg(long)]
        to: NodeId,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        text: String,
        #[arg(long)]
        json: bool,
    },
    /// List the directives a node holds (newest first).
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        limit: Limit,
        #[arg(long)]
        json: bool,
    },
}

/// The whole `mingchu` program: parse the command line, set up logging, run, report errors.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(a) = &cli.act_as {
        let _ = ACT_AS.set(a.trim().to_string());
    }
    let default = match &cli.cmd {
        Cmd::Node(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_timer(ChinaTimer);
    if cli.log_format == "json" {
        fmt.json().init();
    } else {
        // Colour only for a person at a terminal, never into a log file or a pipe.
        fmt.with_ansi(std::io::stderr().is_terminal()).init();
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A check already said what it found; its exit code says how bad (1 warning, 2 critical).
        Err(e) if e.downcast_ref::<CheckOutcome>().is_some() => {
            std::process::ExitCode::from(e.downcast_ref::<CheckOutcome>().map_or(1, |c| c.0))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(exit_code(&e))
        }
    }
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Demo(args) => harness::demo::run(args),
        Cmd::Bench(args) => harness::bench::run(args),
        Cmd::Sim(args) => simulations::cli::run(args).map(drop).map_err(Into::into),
        Cmd::Registry(cmd) => crate::registry::run(cmd),
        Cmd::Spot(cmd) => crate::spot::run(cmd),
        Cmd::User(cmd) => crate::users::run(cmd),
        Cmd::Device(cmd) => crate::devices::run(cmd),
        Cmd::File(cmd) => crate::files::run(cmd),
        Cmd::Ledger(cmd) => crate::ledger::run(cmd),
        Cmd::Warnings(args) => crate::warnings::run(args),
        Cmd::Bulletin(cmd) => crate::bulletin::run(cmd),
        Cmd::Ca(CaCmd::Init { dir }) => {
            tls::ca_init(&dir)?;
            println!("已在 {} 创建联盟 CA (created the federation CA)", dir.display());
            Ok(())
        }
        Cmd::Ca(CaCmd::Expiring { dir, days, all, json }) => ca_expiring(&dir, days, all, json),
        Cmd::Ca(CaCmd::Revoke { cert, reason, target, json }) => {
            let (fingerprint, node) = tls::cert_file_fingerprint(&cert)?;
            let data = protocol::registry::EntityData::Revocation(protocol::registry::Revocation { node, reason });
            data.validate().map_err(BadInput)?;
            let req = node::api::registry::RegistryRequest {
                kind: protocol::registry::EntityKind::Revocation,
                node: None,
                id: fingerprint.clone(),
                op: protocol::registry::RegistryOp::Upsert(data),
            };
            let done = target.client()?.registry_write(&req)?;
            if json {
                return print_json(&done);
            }
            println!(
                "已在 {} 吊销 {node} 的证书（指纹 {fingerprint}，事件 {}）；其辖区内各节点将拒绝该证书并断开使用它的连接",
                done.node, done.event
            );
            Ok(())
        }
        Cmd::Ca(CaCmd::Delegate { node, dir, out }) => {
            let path = tls::ca_delegate(&dir, node, &out)?;
            println!(
                "已为 {node} 建立下级证书机构 {}，只能为 {} 及其下级签发证书；用 mingchu ca issue --dir {} 签发",
                path.display(),
                node.dns_name(),
                out.display()
            );
            Ok(())
        }
        Cmd::Ca(CaCmd::Issue { web: true, host, dir, force, .. }) => {
            let hosts = host.iter().map(|h| h.parse::<tls::WebHost>()).collect::<Result<Vec<_>, _>>()?;
            let (cert, key) = tls::web_paths(&dir);
            if !force && key.exists() {
                bail!(
                    "{} 已有网页证书的密钥，未改动任何文件（重新签发会替换它，运行中的节点需重启才用新证书；确要替换请加 --force） / \
                     the console's key already exists; nothing was written (add --force to replace)",
                    key.display()
                );
            }
            tls::ca_issue_web(&dir, &hosts)?;
            let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
            println!(
                "已签发控制台网页证书 {}（{}）；浏览器须信任 {}",
                cert.display(),
                names.join("、"),
                dir.join(tls::CA_CERT_FILE).display()
            );
            Ok(())
        }
        Cmd::Ca(CaCmd::Issue { node, topology, dir, force, valid_days, .. }) => {
            let nodes: Vec<NodeId> = match (node, topology) {
                (Some(n), _) => vec![n],
                (None, Some(t)) => Topology::load(&t)?.nodes().map(|e| e.id).collect(),
                (None, None) => bail!("say --node ID or --topology FILE"),
            };
            // Checked for every node before anything is written: all or nothing.
            let existing: Vec<String> = nodes
                .iter()
                .map(|n| tls::node_paths(&dir, *n).1)
                .filter(|key| key.exists())
                .map(|key| key.display().to_string())
                .collect();
            if !force && !existing.is_empty() {
                bail!(
                    "{} 个节点已有密钥，未改动任何文件（重新签发会替换它们，运行中的节点需重启才用新证书；确要替换请加 --force） / \
                     {} node(s) already have a key; nothing was written (add --force to replace): {}",
                    existing.len(),
                    existing.len(),
                    existing.join(", ")
                );
            }
            for n in &nodes {
                let (cert, _) = match valid_days {
                    Some(d) => tls::ca_issue_for(&dir, *n, std::time::Duration::from_secs(u64::from(d) * 86_400))?,
                    None => tls::ca_issue(&dir, *n)?,
                };
                if nodes.len() == 1 {
                    println!("已为 {n} 签发证书 {}（{}）", cert.display(), n.dns_name());
                }
            }
            if nodes.len() > 1 {
                println!("已签发 {} 个节点证书，存于 {}", nodes.len(), dir.join(tls::NODES_DIR).display());
            }
            Ok(())
        }
        Cmd::Topology(TopologyCmd::Generate {
            hebei,
            zones,
            seed,
            cities,
            counties_per_city,
            schools_per_county,
            host,
            base_port,
            out,
        }) => {
            let plan = AddrPlan { host, base_port };
            let topo = if hebei {
                generate_hebei(seed, zones, &plan)?
            } else {
                generate_small(&SmallSpec { cities, counties_per_city, schools_per_county }, &plan)?
            };
            let [p, c, k, s] = topo.count_by_tier();
            if out.as_os_str() == "-" {
                print!("{}", topo.to_toml_string());
            } else {
                topo.save(&out)?;
                println!("wrote {}: {p} province, {c} cities, {k} county-level units, {s} schools", out.display());
            }
            Ok(())
        }
        Cmd::Topology(TopologyCmd::Check { file, json }) => {
            let topo = Topology::load(&file).with_context(|| format!("{}", file.display()))?;
            let [p, c, k, s] = topo.count_by_tier();
            if json {
                print_json(&serde_json::json!({"province": p, "cities": c, "counties": k, "schools": s}))
            } else {
                println!("{}: valid; {p} province, {c} cities, {k} county-level units, {s} schools", file.display());
                Ok(())
            }
        }
        Cmd::Topology(TopologyCmd::Show { target, links: true, json, .. }) => {
            let status = target.client()?.status()?;
            if json {
                print_json(&status)
            } else {
                print!("{}", render_status(&status, node::clock::unix_ms()));
                Ok(())
            }
        }
        Cmd::Topology(TopologyCmd::Show { target, problems, under, schools, watch, rounds, expect, json, .. }) => {
            let client = target.client()?;
            let show = ShowHealth { problems, under, schools, expect, json };
            match watch {
                None => show.once(&client),
                Some(secs) => {
                    let mut round = 0;
                    loop {
                        // Clear the screen, then draw (the exit code is the last round's).
                        print!("\x1b[H\x1b[2J");
                        let outcome = show.once(&client);
                        round += 1;
                        if rounds.is_some_and(|r| round >= r) {
                            return outcome;
                        }
                        if let Err(e) = &outcome
                            && e.downcast_ref::<CheckOutcome>().is_none()
                        {
                            eprintln!("error: {e:#}");
                        }
                        println!("每 {secs} 秒刷新，Ctrl-C 退出");
                        std::thread::sleep(std::time::Duration::from_secs(secs));
                    }
                }
            }
        }
        Cmd::Node(NodeCmd::Run { config, topology, node, data, certs, stop_on_stdin_eof, quic_addr, admin_addr }) => {
            let mut cfg = match (config, topology, node, data, certs) {
                (Some(c), ..) => NodeConfig::load(&c)?,
                (None, Some(t), Some(n), Some(d), Some(c)) => NodeConfig::new(n, t, d, c),
                _ => bail!("give --config FILE, or all of --topology FILE --node ID --data DIR --certs DIR"),
            };
            (cfg.quic_addr, cfg.admin_addr) = (quic_addr.or(cfg.quic_addr), admin_addr.or(cfg.admin_addr));
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                if stop_on_stdin_eof {
                    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                    std::thread::spawn(move || {
                        // Returns at end of input: the supervising process closed the pipe or died.
                        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                        let _ = tx.send(());
                    });
                    node::server::run_until(&cfg, async move {
                        let _ = rx.await;
                    })
                    .await
                } else {
                    run_until_signal(&cfg).await
                }
            })
        }
        Cmd::Node(NodeCmd::MigrateStore { config, data }) => {
            let dir = match (config, data) {
                (Some(c), _) => NodeConfig::load(&c)?.data_dir,
                (None, Some(d)) => d,
                _ => bail!("请给出 --config FILE 或 --data DIR / give --config FILE or --data DIR"),
            };
            let started = std::time::Instant::now();
            let done = node::storage::migrate_sled_to_redb(&dir).with_context(|| {
                format!("数据目录 {} 转换失败，原目录未改动 / migrating {}", dir.display(), dir.display())
            })?;
            let keys: u64 = done.keys.iter().map(|(_, n)| n).sum();
            println!(
                "已把 {} 从 sled 转为 redb：{keys} 个键（{:.1} MiB），用时 {:.1} 秒",
                dir.display(),
                done.bytes as f64 / 1_048_576.0,
                started.elapsed().as_secs_f64()
            );
            for (space, n) in &done.keys {
                println!("  {}：{n} 个键", space.label());
            }
            println!("原 sled 文件保留在 {}，确认节点运行正常后可删除。", done.kept.display());
            Ok(())
        }
        Cmd::Alert(AlertCmd::Raise {
            target,
            camera,
            alert_type,
            severity,
            zone,
            canteen,
            confidence,
            no_merge,
            json,
        }) => {
            let req = RaiseAlert {
                camera,
                alert_type,
                canteen,
                zone,
                severity,
                confidence_permille: confidence,
                snapshot: None,
                detected_at_ms: None,
                no_merge,
            };
            // Check the fields here too, so a typo is reported without a running node.
            req.check_fields().map_err(|e| anyhow::anyhow!(e))?;
            let view = target.client()?.raise_alert(&req)?;
            if json {
                print_json(&view)
            } else if view.merged {
                println!(
                    "已并入 {} 的告警 {}（同一摄像头、同一类型 30 分钟内重复）：共 {} 次",
                    view.school, view.id, view.detections
                );
                Ok(())
            } else {
                println!(
                    "已在 {} 报警 {}：{}（{}），{}，{}",
                    view.school, view.id, view.type_zh, view.alert_type, view.zone_zh, view.severity_zh
                );
                Ok(())
            }
        }
        Cmd::Case(cmd) => crate::cases::run(cmd),
        Cmd::Alert(AlertCmd::Confirm { target, id, note, open_case, json }) => {
            let v = node::api::alerts::AlertVerdict { note, open_case, reason: String::new() };
            crate::cases::verdict(target, &id, VerdictKind::Confirm, v, json)
        }
        Cmd::Alert(AlertCmd::Overturn { target, id, reason, json }) => {
            let v = node::api::alerts::AlertVerdict { reason, ..Default::default() };
            crate::cases::verdict(target, &id, VerdictKind::Overturn, v, json)
        }
        Cmd::Alert(AlertCmd::Dismiss { target, id, reason, json }) => {
            let v = node::api::alerts::AlertVerdict { reason, ..Default::default() };
            crate::cases::verdict(target, &id, VerdictKind::Dismiss, v, json)
        }
        Cmd::Alert(AlertCmd::Show { target, id, json }) => {
            let alert = target.client()?.alert(&id)?;
            if json {
                return print_json(&alert);
            }
            print!("{}", client::render::render_alert(&alert));
            Ok(())
        }
        Cmd::Alert(AlertCmd::List { target, limit: Limit { limit }, under, status, unhandled_hours, json }) => {
            let alerts = target.client()?.alerts_where(limit, under, status.as_deref(), unhandled_hours)?;
            if json {
                print_json(&alerts)
            } else {
                print!("{}", render_alerts(&alerts));
                Ok(())
            }
        }
        Cmd::Directive(DirectiveCmd::Send { target, to, title, text, json }) => {
            let view = target.client()?.send_directive(&SendDirective { to: to.to_string(), title, text })?;
            if json {
                print_json(&view)
            } else {
                println!("已发送 {} 至 {}：{}", view.id, view.scope, client::render::clean(&view.summary));
                Ok(())
            }
        }
        Cmd::Directive(DirectiveCmd::List { target, limit: Limit { limit }, json }) => {
            let directives = target.client()?.directives(limit)?;
            if json {
                print_json(&directives)
            } else {
                print!("{}", client::render::render_directives(&directives, limit));
                Ok(())
            }
        }
    }
}

/// `--limit`: 1 to 100000, or `all` (0 would silently list nothing).
pub fn parse_limit(s: &str) -> Result<usize, String> {
    let max = node::runtime::store::LIST_LIMIT_MAX;
    match s.trim() {
        "all" => Ok(max),
        t => match t.parse::<usize>() {
            Ok(0) => {
                Err(format!("0 条什么也不列出，请给 1 到 {max}，或 all / 0 lists nothing; give 1 to {max}, or `all`"))
            }
            Ok(n) if n <= max => Ok(n),
            Ok(n) => Err(format!("{n} 超过上限 {max} / {n} is above the maximum {max}; give 1 to {max}, or `all`")),
            Err(_) => Err(format!("`{t}` 不是数字 / `{t}` is not a number; give 1 to {max}, or `all`")),
        },
    }
}

/// What `topology show` was asked to show.
struct ShowHealth {
    problems: bool,
    under: Option<NodeId>,
    schools: bool,
    expect: Vec<client::tree::Expectation>,
    json: bool,
}

impl ShowHealth {
    /// Fetches, prints, and answers with the check outcome (exit code 0, 1 or 2).
    fn once(&self, client: &client::AdminClient) -> anyhow::Result<()> {
        self.check(client).map_err(|e| match e.downcast_ref::<client::CallError>() {
            // A check that could not run is neither fine nor critical: 3, as monitoring systems
            // read it (UNKNOWN), like a refused or unreachable node (3 and up).
            Some(client::CallError::Refused { status: 400, message }) => {
                eprintln!("error: {message}");
                CheckOutcome(3).into()
            }
            _ => e,
        })
    }

    fn check(&self, client: &client::AdminClient) -> anyhow::Result<()> {
        use protocol::health::Severity;
        // Expectations are about any node, fine or not: they need the whole view.
        let filter_here = !self.expect.is_empty();
        let mut view = client.health(self.under, self.problems && !filter_here)?;
        let (worst, missing) = client::tree::apply_expectations(&mut view, &self.expect);
        view.severity = worst;
        if self.problems && filter_here {
            client::tree::only_problems(&mut view);
        }
        if self.json {
            print_json(&view)?;
        } else {
            print!("{}", client::tree::render_health(&view, node::clock::unix_ms(), self.schools, self.problems));
            for m in &missing {
                println!("{m}");
            }
        }
        match worst {
            Severity::Ok => Ok(()),
            Severity::Warning => Err(CheckOutcome(1).into()),
            Severity::Critical => Err(CheckOutcome(2).into()),
        }
    }
}

/// `mingchu ca expiring`: the certificates of a cert dir and the days they have left.
fn ca_expiring(dir: &std::path::Path, days: i64, all: bool, json: bool) -> anyhow::Result<()> {
    let now = node::clock::unix_ms();
    let certs = tls::cert_expiries(dir)?;
    let expired = certs.iter().filter(|c| c.days_left(now) < 0).count();
    let soon = certs.iter().filter(|c| (0..days).contains(&c.days_left(now))).count();
    let shown: Vec<&tls::CertExpiry> = certs.iter().filter(|c| all || c.days_left(now) < days).collect();
    if json {
        let rows: Vec<serde_json::Value> = shown
            .iter()
            .map(|c| {
                serde_json::json!({
                    "what": c.what,
                    "path": c.path,
                    "not_after_ms": c.not_after_ms,
                    "not_after": protocol::calendar::rfc3339(c.not_after_ms),
                    "days_left": c.days_left(now),
                })
            })
            .collect();
        print_json(&rows)?;
    } else {
        print!("{}", client::render::render_cert_expiries(&shown, now, days));
        println!("共 {} 张证书：已过期 {expired} 张，{days} 天内到期 {soon} 张。", certs.len());
    }
    match (expired, soon) {
        (0, 0) => Ok(()),
        (0, _) => Err(CheckOutcome(1).into()),
        _ => Err(CheckOutcome(2).into()),
    }
}
