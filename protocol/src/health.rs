//! The health plane, sans-IO: what a node says about itself, what a parent says about each child
//! link, the table a node merges them into, the deltas it forwards up, and the state derived per
//! node of the roster.
//!
//! Health is last-value state, not history: it never enters the event log. Every row has one
//! producer — a node's own report is produced by the node, the view of a link by the parent at
//! its upper end — and a version that producer raises with every change, so merging is "keep the
//! higher version", idempotent and order-free. A table remembers, per row, the local change number
//! at which it last changed; an uplink remembers up to which change number it sent, so what goes
//! up is a delta (and the whole table after a reconnect).
//!
//! The same rule as for events holds: a child may only send rows about its own subtree, and a
//! link's view only from the node at the link's upper end. Anything else is rejected and counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

/// Most rows in one health frame (a full table goes in several).
pub const HEALTH_ROWS_PER_FRAME: usize = 1_500;
/// Disconnects (with their reasons) kept per link.
pub const DISCONNECTS_KEPT: usize = 3;
/// Longest reason kept (bytes; longer ones are cut at a character boundary).
pub const REASON_BYTES_MAX: usize = 160;
/// A certificate with fewer days left makes its node a warning (and counts as expiring in the
/// metrics).
pub const CERT_WARN_DAYS: i32 = 30;
/// Longest build version string.
pub const VERSION_BYTES_MAX: usize = 32;

/// Where a link stands, as the node at one of its ends sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Never connected (since the roster listed it).
    Never,
    /// Dialing or handshaking (also: just restarted, waiting for the peer to come back).
    Connecting,
    Up,
    Down,
}

/// One time a link went down, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disconnect {
    pub at_ms: u64,
    pub reason: String,
}

/// Cuts a reason to [`REASON_BYTES_MAX`] at a character boundary.
pub fn short_reason(reason: &str) -> String {
    cut(reason, REASON_BYTES_MAX)
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s[..at].to_string()
}

/// A link's end as a Chinese operator reads it: the common reasons translated (the original
/// kept in brackets), anything else as it came.
pub fn reason_zh(reason: &str) -> String {
    let r = reason.trim();
    if let Some(rest) = r.strip_prefix("peer closed the link: ") {
        return format!("对端关闭了连接：{}", reason_zh(rest));
    }
    if let Some(rest) = r.strip_prefix("peer ")
        && let Some((who, ms)) = rest.split_once(" silent for ")
        && let Some(ms) = ms.strip_suffix(" ms").and_then(|m| m.parse::<u64>().ok())
    {
        return format!("{who} 已 {:.1} 秒无响应（心跳超时）", ms as f64 / 1000.0);
    }
    if r.contains("certificate revoked") {
        return format!("证书已被吊销：须由上级签发新证书（{r}）");
    }
    let known: [(&str, &str); 9] = [
        ("peer closed the connection", "对端断开了连接"),
        ("connection closed: ", "连接已关闭"),
        ("no answer from ", "拨号无应答"),
        ("handshake failed: ", "握手失败"),
        ("peer identity refused: ", "对端身份被拒绝"),
        ("node shutting down", "对端节点正在关闭"),
        ("link stopped", "链路已停止"),
        ("send failed: ", "发送失败"),
        ("bad frame: ", "收到损坏的数据帧"),
    ];
    for (en, zh) in known {
        if r.starts_with(en) {
            return if r.len() > en.len() { format!("{zh}（{r}）") } else { zh.to_string() };
        }
    }
    if r.contains("is back") {
        return format!("上级恢复，离开备援链路（{r}）");
    }
    r.to_string()
}

/// Adds a disconnect to a bounded history (newest last).
pub fn remember_disconnect(history: &mut Vec<Disconnect>, at_ms: u64, reason: &str) {
    history.push(Disconnect { at_ms, reason: short_reason(reason) });
    if history.len() > DISCONNECTS_KEPT {
        let extra = history.len() - DISCONNECTS_KEPT;
        history.drain(..extra);
    }
}

/// What a node reports about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfReport {
    /// The build's version (`0.1.0`).
    pub version: String,
    /// Wall ms the process started (uptime = reported − started).
    pub started_ms: u64,
    /// Wall ms (the node's clock) this report was made.
    pub reported_ms: u64,
    /// The link to the parent (`Up` for the root, which has none).
    pub uplink: Phase,
    /// The ancestor this node is linked to while its parent is unreachable.
    pub failover: Option<NodeId>,
    /// Events of its subtree waiting to go up, and how long the oldest has waited (ms): the lag.
    pub backlog: u64,
    pub oldest_ms: u64,
    /// Times the uplink came back after going down, and the last disconnects with reasons.
    pub reconnects: u32,
    pub disconnects: Vec<Disconnect>,
    /// Days the node's certificate has left (negative: expired; `None`: not known).
    pub cert_days_left: Option<i32>,
    /// Bytes its store takes on disk (`None`: not known).
    pub disk_bytes: Option<u64>,
    /// A fresh store recovering its own past events from an ancestor.
    pub restoring: bool,
    /// A school's cameras: `(registered, online)` — online while their last heartbeat said so
    /// and is younger than the settings' `camera_offline_after_s`. `None` until the school's
    /// devices feed it (a device registered or a heartbeat kept), and at other tiers.
    pub cameras: Option<(u32, u32)>,
}

/// What a parent says about the link to one child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub phase: Phase,
    /// Wall ms (the parent's clock) the phase began.
    pub since_ms: u64,
    /// Wall ms the parent last heard from the child (0: never). While up, the view is not resent
    /// for every keep-alive: the parent's own report time stands for it.
    pub heard_ms: u64,
    pub reconnects: u32,
    pub disconnects: Vec<Disconnect>,
}

/// One row's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    /// The node's own report (produced by the node).
    Report(SelfReport),
    /// The link from the node's parent to it (produced by the parent).
    Link(LinkView),
}

impl Part {
    fn kind(&self) -> u8 {
        match self {
            Part::Report(_) => KIND_REPORT,
            Part::Link(_) => KIND_LINK,
        }
    }
}

const KIND_REPORT: u8 = 0;
const KIND_LINK: u8 = 1;

/// One row of a table, as it travels: about `node`, version `version` of its producer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRow {
    pub node: NodeId,
    pub version: u64,
    pub part: Part,
}

impl HealthRow {
    /// Who may produce this row: the node for its report, the node's parent for its link.
    pub fn producer(&self) -> Option<NodeId> {
        match self.part {
            Part::Report(_) => Some(self.node),
            Part::Link(_) => self.node.parent(),
        }
    }
}

/// A frame's worth of rows: the sender's table changes `(after, upto]` (its change numbers), so
/// the receiver can tell a gap (a lost frame) from a repeat and ack how far it has them all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthDelta {
    pub after: u64,
    pub upto: u64,
    pub rows: Vec<HealthRow>,
}

/// Why a row from a peer was refused.
pub fn check_row(from: NodeId, row: &HealthRow) -> Result<(), String> {
    let Some(producer) = row.producer() else {
        return Err(format!("a link view of {}, which has no parent", row.node));
    };
    if !producer.in_subtree_of(from) {
        return Err(format!("{from} may not send {}'s health: {producer} is not in its subtree", row.node));
    }
    let sizes_ok = match &row.part {
        Part::Report(r) => {
            r.version.len() <= VERSION_BYTES_MAX
                && r.disconnects.len() <= DISCONNECTS_KEPT
                && r.disconnects.iter().all(|d| d.reason.len() <= REASON_BYTES_MAX)
                && r.failover.is_none_or(|f| f.is_ancestor_or_self_of(row.node) && f != row.node)
        }
        Part::Link(l) => {
            l.disconnects.len() <= DISCONNECTS_KEPT && l.disconnects.iter().all(|d| d.reason.len() <= REASON_BYTES_MAX)
        }
    };
    if !sizes_ok {
        return Err(format!("health row of {} out of bounds", row.node));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub version: u64,
    pub part: Part,
    /// This table's change number when the row last changed.
    pub change: u64,
}

/// The rows a node holds about its subtree (itself included).
#[derive(Clone, Debug, Default)]
pub struct HealthTable {
    rows: BTreeMap<(NodeId, u8), Held>,
    /// Change number → row, for deltas.
    changes: BTreeMap<u64, (NodeId, u8)>,
    next_change: u64,
}

/// What [`HealthTable::merge`] did with a frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub taken: usize,
    pub stale: usize,
    pub rejected: Vec<String>,
}

impl HealthTable {
    pub fn new() -> HealthTable {
        HealthTable { next_change: 1, ..HealthTable::default() }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The latest change number handed out (an uplink that sent up to it is up to date).
    pub fn head(&self) -> u64 {
        self.next_change.saturating_sub(1)
    }

    /// Takes a row if it is newer than the one held; returns whether it was taken.
    pub fn put(&mut self, row: HealthRow) -> bool {
        let key = (row.node, row.part.kind());
        if let Some(h) = self.rows.get(&key) {
            if h.version >= row.version {
                return false;
            }
            self.changes.remove(&h.change);
        }
        let change = self.next_change.max(1);
        self.next_change = change + 1;
        self.changes.insert(change, key);
        self.rows.insert(key, Held { version: row.version, part: row.part, change });
        true
    }

    /// Rows from the peer `from`: each checked ([`check_row`]) and taken when newer.
    pub fn merge(&mut self, from: NodeId, delta: HealthDelta) -> Merged {
        let mut m = Merged::default();
        for row in delta.rows {
            if let Err(e) = check_row(from, &row) {
                m.rejected.push(e);
                continue;
            }
            if self.put(row) {
                m.taken += 1;
            } else {
                m.stale += 1;
            }
        }
        m
    }

    pub fn report(&self, node: NodeId) -> Option<(&SelfReport, u64)> {
        match self.rows.get(&(node, KIND_REPORT)) {
            Some(Held { part: Part::Report(r), version, .. }) => Some((r, *version)),
            _ => None,
        }
    }

    pub fn link(&self, node: NodeId) -> Option<(&LinkView, u64)> {
        match self.rows.get(&(node, KIND_LINK)) {
            Some(Held { part: Part::Link(l), version, .. }) => Some((l, *version)),
            _ => None,
        }
    }

    /// The version a producer should give its next row about `node`: above the held one and at
    /// least `now_ms` (so a restarted producer, starting from the wall clock, is above its past).
    pub fn next_version(&self, node: NodeId, report: bool, now_ms: u64) -> u64 {
        let kind = if report { KIND_REPORT } else { KIND_LINK };
        let held = self.rows.get(&(node, kind)).map_or(0, |h| h.version);
        now_ms.max(held + 1)
    }

    /// Rows that changed after change number `after`, for a peer `to` above this node: at most
    /// `max` of them, and the change number to continue from.
    pub fn delta_since(&self, after: u64, max: usize) -> (Vec<HealthRow>, u64) {
        let mut rows = Vec::new();
        let mut upto = after;
        for (&change, key) in self.changes.range(after + 1..) {
            if rows.len() >= max {
                break;
            }
            if let Some(h) = self.rows.get(key) {
                rows.push(HealthRow { node: key.0, version: h.version, part: h.part.clone() });
            }
            upto = change;
        }
        (rows, upto)
    }

    /// All rows, for persisting and for loading back.
    pub fn rows(&self) -> impl Iterator<Item = HealthRow> + '_ {
        self.rows.iter().map(|(k, h)| HealthRow { node: k.0, version: h.version, part: h.part.clone() })
    }

    /// Every node's own report, in tree order.
    pub fn reports(&self) -> impl Iterator<Item = (NodeId, &SelfReport)> + '_ {
        self.rows.iter().filter_map(|((n, _), h)| match &h.part {
            Part::Report(r) => Some((*n, r)),
            Part::Link(_) => None,
        })
    }

    /// Nodes with any row, in tree order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        let mut last = None;
        self.rows.keys().filter_map(move |(n, _)| {
            if last == Some(*n) {
                None
            } else {
                last = Some(*n);
                Some(*n)
            }
        })
    }
}

/// The states an operator reads, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    Live,
    /// Linked to an ancestor above its parent, which it cannot reach.
    FailedOver,
    /// A fresh store getting its past back from an ancestor.
    Restoring,
    /// No fresh word from it: its own report is too old, or the node above it is gone.
    Stale,
    /// Never connected.
    Unseen,
    /// Its parent lost it.
    Down,
}

impl NodeState {
    pub const ALL: [NodeState; 6] = [
        NodeState::Live,
        NodeState::FailedOver,
        NodeState::Restoring,
        NodeState::Stale,
        NodeState::Unseen,
        NodeState::Down,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Live => "live",
            NodeState::FailedOver => "failed-over",
            NodeState::Restoring => "restoring",
            NodeState::Stale => "stale",
            NodeState::Unseen => "unseen",
            NodeState::Down => "down",
        }
    }

    /// The name a Chinese operator reads.
    pub fn zh(self) -> &'static str {
        match self {
            NodeState::Live => "在线",
            NodeState::FailedOver => "已转备援",
            NodeState::Restoring => "恢复中",
            NodeState::Stale => "失联",
            NodeState::Unseen => "从未连接",
            NodeState::Down => "下线",
        }
    }

    pub fn parse(s: &str) -> Option<NodeState> {
        NodeState::ALL.into_iter().find(|st| st.as_str() == s || st.zh() == s)
    }
}

/// How bad a row is, for check-style exit codes (0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

/// Timing of the health plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthTiming {
    /// A node re-reports itself this often even when nothing changed.
    pub refresh_ms: u64,
    /// A report older than this (by the viewer's clock) is stale.
    pub stale_after_ms: u64,
    /// Rows wait at most this long before going up (changes within it travel together).
    pub flush_ms: u64,
    /// A certificate with fewer days left is a warning.
    pub cert_warn_days: i32,
    /// An uplink backlog whose oldest event waited longer is a warning (ms).
    pub lag_warn_ms: u64,
}

impl Default for HealthTiming {
    fn default() -> HealthTiming {
        HealthTiming {
            refresh_ms: 30_000,
            stale_after_ms: 100_000,
            flush_ms: 500,
            cert_warn_days: CERT_WARN_DAYS,
            lag_warn_ms: 600_000,
        }
    }
}

/// One node of the roster as the viewer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derived {
    pub node: NodeId,
    pub state: NodeState,
    /// Since when (wall ms) it is in that state, when known.
    pub since_ms: Option<u64>,
    /// When it last reported itself (its clock), and when its parent last heard from it.
    pub reported_ms: Option<u64>,
    pub heard_ms: Option<u64>,
    /// The ancestor it failed over to.
    pub via: Option<NodeId>,
    /// Why, in a few words (Chinese).
    pub why: Option<String>,
    pub severity: Severity,
    /// Notes that make a live node a warning (an expiring certificate, a long lag).
    pub warnings: Vec<String>,
}

/// Derives every roster node's state at `now_ms` as `me` sees it: `roster` in tree order
/// (ascending `NodeId`, which is depth-first), all in `me`'s subtree.
///
/// In tree order a node's parent comes before it, so one pass walks the roster and the table's
/// rows side by side (both ascending) instead of looking each node up: a province's 17,362 nodes
/// in a few milliseconds. A roster out of order is looked up row by row instead.
pub fn derive_all(
    me: NodeId,
    roster: &[NodeId],
    table: &HealthTable,
    now_ms: u64,
    timing: &HealthTiming,
) -> Vec<Derived> {
    // The nodes that can be parents (not schools): their state and report, for their children.
    let mut seen: BTreeMap<NodeId, (NodeState, Option<&SelfReport>)> = BTreeMap::new();
    let mut out = Vec::with_capacity(roster.len());
    let in_order = roster.is_sorted();
    let mut rows = table.rows.iter().peekable();
    for &node in roster {
        let (mut report, mut link) = (None, None);
        if in_order {
            while rows.next_if(|((n, _), _)| *n < node).is_some() {}
            while let Some(((_, _), held)) = rows.next_if(|((n, _), _)| *n == node) {
                match &held.part {
                    Part::Report(r) => report = Some(r),
                    Part::Link(l) => link = Some(l),
                }
            }
        } else {
            report = table.report(node).map(|(r, _)| r);
            link = table.link(node).map(|(l, _)| l);
        }
        let parent = node.parent();
        let (parent_state, parent_report) = match parent {
            Some(p) if p == me => (Some(NodeState::Live), table.report(p).map(|(r, _)| r)),
            Some(p) => match seen.get(&p) {
                Some((state, r)) => (Some(*state), *r),
                None => (None, table.report(p).map(|(r, _)| r)),
            },
            None => (None, None),
        };
        let d = derive_one(me, node, report, link, parent_state, parent_report, now_ms, timing);
        if node.tier() != Tier::School {
            seen.insert(node, (d.state, report));
        }
        out.push(d);
    }
    out
}

// The node, what is held about it and about its parent, and the viewer's clock and settings.
#[allow(clippy::too_many_arguments)]
fn derive_one(
    me: NodeId,
    node: NodeId,
    report: Option<&SelfReport>,
    link: Option<&LinkView>,
    parent_state: Option<NodeState>,
    parent_report: Option<&SelfReport>,
    now_ms: u64,
    timing: &HealthTiming,
) -> Derived {
    let parent = node.parent();
    // The parent's word counts when the parent is the viewer or is itself live.
    let parent_trusted = matches!(parent_state, Some(NodeState::Live | NodeState::FailedOver | NodeState::Restoring));
    let heard_ms = link.map(|l| match l.phase {
        // While up, the parent's view is not resent: its own report time stands for "heard".
        Phase::Up => parent_report.map_or(l.heard_ms, |p| p.reported_ms.max(l.heard_ms)),
        _ => l.heard_ms,
    });
    let heard_ms = if node == me { None } else { heard_ms.filter(|h| *h > 0) };
    let fresh = |r: &SelfReport| now_ms.saturating_sub(r.reported_ms) <= timing.stale_after_ms;
    let mut d = Derived {
        node,
        state: NodeState::Live,
        since_ms: None,
        reported_ms: report.map(|r| r.reported_ms),
        heard_ms,
        via: None,
        why: None,
        severity: Severity::Ok,
        warnings: Vec::new(),
    };
    let last_reason = |l: &LinkView| l.disconnects.last().map(|x| x.reason.clone());
    if node == me {
        // The viewer itself: live by definition, its report says the rest.
    } else if report.is_none() && link.is_none_or(|l| l.phase == Phase::Never) {
        d.state = NodeState::Unseen;
        d.why = Some("从未连接".into());
    } else if let Some(r) = report.filter(|r| r.failover.is_some() && fresh(r)) {
        d.state = NodeState::FailedOver;
        d.via = r.failover;
        let since = link.filter(|l| l.phase != Phase::Up).map(|l| l.since_ms);
        d.since_ms = since;
        d.why = Some(match (link.and_then(last_reason), parent) {
            (Some(reason), Some(p)) => {
                format!("上级 {p} 不可达（{}），已接入 {}", reason_zh(&reason), r.failover.unwrap_or(p))
            }
            (None, Some(p)) => format!("上级 {p} 不可达，已接入 {}", r.failover.unwrap_or(p)),
            _ => "已转备援".into(),
        });
    } else if parent_trusted && link.is_some_and(|l| matches!(l.phase, Phase::Down | Phase::Connecting | Phase::Never))
    {
        let l = link.unwrap_or_else(|| unreachable!());
        d.state = if l.phase == Phase::Never { NodeState::Unseen } else { NodeState::Down };
        d.since_ms = Some(l.since_ms);
        d.why = Some(match last_reason(l) {
            Some(reason) => {
                format!("上级 {} 失去连接：{}", parent.map(|p| p.to_string()).unwrap_or_default(), reason_zh(&reason))
            }
            None => format!("上级 {} 失去连接", parent.map(|p| p.to_string()).unwrap_or_default()),
        });
    } else if !parent_trusted && parent.is_some_and(|p| p != me) {
        // Nothing fresh can come through the node above: what is held may be out of date.
        d.state = NodeState::Stale;
        d.since_ms = report.map(|r| r.reported_ms);
        d.why = Some(format!("上级 {} 不在线，无法确认", parent.map(|p| p.to_string()).unwrap_or_default()));
    } else if report.is_some_and(|r| !fresh(r)) {
        d.state = NodeState::Stale;
        d.since_ms = report.map(|r| r.reported_ms);
        d.why = Some(format!("{} 秒未收到它的状态报告", now_ms.saturating_sub(d.since_ms.unwrap_or(0)) / 1000));
    } else if report.is_some_and(|r| r.restoring) {
        d.state = NodeState::Restoring;
        d.why = Some("数据目录为新，正从上级恢复历史事件".into());
    } else if let Some(l) = link.filter(|l| l.phase == Phase::Up) {
        // Live: since its parent has had it up.
        d.since_ms = Some(l.since_ms);
    }
    if let Some(r) = report {
        if let Some(days) = r.cert_days_left {
            if days < 0 {
                d.warnings.push(format!("证书已过期 {} 天", -days));
            } else if days < timing.cert_warn_days {
                d.warnings.push(format!("证书 {days} 天后到期"));
            }
        }
        if r.backlog > 0 && r.oldest_ms >= timing.lag_warn_ms {
            d.warnings.push(format!("待上报 {} 条，最早的已等 {} 分钟", r.backlog, r.oldest_ms / 60_000));
        }
    }
    d.severity = match d.state {
        NodeState::Down => Severity::Critical,
        NodeState::Live if d.warnings.is_empty() => Severity::Ok,
        _ => Severity::Warning,
    };
    if report.and_then(|r| r.cert_days_left).is_some_and(|days| days < 0) {
        d.severity = Severity::Critical;
    }
    d
}

/// Counts per tier and state, for metrics and summaries.
pub fn count_by_tier_state(derived: &[Derived]) -> BTreeMap<(Tier, NodeState), u64> {
    let mut m = BTreeMap::new();
    for d in derived {
        *m.entry((d.node.tier(), d.state)).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn report(at: u64) -> SelfReport {
        SelfReport {
            version: "0.1.0".into(),
            started_ms: 0,
            reported_ms: at,
            uplink: Phase::Up,
            failover: None,
            backlog: 0,
            oldest_ms: 0,
            reconnects: 0,
            disconnects: vec![],
            cert_days_left: Some(300),
            disk_bytes: None,
            restoring: false,
            cameras: None,
        }
    }

    fn link(phase: Phase, since: u64) -> LinkView {
        LinkView { phase, since_ms: since, heard_ms: since, reconnects: 0, disconnects: vec![] }
    }

    fn row(node: &str, version: u64, part: Part) -> HealthRow {
        HealthRow { node: id(node), version, part }
    }

    #[test]
    fn merging_keeps_the_newest_version_and_deltas_carry_only_changes() {
        let mut t = HealthTable::new();
        assert!(t.put(row("130102", 5, Part::Report(report(5)))));
        assert!(!t.put(row("130102", 5, Part::Report(report(5)))), "same version twice is ignored");
        assert!(!t.put(row("130102", 4, Part::Report(report(4)))), "an older version is ignored");
        let head = t.head();
        assert!(t.put(row("130102-S0001", 7, Part::Link(link(Phase::Up, 7)))));
        let (rows, upto) = t.delta_since(head, 100);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].node, id("130102-S0001"));
        assert_eq!(upto, t.head());
        let (all, _) = t.delta_since(0, 100);
        assert_eq!(all.len(), 2);
        let (one, next) = t.delta_since(0, 1);
        assert_eq!(one.len(), 1);
        assert_eq!(t.delta_since(next, 100).0.len(), 1, "a cut delta continues where it stopped");
    }

    #[test]
    fn a_child_may_send_only_rows_its_subtree_produced() {
        let county = id("130102");
        let mut t = HealthTable::new();
        let m = t.merge(
            county,
            HealthDelta {
                after: 0,
                upto: 4,
                rows: vec![
                    row("130102", 1, Part::Report(report(1))),
                    row("130102-S0001", 1, Part::Link(link(Phase::Up, 1))),
                    // How its own parent sees it is the city's word, not the county's.
                    row("130102", 1, Part::Link(link(Phase::Up, 1))),
                    row("130103", 1, Part::Report(report(1))),
                ],
            },
        );
        assert_eq!(m.taken, 2);
        assert_eq!(m.rejected.len(), 2, "{:?}", m.rejected);
    }

    #[test]
    fn states_come_from_the_roster_and_two_clocks() {
        let timing = HealthTiming::default();
        let prov = id("13");
        let city = id("1301");
        let county = id("130102");
        let s1 = id("130102-S0001");
        let s2 = id("130102-S0002");
        let s3 = id("130102-S0003");
        let roster = vec![prov, city, county, s1, s2, s3];
        let now = 1_000_000;
        let mut t = HealthTable::new();
        t.put(HealthRow { node: city, version: 1, part: Part::Link(link(Phase::Up, 10)) });
        t.put(HealthRow { node: city, version: now, part: Part::Report(report(now - 1_000)) });
        t.put(HealthRow { node: county, version: 2, part: Part::Link(link(Phase::Down, now - 5_000)) });
        t.put(HealthRow { node: county, version: 2, part: Part::Report(report(now - 6_000)) });
        let mut failed = report(now - 500);
        failed.failover = Some(city);
        failed.uplink = Phase::Down;
        t.put(HealthRow { node: s1, version: 3, part: Part::Report(failed) });
        t.put(HealthRow { node: s2, version: 3, part: Part::Report(report(now - 7_000)) });
        let d = derive_all(prov, &roster, &t, now, &timing);
        let states: Vec<NodeState> = d.iter().map(|d| d.state).collect();
        assert_eq!(
            states,
            vec![
                NodeState::Live,
                NodeState::Live,
                NodeState::Down,
                NodeState::FailedOver,
                NodeState::Stale,
                NodeState::Unseen
            ]
        );
        assert_eq!(d[2].since_ms, Some(now - 5_000));
        assert_eq!(d[2].severity, Severity::Critical);
        assert_eq!(d[3].via, Some(city));
        // Later, with no fresh report from the city, it is stale, and its county with it.
        let later = now + timing.stale_after_ms + 10_000;
        let d = derive_all(prov, &roster, &t, later, &timing);
        assert_eq!(d[1].state, NodeState::Stale);
        assert_eq!(d[2].state, NodeState::Stale, "{:?}", d[2]);
        // A roster out of ascending order, parents still first (looked up node by node), derives
        // the same.
        let d = derive_all(prov, &[prov, city, county, s3, s2, s1], &t, now, &timing);
        let states: Vec<NodeState> = d.iter().map(|d| d.state).collect();
        assert_eq!(
            states,
            [
                NodeState::Live,
                NodeState::Live,
                NodeState::Down,
                NodeState::Unseen,
                NodeState::Stale,
                NodeState::FailedOver
            ]
        );
    }

    #[test]
    fn an_expiring_certificate_is_a_warning_and_an_expired_one_critical() {
        let timing = HealthTiming::default();
        let prov = id("13");
        let city = id("1301");
        let mut t = HealthTable::new();
        t.put(HealthRow { node: city, version: 1, part: Part::Link(link(Phase::Up, 1)) });
        let mut r = report(100);
        r.cert_days_left = Some(12);
        t.put(HealthRow { node: city, version: 1, part: Part::Report(r.clone()) });
        let d = derive_all(prov, &[prov, city], &t, 200, &timing);
        assert_eq!((d[1].state, d[1].severity), (NodeState::Live, Severity::Warning));
        assert!(d[1].warnings[0].contains("12 天"), "{:?}", d[1].warnings);
        r.cert_days_left = Some(-1);
        t.put(HealthRow { node: city, version: 2, part: Part::Report(r) });
        let d = derive_all(prov, &[prov, city], &t, 200, &timing);
        assert_eq!(d[1].severity, Severity::Critical);
    }

    #[test]
    fn common_reasons_read_in_chinese() {
        assert_eq!(reason_zh("peer 130102 silent for 3001 ms"), "130102 已 3.0 秒无响应（心跳超时）");
        assert_eq!(reason_zh("peer closed the link: node shutting down"), "对端关闭了连接：对端节点正在关闭");
        assert!(reason_zh("no answer from 1301 at 127.0.0.1:9 within 3000 ms").starts_with("拨号无应答（"));
        assert_eq!(reason_zh("磁盘已满"), "磁盘已满");
    }

    #[test]
    fn histories_are_bounded() {
        let mut h = Vec::new();
        for i in 0..10 {
            remember_disconnect(&mut h, i, &"很长的原因".repeat(100));
        }
        assert_eq!(h.len(), DISCONNECTS_KEPT);
        assert_eq!(h[0].at_ms, 7);
        assert!(h.iter().all(|d| d.reason.len() <= REASON_BYTES_MAX));
    }
}
