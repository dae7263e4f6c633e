//! The health invariant (`simulations::health`): the province's view of every node converges to
//! the truth within the bound B — a dark county shows as down within B of going dark, and every
//! node is live again within B of the fault healing. And the checker can fail: with a bound of
//! 0, or told of a fault that never happened, it reports the run as failed, with the seed.

use simulations::faults::{Fault, FaultPlan};
use simulations::sim::{Report, Scale, SimConfig, run};
use topology::NodeId;

const MIN: u64 = 60_000;

/// A small tree (1 city, 2 counties, 4 schools each) over 12 simulated hours, with county 130102
/// dark for an hour from 03:00 (longer than B, so rule (b) applies) and its school S0001 crashed
/// for 40 minutes from 07:00.
fn config(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(seed, Scale::Small { cities: 1, counties_per_city: 2, schools_per_county: 4 });
    cfg.day_ms = 12 * 60 * MIN;
    cfg.intensity = 4.0;
    cfg.check_every_ms = 60 * MIN;
    cfg.faults = Some(FaultPlan {
        name: "a county dark, a school crashed".into(),
        faults: vec![
            (3 * 60 * MIN, Fault::Dark { node: county(), ms: 60 * MIN }),
            (7 * 60 * MIN, Fault::Crash { node: "130102-S0001".parse().unwrap(), ms: 40 * MIN }),
        ],
    });
    cfg
}

fn county() -> NodeId {
    "130102".parse().unwrap()
}

fn health_failures(r: &Report) -> Vec<&String> {
    r.failures.iter().filter(|f| f.starts_with("health: ")).collect()
}

#[test]
fn the_province_sees_a_dark_county_and_everything_live_again_within_the_bound() {
    let cfg = config(3);
    let r = run(&cfg).unwrap();
    assert!(r.passed(), "{:?}", r.failures);
    let h = &r.health;
    let bound_s = h.bound_s;
    // B from the simulator's settings: 900 + 900 + 30 + 3 + 3 × 5 + 30 s.
    assert_eq!(bound_s, 1_878.0);
    assert_eq!(h.violations, 0);
    assert_eq!(r.faults.len(), 2);
    for f in &r.faults {
        let seen = f.health_seen_s.unwrap_or_else(|| panic!("the province never showed `{}`", f.what));
        let converged = f.health_converged_s.unwrap_or_else(|| panic!("`{}` never converged", f.what));
        assert!(seen > 0.0 && seen <= bound_s, "{}: seen after {seen} s", f.what);
        assert!(converged > 0.0 && converged <= bound_s, "{}: converged after {converged} s", f.what);
    }
    assert!(h.heals_measured >= 2 && h.detections_measured >= 2, "{h:?}");
    assert!(h.max_converge_s.unwrap() <= bound_s && h.max_detect_s.unwrap() <= bound_s, "{h:?}");
    // Polled while faults were seen and healed, at every hourly check, and at the end.
    assert!(h.polls > 12, "{h:?}");
    // The province took the rows its subtree sent (12 nodes re-reporting every 30 minutes, for
    // more than 10 hours).
    assert!(h.bytes_in > 10_000 && h.bytes_per_s > 0.0, "{h:?}");
    assert!(h.rows_merged > 12 * 2 * 10 && h.rows_per_s > 0.0, "{h:?}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["health"]["violations"], 0);
    assert!(json["health"]["bytes_in"].as_u64().unwrap() > 0);
    let text = simulations::report::render(&r);
    assert!(text.contains("health view at the province: converges within B = 31.3 min"), "{text}");
    assert!(text.contains("health traffic into the province:"), "{text}");
}

/// With B = 0 the province cannot keep up: the dark county still shows live the moment it goes
/// dark, the crashed school is still down the moment it restarts.
#[test]
fn a_bound_of_zero_fails_the_run() {
    let mut cfg = config(3);
    cfg.health_bound_ms = Some(0);
    let r = run(&cfg).unwrap();
    assert!(!r.passed());
    let fails = health_failures(&r);
    assert!(!fails.is_empty() && r.health.violations > 0, "{:?}", r.failures);
    assert!(fails.iter().all(|f| f.contains("seed 3")), "{fails:?}");
    assert!(fails.iter().any(|f| f.contains("130102") && f.contains("should be down or stale")), "{fails:?}");
    assert!(fails.iter().any(|f| f.contains("130102-S0001") && f.contains("though it runs")), "{fails:?}");
    // Nothing else failed: only the health checker was made wrong.
    assert_eq!((r.lost, r.duplicated, r.unauthorised, r.cases_diverged), (0, 0, 0, 0));
}

/// Told that a county is dark while it is not (a false truth), the checker finds the province
/// showing it live past B and fails the run.
#[test]
fn a_fault_that_never_happened_fails_the_run() {
    let mut cfg = config(4);
    cfg.faults = Some(FaultPlan::default());
    cfg.pretend_faults = vec![(2 * 60 * MIN, Fault::Dark { node: county(), ms: 60 * MIN })];
    let r = run(&cfg).unwrap();
    assert!(!r.passed());
    let fails = health_failures(&r);
    assert_eq!(fails.len(), 1, "{:?}", r.failures);
    assert!(
        fails[0].contains("the province shows 130102 live")
            && fails[0].contains("should be down or stale")
            && fails[0].contains("seed 4"),
        "{fails:?}"
    );
    assert!(r.faults.is_empty(), "a pretended fault is not reported as one that happened");
}
