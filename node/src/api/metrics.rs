//! `/metrics`, `/healthz` and `/readyz`: what a monitoring system (Prometheus, a load balancer, a
//! supervisor) reads from a node, without a token or a session — on the admin API's listener and
//! on the console's. They carry no personal data: counts, sums and this node's own identity only.
//!
//! - `/metrics`: the OpenMetrics text (Prometheus scrapes it), from a registry made afresh for each
//!   scrape out of the node's status ([`NodeStatus`]) and its health view of the subtree
//!   ([`view_for`]). Every metric is named `mingchu_*`, and every label takes a few fixed values
//!   (a role, a link state, a tier, a node state): never a node or peer id, so a province's scrape
//!   has as many series as a school's. The only per-process labels are those of
//!   `mingchu_node_info` and `mingchu_build_info` (one series each).
//! - `/healthz`: 200 `ok` when the node actor answers a status call within [`PROBE_TIMEOUT_MS`],
//!   else 503 with the reason (the process is wedged: restart it).
//! - `/readyz`: 200 `ready` when, besides, the store is not restoring its own past from an
//!   ancestor (local writes would wait), else 503 with the reason in Chinese and English.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use protocol::health::{NodeState, Severity};
use topology::Tier;

use crate::api::AdminState;
use crate::api::health::{HealthView, view_for};
use crate::runtime::link::{LinkState, LinkStatus};
use crate::runtime::root::{NodeMsg, NodeStatus};

/// How long the probes wait for the node actor.
pub const PROBE_TIMEOUT_MS: u64 = 2_000;
/// How long a scrape waits for the node actor (Prometheus' own scrape timeout is 10 s).
pub const SCRAPE_TIMEOUT_MS: u64 = 5_000;
/// The content type of `/metrics` (Prometheus negotiates OpenMetrics).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The link roles, as the node names them ([`LinkStatus::role`]).
pub const ROLES: [&str; 4] = ["parent", "failover", "child", "descendant"];
/// The link states, as `mingchu_links` labels them.
pub const LINK_STATES: [LinkState; 4] = [LinkState::Up, LinkState::Down, LinkState::Connecting, LinkState::Never];

/// The routes both listeners serve unauthenticated (merged outside their token and session layers).
pub fn routes() -> Router<AdminState> {
    Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

fn text(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body)
        .into_response()
}

async fn status(s: &AdminState, timeout_ms: u64) -> Result<NodeStatus, String> {
    let mut st = ractor::call_t!(s.node, NodeMsg::Status, timeout_ms).map_err(|e| {
        format!("节点未在 {timeout_ms} ms 内应答 / the node did not answer within {timeout_ms} ms: {e}")
    })?;
    st.denied_requests = s.denied.load(Ordering::Relaxed);
    Ok(st)
}

async fn healthz(State(s): State<AdminState>) -> Response {
    match status(&s, PROBE_TIMEOUT_MS).await {
        Ok(_) => text(StatusCode::OK, "ok\n".into()),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

/// Why the node is not ready, if it is not.
pub fn not_ready(st: &NodeStatus) -> Option<String> {
    st.store
        .restoring
        .then(|| "恢复中：数据目录为新，正从上级恢复本节点的历史数据 / restoring: a fresh store is recovering this node's past events from an ancestor".to_string())
}

async fn readyz(State(s): State<AdminState>) -> Response {
    match status(&s, PROBE_TIMEOUT_MS).await {
        Ok(st) => match not_ready(&st) {
            None => text(StatusCode::OK, "ready\n".into()),
            Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let st = match status(&s, SCRAPE_TIMEOUT_MS).await {
        Ok(st) => st,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    let view = match view_for(&s, None, false).await {
        Ok(v) => v,
        Err((code, e)) => return text(code, format!("{}\n", e.0.error)),
    };
    let uptime = s.started.elapsed().as_secs_f64();
    match render(&st, &view, uptime) {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, OPENMETRICS), (header::CACHE_CONTROL, "no-store")], body)
            .into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the metrics: {e}\n")),
    }
}

type Labels = Vec<(&'static str, String)>;

/// A registry filled for one scrape: each metric registered once with its current value(s).
struct Scrape {
    reg: Registry,
}

impl Scrape {
    fn gauge(&mut self, name: &str, help: &str, v: i64) {
        self.gauges(name, help, vec![(Vec::new(), v)]);
    }

    fn gauge_f64(&mut self, name: &str, help: &str, v: f64) {
        let g: Gauge<f64, AtomicU64> = Gauge::default();
        g.set(v);
        self.reg.register(name, help, g);
    }

    fn gauges(&mut self, name: &str, help: &str, series: Vec<(Labels, i64)>) {
        let f: Family<Labels, Gauge> = Family::default();
        for (labels, v) in series {
            f.get_or_create(&labels).set(v);
        }
        self.reg.register(name, help, f);
    }

    /// A counter: `name` without `_total` (OpenMetrics adds it).
    fn counter(&mut self, name: &str, help: &str, v: u64) {
        let c: Counter = Counter::default();
        c.inc_by(v);
        self.reg.register(name, help, c);
    }

    fn counters(&mut self, name: &str, help: &str, series: Vec<(Labels, u64)>) {
        let f: Family<Labels, Counter> = Family::default();
        for (labels, v) in series {
            f.get_or_create(&labels).inc_by(v);
        }
        self.reg.register(name, help, f);
    }
}

fn link_state(s: LinkState) -> &'static str {
    match s {
        LinkState::Up => "up",
        LinkState::Down => "down",
        LinkState::Connecting => "connecting",
        LinkState::Never => "never",
    }
}

/// Every link of the node with its role (one of [`ROLES`]).
fn links(st: &NodeStatus) -> Vec<(&'static str, &LinkStatus)> {
    let mut all = Vec::new();
    all.extend(st.parent.iter().map(|l| ("parent", l)));
    all.extend(st.failover.iter().map(|l| ("failover", l)));
    for l in &st.children {
        let role = if l.peer.parent() == Some(st.node) { "child" } else { "descendant" };
        all.push((role, l));
    }
    all
}

/// Per role, the sum of `f` over its links (every role listed, zeros included).
fn by_role(all: &[(&'static str, &LinkStatus)], f: impl Fn(&LinkStatus) -> u64) -> Vec<(Labels, u64)> {
    ROLES
        .iter()
        .map(|role| {
            let sum = all.iter().filter(|(r, _)| r == role).map(|(_, l)| f(l)).sum();
            (vec![("role", role.to_string())], sum)
        })
        .collect()
}

/// The link events go up on: the parent's or, failed over, the ancestor's that is up; else the
/// parent's (its backlog is then what the parent had not confirmed).
fn uplink(st: &NodeStatus) -> Option<&LinkStatus> {
    [st.parent.as_ref(), st.failover.as_ref()]
        .into_iter()
        .flatten()
        .find(|l| l.state == LinkState::Up)
        .or(st.parent.as_ref())
}

/// The OpenMetrics text of one scrape.
pub fn render(st: &NodeStatus, view: &HealthView, uptime_s: f64) -> Result<String, std::fmt::Error> {
    let mut m = Scrape { reg: Registry::with_prefix("mingchu") };
    let me = st.node;

    // The process.
    m.gauges(
        "build_info",
        "The build of this node's program (always 1).",
        vec![(vec![("version", env!("CARGO_PKG_VERSION").to_string())], 1)],
    );
    m.gauges(
        "node_info",
        "Which node this process is, and its tier (always 1).",
        vec![(vec![("node", me.to_string()), ("tier", me.tier().as_str().to_string())], 1)],
    );
    m.gauge_f64("uptime_seconds", "Seconds since this node's process started.", uptime_s);

    // Links.
    let all = links(st);
    let mut counts: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for (role, l) in &all {
        *counts.entry((role, link_state(l.state))).or_default() += 1;
    }
    let series = ROLES
        .iter()
        .flat_map(|role| LINK_STATES.iter().map(move |s| (*role, link_state(*s))))
        .map(|(role, state)| {
            let n = counts.get(&(role, state)).copied().unwrap_or(0);
            (vec![("role", role.to_string()), ("state", state.to_string())], n)
        })
        .collect();
    m.gauges(
        "links",
        "This node's links by role (parent, failover, child, descendant) and state (up, down, connecting, never).",
        series,
    );
    let up = uplink(st);
    let uplink_up = match (&st.parent, up) {
        (None, _) => 1,
        (_, Some(l)) if l.state == LinkState::Up => 1,
        _ => 0,
    };
    m.gauge(
        "uplink_up",
        "1 when events can go up (the parent's or a failover link is up; the root: always).",
        uplink_up,
    );
    m.gauge("uplink_backlog_events", "Events waiting to go up from this node.", up.map_or(0, |l| l.backlog_out) as i64);
    m.gauge_f64(
        "uplink_oldest_unsent_seconds",
        "How long the oldest event waiting to go up has waited.",
        up.map_or(0, |l| l.oldest_unsent_age_ms) as f64 / 1e3,
    );
    m.counters(
        "link_reconnects",
        "Times links came back after being up, by role.",
        by_role(&all, |l| l.reconnects.into()),
    );
    m.counters("link_retransmits", "Events sent again on links, by role.", by_role(&all, |l| l.retransmits));
    m.counters("link_events_sent", "Events sent on links, by role.", by_role(&all, |l| l.events_sent));
    m.counters("link_events_received", "Events received on links, by role.", by_role(&all, |l| l.events_received));
    m.counters("link_rejected", "Events peers sent that were refused, by role.", by_role(&all, |l| l.rejected));
    m.counters(
        "link_protocol_errors",
        "Connections closed because the peer broke the protocol, by role.",
        by_role(&all, |l| l.protocol_errors),
    );
    m.counter(
        "health_bytes_received",
        "Bytes of health frames received from peers.",
        all.iter().map(|(_, l)| l.health_bytes_in).sum(),
    );
    m.counter(
        "health_bytes_sent",
        "Bytes of health frames sent to peers.",
        all.iter().map(|(_, l)| l.health_bytes_out).sum(),
    );
    m.counter("connections_refused", "Connections refused because the peer may not link here.", st.refused);
    let t = &st.turned_away;
    m.counters(
        "handshakes_turned_away",
        "Incoming attempts turned away before anyone was authenticated, by what was done.",
        vec![
            (vec![("why", "retry".to_string())], t.retried),
            (vec![("why", "busy".to_string())], t.busy),
            (vec![("why", "per-source".to_string())], t.per_source),
            (vec![("why", "timed-out".to_string())], t.timed_out),
            (vec![("why", "failed".to_string())], t.failed),
            (vec![("why", "revoked".to_string())], t.revoked),
        ],
    );
    m.counter(
        "link_replacements_refused",
        "Second connections of a linked peer that ended before their hello (the live link was kept).",
        st.replacements_refused,
    );
    m.counter(
        "uplink_hedges",
        "Times the parent fell silent with a batch unacked and the next ancestor was dialed beside it.",
        st.hedges,
    );
    m.counter(
        "denied_requests",
        "Requests of people or the operator refused for want of permission or scope (403).",
        st.denied_requests,
    );

    // The store.
    let own = view.rows.iter().find(|r| r.node == me).and_then(|r| r.report.as_ref());
    let store = &st.store;
    m.gauge("store_events_held", "Events this node's store holds.", store.events_held as i64);
    m.counter("store_events_applied", "Events from peers applied to the store.", store.events_applied);
    m.counter("store_duplicates_ignored", "Events received again and ignored.", store.duplicates_ignored);
    m.counter(
        "store_seal_checks",
        "Ranges received from below checked against their origin's signed hash chain.",
        store.seal_checks,
    );
    m.counter(
        "store_seals_refused",
        "Batches from below refused because their signed history did not hold (forged, altered, left out, or not signed by their origin); nothing of them kept.",
        store.seals_refused,
    );
    m.counter(
        "store_events_dropped",
        "Events a school's retention dropped since the node started (its county and above keep them).",
        store.events_dropped,
    );
    m.gauge(
        "store_own_floor",
        "A school's own seq at or below which retention dropped old events (0: it holds all).",
        store.own_floor as i64,
    );
    m.gauge("store_origins", "Nodes whose events the store holds.", store.origins as i64);
    m.gauge("store_own_seq", "The sequence number of this node's latest own event.", store.own_seq as i64);
    m.gauge(
        "store_restoring",
        "1 while a fresh store recovers this node's past from an ancestor.",
        store.restoring.into(),
    );
    m.counter("store_flushes", "Times the store made its writes durable.", store.flushes);
    if let Some(bytes) = own.and_then(|r| r.disk_bytes) {
        m.gauge("store_disk_bytes", "Bytes the store takes on disk.", bytes as i64);
    }
    if let Some(days) = own.and_then(|r| r.cert_days_left) {
        m.gauge("cert_days_left", "Days this node's certificate has left (negative: expired).", days.into());
    }

    // The subtree, as this node sees it.
    let mut by_tier_state: BTreeMap<(Tier, NodeState), i64> = BTreeMap::new();
    for r in &view.rows {
        *by_tier_state.entry((r.tier, r.state)).or_default() += 1;
    }
    let series = Tier::ALL
        .iter()
        .flat_map(|t| NodeState::ALL.iter().map(move |s| (*t, *s)))
        .map(|(t, s)| {
            let n = by_tier_state.get(&(t, s)).copied().unwrap_or(0);
            (vec![("tier", t.as_str().to_string()), ("state", s.as_str().to_string())], n)
        })
        .collect();
    m.gauges("subtree_nodes", "Nodes of this node's subtree (itself included) by tier and derived state.", series);
    m.gauge(
        "subtree_severity",
        "The worst severity in the subtree: 0 fine, 1 warning, 2 critical.",
        severity(view.severity),
    );
    let reports: Vec<_> = view.rows.iter().filter_map(|r| r.report.as_ref()).collect();
    m.gauge(
        "subtree_backlog_events",
        "Events waiting to go up, summed over the subtree's last reports.",
        reports.iter().map(|r| r.backlog).sum::<u64>() as i64,
    );
    m.gauge_f64(
        "subtree_max_lag_seconds",
        "The longest wait of an event to go up, over the subtree's last reports.",
        reports.iter().map(|r| r.oldest_ms).max().unwrap_or(0) as f64 / 1e3,
    );
    m.gauge(
        "subtree_certs_expiring",
        "Nodes of the subtree whose certificate has fewer than 30 days left (or expired).",
        reports.iter().filter(|r| r.cert_days_left.is_some_and(|d| d < protocol::health::CERT_WARN_DAYS)).count()
            as i64,
    );

    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &m.reg)?;
    Ok(out)
}

fn severity(s: Severity) -> i64 {
    match s {
        Severity::Ok => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::health::HealthRowView;
    use crate::runtime::store::StoreStats;
    use topology::NodeId;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn row(node: &str, state: NodeState) -> HealthRowView {
        let node = id(node);
        HealthRowView {
            node,
            name: String::new(),
            tier: node.tier(),
            state,
            severity: if state == NodeState::Live { Severity::Ok } else { Severity::Critical },
            since_ms: None,
            reported_ms: None,
            heard_ms: None,
            via: None,
            why: None,
            warnings: Vec::new(),
            context: false,
            report: None,
            link: None,
            cameras: None,
        }
    }

    fn county() -> (NodeStatus, HealthView) {
        let me = id("130102");
        let mut parent = LinkStatus::new(id("1301"), "parent", 0);
        parent.state = LinkState::Down;
        parent.backlog_out = 7;
        parent.oldest_unsent_age_ms = 2_500;
        parent.reconnects = 3;
        let mut s1 = LinkStatus::new(id("130102-S0001"), "child", 0);
        s1.state = LinkState::Up;
        s1.events_received = 40;
        s1.health_bytes_in = 1_000;
        let s2 = LinkStatus::new(id("130102-S0002"), "child", 0);
        let st = NodeStatus {
            node: me,
            tier: me.tier(),
            name: "长安区".into(),
            parent: Some(parent),
            failover: None,
            children: vec![s1, s2],
            store: StoreStats { events_held: 12, restoring: false, ..StoreStats::default() },
            refused: 2,
            last_refusal: None,
            denied_requests: 5,
            turned_away: crate::transport::TurnedAway { retried: 9, busy: 4, ..Default::default() },
            replacements_refused: 1,
            hedges: 3,
        };
        let mut mine = row("130102", NodeState::Live);
        mine.report = Some(protocol::health::SelfReport {
            version: "0.1.0".into(),
            started_ms: 0,
            reported_ms: 0,
            uplink: protocol::health::Phase::Down,
            failover: None,
            backlog: 7,
            oldest_ms: 2_500,
            reconnects: 3,
            disconnects: Vec::new(),
            cert_days_left: Some(12),
            disk_bytes: Some(4096),
            restoring: false,
            cameras: None,
        });
        let rows = vec![mine, row("130102-S0001", NodeState::Live), row("130102-S0002", NodeState::Unseen)];
        let view = HealthView {
            node: me,
            under: me,
            now_ms: 0,
            counts: BTreeMap::new(),
            total: 3,
            severity: Severity::Critical,
            rows,
        };
        (st, view)
    }

    /// The value of the series that is exactly `series` (name and labels as printed).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_tier_and_state_has_a_series_and_no_label_names_a_node_but_node_info() {
        let (st, view) = county();
        let text = render(&st, &view, 12.5).unwrap();
        let subtree: Vec<&str> = text.lines().filter(|l| l.starts_with("mingchu_subtree_nodes{")).collect();
        assert_eq!(subtree.len(), 24, "{text}");
        for t in Tier::ALL {
            for s in NodeState::ALL {
                let series = format!("mingchu_subtree_nodes{{tier=\"{}\",state=\"{}\"}}", t.as_str(), s.as_str());
                assert!(value(&text, &series).is_some(), "{series} missing in\n{text}");
            }
        }
        assert_eq!(value(&text, r#"mingchu_subtree_nodes{tier="school",state="live"}"#), Some(1.0));
        assert_eq!(value(&text, r#"mingchu_subtree_nodes{tier="school",state="unseen"}"#), Some(1.0));
        assert_eq!(value(&text, r#"mingchu_subtree_nodes{tier="county",state="live"}"#), Some(1.0));
        assert_eq!(value(&text, r#"mingchu_subtree_nodes{tier="city",state="down"}"#), Some(0.0));
        // Only node_info names the node; no series names a peer.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let names_a_node = ["130102", "1301\"", "S0001", "S0002"].iter().any(|n| line.contains(n));
            assert!(!names_a_node || line.starts_with("mingchu_node_info{"), "a node in a label: {line}");
        }
        assert_eq!(value(&text, r#"mingchu_node_info{node="130102",tier="county"}"#), Some(1.0));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn links_uplink_store_and_subtree_values() {
        let (st, view) = county();
        let text = render(&st, &view, 12.5).unwrap();
        let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
        assert_eq!(v(r#"mingchu_links{role="parent",state="down"}"#), 1.0);
        assert_eq!(v(r#"mingchu_links{role="child",state="up"}"#), 1.0);
        assert_eq!(v(r#"mingchu_links{role="child",state="never"}"#), 1.0);
        assert_eq!(v(r#"mingchu_links{role="failover",state="up"}"#), 0.0);
        assert_eq!(text.lines().filter(|l| l.starts_with("mingchu_links{")).count(), 16);
        assert_eq!(v("mingchu_uplink_up"), 0.0);
        assert_eq!(v("mingchu_uplink_backlog_events"), 7.0);
        assert_eq!(v("mingchu_uplink_oldest_unsent_seconds"), 2.5);
        assert_eq!(v(r#"mingchu_link_reconnects_total{role="parent"}"#), 3.0);
        assert_eq!(v(r#"mingchu_link_events_received_total{role="child"}"#), 40.0);
        assert_eq!(v("mingchu_health_bytes_received_total"), 1000.0);
        assert_eq!(v("mingchu_connections_refused_total"), 2.0);
        assert_eq!(v("mingchu_handshakes_turned_away_total{why=\"retry\"}"), 9.0);
        assert_eq!(v("mingchu_handshakes_turned_away_total{why=\"busy\"}"), 4.0);
        assert_eq!(v("mingchu_link_replacements_refused_total"), 1.0);
        assert_eq!(v("mingchu_uplink_hedges_total"), 3.0);
        assert_eq!(v("mingchu_denied_requests_total"), 5.0);
        assert_eq!(v("mingchu_store_events_held"), 12.0);
        assert_eq!(v("mingchu_store_restoring"), 0.0);
        assert_eq!(v("mingchu_store_disk_bytes"), 4096.0);
        assert_eq!(v("mingchu_cert_days_left"), 12.0);
        assert_eq!(v("mingchu_subtree_severity"), 2.0);
        assert_eq!(v("mingchu_subtree_backlog_events"), 7.0);
        assert_eq!(v("mingchu_subtree_max_lag_seconds"), 2.5);
        assert_eq!(v("mingchu_subtree_certs_expiring"), 1.0);
        assert_eq!(v("mingchu_uptime_seconds"), 12.5);
        assert!(text.contains("# TYPE mingchu_link_reconnects counter"), "{text}");
    }

    #[test]
    fn the_root_is_always_up_and_a_restoring_store_is_not_ready() {
        let (mut st, view) = county();
        st.parent = None;
        let text = render(&st, &view, 0.0).unwrap();
        assert_eq!(value(&text, "mingchu_uplink_up"), Some(1.0));
        assert_eq!(not_ready(&st), None);
        st.store.restoring = true;
        assert!(not_ready(&st).unwrap().contains("restoring"));
    }
}
