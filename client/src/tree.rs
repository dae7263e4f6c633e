//! `topology show`: a node's whole subtree as a tree table — the tree in the first column, one row
//! per node (schools folded into one row per county unless asked for), its state, since when,
//! the two clocks (its own last report, its parent's last word of it), its backlog and why.

use std::collections::{BTreeMap, HashSet};

use node::api::health::{HealthRowView, HealthView};
use protocol::health::{NodeState, Severity};
use topology::{NodeId, Tier};

use crate::render::{ago, clean, tier_zh};

/// What the operator expects of some nodes (`--expect 130102=down`): a node in one of its
/// expected states counts as fine; in any other, as critical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub node: NodeId,
    pub states: Vec<NodeState>,
}

impl std::str::FromStr for Expectation {
    type Err = String;

    /// `130102=down`, `130102=down,stale`, `130102=下线`.
    fn from_str(s: &str) -> Result<Expectation, String> {
        let (node, states) = s
            .split_once('=')
            .ok_or_else(|| format!("“{s}”应写作 节点=状态，如 130102=down / expected NODE=STATE, e.g. 130102=down"))?;
        let node: NodeId = node.trim().parse().map_err(|e| format!("{e}"))?;
        let states = states
            .split(',')
            .map(|st| {
                NodeState::parse(st.trim()).ok_or_else(|| {
                    let names: Vec<String> =
                        NodeState::ALL.iter().map(|x| format!("{}（{}）", x.as_str(), x.zh())).collect();
                    format!("没有“{}”这个状态，可选：{} / unknown state", st.trim(), names.join("、"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Expectation { node, states })
    }
}

/// Applies expectations to the rows: a met one makes its row fine, an unmet one critical (with a
/// warning saying so). Returns the selection's worst severity afterwards, and unmet expectations
/// about nodes that are not in the view at all.
pub fn apply_expectations(view: &mut HealthView, expect: &[Expectation]) -> (Severity, Vec<String>) {
    let mut missing = Vec::new();
    for e in expect {
        match view.rows.iter_mut().find(|r| r.node == e.node) {
            Some(r) if e.states.contains(&r.state) => r.severity = Severity::Ok,
            Some(r) => {
                r.severity = Severity::Critical;
                let want: Vec<&str> = e.states.iter().map(|s| s.zh()).collect();
                r.warnings.push(format!("预期{}，实际{}", want.join("或"), r.state.zh()));
            }
            None => missing.push(format!("{} 不在此视图中（预期 {}）", e.node, e.states[0].zh())),
        }
    }
    let worst = view.rows.iter().filter(|r| !r.context).map(|r| r.severity).max().unwrap_or(Severity::Ok);
    let worst = if missing.is_empty() { worst } else { Severity::Critical };
    (worst, missing)
}

/// Keeps only rows that are not fine, and the ancestors that place them in the tree (as the
/// node's own `problems` filter does: [`node::api::health::problems_kept`]).
pub fn only_problems(view: &mut HealthView) {
    let kept = node::api::health::problems_kept(view.rows.iter().map(|r| (r.node, r.severity)), view.under);
    view.rows.retain_mut(|r| match kept.get(&r.node) {
        Some(context) => {
            r.context = *context;
            true
        }
        None => false,
    });
}

fn state_cell(r: &HealthRowView) -> String {
    if r.context {
        return String::new();
    }
    match (r.state, r.via) {
        (NodeState::FailedOver, Some(v)) => format!("{}→{v}", r.state.zh()),
        (s, _) => s.zh().to_string(),
    }
}

fn mark(sev: Severity) -> &'static str {
    match sev {
        Severity::Ok => "  ",
        Severity::Warning => "! ",
        Severity::Critical => "!!",
    }
}

fn backlog_cell(r: &HealthRowView) -> String {
    match &r.report {
        Some(rep) if rep.backlog > 0 => {
            if rep.oldest_ms >= 1_000 {
                format!("{}（{}）", rep.backlog, duration(rep.oldest_ms))
            } else {
                rep.backlog.to_string()
            }
        }
        Some(_) => "0".into(),
        None => "-".into(),
    }
}

/// `3 秒`, `12 分钟`, `5 小时`.
pub fn duration(ms: u64) -> String {
    if ms < 120_000 {
        format!("{} 秒", ms / 1000)
    } else if ms < 7_200_000 {
        format!("{} 分钟", ms / 60_000)
    } else {
        format!("{} 小时", ms / 3_600_000)
    }
}

fn opt_ago(now_ms: u64, t: Option<u64>) -> String {
    t.map_or("-".into(), |t| ago(now_ms, t))
}

/// One line of the table before the tree prefix is known.
struct Item {
    key: (NodeId, bool),
    parent: Option<(NodeId, bool)>,
    label: String,
    cells: [String; 7],
    severity: Severity,
}

/// Cameras online of registered: `7/8` for a school, `1234/1300（95%）` for a unit above.
pub fn cameras_cell(cameras: Option<(u32, u32)>, tier: Tier) -> String {
    match cameras {
        None => "-".into(),
        Some((registered, online)) if tier == Tier::School || registered == 0 => format!("{online}/{registered}"),
        Some((registered, online)) => {
            format!("{online}/{registered}（{:.0}%）", f64::from(online) * 100.0 / f64::from(registered))
        }
    }
}

/// The sum of some rows' cameras (`None` if none of them has any).
fn sum_cameras<'a>(rows: impl Iterator<Item = &'a HealthRowView>) -> Option<(u32, u32)> {
    rows.filter_map(|r| r.cameras).reduce(|a, b| (a.0.saturating_add(b.0), a.1.saturating_add(b.1)))
}

/// Summary of a county's schools: `学校 4 所：在线 3，下线 1`.
fn fold_schools(schools: &[&HealthRowView]) -> String {
    let mut by: BTreeMap<NodeState, usize> = BTreeMap::new();
    for s in schools {
        *by.entry(s.state).or_default() += 1;
    }
    let parts: Vec<String> = by.iter().map(|(st, n)| format!("{} {n}", st.zh())).collect();
    parts.join("，")
}

/// The counts line: `共 13 个节点：在线 11，已转备援 1，下线 1`.
pub fn counts_line(view: &HealthView) -> String {
    let parts: Vec<String> = NodeState::ALL
        .iter()
        .filter_map(|s| view.counts.get(s).filter(|n| **n > 0).map(|n| format!("{} {n}", s.zh())))
        .collect();
    format!("共 {} 个节点：{}", view.total, parts.join("，"))
}

pub fn verdict_zh(sev: Severity) -> &'static str {
    match sev {
        Severity::Ok => "全部正常",
        Severity::Warning => "有需关注的节点（警告）",
        Severity::Critical => "有严重问题",
    }
}

/// The tree table. `schools`: one row per school instead of one per county.
pub fn render_tree(view: &HealthView, now_ms: u64, schools: bool) -> String {
    let mut items: Vec<Item> = Vec::new();
    let mut school_rows: BTreeMap<NodeId, Vec<&HealthRowView>> = BTreeMap::new();
    for r in &view.rows {
        if r.tier == Tier::School && !schools && r.node != view.under {
            if let Some(c) = r.node.parent() {
                school_rows.entry(c).or_default().push(r);
            }
            continue;
        }
        let why = {
            let mut w: Vec<String> = r.why.iter().map(|s| clean(s)).collect();
            w.extend(r.warnings.iter().map(|s| clean(s)));
            w.join("；")
        };
        let name = if r.name.is_empty() { String::new() } else { format!(" {}", clean(&r.name)) };
        items.push(Item {
            key: (r.node, false),
            parent: r.node.parent().filter(|_| r.node != view.under).map(|p| (p, false)),
            label: format!("{}{name}", r.node),
            cells: if r.context {
                Default::default()
            } else {
                [
                    state_cell(r),
                    opt_ago(now_ms, r.since_ms),
                    opt_ago(now_ms, r.reported_ms),
                    opt_ago(now_ms, r.heard_ms),
                    backlog_cell(r),
                    cameras_cell(r.cameras, r.tier),
                    why,
                ]
            },
            severity: if r.context { Severity::Ok } else { r.severity },
        });
    }
    // The folded schools go right after their county's row.
    for (county, rows) in &school_rows {
        let worst = rows.iter().map(|r| r.severity).max().unwrap_or(Severity::Ok);
        let item = Item {
            key: (*county, true),
            parent: Some((*county, false)),
            label: format!("学校 {} 所", rows.len()),
            cells: [
                fold_schools(rows),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                cameras_cell(sum_cameras(rows.iter().copied()), Tier::County),
                String::new(),
            ],
            severity: worst,
        };
        let at = items.iter().position(|i| i.key.0 == *county).map_or(items.len(), |p| p + 1);
        items.insert(at, item);
    }
    // Which items have a later sibling (one pass from the end).
    let mut later: HashSet<Option<(NodeId, bool)>> = HashSet::new();
    let mut has_later = vec![false; items.len()];
    for (i, it) in items.iter().enumerate().rev() {
        has_later[i] = later.contains(&it.parent);
        later.insert(it.parent);
    }
    let index: BTreeMap<(NodeId, bool), usize> = items.iter().enumerate().map(|(i, it)| (it.key, i)).collect();
    // The cameras column only once some school's devices report.
    let cameras = view.rows.iter().any(|r| r.cameras.is_some());
    let mut t = if cameras {
        crate::render::tree_table([
            "节点",
            "状态",
            "状态起于",
            "最近报告",
            "上级最近联系",
            "待上报",
            "摄像头在线",
            "说明",
        ])
    } else {
        crate::render::tree_table(["节点", "状态", "状态起于", "最近报告", "上级最近联系", "待上报", "说明"])
    };
    for (i, it) in items.iter().enumerate() {
        // The prefix: for each displayed ancestor, a bar if it has later siblings.
        let mut chain = Vec::new();
        let mut p = it.parent;
        while let Some(k) = p {
            let Some(&j) = index.get(&k) else { break };
            chain.push(j);
            p = items[j].parent;
        }
        let mut prefix = String::new();
        // chain[0] is the parent; the root-most ancestor (displayed without a connector) is last.
        for &j in chain.iter().rev().skip(1) {
            prefix.push_str(if has_later[j] { "│  " } else { "   " });
        }
        if !chain.is_empty() {
            prefix.push_str(if has_later[i] { "├─ " } else { "└─ " });
        }
        let mut row = vec![format!("{}{prefix}{}", mark(it.severity), it.label)];
        row.extend(it.cells.iter().enumerate().filter(|(c, _)| cameras || *c != 5).map(|(_, v)| v.clone()));
        t.add_row(row);
    }
    let mut out = String::new();
    out.push_str(&crate::render::finish_table(t));
    out
}

/// The whole text of `topology show`: a header, the tree table, and what is worth knowing below.
pub fn render_health(view: &HealthView, now_ms: u64, schools: bool, problems: bool) -> String {
    let head = view.rows.iter().find(|r| r.node == view.under);
    let name = head.map(|r| clean(&r.name)).unwrap_or_default();
    let mut out = format!(
        "{} {name}（{}）的下辖节点 — 由 {} 查看，{}\n{}；{}\n",
        view.under,
        tier_zh(view.under.tier()),
        view.node,
        protocol::calendar::ChinaTime(view.now_ms).minute(),
        counts_line(view),
        verdict_zh(view.severity),
    );
    if problems && view.rows.iter().all(|r| r.context) {
        out.push_str("没有需要关注的节点。\n");
        return out;
    }
    out.push_str(&render_tree(view, now_ms, schools));
    out.push_str("（!! 严重  ! 警告；时间为距今多久。）\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, state: NodeState, sev: Severity) -> HealthRowView {
        let node: NodeId = node.parse().unwrap();
        HealthRowView {
            node,
            name: format!("单位{node}"),
            tier: node.tier(),
            state,
            severity: sev,
            since_ms: None,
            reported_ms: None,
            heard_ms: None,
            via: None,
            why: None,
            warnings: vec![],
            context: false,
            report: None,
            link: None,
            cameras: None,
        }
    }

    fn view(rows: Vec<HealthRowView>) -> HealthView {
        let mut counts = BTreeMap::new();
        for r in &rows {
            *counts.entry(r.state).or_insert(0) += 1;
        }
        HealthView {
            node: "13".parse().unwrap(),
            under: "13".parse().unwrap(),
            now_ms: 1_764_432_000_000,
            counts,
            total: rows.len() as u64,
            severity: rows.iter().map(|r| r.severity).max().unwrap(),
            rows,
        }
    }

    #[test]
    fn the_tree_is_drawn_in_the_first_column_and_schools_fold_per_county() {
        let v = view(vec![
            row("13", NodeState::Live, Severity::Ok),
            row("1301", NodeState::Live, Severity::Ok),
            row("130102", NodeState::Down, Severity::Critical),
            row("130102-S0001", NodeState::FailedOver, Severity::Warning),
            row("130102-S0002", NodeState::FailedOver, Severity::Warning),
            row("130104", NodeState::Live, Severity::Ok),
            row("130104-S0001", NodeState::Live, Severity::Ok),
            row("1302", NodeState::Unseen, Severity::Warning),
        ]);
        let text = render_tree(&v, v.now_ms, false);
        let lines: Vec<&str> = text.lines().collect();
        let find = |s: &str| lines.iter().find(|l| l.contains(s)).unwrap_or_else(|| panic!("{s} not in\n{text}"));
        assert!(find("1301 单位1301").contains("├─ 1301"), "{text}");
        assert!(find("130102 单位130102").contains("│  ├─ 130102"), "{text}");
        assert!(find("130102 单位130102").trim_start().starts_with("!!"), "{text}");
        assert!(find("学校 2 所").contains("已转备援 2"), "{text}");
        assert!(find("130104 单位").contains("│  └─ 130104"), "{text}");
        assert!(find("1302 单位").contains("└─ 1302"), "{text}");
        assert!(!text.contains("130102-S0001"), "schools are folded:\n{text}");
        let all = render_tree(&v, v.now_ms, true);
        assert!(all.contains("130102-S0001") && all.contains("│  │  ├─ 130102-S0001"), "{all}");
    }

    #[test]
    fn cameras_online_show_per_unit_once_schools_report_them() {
        let mut rows = vec![
            row("13", NodeState::Live, Severity::Ok),
            row("1301", NodeState::Live, Severity::Ok),
            row("130102", NodeState::Live, Severity::Ok),
            row("130102-S0001", NodeState::Live, Severity::Ok),
            row("130102-S0002", NodeState::Live, Severity::Ok),
        ];
        let text = render_tree(&view(rows.clone()), 0, false);
        assert!(!text.contains("摄像头在线"), "no column before any school reports cameras:\n{text}");
        for (r, c) in rows.iter_mut().zip([(16, 13), (16, 13), (16, 13), (8, 7), (8, 6)]) {
            r.cameras = Some(c);
        }
        let text = render_tree(&view(rows.clone()), 0, false);
        let lines: Vec<&str> = text.lines().collect();
        let find = |s: &str| lines.iter().find(|l| l.contains(s)).unwrap_or_else(|| panic!("{s} not in\n{text}"));
        assert!(text.contains("摄像头在线"), "{text}");
        assert!(find("130102 单位").contains("13/16（81%）"), "{text}");
        assert!(find("学校 2 所").contains("13/16（81%）"), "the folded schools sum up:\n{text}");
        let all = render_tree(&view(rows), 0, true);
        assert!(all.lines().any(|l| l.contains("130102-S0002") && l.contains("6/8")), "{all}");
        assert_eq!(cameras_cell(None, Tier::School), "-");
    }

    #[test]
    fn expectations_turn_a_planned_outage_fine_and_a_surprise_critical() {
        let mut v = view(vec![
            row("13", NodeState::Live, Severity::Ok),
            row("1301", NodeState::Down, Severity::Critical),
            row("1302", NodeState::Live, Severity::Ok),
        ]);
        let expect: Vec<Expectation> = vec!["1301=down".parse().unwrap()];
        assert_eq!(apply_expectations(&mut v, &expect).0, Severity::Ok);
        let expect: Vec<Expectation> = vec!["1302=下线,stale".parse().unwrap()];
        let (sev, _) = apply_expectations(&mut v, &expect);
        assert_eq!(sev, Severity::Critical);
        assert!(v.rows[2].warnings[0].contains("预期下线或失联，实际在线"), "{:?}", v.rows[2].warnings);
        assert!("1302=gone".parse::<Expectation>().unwrap_err().contains("没有“gone”这个状态"));
        assert!("1302".parse::<Expectation>().is_err());
    }

    #[test]
    fn problems_keep_their_ancestors_as_context() {
        let mut v = view(vec![
            row("13", NodeState::Live, Severity::Ok),
            row("1301", NodeState::Live, Severity::Ok),
            row("130102", NodeState::Down, Severity::Critical),
            row("1302", NodeState::Live, Severity::Ok),
        ]);
        only_problems(&mut v);
        let nodes: Vec<String> =
            v.rows.iter().map(|r| format!("{}{}", r.node, if r.context { "*" } else { "" })).collect();
        assert_eq!(nodes, vec!["13*", "1301*", "130102"]);
    }
}
