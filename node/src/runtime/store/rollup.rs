//! Daily counters per unit, kept in [`Space::Index`] as events are stored, so the big screen's
//! 30-day trends read a few hundred counters instead of a month of a province's alerts.
//!
//! - `DAILY + unit + day + metric → count`: for every alert, spot check and case opened, one
//!   counter per unit on the path from the event's scope (a school) up to this node — the school,
//!   its county, its city, the province — on the China-time day it happened. A screen reads its
//!   own unit's counters and its children's, 30 days each.
//! - `CANTEEN + school + canteen id → hlc, present`: the school's registered canteens (the last
//!   change of each wins by its HLC, whatever order they arrive in), so the screen counts canteens
//!   without folding the registry.
//! - `CANTEEN_SUM + unit → canteens, schools with one`: per unit from a school up to this node,
//!   the canteens present at its schools and how many of its schools have any, moved in the same
//!   batch as the marks that change them, so a screen reads a few sums instead of scanning every
//!   school's marks (17,183 at the province).
//! - `UNIT + node → hlc, present`: the schools and cities registered at run time (the topology
//!   file does not list them), the same way, so the screen's roster folds no registry either.
//!
//! Derived data only: the counters are written in the same atomic batch as the events they count,
//! and a stored event is never applied twice (a duplicate is not fresh), so a counter equals a
//! count of the events the node holds — across restarts. A data dir older than the counters gets
//! them built once at open from every stored event ([`build`]). Whatever the holds rule places at
//! a node is counted there, and nothing else.

use std::collections::{BTreeMap, HashMap};

use protocol::case::{CaseAction, CaseSource};
use protocol::registry::{EntityKind, RegistryOp};
use protocol::spot::FocusArea;
use protocol::{AlertType, Body, Event, Hlc};
use topology::NodeId;

use super::{corrupt, decode_run};
use crate::storage::{Space, Storage, StorageError, WriteBatch};

const DAILY: u8 = 0xC0;
const CANTEEN: u8 = 0xC1;
const UNIT: u8 = 0xC2;
const CANTEEN_SUM: u8 = 0xC3;
/// Set once every stored event is counted (v2: with morning checks and warnings; v3: with the
/// canteen sums; a data dir counted before them is counted again at open, every counter
/// overwritten).
const META_ROLLUP: &[u8] = b"daily-rollup-v3";

/// What a daily counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// AI alerts of one type (detected that day).
    Alert(AlertType),
    /// Spot checks recorded, and those passed in every area.
    SpotChecked,
    SpotPassed,
    /// Spot checks that found a problem in this area.
    SpotFailed(FocusArea),
    /// Cases opened, by where they came from ([`source_index`]).
    CaseOpened(u8),
    /// Morning-check (晨检) records written for the day they belong to (voids not subtracted).
    MorningCheck,
    /// Early warnings raised (a level change raises again), and resolved.
    WarningRaised,
    WarningResolved,
}

/// The case sources in counter order, with their Chinese names.
pub const CASE_SOURCES: [&str; 7] = ["AI 预警", "网络巡查", "现场检查", "规则预警", "投诉举报", "学校自查", "预警转办"];

/// A case source's place in [`CASE_SOURCES`].
pub fn source_index(s: &CaseSource) -> u8 {
    match s {
        CaseSource::AiAlert { .. } => 0,
        CaseSource::SpotCheck => 1,
        CaseSource::OnSite => 2,
        CaseSource::RuleWarning => 3,
        CaseSource::Complaint => 4,
        CaseSource::SelfCheck => 5,
        CaseSource::Warning { .. } => 6,
    }
}

impl Metric {
    fn code(self) -> u8 {
        match self {
            Metric::Alert(t) => t as u8,
            Metric::SpotChecked => 0x40,
            Metric::SpotPassed => 0x41,
            Metric::SpotFailed(a) => 0x48 + FocusArea::ALL.iter().position(|x| *x == a).unwrap_or(0) as u8,
            Metric::CaseOpened(i) => 0x60 + i,
            Metric::MorningCheck => 0x70,
            Metric::WarningRaised => 0x71,
            Metric::WarningResolved => 0x72,
        }
    }

    fn from_code(c: u8) -> Option<Metric> {
        match c {
            0x40 => Some(Metric::SpotChecked),
            0x41 => Some(Metric::SpotPassed),
            0x48..=0x4F => FocusArea::ALL.get(usize::from(c - 0x48)).map(|a| Metric::SpotFailed(*a)),
            0x60..=0x6F => (usize::from(c - 0x60) < CASE_SOURCES.len()).then_some(Metric::CaseOpened(c - 0x60)),
            0x70 => Some(Metric::MorningCheck),
            0x71 => Some(Metric::WarningRaised),
            0x72 => Some(Metric::WarningResolved),
            _ => AlertType::all().nth(usize::from(c)).filter(|t| *t as u8 == c).map(Metric::Alert),
        }
    }
}

fn daily_key(unit: NodeId, day: u32, metric: Metric) -> Vec<u8> {
    let mut k = Vec::with_capacity(14);
    k.push(DAILY);
    k.extend_from_slice(&unit.to_key());
    k.extend_from_slice(&day.to_be_bytes());
    k.push(metric.code());
    k
}

fn canteen_key(school: NodeId, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.push(CANTEEN);
    k.extend_from_slice(&school.to_key());
    k.extend_from_slice(id.as_bytes());
    k
}

fn encode_canteen(hlc: Hlc, present: bool) -> Vec<u8> {
    let mut v = hlc.wall_ms.to_be_bytes().to_vec();
    v.extend_from_slice(&hlc.logical.to_be_bytes());
    v.push(u8::from(present));
    v
}

fn decode_canteen(v: &[u8]) -> Option<(Hlc, bool)> {
    let wall_ms = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let logical = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?);
    Some((Hlc { wall_ms, logical }, *v.get(12)? == 1))
}

fn canteen_sum_key(unit: NodeId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(CANTEEN_SUM);
    k.extend_from_slice(&unit.to_key());
    k
}

/// A unit's canteens: those present at its schools, and how many of its schools have any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CanteenSum {
    pub canteens: u32,
    pub schools_with: u32,
}

fn encode_sum(s: CanteenSum) -> Vec<u8> {
    let mut v = s.canteens.to_be_bytes().to_vec();
    v.extend_from_slice(&s.schools_with.to_be_bytes());
    v
}

fn decode_sum(v: &[u8]) -> Result<CanteenSum, StorageError> {
    let n = |r: std::ops::Range<usize>| {
        v.get(r)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| corrupt("canteen sum", "not 8 bytes"))
    };
    Ok(CanteenSum { canteens: n(0..4)?, schools_with: n(4..8)? })
}

fn stored_sum(storage: &dyn Storage, unit: NodeId) -> Result<CanteenSum, StorageError> {
    storage.get(Space::Index, &canteen_sum_key(unit))?.map_or(Ok(CanteenSum::default()), |v| decode_sum(&v))
}

/// The school a canteen mark belongs to (`None` for a unit's mark).
fn canteen_school(key: &[u8]) -> Option<NodeId> {
    (key.first() == Some(&CANTEEN)).then(|| NodeId::from_key(key.get(1..9)?).ok()).flatten()
}

/// Puts into `b` the canteen sums moved by the marks `changed`: each school's change in present
/// canteens, carried up to `me`.
fn move_sums(
    storage: &dyn Storage,
    b: &mut WriteBatch,
    me: NodeId,
    changed: BTreeMap<NodeId, i64>,
) -> Result<(), StorageError> {
    let mut deltas: BTreeMap<NodeId, (i64, i64)> = BTreeMap::new();
    for (school, delta) in changed.into_iter().filter(|(_, d)| *d != 0) {
        let before = i64::from(stored_sum(storage, school)?.canteens);
        let after = (before + delta).max(0);
        let with = i64::from(after > 0) - i64::from(before > 0);
        for unit in units(me, school) {
            let d = deltas.entry(unit).or_default();
            d.0 += after - before;
            d.1 += with;
        }
    }
    for (unit, (canteens, with)) in deltas {
        let had = stored_sum(storage, unit)?;
        let add = |n: u32, d: i64| u32::try_from((i64::from(n) + d).max(0)).unwrap_or(u32::MAX);
        let sum = CanteenSum { canteens: add(had.canteens, canteens), schools_with: add(had.schools_with, with) };
        b.put(Space::Index, &canteen_sum_key(unit), encode_sum(sum));
    }
    Ok(())
}

/// The presence mark a registry change keeps: a canteen's, or a registered school's or city's.
fn presence_key(e: &Event) -> Option<(Vec<u8>, bool)> {
    let Body::Registry(c) = &e.body else { return None };
    let present = matches!(c.op, RegistryOp::Upsert(_));
    match c.entity.kind {
        EntityKind::Canteen => Some((canteen_key(c.entity.node, &c.entity.id), present)),
        EntityKind::School | EntityKind::City => {
            let mut k = vec![UNIT];
            k.extend_from_slice(&c.entity.node.to_key());
            Some((k, present))
        }
        _ => None,
    }
}

/// What one event adds to the counters: `(day, metric)` pairs, each counted once per unit from its
/// scope up to `me`.
fn counts_of(e: &Event) -> Vec<(u32, Metric)> {
    let day = |ms: u64| protocol::ledger::china_day(ms);
    match &e.body {
        Body::Alert(a) => vec![(day(a.detected_at_ms), Metric::Alert(a.alert_type))],
        Body::SpotCheck(c) => {
            let d = day(e.hlc.wall_ms);
            let mut out = vec![(d, Metric::SpotChecked)];
            if c.passed() {
                out.push((d, Metric::SpotPassed));
            }
            out.extend(c.results.iter().filter(|(_, ok)| !ok).map(|(a, _)| (d, Metric::SpotFailed(*a))));
            out
        }
        Body::Case(c) => match &c.action {
            CaseAction::Open { source, .. } => vec![(day(e.hlc.wall_ms), Metric::CaseOpened(source_index(source)))],
            _ => Vec::new(),
        },
        Body::Ledger(l) => match &l.op {
            protocol::ledger::LedgerOp::Record(protocol::ledger::LedgerRecord::MorningCheck(_)) => {
                vec![(l.day, Metric::MorningCheck)]
            }
            _ => Vec::new(),
        },
        Body::Warning(w) => match &w.action {
            protocol::warning::WarningAction::Raise { at_ms, .. } => vec![(day(*at_ms), Metric::WarningRaised)],
            protocol::warning::WarningAction::Resolve { at_ms, .. } => vec![(day(*at_ms), Metric::WarningResolved)],
        },
        _ => Vec::new(),
    }
}

/// The units an event about `scope` is counted for at `me`: `scope` and its ancestors, down from
/// `me` (a unit above `me` would count only `me`'s part of it).
fn units(me: NodeId, scope: NodeId) -> impl Iterator<Item = NodeId> {
    scope.path_up().take_while(move |n| n.in_subtree_of(me))
}

/// Puts into `b` the counters and canteen marks of `fresh` (events stored by this batch, each
/// for the first time).
pub(super) fn note(
    storage: &dyn Storage,
    b: &mut WriteBatch,
    me: NodeId,
    fresh: &[&Event],
) -> Result<(), StorageError> {
    let mut adds: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut canteens: HashMap<Vec<u8>, (Hlc, bool)> = HashMap::new();
    // Whether each mark the batch touches was present before it.
    let mut was: HashMap<Vec<u8>, bool> = HashMap::new();
    for e in fresh {
        for (day, metric) in counts_of(e) {
            for unit in units(me, e.scope) {
                *adds.entry(daily_key(unit, day, metric)).or_default() += 1;
            }
        }
        if let Some((key, present)) = presence_key(e) {
            let before = match canteens.get(&key) {
                Some(v) => Some(*v),
                None => {
                    let stored = storage.get(Space::Index, &key)?.as_deref().and_then(decode_canteen);
                    was.insert(key.clone(), stored.is_some_and(|(_, present)| present));
                    stored
                }
            };
            if before.is_none_or(|(hlc, _)| hlc < e.hlc) {
                canteens.insert(key, (e.hlc, present));
            }
        }
    }
    for (key, add) in adds {
        let had = match storage.get(Space::Index, &key)? {
            Some(v) => {
                u64::from_be_bytes(v.as_slice().try_into().map_err(|_| corrupt("daily counter", "not 8 bytes"))?)
            }
            None => 0,
        };
        b.put(Space::Index, &key, (had + add).to_be_bytes().to_vec());
    }
    let mut changed: BTreeMap<NodeId, i64> = BTreeMap::new();
    for (key, (hlc, present)) in canteens {
        if let Some(school) = canteen_school(&key) {
            let before = was.get(&key).copied().unwrap_or(false);
            *changed.entry(school).or_default() += i64::from(present) - i64::from(before);
        }
        b.put(Space::Index, &key, encode_canteen(hlc, present));
    }
    move_sums(storage, b, me, changed)
}

/// Counts every stored event, once per data dir (a data dir written before the counters existed).
pub(super) fn build(storage: &dyn Storage, me: NodeId) -> Result<(), StorageError> {
    if storage.get(Space::Meta, META_ROLLUP)?.is_some() {
        return Ok(());
    }
    // Counted in memory first (a province's month is a few hundred thousand counters at most),
    // then written: the stored counters start from nothing.
    let mut adds: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut canteens: HashMap<Vec<u8>, (Hlc, bool)> = HashMap::new();
    for item in storage.scan_prefix(Space::Events, b"") {
        let (_, v) = item?;
        let (_, events) = decode_run(&v)?;
        for e in &events {
            for (day, metric) in counts_of(e) {
                for unit in units(me, e.scope) {
                    *adds.entry(daily_key(unit, day, metric)).or_default() += 1;
                }
            }
            if let Some((key, present)) = presence_key(e)
                && canteens.get(&key).is_none_or(|(hlc, _)| *hlc < e.hlc)
            {
                canteens.insert(key, (e.hlc, present));
            }
        }
    }
    let mut b = WriteBatch::default();
    for (key, n) in adds {
        b.put(Space::Index, &key, n.to_be_bytes().to_vec());
        if b.len() >= 10_000 {
            storage.write(std::mem::take(&mut b))?;
        }
    }
    let mut sums: BTreeMap<NodeId, CanteenSum> = BTreeMap::new();
    let mut per_school: BTreeMap<NodeId, u32> = BTreeMap::new();
    for (key, (hlc, present)) in canteens {
        if let Some(school) = canteen_school(&key) {
            *per_school.entry(school).or_default() += u32::from(present);
        }
        b.put(Space::Index, &key, encode_canteen(hlc, present));
    }
    for (school, n) in per_school {
        for unit in units(me, school) {
            let s = sums.entry(unit).or_default();
            s.canteens += n;
            s.schools_with += u32::from(n > 0);
        }
    }
    // Sums overwritten whole: a unit with none left keeps a zero, not a count from before.
    for item in storage.scan_prefix(Space::Index, &[CANTEEN_SUM]) {
        let (k, _) = item?;
        b.delete(Space::Index, &k);
    }
    for (unit, sum) in sums {
        b.put(Space::Index, &canteen_sum_key(unit), encode_sum(sum));
    }
    b.put(Space::Meta, META_ROLLUP, vec![1]);
    storage.write(b)
}

/// One unit's counters of the China-time days `from_day..=to_day`: per day, per metric.
pub fn daily(
    storage: &dyn Storage,
    unit: NodeId,
    from_day: u32,
    to_day: u32,
) -> Result<BTreeMap<u32, BTreeMap<Metric, u64>>, StorageError> {
    let mut out: BTreeMap<u32, BTreeMap<Metric, u64>> = BTreeMap::new();
    let mut from = vec![DAILY];
    from.extend_from_slice(&unit.to_key());
    let mut to = from.clone();
    from.extend_from_slice(&from_day.to_be_bytes());
    to.extend_from_slice(&to_day.saturating_add(1).to_be_bytes());
    for item in storage.scan(Space::Index, &from, &to) {
        let (k, v) = item?;
        if k.len() != 14 {
            return Err(corrupt("daily counter key", format!("{} bytes", k.len())));
        }
        let day = u32::from_be_bytes(k[9..13].try_into().map_err(|e| corrupt("daily counter key", e))?);
        let n = u64::from_be_bytes(v.as_slice().try_into().map_err(|_| corrupt("daily counter", "not 8 bytes"))?);
        if let Some(m) = Metric::from_code(k[13]) {
            *out.entry(day).or_default().entry(m).or_default() += n;
        }
    }
    Ok(out)
}

/// The canteen sums of `units` (a unit none of whose schools registered a canteen has zeros).
pub fn canteen_sums(storage: &dyn Storage, units: &[NodeId]) -> Result<BTreeMap<NodeId, CanteenSum>, StorageError> {
    units.iter().map(|u| Ok((*u, stored_sum(storage, *u)?))).collect()
}

/// The canteens registered at each school of `under`'s subtree (schools with none are absent).
pub fn canteens(storage: &dyn Storage, under: NodeId) -> Result<BTreeMap<NodeId, u32>, StorageError> {
    let mut out: BTreeMap<NodeId, u32> = BTreeMap::new();
    for item in storage.scan_prefix(Space::Index, &[CANTEEN]) {
        let (k, v) = item?;
        let school = NodeId::from_key(k.get(1..9).unwrap_or_default()).map_err(|e| corrupt("canteen key", e))?;
        if school.in_subtree_of(under) && decode_canteen(&v).is_some_and(|(_, present)| present) {
            *out.entry(school).or_default() += 1;
        }
    }
    Ok(out)
}

/// The schools and cities registered in the registry (present now), in tree order.
pub fn registered_units(storage: &dyn Storage) -> Result<Vec<NodeId>, StorageError> {
    let mut out = Vec::new();
    for item in storage.scan_prefix(Space::Index, &[UNIT]) {
        let (k, v) = item?;
        let node = NodeId::from_key(k.get(1..9).unwrap_or_default()).map_err(|e| corrupt("unit key", e))?;
        if decode_canteen(&v).is_some_and(|(_, present)| present) {
            out.push(node);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;
    use protocol::alert::{AlertRaised, Zone};
    use protocol::registry::{Canteen, EntityData, EntityRef, RegistryChange};
    use protocol::spot::SpotCheck;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn ev(origin: &str, seq: u64, wall_ms: u64, scope: &str, body: Body) -> Event {
        Event { by: None, origin: id(origin), seq, hlc: Hlc { wall_ms, logical: 0 }, scope: id(scope), body }
    }

    fn alert(t: AlertType, at: u64) -> Body {
        Body::Alert(AlertRaised {
            camera: "cam-01".into(),
            canteen: "main".into(),
            zone: Zone::Cooking,
            alert_type: t,
            severity: t.default_severity(Zone::Cooking),
            detected_at_ms: at,
            confidence_permille: 900,
            snapshot: String::new(),
            repeat_count: 1,
        })
    }

    fn canteen(op: RegistryOp) -> Body {
        Body::Registry(RegistryChange {
            entity: EntityRef { kind: EntityKind::Canteen, node: id("130102-S0001"), id: "main".into() },
            op,
        })
    }

    fn write(st: &MemStorage, me: NodeId, events: &[Event]) {
        let mut b = WriteBatch::default();
        let refs: Vec<&Event> = events.iter().collect();
        note(st, &mut b, me, &refs).unwrap();
        st.write(b).unwrap();
    }

    #[test]
    fn counters_roll_up_per_unit_and_day_and_a_rebuild_gives_the_same() {
        let st = MemStorage::new();
        let me = id("1301");
        let day_ms = 86_400_000;
        let t0 = 20_000 * day_ms;
        let d0 = protocol::ledger::china_day(t0);
        let check = |ok| SpotCheck {
            canteen: "main".into(),
            results: vec![(FocusArea::StaffAttire, ok), (FocusArea::FoodProcessing, true)],
            note: String::new(),
        };
        let events = vec![
            ev("130102-S0001", 1, t0, "130102-S0001", alert(AlertType::NoMask, t0)),
            ev("130102-S0001", 2, t0 + 1, "130102-S0001", alert(AlertType::NoMask, t0 + 1)),
            ev("130104-S0001", 1, t0 + day_ms, "130104-S0001", alert(AlertType::Rodent, t0 + day_ms)),
            ev("130102", 1, t0, "130102-S0001", Body::SpotCheck(check(false))),
            ev("130102", 2, t0, "130102-S0002", Body::SpotCheck(check(true))),
            ev(
                "130102-S0001",
                3,
                t0,
                "130102-S0001",
                canteen(RegistryOp::Upsert(EntityData::Canteen(Canteen {
                    name: "一食堂".into(),
                    address: String::new(),
                }))),
            ),
        ];
        // In two batches: the second adds to what the first stored.
        write(&st, me, &events[..1]);
        write(&st, me, &events[1..]);
        let city = daily(&st, me, d0, d0 + 1).unwrap();
        assert_eq!(city[&d0][&Metric::Alert(AlertType::NoMask)], 2);
        assert_eq!(city[&(d0 + 1)][&Metric::Alert(AlertType::Rodent)], 1);
        assert_eq!(city[&d0][&Metric::SpotChecked], 2);
        assert_eq!(city[&d0][&Metric::SpotPassed], 1);
        assert_eq!(city[&d0][&Metric::SpotFailed(FocusArea::StaffAttire)], 1);
        let county = daily(&st, id("130102"), d0, d0 + 1).unwrap();
        assert_eq!(county.get(&(d0 + 1)), None, "the other county's alert");
        assert_eq!(daily(&st, id("130102-S0002"), d0, d0).unwrap()[&d0][&Metric::SpotPassed], 1);
        assert!(daily(&st, id("13"), d0, d0 + 1).unwrap().is_empty(), "nothing above the node");
        assert!(daily(&st, me, d0 + 2, d0 + 9).unwrap().is_empty(), "other days");
        assert_eq!(canteens(&st, me).unwrap(), BTreeMap::from([(id("130102-S0001"), 1)]));

        // A removal older than the upsert changes nothing; a newer one removes it.
        write(
            &st,
            me,
            &[ev("130102-S0001", 4, t0 - 5, "130102-S0001", canteen(RegistryOp::Remove { reason: "x".into() }))],
        );
        assert_eq!(canteens(&st, me).unwrap().len(), 1);
        write(
            &st,
            me,
            &[ev("130102-S0001", 5, t0 + 5, "130102-S0001", canteen(RegistryOp::Remove { reason: "x".into() }))],
        );
        assert!(canteens(&st, me).unwrap().is_empty());

        // Built from the events alone, the counters are the same.
        let fresh = MemStorage::new();
        let mut b = WriteBatch::default();
        let mut all = events.clone();
        all.push(ev("130102-S0001", 5, t0 + 5, "130102-S0001", canteen(RegistryOp::Remove { reason: "x".into() })));
        for e in &all {
            super::super::put_run(&mut b, 0, &[e]).unwrap();
        }
        fresh.write(b).unwrap();
        build(&fresh, me).unwrap();
        assert_eq!(daily(&fresh, me, d0, d0 + 1).unwrap(), city);
        assert!(canteens(&fresh, me).unwrap().is_empty());
    }

    #[test]
    fn canteen_sums_follow_the_marks_and_a_rebuild_gives_the_same() {
        let me = id("1301");
        let t0 = 1_700_000_000_000;
        let kitchen = |school: &str, canteen: &str, seq: u64, at: u64, present: bool| {
            let op = if present {
                RegistryOp::Upsert(EntityData::Canteen(Canteen { name: "食堂".into(), address: String::new() }))
            } else {
                RegistryOp::Remove { reason: "停用".into() }
            };
            let entity = EntityRef { kind: EntityKind::Canteen, node: id(school), id: canteen.into() };
            ev(school, seq, at, school, Body::Registry(RegistryChange { entity, op }))
        };
        let sums = |st: &MemStorage| {
            let units = [me, id("130102"), id("130104"), id("130102-S0001"), id("130102-S0002"), id("130104-S0001")];
            canteen_sums(st, &units)
                .unwrap()
                .into_iter()
                .map(|(u, s)| (u.to_string(), (s.canteens, s.schools_with)))
                .collect::<BTreeMap<_, _>>()
        };
        let st = MemStorage::new();
        let events = [
            kitchen("130102-S0001", "main", 1, t0, true),
            kitchen("130102-S0001", "north", 2, t0 + 1, true),
            // The same canteen twice in one batch: counted once.
            kitchen("130102-S0002", "main", 1, t0, true),
            kitchen("130102-S0002", "main", 2, t0 + 1, true),
            kitchen("130104-S0001", "main", 1, t0, true),
        ];
        write(&st, me, &events[..2]);
        write(&st, me, &events[2..]);
        let got = sums(&st);
        assert_eq!(got["1301"], (4, 3));
        assert_eq!(got["130102"], (3, 2));
        assert_eq!(got["130104"], (1, 1));
        assert_eq!(got["130102-S0001"], (2, 1));
        // Removed (a newer removal), and again (nothing more to remove); an older removal of the
        // other school's changes nothing.
        let removals = vec![
            kitchen("130102-S0002", "main", 3, t0 + 9, false),
            kitchen("130102-S0002", "main", 4, t0 + 10, false),
            kitchen("130104-S0001", "main", 2, t0 - 9, false),
        ];
        write(&st, me, &removals);
        let got = sums(&st);
        assert_eq!(got["1301"], (3, 2));
        assert_eq!(got["130102"], (2, 1));
        assert_eq!(got["130102-S0002"], (0, 0));
        assert_eq!(got["130104"], (1, 1));
        // The per-school scan agrees.
        assert_eq!(canteens(&st, me).unwrap().values().sum::<u32>(), 3);

        // Built from the events alone, the sums are the same.
        let fresh = MemStorage::new();
        let mut b = WriteBatch::default();
        for e in events.iter().chain(&removals) {
            super::super::put_run(&mut b, 0, &[e]).unwrap();
        }
        fresh.write(b).unwrap();
        build(&fresh, me).unwrap();
        assert_eq!(sums(&fresh), got);
    }

    #[test]
    fn every_metric_code_reads_back() {
        let mut all: Vec<Metric> = AlertType::all().map(Metric::Alert).collect();
        all.extend([Metric::SpotChecked, Metric::SpotPassed]);
        all.extend(FocusArea::ALL.map(Metric::SpotFailed));
        all.extend((0..CASE_SOURCES.len() as u8).map(Metric::CaseOpened));
        for m in all {
            assert_eq!(Metric::from_code(m.code()), Some(m), "{m:?}");
        }
        assert_eq!(Metric::from_code(0x7F), None);
    }
}
