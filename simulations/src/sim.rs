//! One simulation run: build the province, run the day's workload and faults, check, report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};

use node::runtime::store::{StoredEvent, all_cursors, all_events, read_range, related};
use protocol::case::{CaseId, CaseState, StepOutcome, authorize};
use protocol::holds::{check_event, holds};
use protocol::{Body, Cursors, EventId, EventKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use topology::generate::{AddrPlan, SmallSpec, generate_hebei, generate_small};
use topology::{NodeId, Topology};

use crate::faults::{Fault, FaultPlan};
use crate::health::{HealthCheck, HealthReport, POLL_MS};
use crate::ledgers::SchoolWork;
use crate::net::{LinkFaults, SimNet};
use crate::warnings::{WarningsReport, identical_at_holders, raised_once};
use crate::workload::{Action, Workload, WorkloadStats, cases_of, fold_case};
use crate::world::{NodeSettings, SimClock, World, WriteError};

const MIN: u64 = 60_000;

/// Tuesday 2026-12-01 00:00 China time (UTC+8), in unix ms: the simulated day — a working day,
/// and not a month's last (a day ending a month would close the month's parent-meal count with
/// the day the schools' ledgers began).
pub const DAY_START_WALL_MS: u64 = 1_796_054_400_000;

/// Which tree to simulate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Scale {
    /// All of Hebei: 1 + 11 + 167 + 17,183 nodes.
    Hebei,
    Small {
        cities: u32,
        counties_per_city: u32,
        schools_per_county: u32,
    },
}

impl Scale {
    pub fn topology(&self, seed: u64) -> Result<Topology, String> {
        let plan = AddrPlan::default();
        match self {
            Scale::Hebei => generate_hebei(seed, false, &plan).map_err(|e| e.to_string()),
            Scale::Small { cities, counties_per_city, schools_per_county } => generate_small(
                &SmallSpec {
                    cities: *cities,
                    counties_per_city: *counties_per_city,
                    schools_per_county: *schools_per_county,
                },
                &plan,
            )
            .map_err(|e| e.to_string()),
        }
    }

    /// The command-line form, for `reproduce with:`.
    pub fn flag(&self) -> String {
        match self {
            Scale::Hebei => "--hebei".into(),
            Scale::Small { cities, counties_per_city, schools_per_county } => {
                format!("--cities {cities} --counties {counties_per_city} --schools {schools_per_county}")
            }
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub scale: Scale,
    /// Simulated length of the school day (the workload's 24 hours are scaled onto it).
    pub day_ms: u64,
    /// Alert rate relative to DOMAIN.md's.
    pub intensity: f64,
    /// `None`: faults drawn from the seed; `Some(plan)`: a scenario (possibly empty).
    pub faults: Option<FaultPlan>,
    pub settings: NodeSettings,
    /// Full safety checks of every node this often (simulated ms), and at the end.
    pub check_every_ms: u64,
    /// After the day: quiet time for everything to settle before liveness is checked.
    pub settle_ms: u64,
    /// Print progress (stderr) 24 times over the run, as simulated hours done of `day_ms`.
    pub progress: bool,
    /// Checker self-test: lose this node's disk for good after the run, before the checks (the
    /// checker must then report the loss).
    pub lose_disk_at_end: Option<NodeId>,
    /// The health invariant's bound `B` (simulated ms); `None`: derived from the settings
    /// ([`crate::health::bound_ms`]). A test sets it too short to see the checker fail.
    pub health_bound_ms: Option<u64>,
    /// Checker self-test: faults the health checker is told of but that never happen (the
    /// province then keeps showing the node live, and the checker must report it).
    pub pretend_faults: Vec<(u64, Fault)>,
    /// Checker self-test: a warning event forged at the end, which one of the warning
    /// invariants must report.
    pub forge: Option<Forge>,
    /// After the run: write every event the root holds to this file (for `mingchu bench --year`,
    /// which replays it into a real store), as [`protocol::wire::encode_event_log`] writes them.
    pub export_root: Option<std::path::PathBuf>,
}

/// A warning forged at a school at the end of the run, breaking one warning invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    /// (a) Two raises of one key at one level, before the final replication.
    DuplicateRaise(NodeId),
    /// (b) A raise the school's rules do not judge, after its final pass.
    StaleRaise(NodeId),
    /// (c) A raise written while the school is cut off, after the final replication.
    Unreplicated(NodeId),
}

impl SimConfig {
    pub fn new(seed: u64, scale: Scale) -> SimConfig {
        SimConfig {
            seed,
            scale,
            day_ms: 24 * 60 * MIN,
            intensity: 1.0,
            faults: None,
            settings: NodeSettings::default(),
            check_every_ms: 60 * MIN,
            settle_ms: 30 * MIN,
            progress: false,
            lose_disk_at_end: None,
            health_bound_ms: None,
            pretend_faults: Vec::new(),
            forge: None,
            export_root: None,
        }
    }
}

/// Latency percentiles (simulated ms).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(mut us: Vec<u64>) -> Percentiles {
        us.sort_unstable();
        let p = |q: f64| -> f64 {
            if us.is_empty() {
                return 0.0;
            }
            us[(((us.len() - 1) as f64) * q).round() as usize] as f64 / 1000.0
        };
        Percentiles { count: us.len(), p50_ms: p(0.5), p90_ms: p(0.9), p99_ms: p(0.99), max_ms: p(1.0) }
    }
}

/// A fault as it happened, with how long the affected node took to catch up after it ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultReport {
    pub at: String,
    pub what: String,
    /// Simulated seconds from the end of the fault until the node held everything it should
    /// have received meanwhile (None: nothing was owed).
    pub catch_up_s: Option<f64>,
    /// Simulated seconds from the start of the fault until the province showed the node cut
    /// off as not live (None: not measured — the fault shows nowhere, or ended first).
    pub health_seen_s: Option<f64>,
    /// Simulated seconds from the end of the fault until the province showed every node it had
    /// touched live again (None: another fault held them, or it did not converge within B).
    pub health_converged_s: Option<f64>,
}

/// The verdict and the numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// The complete command that reproduces this run (`mingchu sim …`, every argument that shapes
    /// the run, defaults resolved); empty when the run was configured in code.
    pub command: String,
    pub seed: u64,
    pub scale: String,
    pub nodes_by_tier: BTreeMap<String, usize>,
    pub simulated_hours: f64,
    pub workload: WorkloadStats,
    /// Events written, by kind and by the origin's tier.
    pub events_by_kind: BTreeMap<String, u64>,
    pub events_by_origin_tier: BTreeMap<String, u64>,
    /// The province's store at the end: events held, keys, and bytes of keys and values.
    pub province_store: (u64, u64, u64),
    /// (node, event) pairs that should exist at the end, and those that do.
    pub deliveries_expected: u64,
    pub deliveries_done: u64,
    /// Acknowledged events missing where they should be (0 for a pass).
    pub lost: u64,
    /// Events stored twice at a node (0 for a pass).
    pub duplicated: u64,
    /// Events held where the holds rule says they must not be, or failing the authority checks.
    pub unauthorised: u64,
    /// Cases whose state differs between nodes holding them.
    pub cases: usize,
    pub cases_diverged: usize,
    pub cases_by_status: BTreeMap<String, usize>,
    pub escalations: u64,
    /// Cases marked overdue by the schedulers.
    pub overdue_marks: u64,
    /// Spot checks as the province holds them: checked, passed.
    pub spot_checks: (u64, u64),
    /// School → province latency of alerts, simulated time.
    pub alert_latency: Percentiles,
    pub faults: Vec<FaultReport>,
    /// Frames and bytes sent, by the sender's tier.
    pub traffic: BTreeMap<String, (u64, u64)>,
    /// The health invariant (convergence of the province's view to the truth) and the
    /// province's inbound health traffic.
    pub health: HealthReport,
    /// The schools' ledgers and the warnings their rules raised and resolved.
    pub warnings: WarningsReport,
    pub safety_checks: u64,
    /// Ranges from below checked against their origin's signed chain at the nodes running at the
    /// end (since each last started), and those refused: an honest federation refuses none.
    pub seal_checks: u64,
    pub seals_refused: u64,
    pub wall_s: f64,
    pub peak_rss_mb: f64,
    /// FNV-1a over every node's events (id, HLC, scope, arrival time) in order: same seed, same digest.
    pub digest: String,
    pub failures: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// FNV-1a, 64 bit: a stable digest (no per-process keys).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn add_u64(&mut self, v: u64) {
        self.add(&v.to_be_bytes());
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn clock_of_day(ms: u64, day_ms: u64) -> String {
    let minutes = (ms as f64 / day_ms as f64 * 24.0 * 60.0) as u64;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Where a progress line stands: simulated hours done of the run's (`--hours`), the percentage,
/// and the clock of the day's workload (24 hours scaled onto the run, as the faults are shown):
/// `[simulated 14.0 h of 336 h (4%), day clock 01:00]`.
fn progress_head(now_ms: u64, day_ms: u64) -> String {
    let total_h = day_ms as f64 / 3_600_000.0;
    // Enough decimals that the 24 steps of a short run are told apart.
    let decimals = if total_h >= 2.4 {
        1
    } else if total_h >= 0.24 {
        2
    } else {
        3
    };
    format!(
        "[simulated {:.decimals$} h of {total_h} h ({:.0}%), day clock {}]",
        now_ms as f64 / 3_600_000.0,
        now_ms as f64 * 100.0 / day_ms.max(1) as f64,
        clock_of_day(now_ms.min(day_ms), day_ms)
    )
}

/// Runs a whole simulation on a fresh current-thread runtime with a paused clock.
pub fn run(cfg: &SimConfig) -> Result<Report, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(run_async(cfg))
}

struct Active {
    /// When the fault ends (simulated ms) and what ends it.
    until: u64,
    fault: Fault,
    started: u64,
    /// The health checker's handle of the fault.
    tracked: usize,
    /// Told to the health checker only (a self-test): nothing happens.
    pretended: bool,
}

async fn run_async(cfg: &SimConfig) -> Result<Report, String> {
    let wall = WallInstant::now();
    let topology = cfg.scale.topology(cfg.seed)?;
    let net = SimNet::new(cfg.seed, LinkFaults::default());
    // The warm-up's 30 s come before the day: wall time reaches the day's start when work begins.
    let clock = Arc::new(SimClock::new(DAY_START_WALL_MS - 30_000));
    let t0 = tokio::time::Instant::now();
    let mut world = World::new(topology, net.clone(), clock.clone(), cfg.settings);
    let topo = world.topology.clone();
    let mut report = Report {
        command: String::new(),
        seed: cfg.seed,
        scale: cfg.scale.flag(),
        simulated_hours: cfg.day_ms as f64 / 3_600_000.0,
        ..Report::default()
    };
    for e in topo.nodes() {
        *report.nodes_by_tier.entry(e.id.tier().to_string()).or_default() += 1;
    }
    // Start the tree from the root down, then let the links come up.
    let ids: Vec<NodeId> = topo.nodes().map(|e| e.id).collect();
    for id in &ids {
        world.start(*id).await?;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;

    let mut workload = Workload::plan(&topo, cfg.seed, cfg.day_ms, cfg.intensity, DAY_START_WALL_MS);
    let plan = match &cfg.faults {
        Some(p) => p.clone(),
        None => FaultPlan::random(&mut ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xfa_u64), &topo, cfg.day_ms),
    };
    // (at, fault, pretended): pretended faults are only told to the health checker.
    let mut pending_faults: Vec<(u64, Fault, bool)> =
        plan.faults.iter().map(|(at, f)| (*at, f.clone(), false)).collect();
    pending_faults.extend(cfg.pretend_faults.iter().map(|(at, f)| (*at, f.clone(), true)));
    pending_faults.sort_by_key(|f| f.0);
    let mut pending_faults: std::collections::VecDeque<(u64, Fault, bool)> = pending_faults.into();
    let mut active: Vec<Active> = Vec::new();
    let mut fault_log: Vec<(u64, u64, Fault, usize)> = Vec::new(); // (start, end, fault, health handle)
    let mut next_check = cfg.check_every_ms;
    // What the periodic safety checks have read at each node: its cursors then.
    let mut checked: BTreeMap<NodeId, Cursors> = BTreeMap::new();
    let depth = topo.nodes().map(|e| e.id.tier().depth() as u64).max().unwrap_or(0);
    let bound = cfg.health_bound_ms.unwrap_or_else(|| crate::health::bound_ms(&cfg.settings, depth));
    let mut health = HealthCheck::new(&topo, bound, cfg.day_ms, cfg.seed);
    let mut next_poll = u64::MAX;
    // Progress steps are a 24th of the run whether printed or not: they are part of the schedule,
    // so `--progress` never changes the digest (and a 24-hour run wakes every simulated hour).
    let mut next_progress = cfg.day_ms / 24;
    let base = t0 + Duration::from_secs(30);
    let now_ms = |t: tokio::time::Instant| t.saturating_duration_since(base).as_millis() as u64;

    loop {
        let next_action = workload.next_at().unwrap_or(u64::MAX);
        let next_fault = pending_faults.front().map_or(u64::MAX, |f| f.0);
        let next_end = active.iter().map(|a| a.until).min().unwrap_or(u64::MAX);
        let next = next_action.min(next_fault).min(next_end).min(next_check).min(next_progress).min(next_poll);
        if next >= cfg.day_ms && active.is_empty() && pending_faults.is_empty() {
            break;
        }
        tokio::time::sleep_until(base + Duration::from_millis(next)).await;
        let now = now_ms(tokio::time::Instant::now());
        if next == next_progress {
            next_progress += cfg.day_ms / 24;
            if cfg.progress {
                eprintln!(
                    "{} {} alerts, {} cases, {} steps; {} faults active; wall {:.0} s, rss {:.0} MB",
                    progress_head(now, cfg.day_ms),
                    workload.stats.alerts,
                    workload.stats.cases_opened,
                    workload.stats.steps,
                    active.len(),
                    wall.elapsed().as_secs_f64(),
                    peak_rss_mb()
                );
            }
        } else if next == next_check {
            next_check += cfg.check_every_ms;
            safety(&world, &mut report, cfg.seed, Some(&mut checked));
            health.poll(&world, now, &mut report.failures).await;
        } else if next == next_end {
            if let Some(pos) = active.iter().position(|a| a.until == next) {
                let a = active.remove(pos);
                if !a.pretended {
                    end_fault(&mut world, &a.fault).await;
                    fault_log.push((a.started, now, a.fault, a.tracked));
                }
                health.fault_ended(a.tracked, now);
                // The first look comes at once (a fault the province never showed converges in
                // 0 s), then every POLL_MS while something is still to be seen.
                next_poll = now;
            }
        } else if next == next_fault {
            if let Some((_, f, pretended)) = pending_faults.pop_front() {
                let tracked = health.fault_started(&f, now);
                let until = if pretended {
                    now + planned_ms(&f)
                } else {
                    if matches!(f, Fault::Crash { node, .. } | Fault::Wipe { node } if node == topo.root()) {
                        health.province_going_down(&world).await;
                    }
                    start_fault(&mut world, &f, now).await
                };
                active.push(Active { until, fault: f, started: now, tracked, pretended });
                if health.wants_poll() {
                    next_poll = next_poll.min(now);
                }
            }
        } else if next == next_poll {
            health.poll(&world, now, &mut report.failures).await;
            next_poll = if health.wants_poll() { now + POLL_MS } else { u64::MAX };
        } else if let Some((_, action)) = workload.pop() {
            act(&mut world, &mut workload, now, action).await;
        }
    }
    if cfg.progress {
        eprintln!(
            "{} the run is over: {} alerts, {} cases, {} steps; settling {} simulated min, then the final checks",
            progress_head(now_ms(tokio::time::Instant::now()), cfg.day_ms),
            workload.stats.alerts,
            workload.stats.cases_opened,
            workload.stats.steps,
            cfg.settle_ms / MIN
        );
    }
    // Settle: everything healed, give the links time to catch up — and the province's view at
    // least B after the last heal, so that the final poll holds every node to rule (a).
    let mut settle_until = now_ms(tokio::time::Instant::now()) + cfg.settle_ms;
    if let Some(e) = health.last_end() {
        settle_until = settle_until.max(e + health.bound_ms() + POLL_MS);
    }
    loop {
        tokio::time::sleep_until(base + Duration::from_millis(next_poll.min(settle_until))).await;
        let now = now_ms(tokio::time::Instant::now());
        if now >= settle_until {
            break;
        }
        health.poll(&world, now, &mut report.failures).await;
        next_poll = if health.wants_poll() { now + POLL_MS } else { u64::MAX };
    }
    final_warnings(&mut world, cfg, &mut report).await;
    health.poll(&world, now_ms(tokio::time::Instant::now()), &mut report.failures).await;
    report.health = health.finish(clock.elapsed_ms());
    for id in &ids {
        if let Some(e) = world.engine(*id)
            && matches!(id.tier(), topology::Tier::School | topology::Tier::County)
        {
            let p = e.passes().await;
            let t = report.warnings.passes.entry(id.tier().to_string()).or_default();
            for (sum, n) in t.iter_mut().zip(p) {
                *sum += n;
            }
        }
    }
    for id in &ids {
        if let Some(r) = world.node_ref(*id)
            && let Ok(status) = ractor::call_t!(r, node::runtime::root::NodeMsg::Status, 60_000)
        {
            report.seal_checks += status.store.seal_checks;
            report.seals_refused += status.store.seals_refused;
            if status.store.seals_refused > 0 && report.failures.len() < 50 {
                report.failures.push(format!(
                    "{id} refused {} batches whose signed history did not hold, with no one forging",
                    status.store.seals_refused
                ));
            }
        }
    }
    world.shutdown().await;
    if let Some(n) = cfg.lose_disk_at_end.and_then(|n| world.nodes.get(&n)) {
        n.storage.wipe();
    }
    safety(&world, &mut report, cfg.seed, None);
    final_checks(&world, &workload, &mut report, cfg.seed);
    if let Some(path) = &cfg.export_root {
        let root = &world.nodes[&world.topology.root()].storage;
        let mut events: Vec<protocol::Event> = all_events(root)
            .map_err(|e| format!("reading the root's events: {e}"))?
            .into_iter()
            .map(|s| s.event)
            .collect();
        events.sort_by_key(|e| (e.origin, e.seq));
        let bytes =
            protocol::wire::encode_event_log(&events).map_err(|e| format!("encoding the root's events: {e}"))?;
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    fault_log.sort_by_key(|f| f.0);
    for (start, end, fault, tracked) in &fault_log {
        report.faults.push(FaultReport {
            at: clock_of_day(*start, cfg.day_ms),
            what: fault.describe(),
            catch_up_s: catch_up(&world, &workload, fault, *start, *end),
            health_seen_s: health.detect_s(*tracked),
            health_converged_s: health.converge_s(*tracked),
        });
    }
    report.workload = workload.stats.clone();
    for (tier, t) in net.stats().by_tier {
        report.traffic.insert(tier.to_string(), (t.sent.frames, t.sent.bytes));
    }
    report.wall_s = wall.elapsed().as_secs_f64();
    report.peak_rss_mb = peak_rss_mb();
    Ok(report)
}

/// The warnings' end of the run: the schedulers stop; every school judges once more and (b) a
/// fresh judgement right after owes it nothing; then, once the schools' warnings reached their
/// counties, every county does the same; then everything replicates for the final checks.
/// `cfg.forge` breaks one invariant on purpose (the checker's self-tests).
async fn final_warnings(world: &mut World, cfg: &SimConfig, report: &mut Report) {
    use topology::Tier;
    world.stop_schedulers();
    let ids: Vec<NodeId> = world.nodes.keys().copied().collect();
    for tier in [Tier::School, Tier::County] {
        for id in ids.iter().filter(|n| n.tier() == tier) {
            let Some(engine) = world.engine(*id).cloned() else { continue };
            if let Err(e) = engine.pass().await {
                report.failures.push(format!("warnings: the final pass at {id} failed: {e}; seed {}", cfg.seed));
                continue;
            }
            if cfg.forge == Some(Forge::StaleRaise(*id)) {
                forge_raises(world, *id, 1).await;
            }
            match engine.owed_now().await {
                Ok(o) if o == node::runtime::warnings::Owing::default() => {}
                Ok(o) => {
                    report.warnings.violations += 1;
                    let first = o.warnings.first().map_or(String::new(), |w| {
                        let what = match &w.action {
                            protocol::warning::WarningAction::Raise { level, .. } => {
                                format!("a {} raise", level.as_str())
                            }
                            protocol::warning::WarningAction::Resolve { .. } => "a resolve".into(),
                        };
                        format!(", first {what} of {}", w.key)
                    });
                    if report.failures.len() < 50 {
                        report.failures.push(format!(
                            "warnings: after its final pass {id} still owes {} warning events, {} automatic cases and {} moved alerts{first}; seed {}",
                            o.warnings.len(),
                            o.cases.len(),
                            o.moved,
                            cfg.seed
                        ));
                    }
                }
                Err(e) => report.failures.push(format!("warnings: judging {id} again failed: {e}; seed {}", cfg.seed)),
            }
        }
        // The schools' last warnings reach their counties (and the counties' their ancestors).
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    if let Some(Forge::DuplicateRaise(school)) = cfg.forge {
        forge_raises(world, school, 2).await;
    }
    // Everything written reaches every node that should hold it.
    tokio::time::sleep(Duration::from_secs(300)).await;
    if let Some(Forge::Unreplicated(school)) = cfg.forge {
        world.net.isolate(school);
        forge_raises(world, school, 1).await;
    }
}

/// Writes `n` yellow raises of a made-up key at `school` (the checker's self-tests).
async fn forge_raises(world: &World, school: NodeId, n: usize) {
    use node::clock::Clock;
    use protocol::warning::{Level, RuleId, WarningAction, WarningEvent, WarningKey};
    let day = protocol::ledger::china_day(world.clock.wall_ms());
    let key = WarningKey { rule: RuleId::SampleUnderweight, school, subject: "forged".into(), period: day };
    let raise = WarningEvent {
        key,
        action: WarningAction::Raise {
            level: Level::Yellow,
            text: "forged".into(),
            evidence: Vec::new(),
            at_ms: world.clock.wall_ms(),
        },
    };
    let items = (0..n).map(|_| (school, Body::Warning(raise.clone()))).collect();
    if let Err(e) = world.append(school, items).await {
        eprintln!("forging a warning at {school} failed: {e:?}");
    }
}

/// How long a fault lasts once started (simulated ms).
fn planned_ms(f: &Fault) -> u64 {
    match f {
        Fault::Dark { ms, .. } | Fault::Partition { ms, .. } | Fault::Crash { ms, .. } | Fault::Lossy { ms, .. } => *ms,
        Fault::Wipe { .. } => 1_000,
        Fault::Flap { times, .. } => u64::from(*times) * 2_000,
    }
}

async fn start_fault(world: &mut World, f: &Fault, now: u64) -> u64 {
    match f {
        Fault::Dark { node, ms } => {
            world.net.isolate(*node);
            now + ms
        }
        Fault::Partition { a, b, ms } => {
            world.net.partition(*a, *b);
            now + ms
        }
        Fault::Crash { node, ms } => {
            world.crash(*node, false).await;
            now + ms
        }
        Fault::Wipe { node } => {
            world.crash(*node, true).await;
            now + 1_000
        }
        Fault::Flap { node, times } => {
            if let Some(p) = node.parent() {
                for _ in 0..*times {
                    world.net.partition(*node, p);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    world.net.heal(*node, p);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            now + u64::from(*times) * 2_000
        }
        Fault::Lossy { rate, ms } => {
            world.net.set_faults(LinkFaults { loss: *rate, duplicate: *rate, reorder: *rate, ..LinkFaults::default() });
            now + ms
        }
    }
}

async fn end_fault(world: &mut World, f: &Fault) {
    match f {
        Fault::Dark { node, .. } => world.net.rejoin(*node),
        Fault::Partition { a, b, .. } => world.net.heal(*a, *b),
        Fault::Crash { node, .. } | Fault::Wipe { node } => {
            if let Err(e) = world.start(*node).await {
                eprintln!("restart of {node} failed: {e}");
            }
        }
        Fault::Flap { .. } => {}
        Fault::Lossy { .. } => world.net.set_faults(LinkFaults::default()),
    }
}

fn stored_at(world: &World, node: NodeId, id: EventId) -> Option<StoredEvent> {
    let n = world.nodes.get(&node)?;
    read_range(&n.storage, id.origin, id.seq.saturating_sub(1), id.seq, 1).ok()?.0.into_iter().next()
}

async fn act(world: &mut World, w: &mut Workload, now: u64, action: Action) {
    let wall = DAY_START_WALL_MS + now;
    match &action {
        Action::Verdict { by, alert, confirm, open_case } => {
            let Some(stored) = stored_at(world, *by, *alert) else {
                w.stats.skipped_state += 1;
                return;
            };
            let Body::Alert(raised) = &stored.event.body else { return };
            let items = w.verdict_bodies(wall, *by, *alert, raised, *confirm, *open_case);
            match world.append(*by, items).await {
                Ok(stored) => {
                    w.stats.verdicts += 1;
                    w.acked(&stored, now);
                    if let Some(Body::Case(c)) = stored.first().map(|s| &s.event.body)
                        && stored.len() > 1
                    {
                        w.stats.cases_opened += 1;
                        w.after_open(now, alert.origin, c.case);
                    }
                }
                Err(e) => skipped(w, e),
            }
        }
        Action::Step { by, case, step } => {
            let state = world.nodes.get(by).and_then(|n| {
                let events = node::runtime::store::related(&n.storage, EventKind::Case, Some(case.event_id())).ok()?;
                fold_case(&events, *case)
            });
            let Some((writer, items)) = w.bodies(wall, &action, state.as_ref()) else {
                w.stats.skipped_state += 1;
                return;
            };
            let failed = items.iter().any(|(_, b)| {
                matches!(b, Body::Case(c) if matches!(c.action, protocol::case::CaseAction::Review { passed: false, .. }))
            });
            match world.append(writer, items).await {
                Ok(stored) => {
                    w.stats.steps += 1;
                    w.acked(&stored, now);
                    if let Some(st) = &state {
                        w.after_step(now, *by, *case, st.school, *step, failed);
                    }
                }
                Err(e) => skipped(w, e),
            }
        }
        Action::Day { .. } => {
            for (school, beats) in w.plan_day(now) {
                world.set_beats(school, beats);
            }
        }
        Action::School { school, work } => {
            let (items, beats) = w.school_bodies(wall, *school, work);
            world.set_beats(*school, beats);
            if items.is_empty() {
                return;
            }
            let ledger = items.iter().filter(|(_, b)| matches!(b, Body::Ledger(_))).count() as u64;
            let n = items.len() as u64;
            match world.append(*school, items).await {
                Ok(stored) => {
                    w.acked(&stored, now);
                    match work {
                        SchoolWork::Register => {
                            w.stats.schools_registered += 1;
                            w.stats.registered_entities += n;
                        }
                        SchoolWork::Certificate { .. } => w.stats.certificates += 1,
                        _ => {}
                    }
                    if ledger > 0 {
                        w.stats.ledger_writes += 1;
                        for s in &stored {
                            if let Body::Ledger(l) = &s.event.body {
                                *w.stats.ledger_records.entry(l.kind.as_str().to_string()).or_default() += 1;
                            }
                        }
                        // As the admin API does after a ledger write: the engine judges at once.
                        world.wake(*school);
                    }
                }
                Err(e) => skipped(w, e),
            }
        }
        _ => {
            let Some((writer, items)) = w.bodies(wall, &action, None) else { return };
            match world.append(writer, items).await {
                Ok(stored) => {
                    w.acked(&stored, now);
                    match &action {
                        Action::Alert { school } => {
                            w.stats.alerts += 1;
                            if let Some(s) = stored.first() {
                                w.after_alert(now, *school, s.event.id());
                            }
                        }
                        Action::SpotCheck { school, .. } => {
                            w.stats.spot_checks += 1;
                            for s in &stored {
                                if let Body::Case(c) = &s.event.body
                                    && matches!(c.action, protocol::case::CaseAction::Open { .. })
                                {
                                    w.stats.spot_check_cases += 1;
                                    w.stats.cases_opened += 1;
                                    w.after_open(now, *school, c.case);
                                }
                            }
                        }
                        Action::Directive { .. } => w.stats.directives += 1,
                        Action::Registry { school } => {
                            let registry = stored.iter().filter(|s| matches!(s.event.body, Body::Registry(_))).count();
                            w.stats.registry_changes += registry as u64;
                            if registry < stored.len() {
                                w.stats.ledger_writes += 1;
                                *w.stats.ledger_records.entry("morning-check".into()).or_default() += 1;
                                world.wake(*school);
                            }
                        }
                        _ => {}
                    }
                }
                Err(e) => skipped(w, e),
            }
        }
    }
}

fn skipped(w: &mut Workload, e: WriteError) {
    match e {
        WriteError::Down => w.stats.skipped_down += 1,
        WriteError::Refused(_) => w.stats.skipped_state += 1,
    }
}

/// Safety over every node's storage: each event held is one it should hold and passes the
/// authority checks; none is stored twice; no case state came from an unauthorised step; (a) no
/// warning raised twice at one level. With `checked` (the periodic checks), only what each node
/// stored since the last check is read — the events above its contiguous cursors then, and the
/// whole of each case and each school's warnings they touch; without (the end), everything.
fn safety(world: &World, report: &mut Report, seed: u64, mut checked: Option<&mut BTreeMap<NodeId, Cursors>>) {
    report.safety_checks += 1;
    for (id, n) in &world.nodes {
        let since = checked.as_deref_mut().and_then(|c| c.get(id).cloned());
        let read = || -> Result<(Vec<StoredEvent>, Cursors), node::storage::StorageError> {
            let cursors = all_cursors(&n.storage)?;
            let Some(before) = &since else { return Ok((all_events(&n.storage)?, cursors)) };
            let mut events = Vec::new();
            for (origin, _) in cursors.iter() {
                events.extend(read_range(&n.storage, origin, before.contiguous(origin), u64::MAX, usize::MAX)?.0);
            }
            Ok((events, cursors))
        };
        let (events, cursors) = match read() {
            Ok(e) => e,
            Err(e) => {
                report.failures.push(format!("{id}: storage unreadable: {e}"));
                continue;
            }
        };
        if let Some(c) = checked.as_deref_mut() {
            c.insert(*id, cursors);
        }
        let (warnings, cases) = if since.is_none() {
            (events.iter().filter(|s| matches!(s.event.body, Body::Warning(_))).cloned().collect(), cases_of(&events))
        } else {
            // Each school's warnings and each case whole, for those the new events touch.
            let mut warnings = Vec::new();
            let schools: BTreeSet<NodeId> = events
                .iter()
                .filter_map(|s| match &s.event.body {
                    Body::Warning(w) => Some(w.key.school),
                    _ => None,
                })
                .collect();
            for school in schools {
                let subject = EventId { origin: school, seq: 0 };
                warnings.extend(related(&n.storage, EventKind::Warning, Some(subject)).unwrap_or_default());
            }
            let mut cases = BTreeMap::new();
            for c in cases_of(&events).into_keys() {
                let steps = related(&n.storage, EventKind::Case, Some(c.event_id())).unwrap_or_default();
                cases.extend(cases_of(&steps));
            }
            (warnings, cases)
        };
        for (key, level, first, second) in raised_once(&warnings) {
            report.warnings.violations += 1;
            if report.failures.len() < 50 {
                report.failures.push(format!(
                    "warnings: {id} holds two raises of {key} at {} without a resolve between ({first}, then {second}); seed {seed}",
                    level.as_str()
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for s in &events {
            let e = &s.event;
            if !seen.insert(e.id()) {
                report.duplicated += 1;
                report.failures.push(format!("{id} stores {} twice", e.id()));
            }
            if !holds(*id, e.scope) || check_event(e).is_err() {
                report.unauthorised += 1;
                report.failures.push(format!("{id} holds {} (scope {}) against the rules", e.id(), e.scope));
            }
        }
        for (c, inputs) in cases {
            if let Some(st) = protocol::case::fold(c, &inputs) {
                let actions: BTreeMap<EventId, &protocol::case::CaseAction> =
                    inputs.iter().map(|i| (i.id, &i.action)).collect();
                for step in st.history.iter().filter(|s| s.outcome == StepOutcome::Applied) {
                    if let Some(a) = actions.get(&step.event)
                        && authorize(step.by, st.school, a).is_err()
                    {
                        report.unauthorised += 1;
                        report.failures.push(format!("{id}: case {c} applied an unauthorised {}", step.action));
                    }
                }
            }
        }
        if report.failures.len() > 50 {
            return;
        }
    }
}

/// What a node holds, as the final checks need it.
#[derive(Default)]
struct Held {
    /// Every event's id and arrival time (µs).
    at: BTreeMap<EventId, u64>,
    cases: Vec<StoredEvent>,
    warnings: Vec<StoredEvent>,
    /// At the province only.
    spot_checks: Vec<StoredEvent>,
}

/// Liveness after the settle time: every event any node wrote is held by every node that should
/// hold it; every acknowledged write survived; every case folds the same on its whole path.
fn final_checks(world: &World, w: &Workload, report: &mut Report, seed: u64) {
    // What each node holds — every event's id and arrival time, its case steps and warnings
    // whole — and each event once, as little as the checks need (a province's day is millions
    // of (node, event) pairs).
    let mut held: BTreeMap<NodeId, Held> = BTreeMap::new();
    let mut truth: BTreeMap<EventId, NodeId> = BTreeMap::new();
    let (mut alerts, mut cases, mut warnings) = (Vec::new(), BTreeMap::new(), Vec::new());
    let mut digest = Fnv::new();
    for (id, n) in &world.nodes {
        let events = all_events(&n.storage).unwrap_or_default();
        if id.tier() == topology::Tier::Province {
            let (keys, bytes) = n.storage.durable_size();
            report.province_store = (events.len() as u64, keys, bytes);
        }
        digest.add(id.to_string().as_bytes());
        let mut h = Held::default();
        for s in events {
            let e = &s.event;
            digest.add(e.origin.to_string().as_bytes());
            digest.add_u64(e.seq);
            digest.add_u64(e.hlc.wall_ms);
            digest.add_u64(u64::from(e.hlc.logical));
            digest.add(e.scope.to_string().as_bytes());
            digest.add_u64(s.received_at_us);
            h.at.insert(e.id(), s.received_at_us);
            if truth.insert(e.id(), e.scope).is_none() {
                // The first copy seen: counted once.
                *report.events_by_kind.entry(e.kind().as_str().to_string()).or_default() += 1;
                *report.events_by_origin_tier.entry(e.origin.tier().to_string()).or_default() += 1;
                crate::warnings::count_one(e, &mut report.warnings);
                match &e.body {
                    Body::Case(c) => {
                        match c.action {
                            protocol::case::CaseAction::Escalate { .. } => report.escalations += 1,
                            protocol::case::CaseAction::MarkOverdue => report.overdue_marks += 1,
                            _ => {}
                        }
                        cases.insert(c.case, e.scope);
                    }
                    Body::Alert(_) => alerts.push(e.id()),
                    Body::Warning(_) => warnings.push(e.clone()),
                    _ => {}
                }
            }
            match e.kind() {
                EventKind::Case => h.cases.push(s),
                EventKind::Warning => h.warnings.push(s),
                EventKind::SpotCheck if *id == world.topology.root() => h.spot_checks.push(s),
                _ => {}
            }
        }
        held.insert(*id, h);
    }
    report.digest = format!("{:016x}", digest.0);
    // Every acknowledged write is still at its origin.
    for id in w.ledger.keys() {
        if !held.get(&id.origin).is_some_and(|h| h.at.contains_key(id)) {
            report.lost += 1;
            if report.failures.len() < 50 {
                report.failures.push(format!("acknowledged {id} is gone from its origin"));
            }
        }
    }
    // Deliveries: scopes index the truth, each node takes what it should hold.
    let mut by_scope: BTreeMap<NodeId, Vec<EventId>> = BTreeMap::new();
    for (id, scope) in &truth {
        by_scope.entry(*scope).or_default().push(*id);
    }
    for (node, have) in &held {
        for (scope, ids) in &by_scope {
            if !holds(*node, *scope) {
                continue;
            }
            for id in ids {
                report.deliveries_expected += 1;
                if have.at.contains_key(id) {
                    report.deliveries_done += 1;
                } else {
                    report.lost += 1;
                    if report.failures.len() < 50 {
                        report.failures.push(format!("{node} never got {id} (scope {scope})"));
                    }
                }
            }
        }
    }
    // Latency school → province, and the province's spot-check pass rate.
    let province = world.topology.root();
    if let Some(at_province) = held.get(&province) {
        let rates = protocol::spot::pass_rates(at_province.spot_checks.iter().map(|s| &s.event));
        if let Some(r) = rates.get(&province) {
            report.spot_checks = (r.checked, r.passed);
        }
        let lat: Vec<u64> = alerts
            .iter()
            .filter_map(|id| {
                let origin = held.get(&id.origin)?.at.get(id)?;
                let p = at_province.at.get(id)?;
                Some(p.saturating_sub(*origin))
            })
            .collect();
        report.alert_latency = Percentiles::of(lat);
    }
    // The warnings at the end; (c) each school's warnings fold the same at every node holding
    // them.
    crate::warnings::count_end(&warnings, &mut report.warnings);
    let room = 50usize.saturating_sub(report.failures.len());
    let per_node: BTreeMap<NodeId, &[StoredEvent]> = held.iter().map(|(n, h)| (*n, h.warnings.as_slice())).collect();
    let compared = identical_at_holders(&per_node, seed, room);
    report.warnings.compared = compared.pairs;
    report.warnings.violations += compared.violations;
    report.failures.extend(compared.failures);
    // Cases agree along their path.
    let cases: BTreeMap<CaseId, NodeId> = cases;
    report.cases = cases.len();
    // Each node's case events, grouped by case once.
    let mut by_node: BTreeMap<NodeId, BTreeMap<CaseId, Vec<protocol::case::CaseInput>>> = BTreeMap::new();
    for (n, h) in &held {
        if !h.cases.is_empty() {
            by_node.insert(*n, cases_of(&h.cases));
        }
    }
    for (case, school) in &cases {
        let mut path: Vec<NodeId> = school.ancestors().collect();
        path.push(*school);
        let states: Vec<(NodeId, Option<CaseState>)> = path
            .iter()
            .map(|n| {
                let inputs = by_node.get(n).and_then(|m| m.get(case)).map(Vec::as_slice).unwrap_or_default();
                (*n, protocol::case::fold(*case, inputs))
            })
            .collect();
        let first = &states[0].1;
        if let Some(st) = first {
            *report.cases_by_status.entry(st.status.as_str().to_string()).or_default() += 1;
        }
        if states.iter().any(|(_, s)| s != first) {
            report.cases_diverged += 1;
            if report.failures.len() < 50 {
                let who: Vec<String> =
                    states.iter().map(|(n, s)| format!("{n}: {:?}", s.as_ref().map(|s| s.status))).collect();
                report.failures.push(format!("case {case} diverged: {}", who.join(", ")));
            }
        }
    }
}

/// How long after a fault ended its node held everything it should have received meanwhile.
fn catch_up(world: &World, w: &Workload, fault: &Fault, start: u64, end: u64) -> Option<f64> {
    let end_wall_us = (DAY_START_WALL_MS + end) * 1000;
    let node = match fault {
        Fault::Dark { node, .. } | Fault::Crash { node, .. } | Fault::Wipe { node } => *node,
        Fault::Partition { a, .. } => *a,
        Fault::Flap { .. } | Fault::Lossy { .. } => return None,
    };
    let storage = &world.nodes.get(&node)?.storage;
    let mut last = None::<u64>;
    for (id, a) in w.ledger.range(..) {
        if a.at_ms < start || a.at_ms > end || !holds(node, a.scope) || id.origin == node {
            continue;
        }
        let (found, _) = read_range(storage, id.origin, id.seq - 1, id.seq, 1).ok()?;
        let at = found.first()?.received_at_us;
        last = Some(last.map_or(at, |l: u64| l.max(at)));
    }
    last.map(|l| l.saturating_sub(end_wall_us) as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::progress_head;

    const H: u64 = 3_600_000;

    /// Progress counts the hours of the run asked for (`--hours`), not of a fixed day.
    #[test]
    fn progress_follows_the_hours_of_the_run() {
        assert_eq!(progress_head(H, 24 * H), "[simulated 1.0 h of 24 h (4%), day clock 01:00]");
        assert_eq!(progress_head(14 * H, 336 * H), "[simulated 14.0 h of 336 h (4%), day clock 01:00]");
        assert_eq!(progress_head(168 * H, 336 * H), "[simulated 168.0 h of 336 h (50%), day clock 12:00]");
        assert_eq!(progress_head(3 * H, 12 * H), "[simulated 3.0 h of 12 h (25%), day clock 06:00]");
        assert_eq!(progress_head(H / 4, H), "[simulated 0.25 h of 1 h (25%), day clock 06:00]");
        assert_eq!(progress_head(12 * H, 12 * H), "[simulated 12.0 h of 12 h (100%), day clock 24:00]");
    }
}
