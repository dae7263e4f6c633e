//! The schools' ledgers and the early warnings in the simulated day (`simulations::warnings`): a
//! small tree's day writes every kind of ledger record, raises and resolves warnings, opens
//! automatic cases, and keeps the three warning invariants — and each invariant can fail: a forged
//! duplicate raise (raised once), a raise the rules would resolve written after the last pass
//! (resolved when cleared), a raise that never left its school (identical at every holder).

use simulations::faults::FaultPlan;
use simulations::sim::{Forge, Report, Scale, SimConfig, run};
use topology::NodeId;

/// A small tree (1 city, 2 counties, 6 schools each) through a whole day (ledgers follow the
/// clock: the morning checks, every meal, the 20:00 daily report), with faults from the seed.
fn config(seed: u64) -> SimConfig {
    SimConfig::new(seed, Scale::Small { cities: 1, counties_per_city: 2, schools_per_county: 6 })
}

fn school() -> NodeId {
    "130102-S0003".parse().unwrap()
}

fn warning_failures(r: &Report) -> Vec<&String> {
    r.failures.iter().filter(|f| f.starts_with("warnings: ")).collect()
}

#[test]
fn a_day_of_ledgers_raises_and_resolves_warnings_and_keeps_the_invariants() {
    let r = run(&config(3)).unwrap();
    assert!(r.passed(), "{:?}", r.failures);
    let w = &r.warnings;
    for kind in protocol::ledger::LedgerKind::ALL {
        assert!(w.ledger_records.get(kind.as_str()).is_some_and(|n| *n > 0), "no {kind:?} records: {w:?}");
    }
    assert_eq!(r.workload.schools_registered, 12);
    assert!(w.raised > 0 && w.resolved > 0 && w.keys > 0, "{w:?}");
    assert!(w.rules.len() >= 4, "few rules fired: {:?}", w.rules);
    assert_eq!(w.violations, 0);
    // Every school compared with its county, city and province.
    assert_eq!(w.compared, 12 * 3);
    // Most passes find nothing could have changed; every node judged at least once a day.
    let [_, judged, unchanged] = w.passes["school"];
    assert!(judged >= 12 && unchanged > judged, "{:?}", w.passes);
    let text = simulations::report::render(&r);
    assert!(text.contains("ledgers: ") && text.contains("warnings: "), "{text}");
    assert!(text.contains("identical at 36 holders): 0 violations"), "{text}");
}

#[test]
fn the_same_seed_gives_the_same_warnings() {
    let a = run(&config(5)).unwrap();
    let b = run(&config(5)).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.warnings, b.warnings);
}

/// Runs with a forged warning and no faults; the run must fail, only on warnings, naming the seed.
fn forged(forge: Forge) -> Report {
    let mut cfg = config(9);
    cfg.faults = Some(FaultPlan::default());
    cfg.forge = Some(forge);
    let r = run(&cfg).unwrap();
    assert!(!r.passed());
    assert!(r.warnings.violations > 0, "{:?}", r.warnings);
    assert!(warning_failures(&r).iter().all(|f| f.ends_with("seed 9")), "{:?}", r.failures);
    r
}

#[test]
fn a_duplicate_raise_fails_the_run_at_every_holder() {
    let r = forged(Forge::DuplicateRaise(school()));
    let fails = warning_failures(&r);
    let key = format!("sample-underweight/{}/forged/", school());
    for holder in ["130102-S0003", "130102", "1301", "13"] {
        assert!(
            fails.iter().any(|f| f.contains(&format!("warnings: {holder} holds two raises of {key}"))
                && f.contains("at yellow without a resolve between")),
            "{holder}: {fails:?}"
        );
    }
    assert_eq!((r.lost, r.duplicated, r.unauthorised), (0, 0, 0), "{:?}", r.failures);
}

#[test]
fn a_raise_the_rules_would_resolve_fails_the_run() {
    let r = forged(Forge::StaleRaise(school()));
    let fails = warning_failures(&r);
    assert_eq!(fails.len(), 1, "{fails:?}");
    assert!(
        fails[0].starts_with("warnings: after its final pass 130102-S0003 still owes 1 warning events")
            && fails[0].contains(&format!("first a resolve of sample-underweight/{}/forged/", school())),
        "{fails:?}"
    );
}

#[test]
fn a_raise_that_never_left_its_school_fails_the_run() {
    let r = forged(Forge::Unreplicated(school()));
    let fails = warning_failures(&r);
    for holder in ["130102", "1301", "13"] {
        assert!(
            fails.iter().any(|f| f.contains(&format!(
                "the folded warnings of 130102-S0003 differ between the school and {holder} at sample-underweight/"
            )) && f.contains("(school: yellow after 1 raises, ")
                && f.contains(": none)")),
            "{holder}: {fails:?}"
        );
    }
    // The other checkers see it too: the raise never reached the school's holders.
    assert!(r.lost > 0);
}
