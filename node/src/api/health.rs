//! The subtree at a glance: every node that should exist (the roster: topology, registry and
//! whatever reported), its derived state and last values — the JSON that `topology show`, the
//! console's 运行状态 page and the metrics share.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use protocol::health::{Derived, HealthTable, HealthTiming, LinkView, NodeState, SelfReport, Severity, derive_all};
use protocol::people::Action;
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier, Topology};

use crate::api::AdminState;
use crate::api::kit::{ADMIN_CALL_TIMEOUT_MS, ApiResult, bad, internal};
use crate::api::principal::Principal;
use crate::runtime::health::SharedHealth;
use crate::runtime::root::NodeMsg;

/// One node of the roster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthRowView {
    pub node: NodeId,
    pub name: String,
    pub tier: Tier,
    pub state: NodeState,
    pub severity: Severity,
    /// In that state since (wall ms), when known.
    pub since_ms: Option<u64>,
    /// When it last reported itself, and when its parent last heard from it (wall ms).
    pub reported_ms: Option<u64>,
    pub heard_ms: Option<u64>,
    /// The ancestor it failed over to.
    pub via: Option<NodeId>,
    pub why: Option<String>,
    pub warnings: Vec<String>,
    /// Listed only to place problem rows in the tree (with `problems`): itself fine.
    #[serde(default)]
    pub context: bool,
    /// Its own last report, and its parent's view of the link to it.
    pub report: Option<SelfReport>,
    pub link: Option<LinkView>,
    /// The cameras of its subtree's schools, `(registered, online)`, summed over the schools
    /// whose devices report ([`camera_sums`]); `None` when none of them do.
    #[serde(default)]
    pub cameras: Option<(u32, u32)>,
}

/// Each node's cameras `(registered, online)`: its own report's (a school's) plus those of every
/// school below it, over `derived` (the roster as derived, all in `me`'s subtree). A school's
/// registered cameras count from its last report whatever its state; its online ones only while
/// its report is fresh (live or failed over): of a school that is down or stale, nobody knows
/// which cameras are up.
pub fn camera_sums(derived: &[Derived], table: &HealthTable, me: NodeId) -> BTreeMap<NodeId, (u32, u32)> {
    let add = |sums: &mut BTreeMap<NodeId, (u32, u32)>, n: NodeId, (reg, on): (u32, u32)| {
        let e = sums.entry(n).or_default();
        e.0 = e.0.saturating_add(reg);
        e.1 = e.1.saturating_add(on);
    };
    let mut sums: BTreeMap<NodeId, (u32, u32)> = BTreeMap::new();
    // In tree order (as derived) a unit's schools come one after another: their cameras are
    // summed in a run and carried up once per unit, and the reports are walked beside the roster
    // instead of looked up one by one.
    let in_order = derived.is_sorted_by_key(|d| d.node);
    let mut reports = table.reports().peekable();
    let mut run: Option<(NodeId, (u32, u32))> = None;
    let carry = |sums: &mut BTreeMap<NodeId, (u32, u32)>, run: Option<(NodeId, (u32, u32))>| {
        if let Some((unit, counts)) = run {
            for n in unit.path_up().take_while(|n| n.in_subtree_of(me)) {
                add(sums, n, counts);
            }
        }
    };
    for d in derived {
        let report = if in_order {
            while reports.next_if(|(n, _)| *n < d.node).is_some() {}
            reports.next_if(|(n, _)| *n == d.node).map(|(_, r)| r)
        } else {
            table.report(d.node).map(|(r, _)| r)
        };
        let Some((registered, online)) = report.and_then(|r| r.cameras) else { continue };
        let fresh = matches!(d.state, NodeState::Live | NodeState::FailedOver);
        let counts = (registered, if fresh { online.min(registered) } else { 0 });
        add(&mut sums, d.node, counts);
        let Some(parent) = d.node.parent().filter(|p| p.in_subtree_of(me)) else { continue };
        match &mut run {
            Some((unit, sum)) if *unit == parent => {
                sum.0 = sum.0.saturating_add(counts.0);
                sum.1 = sum.1.saturating_add(counts.1);
            }
            _ => carry(&mut sums, run.replace((parent, counts))),
        }
    }
    carry(&mut sums, run);
    sums
}

/// The answer of `GET /api/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    /// The node that answered, and the root of the rows.
    pub node: NodeId,
    pub under: NodeId,
    pub now_ms: u64,
    /// Nodes in the selection (before `problems` cut it), by state.
    pub counts: BTreeMap<NodeState, u64>,
    pub total: u64,
    /// The worst severity in the selection: 0 all fine, 1 warnings, 2 critical.
    pub severity: Severity,
    pub rows: Vec<HealthRowView>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HealthParams {
    /// Only this unit's subtree.
    pub under: Option<String>,
    /// Only rows that are not fine (with their ancestors as context).
    #[serde(default)]
    pub problems: bool,
}

/// Who should exist in `under`'s subtree: the topology, registered nodes, and any node that
/// reported (it was accepted, so it belongs), in tree order.
pub fn roster(topology: &Topology, table: &HealthTable, registered: &[NodeId], under: NodeId) -> Vec<NodeId> {
    // The topology's subtree and the table's nodes come in tree order: merged, not sorted.
    let listed = topology.subtree(under).map(|e| e.id);
    let held = table.nodes().filter(|n| n.in_subtree_of(under));
    let mut all = union_sorted(listed, held);
    if registered.iter().any(|n| n.in_subtree_of(under)) {
        let mut extra: Vec<NodeId> = registered.iter().copied().filter(|n| n.in_subtree_of(under)).collect();
        extra.sort_unstable();
        all = union_sorted(all.into_iter(), extra.into_iter());
    }
    all
}

/// The ascending union of two ascending lists, each node once.
fn union_sorted(a: impl Iterator<Item = NodeId>, b: impl Iterator<Item = NodeId>) -> Vec<NodeId> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut out: Vec<NodeId> = Vec::with_capacity(a.size_hint().0.max(b.size_hint().0));
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x <= y => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        if let Some(n) = next
            && out.last() != Some(&n)
        {
            out.push(n);
        }
    }
    out
}

/// What `problems` keeps of `rows` (in `under`'s subtree): every row that is not fine, and — as
/// context (`true`) — the ancestors within `under` that place them in the tree.
pub fn problems_kept(rows: impl Iterator<Item = (NodeId, Severity)>, under: NodeId) -> BTreeMap<NodeId, bool> {
    let mut kept: BTreeMap<NodeId, bool> = rows.filter(|(_, s)| *s != Severity::Ok).map(|(n, _)| (n, false)).collect();
    let context: Vec<NodeId> = kept.keys().flat_map(|n| n.ancestors().filter(|a| a.in_subtree_of(under))).collect();
    for a in context {
        kept.entry(a).or_insert(true);
    }
    kept
}

/// The view of `under`'s subtree at `now_ms`, as node `me` holds it.
// Each input is distinct and named at the call sites (the admin API, the benchmark, the simulator's tests).
#[allow(clippy::too_many_arguments)]
pub fn build_view(
    me: NodeId,
    under: NodeId,
    topology: &Topology,
    table: &HealthTable,
    timing: &HealthTiming,
    registered: &[NodeId],
    now_ms: u64,
    problems: bool,
) -> HealthView {
    // Derive from `me` down (a node's state depends on its parent's), then keep `under`'s part.
    let roster_all = roster(topology, table, registered, me);
    let derived = derive_all(me, &roster_all, table, now_ms, timing);
    let selected: Vec<&Derived> = derived.iter().filter(|d| d.node.in_subtree_of(under)).collect();
    let mut counts = BTreeMap::new();
    for d in &selected {
        *counts.entry(d.state).or_insert(0) += 1;
    }
    let severity = selected.iter().map(|d| d.severity).max().unwrap_or(Severity::Ok);
    let cameras = camera_sums(&derived, table, me);
    let wanted: Vec<(&Derived, bool)> = if problems {
        let kept = problems_kept(selected.iter().map(|d| (d.node, d.severity)), under);
        selected.iter().filter_map(|d| kept.get(&d.node).map(|context| (*d, *context))).collect()
    } else {
        selected.iter().map(|d| (*d, false)).collect()
    };
    let rows = wanted
        .into_iter()
        .map(|(d, context)| HealthRowView {
            node: d.node,
            name: topology.get(d.node).map(|e| e.name.clone()).unwrap_or_default(),
            tier: d.node.tier(),
            state: d.state,
            severity: d.severity,
            since_ms: d.since_ms,
            reported_ms: d.reported_ms,
            heard_ms: d.heard_ms,
            via: d.via,
            why: d.why.clone(),
            warnings: d.warnings.clone(),
            context,
            report: table.report(d.node).map(|(r, _)| r.clone()),
            link: table.link(d.node).map(|(l, _)| l.clone()),
            cameras: cameras.get(&d.node).copied(),
        })
        .collect();
    HealthView { node: me, under, now_ms, counts, total: selected.len() as u64, severity, rows }
}

/// The shared health table of the node.
pub async fn shared(s: &AdminState) -> Result<SharedHealth, crate::api::kit::ApiFail> {
    ractor::call_t!(s.node, NodeMsg::Health, ADMIN_CALL_TIMEOUT_MS).map_err(internal)
}

/// How long the list of run-time registrations is reused: folding a province's whole registry
/// on every `topology show --watch` round would cost more than the view itself.
const REGISTERED_REUSE: std::time::Duration = std::time::Duration::from_secs(30);

type RegisteredCache = std::sync::Mutex<BTreeMap<NodeId, (std::time::Instant, Vec<NodeId>)>>;

/// Schools and cities registered at run time (the topology file does not list them), folded
/// from the registry at most every [`REGISTERED_REUSE`].
async fn registered(s: &AdminState) -> Vec<NodeId> {
    use protocol::registry::EntityKind;
    static CACHE: std::sync::OnceLock<RegisteredCache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((at, list)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&s.me)
        && at.elapsed() < REGISTERED_REUSE
    {
        return list.clone();
    }
    let list: Vec<NodeId> = match s.reads.registry().await {
        Ok(view) => view
            .keys()
            .filter(|k| matches!(k.kind, EntityKind::School | EntityKind::City) && !s.topology.contains(k.node))
            .map(|k| k.node)
            .collect(),
        Err(_) => return Vec::new(),
    };
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(s.me, (std::time::Instant::now(), list.clone()));
    list
}

/// The view for a request: `under` parsed and checked against the node's subtree.
pub async fn view_for(
    s: &AdminState,
    under: Option<&str>,
    problems: bool,
) -> Result<HealthView, crate::api::kit::ApiFail> {
    let under = match under.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => u.parse::<NodeId>().map_err(|e| bad(format!("单位编号有误：{e}")))?,
        None => s.me,
    };
    if !under.in_subtree_of(s.me) {
        return Err(bad(format!("{under} 不在本节点 {} 的下辖范围内", s.me)));
    }
    let health = shared(s).await?;
    let registered = registered(s).await;
    let now = s.clock.wall_ms();
    let table = health.lock();
    Ok(build_view(s.me, under, &s.topology, &table, &health.timing, &registered, now, problems))
}

async fn health(State(s): State<AdminState>, who: Principal, Query(p): Query<HealthParams>) -> ApiResult<HealthView> {
    who.require(&s, Action::ViewSubtree).await?;
    view_for(&s, p.under.as_deref(), p.problems).await.map(Json)
}

pub fn routes() -> Router<AdminState> {
    Router::new().route("/api/health", get(health))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::health::{HealthRow, Part, Phase};

    fn report(cameras: Option<(u32, u32)>) -> SelfReport {
        SelfReport {
            version: "0.1.0".into(),
            started_ms: 0,
            reported_ms: 0,
            uplink: Phase::Up,
            failover: None,
            backlog: 0,
            oldest_ms: 0,
            reconnects: 0,
            disconnects: vec![],
            cert_days_left: None,
            disk_bytes: None,
            restoring: false,
            cameras,
        }
    }

    fn derived(node: &str, state: NodeState) -> Derived {
        Derived {
            node: node.parse().unwrap(),
            state,
            since_ms: None,
            reported_ms: None,
            heard_ms: None,
            via: None,
            why: None,
            severity: Severity::Ok,
            warnings: vec![],
        }
    }

    #[test]
    fn a_units_cameras_sum_its_schools_and_a_school_out_of_touch_has_none_online() {
        let mut table = HealthTable::new();
        for (node, cameras) in [
            ("130102", None),
            ("130102-S0001", Some((8, 7))),
            ("130102-S0002", Some((8, 8))),
            ("130102-S0003", None),
            ("130103-S0001", Some((4, 4))),
        ] {
            table.put(HealthRow { node: node.parse().unwrap(), version: 1, part: Part::Report(report(cameras)) });
        }
        let all = [
            derived("1301", NodeState::Live),
            derived("130102", NodeState::Live),
            derived("130102-S0001", NodeState::Live),
            derived("130102-S0002", NodeState::Stale),
            derived("130102-S0003", NodeState::Live),
            derived("130103", NodeState::Live),
            derived("130103-S0001", NodeState::FailedOver),
        ];
        let sums = camera_sums(&all, &table, "1301".parse().unwrap());
        let at = |n: &str| sums.get(&n.parse::<NodeId>().unwrap()).copied();
        assert_eq!(at("130102-S0001"), Some((8, 7)));
        assert_eq!(at("130102-S0002"), Some((8, 0)), "stale: registered, none known online");
        assert_eq!(at("130102-S0003"), None, "its devices do not report");
        assert_eq!(at("130102"), Some((16, 7)));
        assert_eq!(at("130103"), Some((4, 4)), "failed over, still reporting");
        assert_eq!(at("1301"), Some((20, 11)));
        assert_eq!(at("13"), None, "nothing above the viewer");
        // Out of tree order (a caller's own list) the sums are the same.
        let mut shuffled = all.to_vec();
        shuffled.reverse();
        assert_eq!(camera_sums(&shuffled, &table, "1301".parse().unwrap()), sums);
    }

    #[test]
    fn the_roster_merges_the_topology_the_table_and_the_registrations_in_tree_order() {
        let spec = topology::generate::SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 2 };
        let topo = topology::generate::generate_small(&spec, &topology::generate::AddrPlan::default()).unwrap();
        let mut table = HealthTable::new();
        let extra: NodeId = "130102-S0999".parse().unwrap();
        table.put(HealthRow { node: extra, version: 1, part: Part::Report(report(None)) });
        let registered: Vec<NodeId> =
            ["1302", "130199-S0002", "130102-S0998", "130199-S0001"].iter().map(|n| n.parse().unwrap()).collect();
        let all = roster(&topo, &table, &registered, topo.root());
        let mut expected: Vec<NodeId> = topo.nodes().map(|e| e.id).chain([extra]).chain(registered.clone()).collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(all, expected);
        assert!(all.is_sorted(), "{all:?}");
        let city: NodeId = "1301".parse().unwrap();
        let under = roster(&topo, &table, &registered, city);
        assert!(under.iter().all(|n| n.in_subtree_of(city)) && under.contains(&extra), "{under:?}");
        assert!(!under.contains(&"1302".parse().unwrap()), "{under:?}");
    }
}
