//! The run's report as text (`--json` prints [`Report`] itself), headed by the complete command
//! that reproduces the run.

use std::fmt::Write as _;

use crate::sim::Report;

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let verdict = if r.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(o, "\n== mingchu sim {verdict}: seed {} ({}) ==", r.seed, r.scale);
    if !r.command.is_empty() {
        let _ = writeln!(o, "reproduce with: {}", r.command);
    }
    let nodes: Vec<String> = r.nodes_by_tier.iter().map(|(t, n)| format!("{} {t}", thousands(*n as u64))).collect();
    let _ = writeln!(o, "tree: {}; {:.1} simulated hours", nodes.join(", "), r.simulated_hours);
    let w = &r.workload;
    let _ = writeln!(
        o,
        "workload: {} alerts, {} verdicts, {} spot checks, {} cases opened ({} from spot checks), {} case steps, {} directives, {} registry changes; \
         skipped: {} (node down), {} (state moved on)",
        thousands(w.alerts),
        thousands(w.verdicts),
        w.spot_checks,
        thousands(w.cases_opened),
        w.spot_check_cases,
        thousands(w.steps),
        w.directives,
        w.registry_changes,
        w.skipped_down,
        w.skipped_state
    );
    let ledgers: Vec<String> =
        r.warnings.ledger_records.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
    let _ = writeln!(
        o,
        "ledgers: {} records in {} writes ({}); {} schools registered with {} entities, {} certificates registered or renewed later; \
         cameras: {} outages took {} cameras dark",
        thousands(r.warnings.ledger_records.values().sum()),
        thousands(w.ledger_writes),
        ledgers.join(", "),
        thousands(w.schools_registered),
        thousands(w.registered_entities),
        w.certificates,
        thousands(w.camera_outages),
        thousands(w.cameras_dark)
    );
    let kinds: Vec<String> = r.events_by_kind.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
    let tiers: Vec<String> = r.events_by_origin_tier.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
    let _ = writeln!(o, "events written: {} (by origin: {})", kinds.join(", "), tiers.join(", "));
    let (events, keys, bytes) = r.province_store;
    let _ = writeln!(
        o,
        "province store at the end: {} events, {} keys, {:.1} MB of keys and values ({:.0} bytes per event held)",
        thousands(events),
        thousands(keys),
        bytes as f64 / 1e6,
        bytes as f64 / events.max(1) as f64
    );
    let _ = writeln!(
        o,
        "delivered: {} of {} (node, event) pairs; lost {}, duplicated {}, held against the rules {}",
        thousands(r.deliveries_done),
        thousands(r.deliveries_expected),
        r.lost,
        r.duplicated,
        r.unauthorised
    );
    let statuses: Vec<String> = r.cases_by_status.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        o,
        "cases: {} ({}), {} marked overdue, {} escalation steps, {} diverged between nodes",
        r.cases,
        statuses.join(", "),
        r.overdue_marks,
        r.escalations,
        r.cases_diverged
    );
    let (checked, passed) = r.spot_checks;
    if checked > 0 {
        let _ = writeln!(
            o,
            "spot checks at the province: {checked} checked, {passed} passed ({:.1}%)",
            passed as f64 * 100.0 / checked as f64
        );
    }
    let l = &r.alert_latency;
    let _ = writeln!(
        o,
        "alert latency school → province (simulated): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.1} s ({} alerts)",
        l.p50_ms,
        l.p90_ms,
        l.p99_ms,
        l.max_ms / 1000.0,
        thousands(l.count as u64)
    );
    let wr = &r.warnings;
    let cases: Vec<String> = wr.automatic_cases.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        o,
        "warnings: {} raised, {} resolved; {} keys, {} active at the end; {} automatic cases ({}); {} alerts moved to the county's queue",
        thousands(wr.raised),
        thousands(wr.resolved),
        thousands(wr.keys),
        thousands(wr.active_at_end),
        wr.automatic_cases.values().sum::<u64>(),
        if cases.is_empty() { "none".to_string() } else { cases.join(", ") },
        thousands(wr.alerts_moved)
    );
    if !wr.rules.is_empty() {
        let _ = writeln!(
            o,
            "  {:<27} {:>7} {:>7} {:>7} {:>9} {:>7}",
            "rule", "yellow", "orange", "red", "resolved", "active"
        );
        for (rule, c) in &wr.rules {
            let _ = writeln!(
                o,
                "  {rule:<27} {:>7} {:>7} {:>7} {:>9} {:>7}",
                thousands(c.yellow),
                thousands(c.orange),
                thousands(c.red),
                thousands(c.resolved),
                thousands(c.active)
            );
        }
    }
    let passes: Vec<String> = wr
        .passes
        .iter()
        .map(|(t, [fresh, judged, skipped])| {
            format!(
                "{t} {} judged, {} unchanged, facts read {}",
                thousands(*judged),
                thousands(*skipped),
                thousands(*fresh)
            )
        })
        .collect();
    let _ = writeln!(
        o,
        "warning engine passes (since each node's last start): {}; invariants (raised once, resolved when cleared, \
         identical at {} holders): {} violations",
        passes.join("; "),
        thousands(wr.compared),
        wr.violations
    );
    if !r.faults.is_empty() {
        let _ = writeln!(o, "faults:");
        for f in &r.faults {
            let cu = f.catch_up_s.map_or("-".to_string(), |s| format!("caught up {s:.1} s after"));
            let mut seen = Vec::new();
            if let Some(s) = f.health_seen_s {
                seen.push(format!("province saw it in {s:.0} s"));
            }
            if let Some(s) = f.health_converged_s {
                seen.push(format!("all live {s:.0} s after"));
            }
            let seen = if seen.is_empty() { String::new() } else { format!("; {}", seen.join(", ")) };
            let _ = writeln!(o, "  {}  {:<60} {cu}{seen}", f.at, f.what);
        }
    }
    let traffic: Vec<String> = r
        .traffic
        .iter()
        .map(|(t, (frames, bytes))| format!("{t} {} frames / {:.1} MB", thousands(*frames), *bytes as f64 / 1e6))
        .collect();
    let _ = writeln!(o, "traffic sent by tier: {}", traffic.join(", "));
    let h = &r.health;
    let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.0} s"));
    let _ = writeln!(
        o,
        "health view at the province: converges within B = {:.1} min (simulated); {} polls, {} violations; \
         longest to converge after a heal {} ({} heals), to see a fault {} ({} faults)",
        h.bound_s / 60.0,
        h.polls,
        h.violations,
        secs(h.max_converge_s),
        h.heals_measured,
        secs(h.max_detect_s),
        h.detections_measured
    );
    let _ = writeln!(
        o,
        "health traffic into the province: {:.2} MB, {:.0} B per simulated s; {} rows merged, {:.2} per simulated s",
        h.bytes_in as f64 / 1e6,
        h.bytes_per_s,
        thousands(h.rows_merged),
        h.rows_per_s
    );
    let _ = writeln!(
        o,
        "signed history: {} ranges checked against their origins' seals, {} refused",
        thousands(r.seal_checks),
        thousands(r.seals_refused)
    );
    let _ = writeln!(
        o,
        "safety checks: {} full passes; wall {:.1} s, peak RSS {:.0} MB; digest {}",
        r.safety_checks, r.wall_s, r.peak_rss_mb, r.digest
    );
    for f in r.failures.iter().take(20) {
        let _ = writeln!(o, "FAILURE: {f}");
    }
    o
}
