//! Retention on a school's box: the school's disk stays bounded while its county, city and the
//! province keep everything.
//!
//! What is dropped ([`plan`]): the high-volume, time-bound events — alerts with their updates,
//! ledger records with their corrections, early warnings — whose whole group (an alert and every
//! update about it; a ledger record and every correction or void of it; every event of one warning)
//! is older than the cutoff. Never dropped:
//! - the node's own events above what an ancestor has confirmed holding (a school keeps what it
//!   wrote until its parent durably holds it);
//! - an alert or a warning episode a case refers to, and a warning still active;
//! - registry entries, case steps, directives and spot checks (the state everything else reads).
//!
//! Cursors never move back: they say what reached this node, not what it still keeps. The highest
//! own seq dropped becomes the **floor** ([`own_floor`]): a link never offers the peer anything at
//! or below it (`Session::set_floor`), so a parent that lost its store (and holds less) gets those
//! events from its own parent, which held them before the school dropped them.

use std::collections::{BTreeMap, BTreeSet};

use protocol::alert::AlertUpdate;
use protocol::case::{CaseAction, CaseEvent, CaseSource};
use protocol::warning::{WarningKey, fold_warnings};
use protocol::{Body, Event, EventId};
use topology::NodeId;

use super::{decode_run, index_key, kind_key, open_alerts, put_run, recent_key};
use crate::storage::{Space, Storage, StorageError, WriteBatch};

/// `floor` → the highest own seq dropped (big-endian u64).
pub(super) const META_FLOOR: &[u8] = b"floor";

/// The shortest retention a school may set (days): the warning rules read 62 days of ledgers, and
/// monitoring data is kept at least 30 days; a quarter more is slack for late corrections.
pub const RETENTION_DAYS_MIN: u32 = 90;

/// A school's retention by default (days): about a school year.
pub const RETENTION_DAYS_DEFAULT: u32 = 400;

/// Seqs at or below which this node no longer holds every one of its own events (0: it holds all).
pub fn own_floor(storage: &dyn Storage) -> Result<u64, StorageError> {
    Ok(storage
        .get(Space::Meta, META_FLOOR)?
        .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes))
        .unwrap_or(0))
}

/// What one compaction drops: the writes, how many events, and the new own floor.
#[derive(Debug, Default)]
pub struct Plan {
    pub batch: WriteBatch,
    pub dropped: u64,
    pub floor: u64,
}

/// The group an event belongs to for retention; `None`: never dropped.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Alert(EventId),
    Ledger(NodeId, String),
    Warning(WarningKey),
}

fn group_of(e: &Event) -> Option<Group> {
    match &e.body {
        Body::Alert(_) => Some(Group::Alert(e.id())),
        Body::AlertUpdate(AlertUpdate { alert, .. }) => Some(Group::Alert(*alert)),
        Body::Ledger(l) => Some(Group::Ledger(e.scope, l.id.clone())),
        Body::Warning(w) => Some(Group::Warning(w.key.clone())),
        _ => None,
    }
}

#[derive(Default)]
struct GroupFacts {
    /// Its newest event's HLC wall time.
    newest_ms: u64,
    /// One of its events is this node's own above what an ancestor holds.
    unconfirmed: bool,
}

/// Plans dropping, at `me`, the event groups wholly older than `cutoff_ms` (HLC wall ms), where
/// an ancestor holds `me`'s own events up to `ancestor_holds`. Reads every stored run twice (a
/// school's store: a few thousand events a year); writes nothing.
pub fn plan(storage: &dyn Storage, me: NodeId, cutoff_ms: u64, ancestor_holds: u64) -> Result<Plan, StorageError> {
    let mut groups: BTreeMap<Group, GroupFacts> = BTreeMap::new();
    let mut referenced: BTreeSet<EventId> = BTreeSet::new();
    let mut warnings: Vec<Event> = Vec::new();
    for item in storage.scan_prefix(Space::Events, b"") {
        let (_, v) = item?;
        let (_, events) = decode_run(&v)?;
        for e in events {
            if let Body::Case(CaseEvent { action: CaseAction::Open { source, .. }, .. }) = &e.body {
                match source {
                    CaseSource::AiAlert { alert } => drop(referenced.insert(*alert)),
                    CaseSource::Warning { episode, .. } => drop(referenced.insert(*episode)),
                    _ => {}
                }
            }
            let Some(g) = group_of(&e) else { continue };
            let f = groups.entry(g).or_default();
            f.newest_ms = f.newest_ms.max(e.hlc.wall_ms);
            f.unconfirmed |= e.origin == me && e.seq > ancestor_holds;
            if matches!(e.body, Body::Warning(_)) {
                warnings.push(e);
            }
        }
    }
    let states = fold_warnings(warnings.iter());
    let episodes: BTreeMap<&WarningKey, Vec<EventId>> = {
        let mut m: BTreeMap<&WarningKey, Vec<EventId>> = BTreeMap::new();
        for e in &warnings {
            if let Body::Warning(w) = &e.body {
                m.entry(&w.key).or_default().push(e.id());
            }
        }
        m
    };
    let dropped_groups: BTreeSet<Group> = groups
        .into_iter()
        .filter(|(g, f)| {
            if f.newest_ms >= cutoff_ms || f.unconfirmed {
                return false;
            }
            match g {
                Group::Alert(id) => !referenced.contains(id),
                Group::Ledger(..) => true,
                Group::Warning(key) => {
                    let active = states.get(key).is_some_and(|s| s.level.is_some());
                    let named = episodes.get(key).is_some_and(|ids| ids.iter().any(|id| referenced.contains(id)));
                    !active && !named
                }
            }
        })
        .map(|(g, _)| g)
        .collect();
    let mut out = Plan { floor: own_floor(storage)?, ..Plan::default() };
    if dropped_groups.is_empty() {
        return Ok(out);
    }
    let b = &mut out.batch;
    let mut forgotten: BTreeSet<EventId> = BTreeSet::new();
    // Per origin: the highest seq dropped and the lowest kept (runs come in (origin, seq) order).
    let mut dropped_upto: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut first_kept: BTreeMap<NodeId, u64> = BTreeMap::new();
    for item in storage.scan_prefix(Space::Events, b"") {
        let (key, v) = item?;
        let (received_at_us, events) = decode_run(&v)?;
        let (gone, kept): (Vec<&Event>, Vec<&Event>) =
            events.iter().partition(|e| group_of(e).is_some_and(|g| dropped_groups.contains(&g)));
        if let Some(k) = kept.first() {
            first_kept.entry(k.origin).or_insert(k.seq);
        }
        if let Some(g) = gone.last() {
            let d = dropped_upto.entry(g.origin).or_default();
            *d = (*d).max(g.seq);
        }
        if gone.is_empty() {
            continue;
        }
        let all: Vec<&Event> = events.iter().collect();
        b.delete(Space::Events, &key);
        if let Some(k) = recent_key(&all) {
            b.delete(Space::Recent, &k);
        }
        put_run(b, received_at_us, &kept)?;
        for e in gone {
            out.dropped += 1;
            if e.origin == me {
                out.floor = out.floor.max(e.seq);
            }
            for k in [index_key(e), kind_key(e)].into_iter().flatten() {
                b.delete(Space::Index, &k);
            }
            if let Some(Group::Alert(alert)) = group_of(e)
                && forgotten.insert(alert)
            {
                open_alerts::forget(storage, b, alert)?;
            }
        }
    }
    // Seals ending below an origin's oldest kept event can end no range sent again.
    for (origin, upto) in dropped_upto {
        let below = first_kept.get(&origin).map_or(upto, |k| upto.min(k.saturating_sub(1)));
        super::chain::drop_seals(storage, origin, below, b)?;
    }
    b.put(Space::Meta, META_FLOOR, out.floor.to_be_bytes().to_vec());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use protocol::alert::{AlertAction, AlertRaised, AlertType, Zone};
    use protocol::case::CaseId;
    use protocol::ledger::{LedgerEntry, LedgerKind, LedgerOp};
    use protocol::warning::{Level, RuleId, WarningAction, WarningEvent};
    use protocol::{Directive, Hlc};

    use super::super::read::{list_events, read_event, related};
    use super::super::{EventQuery, put_indexes};
    use super::*;
    use crate::storage::mem::MemStorage;
    use protocol::EventKind;

    const DAY: u64 = 86_400_000;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn alert() -> Body {
        Body::Alert(AlertRaised {
            camera: "cam-01".into(),
            canteen: "main".into(),
            zone: Zone::Cooking,
            alert_type: AlertType::Rodent,
            severity: AlertType::Rodent.default_severity(Zone::Cooking),
            detected_at_ms: 1,
            confidence_permille: 900,
            snapshot: String::new(),
            repeat_count: 1,
        })
    }

    fn update(alert: EventId, action: AlertAction) -> Body {
        Body::AlertUpdate(AlertUpdate { alert, action })
    }

    fn warning(school: NodeId, subject: &str, action: WarningAction) -> Body {
        let key = WarningKey { rule: RuleId::SampleMissing, school, subject: subject.into(), period: 20_000 };
        Body::Warning(WarningEvent { key, action })
    }

    fn raise() -> WarningAction {
        WarningAction::Raise { level: Level::Orange, text: "未留样".into(), evidence: vec![], at_ms: 1 }
    }

    fn resolve() -> WarningAction {
        WarningAction::Resolve { reason: "已补录".into(), at_ms: 2 }
    }

    /// Stores `events` as runs of `run` events, with their indexes, as the store writes them.
    fn store(storage: &MemStorage, events: &[Event], run: usize) {
        for chunk in events.chunks(run) {
            let mut b = WriteBatch::default();
            let mut open = open_alerts::OpenAlerts::new(storage);
            let refs: Vec<&Event> = chunk.iter().collect();
            put_run(&mut b, 1, &refs).unwrap();
            for e in chunk {
                put_indexes(&mut b, &mut open, 1, e).unwrap();
            }
            storage.write(b).unwrap();
        }
    }

    /// A school's history: old alerts (one dismissed, one a case names, one repeated recently),
    /// an old ledger record and its void, an old resolved warning and an old active one, old
    /// state (a directive), and the school's newest alert, which its county has not confirmed.
    #[test]
    fn only_whole_old_groups_the_ancestor_holds_and_nothing_names_are_dropped() {
        let (school, county) = (id("130102-S0001"), id("130102"));
        let now = 400 * DAY;
        let old = now - 200 * DAY;
        let mut seq = 0;
        let mut own = |body: Body, at: u64| {
            seq += 1;
            Event { by: None, origin: school, seq, hlc: Hlc { wall_ms: at, logical: 0 }, scope: school, body }
        };
        let dismissed = own(alert(), old);
        let dismissal = own(update(dismissed.id(), AlertAction::Dismiss { reason: "误报".into() }), old + 1);
        let named = own(alert(), old + 2);
        let repeated = own(alert(), old + 3);
        let again = own(update(repeated.id(), AlertAction::Repeat { detected_at_ms: now - DAY }), now - DAY);
        let entry = |op| Body::Ledger(LedgerEntry { kind: LedgerKind::FoodSample, id: "r1".into(), day: 17_000, op });
        let record = own(entry(LedgerOp::Void { reason: "录错".into() }), old + 4);
        let void = own(entry(LedgerOp::Void { reason: "再作废".into() }), old + 5);
        let raised = own(warning(school, "lunch", raise()), old + 6);
        let resolved = own(warning(school, "lunch", resolve()), old + 7);
        let active = own(warning(school, "dinner", raise()), old + 8);
        let directive = own(Body::Directive(Directive { title: "自查".into(), text: String::new() }), old + 9);
        let lone = own(alert(), old + 10);
        let open = Body::Case(CaseEvent {
            case: CaseId::of_open(EventId { origin: county, seq: 1 }),
            action: CaseAction::Open {
                school,
                severity: protocol::alert::Severity::Serious,
                source: CaseSource::AiAlert { alert: named.id() },
                title: "鼠患".into(),
                detail: String::new(),
                number: 1,
            },
        });
        let case = Event {
            by: None,
            origin: county,
            seq: 1,
            hlc: Hlc { wall_ms: old, logical: 0 },
            scope: school,
            body: open,
        };
        let mut all = vec![
            dismissed.clone(),
            dismissal.clone(),
            named.clone(),
            repeated.clone(),
            again.clone(),
            record.clone(),
            void.clone(),
            raised.clone(),
            resolved.clone(),
            active.clone(),
            directive.clone(),
            lone.clone(),
        ];
        let storage = MemStorage::new();
        store(&storage, &all, 5);
        store(&storage, std::slice::from_ref(&case), 1);
        all.push(case.clone());

        // The county holds all but the last alert.
        let first = plan(&storage, school, now - 90 * DAY, lone.seq - 1).unwrap();
        let gone = [&dismissed, &dismissal, &record, &void, &raised, &resolved];
        assert_eq!(first.dropped, gone.len() as u64);
        assert_eq!(first.floor, resolved.seq, "the highest own seq dropped");
        storage.write(first.batch).unwrap();
        for e in &all {
            let held = read_event(&storage, e.id()).unwrap().is_some();
            assert_eq!(held, !gone.contains(&e), "{} ({:?})", e.id(), e.kind());
        }
        // Listings and indexes agree with what is left.
        let listed = list_events(&storage, &EventQuery { limit: 100, ..EventQuery::default() }).unwrap();
        assert_eq!(listed.len(), all.len() - gone.len());
        assert!(related(&storage, EventKind::AlertUpdate, Some(dismissed.id())).unwrap().is_empty());
        assert_eq!(related(&storage, EventKind::AlertUpdate, Some(repeated.id())).unwrap().len(), 1);
        assert_eq!(related(&storage, EventKind::Warning, None).unwrap().len(), 1, "the active warning");
        assert_eq!(own_floor(&storage).unwrap(), resolved.seq);

        // Run again: nothing more to drop; the floor stays.
        let again = plan(&storage, school, now - 90 * DAY, lone.seq - 1).unwrap();
        assert_eq!((again.dropped, again.floor), (0, resolved.seq));
        // Once the county holds the last alert, it goes too.
        let later = plan(&storage, school, now - 90 * DAY, lone.seq).unwrap();
        assert_eq!((later.dropped, later.floor), (1, lone.seq));
    }
}
