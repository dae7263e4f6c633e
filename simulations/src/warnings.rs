//! Ledgers and early warnings in the simulated day: the three warning invariants and the report's
//! ledgers/warnings section.
//!
//! - **(a) Raised once** ([`raised_once`], at every periodic safety check and at the end, at every
//!   node): for each warning key, in event order, no raise at the level already raised without a
//!   resolve between.
//! - **(b) Resolved when cleared** (`sim`'s end): once the schedulers stop, every school and then
//!   every county judges once more, and a fresh judgement right after owes nothing
//!   (`node::runtime::warnings::Engine::owed_now`: no raise, no resolve, no automatic case, no
//!   alert to move).
//! - **(c) Identical at every holder** ([`identical_at_holders`], after the final convergence): the
//!   folded warnings of each school are the same at the school, its county, its city and the
//!   province.
//!
//! A violation fails the run, naming the node, the key and the seed.

use std::collections::{BTreeMap, BTreeSet};

use node::runtime::store::StoredEvent;
use protocol::warning::{Level, WarningAction, WarningKey, WarningState, fold_warnings};
use protocol::{Body, Event, EventId};
use serde::Serialize;
use topology::{NodeId, Tier};

/// Warnings raised and resolved for one rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuleCounts {
    /// Raise events at each level (a level change is a raise).
    pub yellow: u64,
    pub orange: u64,
    pub red: u64,
    pub resolved: u64,
    /// Warnings still active at the end.
    pub active: u64,
}

/// The report's ledgers/warnings section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WarningsReport {
    /// Ledger records written (events), by kind.
    pub ledger_records: BTreeMap<String, u64>,
    /// Warning events by rule.
    pub rules: BTreeMap<String, RuleCounts>,
    pub raised: u64,
    pub resolved: u64,
    /// Warning keys, and those active at the end.
    pub keys: u64,
    pub active_at_end: u64,
    /// Automatic cases the counties opened for warnings, by rule.
    pub automatic_cases: BTreeMap<String, u64>,
    /// Alerts nobody judged within 24 h, moved to the county's queue.
    pub alerts_moved: u64,
    /// The engines' passes by tier since their last start: `[read the facts afresh, judged,
    /// found nothing could have changed]`.
    pub passes: BTreeMap<String, [u64; 3]>,
    /// (node, key) pairs whose folded warnings were compared between a school and its ancestors.
    pub compared: u64,
    /// Violations of the three invariants.
    pub violations: u64,
}

/// (a) at one node: each key's raises, in event order, change its level or follow a resolve.
/// Returns `(key, level, first raise, second raise)` for each raise that repeats the level.
pub fn raised_once(events: &[StoredEvent]) -> Vec<(WarningKey, Level, EventId, EventId)> {
    let mut mine: Vec<&Event> =
        events.iter().map(|s| &s.event).filter(|e| matches!(e.body, Body::Warning(_))).collect();
    mine.sort_by_key(|e| e.order_key());
    mine.dedup_by_key(|e| e.id());
    // Per key: the level and event of the raise in force (none after a resolve).
    let mut last: BTreeMap<&WarningKey, (Level, EventId)> = BTreeMap::new();
    let mut out = Vec::new();
    for e in mine {
        let Body::Warning(w) = &e.body else { continue };
        match &w.action {
            WarningAction::Raise { level, .. } => {
                if let Some((before, first)) = last.get(&w.key)
                    && before == level
                {
                    out.push((w.key.clone(), *level, *first, e.id()));
                }
                last.insert(&w.key, (*level, e.id()));
            }
            WarningAction::Resolve { .. } => {
                last.remove(&w.key);
            }
        }
    }
    out
}

/// What (c) found.
#[derive(Debug, Default)]
pub struct Compared {
    /// The first failures, each naming the school, the holder, a key and the seed.
    pub failures: Vec<String>,
    pub violations: u64,
    /// (holder, school) pairs compared.
    pub pairs: u64,
}

/// (c): for each school, its folded warnings at its ancestors (county, city, province) against the
/// school's own. `held`: every node's warning events. At most `max` failures are described.
pub fn identical_at_holders(held: &BTreeMap<NodeId, &[StoredEvent]>, seed: u64, max: usize) -> Compared {
    // Each node's warnings, folded per school.
    let per_school = |events: &[StoredEvent]| -> BTreeMap<NodeId, BTreeMap<WarningKey, WarningState>> {
        let mut by: BTreeMap<NodeId, Vec<&Event>> = BTreeMap::new();
        for s in events {
            if let Body::Warning(w) = &s.event.body {
                by.entry(w.key.school).or_default().push(&s.event);
            }
        }
        by.into_iter().map(|(school, evs)| (school, fold_warnings(evs))).collect()
    };
    let folded: BTreeMap<NodeId, BTreeMap<NodeId, BTreeMap<WarningKey, WarningState>>> =
        held.iter().filter(|(n, _)| n.tier() != Tier::School).map(|(n, evs)| (*n, per_school(evs))).collect();
    let empty = BTreeMap::new();
    let mut out = Compared::default();
    for (school, events) in held.iter().filter(|(n, _)| n.tier() == Tier::School) {
        let own = per_school(events).remove(school).unwrap_or_default();
        for holder in school.ancestors() {
            out.pairs += 1;
            let there = folded.get(&holder).and_then(|m| m.get(school)).unwrap_or(&empty);
            if there == &own {
                continue;
            }
            out.violations += 1;
            let keys: BTreeSet<&WarningKey> = own.keys().chain(there.keys()).collect();
            let differing = keys.into_iter().find(|k| own.get(*k) != there.get(*k));
            if out.failures.len() < max {
                out.failures.push(format!(
                    "warnings: the folded warnings of {school} differ between the school and {holder}{}; seed {seed}",
                    differing.map_or(String::new(), |k| format!(
                        " at {k} (school: {}, {holder}: {})",
                        describe(own.get(k)),
                        describe(there.get(k))
                    ))
                ));
            }
        }
    }
    out
}

fn describe(st: Option<&WarningState>) -> String {
    match st {
        None => "none".into(),
        Some(s) => match s.level {
            Some(l) => format!("{} after {} raises", l.as_str(), s.raises),
            None => format!("resolved after {} raises", s.raises),
        },
    }
}

/// Counts one event of the run (each once) into the section.
pub fn count_one(e: &Event, r: &mut WarningsReport) {
    match &e.body {
        Body::Ledger(l) => *r.ledger_records.entry(l.kind.as_str().to_string()).or_default() += 1,
        Body::Warning(w) => {
            let c = r.rules.entry(w.key.rule.as_str().to_string()).or_default();
            match &w.action {
                WarningAction::Raise { level, .. } => {
                    r.raised += 1;
                    match level {
                        Level::Yellow => c.yellow += 1,
                        Level::Orange => c.orange += 1,
                        Level::Red => c.red += 1,
                    }
                }
                WarningAction::Resolve { .. } => {
                    r.resolved += 1;
                    c.resolved += 1;
                }
            }
        }
        Body::Case(c) => {
            if let protocol::case::CaseAction::Open {
                source: protocol::case::CaseSource::Warning { key, .. }, ..
            } = &c.action
            {
                *r.automatic_cases.entry(key.rule.as_str().to_string()).or_default() += 1;
            }
        }
        Body::AlertUpdate(u) if matches!(u.action, protocol::alert::AlertAction::Escalate { .. }) => {
            r.alerts_moved += 1;
        }
        _ => {}
    }
}

/// The warnings at the end of the run (every warning event once): keys, and those still active.
pub fn count_end(warnings: &[Event], r: &mut WarningsReport) {
    let folded = fold_warnings(warnings);
    r.keys = folded.len() as u64;
    for st in folded.values().filter(|s| s.active()) {
        r.active_at_end += 1;
        r.rules.entry(st.key.rule.as_str().to_string()).or_default().active += 1;
    }
}
