//! CI's simulation runs: a fixed list of seeds on a reduced tree (each with faults drawn from its
//! seed), the named scenarios, and the determinism check. Each run must pass every safety and
//! liveness check; a failure prints the command that reproduces it.

use clap::Parser;
use simulations::cli::SimArgs;
use simulations::faults::FaultPlan;
use simulations::sim::{Report, Scale, SimConfig, run};

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

/// The simulator's arguments from a command line (without `mingchu sim`).
fn args(line: &str) -> SimArgs {
    Cli::try_parse_from(std::iter::once("mingchu-sim").chain(line.split_whitespace())).unwrap().args
}

/// A reduced tree (2 cities, 2 counties each, 6 schools each) through a 12-hour day with four
/// times DOMAIN.md's alert rate, so a small tree sees cases run their course.
fn small(seed: u64, more: &str) -> SimArgs {
    args(&format!(
        "--cities 2 --counties 2 --schools 6 --hours 12 --intensity 4 --check-every-min 30 --seed {seed} {more}"
    ))
}

fn config(seed: u64) -> SimConfig {
    small(seed, "").config().unwrap()
}

fn check(report: &Report, args: &SimArgs) {
    assert!(report.passed(), "simulation failed: {:?}\nreproduce with: {}", report.failures, args.command());
    assert!(report.deliveries_expected > 0 && report.deliveries_done == report.deliveries_expected);
    assert_eq!((report.lost, report.duplicated, report.unauthorised, report.cases_diverged), (0, 0, 0, 0));
}

#[test]
fn fixed_seeds_with_faults_pass() {
    for seed in [1, 2, 3] {
        let a = small(seed, "");
        let r = run(&a.config().unwrap()).unwrap();
        check(&r, &a);
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
        let a = small(11, &format!("--scenario {}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR")));
        let cfg = a.config().unwrap();
        let r = run(&cfg).unwrap();
        check(&r, &a);
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
    let a = args("--cities 1 --counties 2 --schools 4 --hours 336 --intensity 40 --check-every-min 1440 --seed 4");
    let cfg = a.config().unwrap();
    assert_eq!(cfg.scale, Scale::Small { cities: 1, counties_per_city: 2, schools_per_county: 4 });
    assert_eq!((cfg.day_ms, cfg.check_every_ms), (14 * 24 * 3_600_000, 24 * 3_600_000));
    let r = run(&cfg).unwrap();
    assert!(r.passed(), "{:?}\nreproduce with: {}", r.failures, a.command());
    assert!(r.overdue_marks > 0 && r.escalations > 0, "no escalation in a fortnight: {:?}", r.cases_by_status);
}
