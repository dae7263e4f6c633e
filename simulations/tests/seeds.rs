//! CI's simulation runs: a fixed list of seeds on a reduced tree (each with faults drawn from its
//! seed), the named scenarios, and the determinism check. Each run must pass every safety and
//! liveness check; a failure prints the command that reproduces it.

use simulations::faults::FaultPlan;
use simulations::sim::{Report, Scale, SimConfig, run};

const SCALE: Scale = Scale::Small { cities: 2, counties_per_city: 2, schools_per_county: 6 };

fn config(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(seed, SCALE);
    // A 12-hour day with twice DOMAIN.md's alert rate, so a small tree sees cases run their course.
    cfg.day_ms = 12 * 3_600_000;
    cfg.intensity = 4.0;
    cfg.check_every_ms = 30 * 60_000;
    cfg
}

fn check(report: &Report, args: &str) {
    assert!(
        report.passed(),
        "simulation failed: {:?}\nreproduce with: cargo run --release -p simulations --bin mingchu-sim -- {} {args}",
        report.failures,
        SCALE.flag()
    );
    assert!(report.deliveries_expected > 0 && report.deliveries_done == report.deliveries_expected);
    assert_eq!((report.lost, report.duplicated, report.unauthorised, report.cases_diverged), (0, 0, 0, 0));
}

#[test]
fn fixed_seeds_with_faults_pass() {
    for seed in [1, 2, 3] {
        let r = run(&config(seed)).unwrap();
        check(&r, &format!("--hours 12 --intensity 4 --seed {seed}"));
        assert!(!r.faults.is_empty(), "seed {seed} drew no faults");
        assert!(
            r.workload.alerts > 50 && r.cases > 0,
            "seed {seed}: too little work to mean anything: {:?}",
            r.workload
        );
    }
}

#[test]
fn named_scenarios_pass() {
    for name in ["county-dark", "crashes"] {
        let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut cfg = config(11);
        let topology = cfg.scale.topology(cfg.seed).unwrap();
        cfg.faults = Some(FaultPlan::load(&text, &topology, cfg.day_ms).unwrap());
        let r = run(&cfg).unwrap();
        check(&r, &format!("--hours 12 --intensity 4 --scenario {path} --seed 11"));
        assert_eq!(r.faults.len(), cfg.faults.as_ref().unwrap().faults.len());
    }
}

#[test]
fn the_same_seed_gives_the_same_digest_and_another_seed_another() {
    let a = run(&config(5)).unwrap();
    let b = run(&config(5)).unwrap();
    let c = run(&config(6)).unwrap();
    assert_eq!(a.digest, b.digest, "same seed, different runs");
    assert_eq!(a.workload, b.workload);
    assert_ne!(a.digest, c.digest, "another seed gave the same run");
}

#[test]
fn a_bad_scenario_is_refused_clearly() {
    let cfg = config(1);
    let topology = cfg.scale.topology(1).unwrap();
    for (text, want) in [
        ("name = 'x'\n[[fault]]\nkind = 'melt'\nnode = '13'\nat = '09:00'", "unknown kind"),
        ("name = 'x'\n[[fault]]\nkind = 'dark'\nnode = '139999'\nat = '09:00'", "not in the simulated tree"),
        ("name = 'x'\n[[fault]]\nkind = 'dark'\nnode = '13'\nat = '25:00'", "not a time of day"),
        ("name = 'x'\n[[fault]]\nkind = 'lossy'\nat = '09:00'\nrate = 0.9", "outside"),
    ] {
        let err = FaultPlan::load(text, &topology, cfg.day_ms).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

/// The checker is not blind: a school whose disk is lost for good (after it acknowledged alerts)
/// fails the run, with the lost events named.
#[test]
fn the_checker_reports_a_lost_disk() {
    let mut cfg = config(1);
    cfg.faults = Some(FaultPlan::default());
    let school: topology::NodeId = "130102-S0001".parse().unwrap();
    cfg.lose_disk_at_end = Some(school);
    let r = run(&cfg).unwrap();
    assert!(!r.passed() && r.lost > 0, "{:?}", r.failures);
    assert!(r.failures.iter().any(|f| f.contains("130102-S0001")), "{:?}", r.failures);
}

/// Over a fortnight (the day's workload stretched over 14 days, 40 times the rate, on 11 nodes),
/// cases that are never rectified go overdue and the schedulers escalate them; everything still
/// converges.
#[test]
fn a_fortnight_of_cases_escalates_overdue_ones() {
    let scale = Scale::Small { cities: 1, counties_per_city: 2, schools_per_county: 4 };
    let mut cfg = SimConfig::new(4, scale);
    cfg.day_ms = 14 * 24 * 3_600_000;
    cfg.intensity = 40.0;
    cfg.check_every_ms = 24 * 3_600_000;
    let r = run(&cfg).unwrap();
    assert!(
        r.passed(),
        "{:?}\nreproduce with: cargo run --release -p simulations --bin mingchu-sim -- --cities 1 --counties 2 --schools 4 --hours 336 --intensity 40 --seed 4",
        r.failures
    );
    assert!(r.overdue_marks > 0 && r.escalations > 0, "no escalation in a fortnight: {:?}", r.cases_by_status);
}
