//! The health invariant: the province's view of every node converges to the truth.
//!
//! The province derives every roster node's state from its health table
//! (`protocol::health::derive_all`, the view `mingchu health` shows). The simulator knows the
//! truth: which nodes run, which faults are on. [`HealthCheck`] polls the province's view (every
//! [`POLL_MS`] of simulated time while something is to be measured, at every periodic safety
//! check, and at the end) and holds it to two rules, with one bound `B` ([`bound_ms`]):
//!
//! - **(a) Back to live.** A node that runs, and that no fault has touched for `B` — neither
//!   itself, nor an ancestor, nor the network as a whole — must be `Live` in the province's view.
//!   A fault touches its node's subtree (a partition: the lower end's subtree; a lossy network:
//!   everything), from its start until `B` after it heals; the start of the run counts as a heal.
//!   So after every fault, within `B`, every node it touched is `Live` again, unless another
//!   fault holds it.
//! - **(b) Seen gone.** A node dark or crashed (or cut from its parent) for longer than `B` must
//!   show as not live within `B` of the fault's start, and stay so while the fault lasts: `Down`
//!   or `Stale` when it is dark or crashed, or cut from a parent that is the province (it has no
//!   other way up); anything but `Live` when it is cut from a lower parent (it may fail over).
//!
//! Per fault, the report gives how long the province took to see it (first poll at which rule
//! (b) held) and to converge after it healed (first poll at which every node it touched, and
//! that no later fault holds, was `Live`); both are measured at [`POLL_MS`] polls, so they are
//! upper bounds rounded up to 30 s. A violation fails the run, naming the node, the state, the
//! time and the seed.
//!
//! # The bound
//!
//! `B = idle timeout + failover delay + redial cap + dial timeout + depth × flush + poll`
//! (the simulator's defaults: 900 + 900 + 30 + 3 + 3 × 5 + 30 s = 1,878 s ≈ 31.3 min):
//!
//! - *idle timeout*: a peer that vanished without closing its connections (a crash or a cut
//!   cable on a real network) is noticed at worst when its connection times out. The simulated
//!   network breaks connections at once on a partition, isolation or crash, so in the simulator
//!   this term is mostly slack — kept so that the bound holds for the protocol, not the model.
//! - *failover delay*: a restarted node keeps its children's last views for `failover_after`
//!   (they are expected back within moments), so a child that does not come back shows as down
//!   only then; and a node whose uplink died may fail over just as the fault heals (its failover
//!   clock runs from when it last heard its parent).
//! - *redial cap + dial timeout*: after a heal, a node redials its parent (or a node that had
//!   failed over, its own parent, which ends the failover link) with a backoff capped at
//!   `REDIAL.max_ms`, each failed dial costing up to the dial timeout.
//! - *depth × flush*: each node on the way up holds a changed row at most `flush_ms` before
//!   sending it to its uplink (a school's report passes a school, a county and a city; the
//!   province merges what it receives at once).
//! - *poll*: the check looks every 30 s.
//!
//! A re-report (`refresh_ms`) is not needed for convergence: every uplink change re-reports at
//! once, a reconnected uplink is sent the whole table, and reports stay fresh for
//! `stale_after_ms` > `refresh_ms`.

use std::collections::{BTreeMap, BTreeSet};

use node::clock::Clock as _;
use node::runtime::root::{DIAL_TIMEOUT_MS, NodeMsg};
use protocol::health::{NodeState, derive_all};
use serde::Serialize;
use topology::{NodeId, Topology};

use crate::faults::Fault;
use crate::world::{NodeSettings, REDIAL, World};

/// How often the province's view is polled while something is being measured (simulated ms).
pub const POLL_MS: u64 = 30_000;

/// Most health violations spelled out in the report's failures (all are counted).
const VIOLATIONS_SPELLED: u64 = 20;

/// The convergence bound `B` for a tree `depth` levels deep (see the module's doc).
pub fn bound_ms(settings: &NodeSettings, depth: u64) -> u64 {
    settings.session.idle_timeout_ms
        + settings.failover_after_ms
        + REDIAL.max_ms
        + DIAL_TIMEOUT_MS
        + depth * settings.health.flush_ms
        + POLL_MS
}

/// The health plane's numbers in a run's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HealthReport {
    /// The convergence bound `B` (simulated seconds).
    pub bound_s: f64,
    /// Times the province's view was derived and checked.
    pub polls: u64,
    /// Heals whose convergence was measured (not those whose nodes a later fault still held),
    /// and the longest (simulated seconds).
    pub heals_measured: usize,
    pub max_converge_s: Option<f64>,
    /// Faults the province was seen to notice, and the longest it took (simulated seconds).
    pub detections_measured: usize,
    pub max_detect_s: Option<f64>,
    /// Health-frame bytes the province received over all its links, over the whole run (start-up
    /// included), and per simulated second.
    pub bytes_in: u64,
    pub bytes_per_s: f64,
    /// Rows the province's table took (newer versions merged, its own reports included), and per
    /// simulated second.
    pub rows_merged: u64,
    pub rows_per_s: f64,
    /// Violations of the invariant (0 for a pass).
    pub violations: u64,
}

/// What the province must show for a node cut off by a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    DownOrStale,
    NotLive,
}

impl Expect {
    fn met(self, s: NodeState) -> bool {
        match self {
            Expect::DownOrStale => matches!(s, NodeState::Down | NodeState::Stale),
            Expect::NotLive => s != NodeState::Live,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Expect::DownOrStale => "down or stale",
            Expect::NotLive => "not live",
        }
    }
}

/// A fault as the checker follows it.
struct Tracked {
    what: String,
    /// The subtrees it touches.
    roots: Vec<NodeId>,
    /// The node it cuts off, what the province must show for it, and whether the fault is long
    /// enough (over `B`) for rule (b) to apply.
    cut: Option<(NodeId, Expect, bool)>,
    start: u64,
    end: Option<u64>,
    detect_open: bool,
    detected_ms: Option<u64>,
    heal_open: bool,
    converged_ms: Option<u64>,
    /// Reported for rule (b) already (once per fault).
    flagged: bool,
}

impl Tracked {
    fn touches(&self, n: NodeId) -> bool {
        self.roots.iter().any(|r| r.is_ancestor_or_self_of(n))
    }
}

/// The checker: faults as they start and end, and the province's view as it is polled.
pub struct HealthCheck {
    root: NodeId,
    roster: Vec<NodeId>,
    bound_ms: u64,
    day_ms: u64,
    seed: u64,
    faults: Vec<Tracked>,
    /// Nodes already reported for rule (a) (one line per node).
    reported: BTreeSet<NodeId>,
    bytes_total: u64,
    bytes_seen: BTreeMap<NodeId, u64>,
    rows_total: u64,
    rows_seen: Option<u64>,
    pub report: HealthReport,
}

impl HealthCheck {
    pub fn new(topology: &Topology, bound_ms: u64, day_ms: u64, seed: u64) -> HealthCheck {
        HealthCheck {
            root: topology.root(),
            roster: topology.nodes().map(|e| e.id).collect(),
            bound_ms,
            day_ms,
            seed,
            faults: Vec::new(),
            reported: BTreeSet::new(),
            bytes_total: 0,
            bytes_seen: BTreeMap::new(),
            rows_total: 0,
            // A fresh province starts from an empty table.
            rows_seen: Some(0),
            report: HealthReport { bound_s: bound_ms as f64 / 1000.0, ..HealthReport::default() },
        }
    }

    pub fn bound_ms(&self) -> u64 {
        self.bound_ms
    }

    /// A fault starts at `now` (simulated ms since the day began); returns its handle.
    pub fn fault_started(&mut self, f: &Fault, now: u64) -> usize {
        let root = self.root;
        let long = |ms: u64| ms > self.bound_ms;
        let (roots, cut) = match f {
            Fault::Dark { node, ms } | Fault::Crash { node, ms } => {
                (vec![*node], (*node != root).then_some((*node, Expect::DownOrStale, long(*ms))))
            }
            Fault::Wipe { node } | Fault::Flap { node, .. } => (vec![*node], None),
            Fault::Partition { a, b, ms } => {
                let (lower, upper) = if b.is_ancestor_or_self_of(*a) { (*a, *b) } else { (*b, *a) };
                if !upper.is_ancestor_or_self_of(lower) {
                    (vec![*a, *b], None)
                } else if lower.parent() == Some(upper) {
                    let expect = if upper == root { Expect::DownOrStale } else { Expect::NotLive };
                    (vec![lower], Some((lower, expect, long(*ms))))
                } else {
                    // Cut from an ancestor above its parent: only its failover path is gone.
                    (vec![lower], None)
                }
            }
            Fault::Lossy { .. } => (vec![root], None),
        };
        self.faults.push(Tracked {
            what: f.describe(),
            detect_open: cut.is_some(),
            roots,
            cut,
            start: now,
            end: None,
            detected_ms: None,
            heal_open: false,
            converged_ms: None,
            flagged: false,
        });
        self.faults.len() - 1
    }

    /// Fault `id` healed at `now`.
    pub fn fault_ended(&mut self, id: usize, now: u64) {
        if let Some(t) = self.faults.get_mut(id) {
            t.end = Some(now);
            t.detect_open = false;
            t.heal_open = true;
        }
    }

    /// Whether something waits to be measured (then the caller polls every [`POLL_MS`]).
    pub fn wants_poll(&self) -> bool {
        self.faults.iter().any(|t| t.detect_open || t.heal_open)
    }

    /// When the last fault healed (simulated ms), if any did.
    pub fn last_end(&self) -> Option<u64> {
        self.faults.iter().filter_map(|t| t.end).max()
    }

    /// Simulated seconds fault `id` took to show, and to converge after it healed.
    pub fn detect_s(&self, id: usize) -> Option<f64> {
        self.faults.get(id)?.detected_ms.map(|ms| ms as f64 / 1000.0)
    }

    pub fn converge_s(&self, id: usize) -> Option<f64> {
        self.faults.get(id)?.converged_ms.map(|ms| ms as f64 / 1000.0)
    }

    /// Adds what the province's links received since the last sample.
    fn sample_traffic(&mut self, children: &[node::runtime::link::LinkStatus], head: u64) {
        for s in children {
            let last = self.bytes_seen.insert(s.peer, s.health_bytes_in).unwrap_or(0);
            // A link entry made anew (a descendant that had failed over here) counts from 0.
            self.bytes_total += if s.health_bytes_in >= last { s.health_bytes_in - last } else { s.health_bytes_in };
        }
        if let Some(last) = self.rows_seen {
            self.rows_total += head.saturating_sub(last);
        }
        self.rows_seen = Some(head);
    }

    /// Before the province crashes: take its counters (a restarted province counts from 0; its
    /// table's change numbers start over from the rows it loads).
    pub async fn province_going_down(&mut self, world: &World) {
        if let Some(r) = world.node_ref(self.root) {
            let health = ractor::call_t!(r, NodeMsg::Health, 60_000).ok();
            if let (Ok(status), Some(h)) = (ractor::call_t!(r, NodeMsg::Status, 60_000), health) {
                let head = h.lock().head();
                self.sample_traffic(&status.children, head);
            }
        }
        self.bytes_seen.clear();
        self.rows_seen = None;
    }

    /// Derives the province's view at `now` (simulated ms since the day began) and checks it.
    /// Does nothing while the province is down (there is no view to check).
    pub async fn poll(&mut self, world: &World, now: u64, failures: &mut Vec<String>) {
        let Some(r) = world.node_ref(self.root) else { return };
        let (Ok(shared), Ok(status)) =
            (ractor::call_t!(r, NodeMsg::Health, 60_000), ractor::call_t!(r, NodeMsg::Status, 60_000))
        else {
            return;
        };
        let wall_ms = world.clock.wall_ms();
        let (non_live, head) = {
            let table = shared.lock();
            let derived = derive_all(self.root, &self.roster, &table, wall_ms, &shared.timing);
            let non_live: BTreeMap<NodeId, (NodeState, String)> = derived
                .into_iter()
                .filter(|d| d.state != NodeState::Live)
                .map(|d| (d.node, (d.state, d.why.unwrap_or_default())))
                .collect();
            (non_live, table.head())
        };
        self.sample_traffic(&status.children, head);
        self.judge(now, &non_live, &|n| world.is_running(n), failures);
    }

    fn violation(&mut self, failures: &mut Vec<String>, text: String) {
        self.report.violations += 1;
        if self.report.violations <= VIOLATIONS_SPELLED {
            failures.push(format!(
                "health: {text} (bound B = {:.1} min; seed {})",
                self.bound_ms as f64 / 60_000.0,
                self.seed
            ));
        }
    }

    /// The rules, on the province's view at `now`: `non_live` holds every node not `Live`
    /// (state, why), `running` tells which nodes run.
    fn judge(
        &mut self,
        now: u64,
        non_live: &BTreeMap<NodeId, (NodeState, String)>,
        running: &dyn Fn(NodeId) -> bool,
        failures: &mut Vec<String>,
    ) {
        self.report.polls += 1;
        let b = self.bound_ms;
        let at = crate::sim::clock_of_day(now, self.day_ms);
        // (a) A running node no fault has touched for B is live.
        let mut late = Vec::new();
        for (&n, (state, why)) in non_live {
            if !running(n) || self.reported.contains(&n) {
                continue;
            }
            let touching = self.faults.iter().filter(|t| t.touches(n));
            let mut quiet_since = Some(0u64);
            for t in touching {
                quiet_since = match (quiet_since, t.end) {
                    (Some(q), Some(e)) => Some(q.max(e)),
                    _ => None,
                };
            }
            if let Some(q) = quiet_since
                && now >= q + b
            {
                late.push(format!(
                    "at {at} (simulated {:.1} min) the province shows {n} {} ({why}), though it runs and no fault \
                     has touched it for {:.1} min",
                    now as f64 / 60_000.0,
                    state.as_str(),
                    (now - q) as f64 / 60_000.0
                ));
                self.reported.insert(n);
            }
        }
        for text in late {
            self.violation(failures, text);
        }
        // Convergence after each heal: every node the fault touched, and no later fault holds, is
        // live (or is not running).
        let mut converged = Vec::new();
        for (i, t) in self.faults.iter().enumerate().filter(|(_, t)| t.heal_open) {
            let h = t.end.unwrap_or(now);
            let (mut blocking, mut held) = (false, false);
            for &n in non_live.keys().filter(|&&n| t.touches(n) && running(n)) {
                let other = self
                    .faults
                    .iter()
                    .enumerate()
                    .any(|(j, u)| j != i && u.touches(n) && u.start <= now && u.end.is_none_or(|e| e > h));
                if other {
                    held = true;
                } else {
                    blocking = true;
                }
            }
            if !blocking {
                // Nodes still held by a later fault: that fault's heal measures them, not this one.
                converged.push((i, (!held).then(|| now.saturating_sub(h))));
            } else if now >= h + b {
                // Not converged within B: rule (a) names the nodes.
                converged.push((i, None));
            }
        }
        for (i, ms) in converged {
            let t = &mut self.faults[i];
            t.heal_open = false;
            t.converged_ms = ms;
            if let Some(ms) = ms {
                self.report.heals_measured += 1;
                let s = ms as f64 / 1000.0;
                self.report.max_converge_s = Some(self.report.max_converge_s.map_or(s, |m: f64| m.max(s)));
            }
        }
        // (b) A node cut off for longer than B shows so within B, and stays so while cut off.
        let mut seen = Vec::new();
        for t in self.faults.iter_mut().filter(|t| t.end.is_none()) {
            let Some((c, expect, long)) = t.cut else { continue };
            let (state, why) = non_live.get(&c).cloned().unwrap_or((NodeState::Live, String::new()));
            let ok = expect.met(state);
            if t.detect_open && ok {
                t.detect_open = false;
                let ms = now.saturating_sub(t.start);
                t.detected_ms = Some(ms);
                self.report.detections_measured += 1;
                let s = ms as f64 / 1000.0;
                self.report.max_detect_s = Some(self.report.max_detect_s.map_or(s, |m: f64| m.max(s)));
            } else if long && !ok && now >= t.start + b && !t.flagged {
                t.detect_open = false;
                t.flagged = true;
                let wrong =
                    if why.is_empty() { state.as_str().to_string() } else { format!("{} ({why})", state.as_str()) };
                seen.push(format!(
                    "at {at} (simulated {:.1} min) the province shows {c} {wrong}, {:.1} min into `{}`: it should be {}",
                    now as f64 / 60_000.0,
                    (now - t.start) as f64 / 60_000.0,
                    t.what,
                    expect.describe()
                ));
            }
        }
        for text in seen {
            self.violation(failures, text);
        }
    }

    /// The numbers, over `elapsed_ms` of simulated time.
    pub fn finish(&mut self, elapsed_ms: u64) -> HealthReport {
        let secs = (elapsed_ms as f64 / 1000.0).max(1.0);
        self.report.bytes_in = self.bytes_total;
        self.report.bytes_per_s = self.bytes_total as f64 / secs;
        self.report.rows_merged = self.rows_total;
        self.report.rows_per_s = self.rows_total as f64 / secs;
        self.report.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn checker() -> HealthCheck {
        let topology = topology::generate::generate_small(
            &topology::generate::SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 2 },
            &topology::generate::AddrPlan::default(),
        )
        .unwrap();
        HealthCheck::new(&topology, 10 * 60_000, 24 * 3_600_000, 9)
    }

    fn down(nodes: &[&str]) -> BTreeMap<NodeId, (NodeState, String)> {
        nodes.iter().map(|n| (id(n), (NodeState::Down, "gone".to_string()))).collect()
    }

    /// A dark county must show within B; a heal is measured at the first poll all is live again;
    /// a node non-live B after its last fault is a violation, one before is not.
    #[test]
    fn the_rules_hold_and_break() {
        let mut c = checker();
        let county = id("130102");
        let f = c.fault_started(&Fault::Dark { node: county, ms: 60 * 60_000 }, 0);
        let mut fails = Vec::new();
        let all = |_| true;
        c.judge(5 * 60_000, &down(&[]), &all, &mut fails);
        assert!(fails.is_empty() && c.detect_s(f).is_none());
        c.judge(10 * 60_000, &down(&[]), &all, &mut fails);
        assert_eq!(fails.len(), 1, "still live B after going dark: {fails:?}");
        assert!(fails[0].contains("130102") && fails[0].contains("seed 9"), "{fails:?}");
        c.fault_ended(f, 60 * 60_000);
        c.judge(61 * 60_000, &down(&["130102"]), &all, &mut fails);
        assert_eq!(fails.len(), 1);
        c.judge(62 * 60_000, &down(&[]), &all, &mut fails);
        assert_eq!(c.converge_s(f), Some(120.0));
        // A school untouched by any fault, down well after the run began: a violation.
        c.judge(63 * 60_000, &down(&["130101-S0001"]), &all, &mut fails);
        assert_eq!(fails.len(), 2, "{fails:?}");
        // Down because it is not running: the truth.
        c.judge(64 * 60_000, &down(&["130101-S0002"]), &|n| n != id("130101-S0002"), &mut fails);
        assert_eq!(fails.len(), 2, "{fails:?}");
        assert_eq!(c.report.violations, 2);
    }
}
