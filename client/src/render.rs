//! Rendering.

use std::io::Write;

use node::api::alerts::AlertView;
use node::api::registry::EntityView;
use node::api::spot::{RateView, SpotCheckView};
use node::runtime::link::{LinkState, LinkStatus};
use node::runtime::root::NodeStatus;
use protocol::case::{CaseState, Step, StepOutcome};
use protocol::registry::EntityData;
use topology::Tier;

/// Renders a case for `case show`.
pub fn render_case(c: &CaseState) -> String {
    use protocol::case::ChinaTime;
    let mut out = format!(
        "case {}  {} ({})  school {}  severity {}\n  {}\n",
        c.id,
        c.status.zh(),
        c.status.as_str(),
        c.school,
        c.severity.as_str(),
        c.title
    );
    if let Some(d) = c.deadline_ms {
        out.push_str(&format!("  deadline {}{}\n", ChinaTime(d), if c.overdue { "  OVERDUE" } else { "" }));
    }
    out.push_str(&format!("  supervised by {}  rework {}  rejected {}\n", c.supervisor, c.rework, c.rejected));
    out.push_str("  history:\n");
    for Step { event, at_ms, by, action, outcome } in &c.history {
        let outcome = match outcome {
            StepOutcome::Applied => "applied".to_string(),
            StepOutcome::Refused(why) => format!("REFUSED: {why}"),
        };
        out.push_str(&format!(
            "    {}  {:<14} {:<14} {outcome}  ({event})\n",
            ChinaTime(*at_ms),
            by.to_string(),
            action.to_string()
        ));
    }
    out
}

/// One line per check.
pub fn render_check(c: &SpotCheckView) -> String {
    let verdict = if c.passed {
        "passed".to_string()
    } else {
        let failed: Vec<String> = c.failed.iter().map(|a| format!("{} {}", a.key(), a.zh())).collect();
        format!("FAILED: {}", failed.join(", "))
    };
    let note = if c.note.is_empty() { String::new() } else { format!("  \"{}\"", c.note) };
    format!("{}  {}  {} canteen {}  by {}  {verdict}{note}", c.id, c.day, c.school, c.canteen, c.by)
}

/// The pass-rate table.
pub fn render_rates(rates: &[RateView]) -> String {
    if rates.is_empty() {
        return "no spot checks in this period\n".into();
    }
    let mut out = format!("{:<14} {:<9} {:>8} {:>8} {:>9}\n", "unit", "tier", "checked", "passed", "pass rate");
    for r in rates {
        out.push_str(&format!(
            "{:<14} {:<9} {:>8} {:>8} {:>8.2}%\n",
            r.unit.to_string(),
            r.tier.as_str(),
            r.checked,
            r.passed,
            r.percent
        ));
    }
    out
}

/// Human age of a unix-ms instant, relative to `now_ms`.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "never".into();
    }
    let d = now_ms.saturating_sub(then_ms);
    if d < 1_000 {
        format!("{d} ms ago")
    } else if d < 120_000 {
        format!("{:.1} s ago", d as f64 / 1000.0)
    } else {
        format!("{} min ago", d / 60_000)
    }
}

fn state_word(l: &LinkStatus) -> &'static str {
    match l.state {
        LinkState::Never => "never-up",
        LinkState::Connecting => "connecting",
        LinkState::Up => "up",
        LinkState::Down => "down",
    }
}

/// One line per link.
pub fn render_link(l: &LinkStatus, now_ms: u64) -> String {
    let mut s = format!(
        "{:<8} {:<14} {:<10} since {:<12} last seen {:<12} backlog out {:>6} in {:>6}  sent {} recv {}",
        l.role,
        l.peer.to_string(),
        state_word(l),
        ago(now_ms, l.since_ms),
        ago(now_ms, l.last_seen_ms),
        l.backlog_out,
        l.backlog_in,
        l.events_sent,
        l.events_received
    );
    if l.oldest_unsent_age_ms > 0 {
        s.push_str(&format!("  oldest queued {:.1} s", l.oldest_unsent_age_ms as f64 / 1000.0));
    }
    if l.rejected > 0 {
        s.push_str(&format!("  rejected {}", l.rejected));
    }
    if l.state != LinkState::Up
        && let Some(e) = &l.last_error
    {
        s.push_str(&format!("  ({e})"));
    }
    s
}

/// The text form of `topology show`.
pub fn render_status(st: &NodeStatus, now_ms: u64) -> String {
    let mut out = format!(
        "{} {} ({})  holds {} origins, own seq {}, applied {} received events, {} duplicates ignored\n",
        st.node,
        st.name,
        st.tier,
        st.store.origins,
        st.store.own_seq,
        st.store.events_applied,
        st.store.duplicates_ignored
    );
    match &st.parent {
        Some(p) => {
            out.push_str(&format!("  {}\n", render_link(p, now_ms)));
            if let Some(f) = &st.failover {
                out.push_str(&format!("  failed over to {}: {}\n", f.peer, render_link(f, now_ms)));
            }
        }
        None if st.tier == Tier::Province => out.push_str("  (root: no parent)\n"),
        None => {}
    }
    let up = st.children.iter().filter(|c| c.state == LinkState::Up).count();
    if !st.children.is_empty() {
        out.push_str(&format!("  {} children, {up} up\n", st.children.len()));
    }
    for c in &st.children {
        out.push_str(&format!("  {}\n", render_link(c, now_ms)));
    }
    if st.refused > 0 {
        out.push_str(&format!(
            "  refused {} connection(s); last: {}\n",
            st.refused,
            st.last_refusal.as_deref().unwrap_or("-")
        ));
    }
    out
}

pub fn render_alerts(alerts: &[AlertView]) -> String {
    if alerts.is_empty() {
        return "no alerts\n".into();
    }
    let mut out = String::new();
    for a in alerts {
        out.push_str(&format!(
            "{:<22} {:<14} {:<16} {:<10} {:<8} camera {:<10} zone {:<13} {}{}{}\n",
            a.id,
            a.school.to_string(),
            a.alert_type,
            a.type_zh,
            a.severity,
            a.camera,
            a.zone,
            a.status,
            if a.detections > 1 { format!(" ×{}", a.detections) } else { String::new() },
            a.case.as_ref().map(|c| format!(" case {c}")).unwrap_or_default()
        ));
    }
    out
}

/// The text form of a registry listing: one line per entity.
pub fn render_registry(entities: &[EntityView]) -> String {
    if entities.is_empty() {
        return "no registry entries\n".into();
    }
    let mut out = Vec::new();
    for e in entities {
        let key = if e.id.is_empty() { e.node.to_string() } else { format!("{}/{}", e.node, e.id) };
        let details = match &e.data {
            EntityData::City(_) => String::new(),
            EntityData::Settings(s) => format!(
                "deadlines {}d/{}d/{}h, review {}d, health cert warning {}d, samples ≥ {} g",
                s.deadline_general_days,
                s.deadline_serious_days,
                s.deadline_severe_hours,
                s.review_days,
                s.health_cert_warn_days,
                s.sample_min_grams
            ),
            EntityData::School(s) => {
                format!("{} canteen(s) quic {} admin {}", s.canteens, or_dash(&s.quic_addr), or_dash(&s.admin_addr))
            }
            EntityData::Canteen(c) => c.address.clone(),
            EntityData::Camera(c) => format!(
                "canteen {} zone {} ai {} parents {}",
                c.canteen,
                c.zone.as_str(),
                if c.ai_enabled { "on" } else { "off" },
                if c.parent_visible { "see it" } else { "do not see it" }
            ),
            EntityData::Staff(s) => {
                format!("{} ({}) {}", s.role.as_str(), s.role.zh(), if s.on_duty { "on duty" } else { "off duty" })
            }
            EntityData::HealthCertificate(h) => {
                format!("staff {} valid until {}", h.staff, protocol::calendar::ChinaTime(h.valid_until_ms).date())
            }
        };
        let _ = writeln!(out, "{:<18} {:<24} {:<20} {}", e.kind.as_str(), key, e.data.label(), details);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}
