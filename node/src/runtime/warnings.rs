//! The early-warning engine: the node side of `protocol::rules`. It runs in the node's scheduler
//! task (every `case_scan_ms`, at once when the clock moves, and when a ledger write woke it),
//! reads the facts beside the store actor, judges them with the pure rules and writes only the
//! warning events [`protocol::warning::reconcile`] says are owed, in one storage write. Run twice
//! on the same facts — after a restart — it writes nothing.
//!
//! - **A school** judges its own rules over its registry, ledgers, cameras and confirmed alerts,
//!   with the settings and calendar in force: this works while it is cut off from its county.
//! - **A county** judges what a silent school cannot report (no morning check has reached it and
//!   the school is not linked), its schools' cases past their deadline or review window, and opens
//!   the automatic cases (and notices) the rule settings ask for ([`protocol::rules::cases_owed`]).
//!
//! **What a pass keeps** ([`Memo`], under the engine's lock). Events are never changed, only
//! added, and a node's stored cursors change in the same storage write as the events they cover:
//! while the cursors read at the start of a pass are those of the last pass, every fact read from
//! events is the same, and the pass reuses them instead of reading the registry, two months of
//! ledgers, the alerts and the warnings again (a county re-reads one school's registry and ledger
//! only when that school's cursor moved). And while, besides, the cameras' liveness and the
//! confirmed alerts are those judged last and the clock has not reached the judgement's horizon
//! ([`protocol::rules::school_horizon`], [`protocol::rules::county_horizon`]: the first instant at
//! which a rule's time threshold could change a judgement), judging again would owe nothing, and
//! the pass writes nothing without judging. The outcome is the same as judging every pass from
//! fresh reads: debug builds (the simulator and the tests) do exactly that on every pass as well,
//! and stop the process if the two ever differ.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use protocol::alert::AlertRaised;
use protocol::calendar::WorkCalendar;
use protocol::case::{CaseEvent, CaseId, CaseRules, CaseState, pending_case};
use protocol::ledger::{LedgerItem, LedgerKind, china_day};
use protocol::registry::{
    Entity, EntityData, EntityKind, EntityRef, Settings, effective_calendar, effective_settings, registry_view,
};
use protocol::rules::{
    CameraLiveness, Confirmed, SchoolFacts, SchoolSeen, cases_owed, county_horizon, county_rules, judge_county,
    judge_school, school_horizon, school_prep_start, school_rules, window_from,
};
use protocol::warning::{RuleSettings, WarningEvent, WarningKey, WarningState, effective_rule_settings, reconcile};
use protocol::{Body, Cursors, Event, EventId, EventKind};
use ractor::ActorRef;
use topology::{NodeId, Tier, Topology};
use tracing::info;

use crate::clock::Clock;
use crate::runtime::reads::Reads;
use crate::runtime::root::NodeMsg;
use crate::runtime::store::{StoreMsg, WriteError, read_event, related};
use crate::storage::{Storage, StorageError};

/// How long the engine waits for the store's flush or the node's status.
const CALL_TIMEOUT_MS: u64 = 10_000;
/// Ledger days a school's judgement reads (two months: the parent-meal rule looks at last month).
const LEDGER_DAYS: u32 = 62;
/// Confirmed alerts the repeat rules look at (days).
const CONFIRMED_DAYS: u64 = 31;

/// What the engine needs besides the store.
#[derive(Clone)]
pub struct Engine {
    pub me: NodeId,
    pub store: ActorRef<StoreMsg>,
    pub node: ActorRef<NodeMsg>,
    pub reads: Reads,
    pub clock: Arc<dyn Clock>,
    pub topology: Arc<Topology>,
    /// The school's cameras' last heartbeats (the device intake keeps them); `None`: no devices
    /// feed this node.
    pub cameras: Option<crate::runtime::cameras::SharedCameras>,
    /// One pass at a time (the scheduler's and one asked for through the admin API), so two
    /// passes never both write what the same facts owe; it holds what the last pass read.
    pub lock: Arc<tokio::sync::Mutex<Memo>>,
    /// How long files are kept here.
    pub files: crate::runtime::files::FilesConfig,
}

/// What one pass wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub raised: usize,
    pub resolved: usize,
    pub cases: usize,
    /// Alerts unjudged past the hours that moved to the county's queue.
    pub moved: usize,
}

/// What the last pass read and judged, kept while the events it came from are unchanged.
#[derive(Default)]
pub struct Memo {
    school: Option<SchoolMemo>,
    county: Option<CountyMemo>,
    /// Passes that read the facts afresh, that judged, and that found nothing could have changed
    /// since the last judgement (the simulator reports them).
    pub refreshed: u64,
    pub judged: u64,
    pub skipped: u64,
}

/// A school's facts as read from its store.
#[derive(Clone)]
struct SchoolData {
    registry: BTreeMap<EntityRef, Entity>,
    settings: Settings,
    rules: RuleSettings,
    calendar: WorkCalendar,
    ledger: BTreeMap<(NodeId, String), LedgerItem>,
    /// Alert updates written since the repeat rules' window began when this was read, by alert,
    /// with the alert as raised.
    updates: BTreeMap<EventId, (Option<AlertRaised>, Vec<Event>)>,
    state: BTreeMap<WarningKey, WarningState>,
    /// The registered cameras (ids, sorted) and how long after its last heartbeat one is offline.
    cameras: Vec<String>,
    offline_after_ms: u64,
    /// The open alerts (no verdict yet), newest first: when raised (as the open-alert index has
    /// it), and whether already moved to the county's queue.
    open: Vec<(u64, EventId, bool)>,
}

struct SchoolMemo {
    cursors: Cursors,
    read_at: u64,
    data: SchoolData,
    /// The last judgement: the cameras (as [`beats_of`] gives them) and confirmed alerts it
    /// judged, and its horizon.
    judged: Option<(Vec<CameraSeen>, Vec<Confirmed>, u64)>,
}

/// One of a county's schools as its store has it, kept while the school's cursor is the same.
#[derive(Clone)]
struct SchoolAtCounty {
    cursor: Option<protocol::SeqRanges>,
    today: u32,
    prep_start_min: u16,
    checked_days: BTreeSet<u32>,
    /// The time of the newest event of its own the county holds contiguously (0: none).
    last_event_ms: u64,
}

#[derive(Clone)]
struct CountyData {
    rules: RuleSettings,
    calendar: WorkCalendar,
    case_rules: CaseRules,
    /// The county's schools with their names: the topology's and those it registered.
    schools: BTreeMap<NodeId, String>,
    cases: BTreeMap<CaseId, CaseState>,
    state: BTreeMap<WarningKey, WarningState>,
}

struct CountyMemo {
    cursors: Cursors,
    read_at: u64,
    data: CountyData,
    per_school: BTreeMap<NodeId, SchoolAtCounty>,
    /// The schools the county registered itself (names), as of its own cursor then.
    registered: (Option<protocol::SeqRanges>, BTreeMap<NodeId, String>),
    /// The last judgement: the schools linked then and its horizon.
    judged: Option<(BTreeSet<NodeId>, u64)>,
}

/// A registered camera as judged: `(online, last heartbeat, days of recording)`; `None`: never
/// heard from.
type CameraSeen = Option<(bool, u64, Option<u32>)>;

/// What a pass owes: the events to write (warnings and moves in one write, then each automatic
/// case in its own) and their counts.
#[derive(Clone, Debug, Default, PartialEq)]
struct Owed {
    items: Vec<(NodeId, Body)>,
    cases: Vec<Vec<(NodeId, Body)>>,
    pass: Pass,
}

/// What a pass takes besides the events, read once at its start: the time, the stored cursors,
/// the county's linked schools — and in debug builds the school's cameras' last heartbeats, so
/// that the check against fresh reads judges the same ones (release builds read them in place).
struct Inputs {
    now: u64,
    cursors: Cursors,
    beats: Option<BTreeMap<String, crate::runtime::cameras::Beat>>,
    linked: BTreeSet<NodeId>,
}

/// What a pass would write now ([`Engine::owed_now`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owing {
    pub warnings: Vec<WarningEvent>,
    /// The automatic cases, by their school.
    pub cases: Vec<NodeId>,
    /// Alerts to move to the county's queue.
    pub moved: usize,
}

impl Engine {
    /// One pass at `clock.wall_ms()`: the school's rules at a school, the county's at a county.
    pub async fn pass(&self) -> Result<Pass, WriteError> {
        let mut memo = self.lock.lock().await;
        if !matches!(self.me.tier(), Tier::School | Tier::County) {
            return Ok(Pass::default());
        }
        let inputs = self.inputs().await?;
        let owed = self.owed_with(&mut memo, &inputs).await?;
        if cfg!(debug_assertions) {
            // Debug builds judge every pass from fresh reads too (when no event arrived meanwhile:
            // a running node's links write beside the engine): the memo must not change a thing.
            let fresh = self.owed_with(&mut Memo::default(), &inputs).await?;
            let still = self.reads.run(crate::runtime::store::all_cursors).await? == inputs.cursors;
            if still && fresh != owed {
                crate::runtime::invariant::broken(format_args!(
                    "node {}, warning engine at {}: the kept facts owe {:?}, fresh reads owe {:?}",
                    self.me, inputs.now, owed.items, fresh.items
                ));
            }
        }
        if owed != Owed::default() {
            // Only a judgement that owed nothing is kept: a write that fails is judged again.
            forget_judgement(&mut memo);
        }
        let Owed { items, cases, pass } = owed;
        self.write(items).await?;
        // One write per case: a pending id names the case opened earlier in the same write.
        for items in cases {
            self.write(items).await?;
        }
        if pass != Pass::default() {
            info!(node = %self.me, raised = pass.raised, resolved = pass.resolved, cases = pass.cases, moved = pass.moved, "warnings: the rules judged");
        }
        Ok(pass)
    }

    /// What a pass would write now, judged from fresh reads and written nowhere: the simulator's
    /// final check asks it of every school and county (nothing may be owed after the last pass).
    pub async fn owed_now(&self) -> Result<Owing, WriteError> {
        let _one = self.lock.lock().await;
        if !matches!(self.me.tier(), Tier::School | Tier::County) {
            return Ok(Owing::default());
        }
        let inputs = self.inputs().await?;
        let owed = self.owed_with(&mut Memo::default(), &inputs).await?;
        Ok(Owing {
            warnings: owed
                .items
                .iter()
                .filter_map(|(_, b)| match b {
                    Body::Warning(w) => Some(w.clone()),
                    _ => None,
                })
                .collect(),
            cases: owed.cases.iter().filter_map(|c| c.first().map(|(s, _)| *s)).collect(),
            moved: owed.pass.moved,
        })
    }

    /// Since the engine started: passes that read the facts afresh, that judged, and that found
    /// nothing could have changed.
    pub async fn passes(&self) -> [u64; 3] {
        let memo = self.lock.lock().await;
        [memo.refreshed, memo.judged, memo.skipped]
    }

    async fn inputs(&self) -> Result<Inputs, WriteError> {
        let now = self.clock.wall_ms();
        let cursors = self.reads.run(crate::runtime::store::all_cursors).await?;
        let beats = match (&self.cameras, self.me.tier()) {
            (Some(c), Tier::School) if cfg!(debug_assertions) => Some(c.lock().clone()),
            _ => None,
        };
        let linked = if self.me.tier() == Tier::County {
            let status = ractor::call_t!(self.node, NodeMsg::Status, CALL_TIMEOUT_MS)
                .map_err(|e| WriteError::Unavailable(e.to_string()))?;
            status.children.iter().filter(|l| l.state == crate::runtime::link::LinkState::Up).map(|l| l.peer).collect()
        } else {
            BTreeSet::new()
        };
        Ok(Inputs { now, cursors, beats, linked })
    }

    async fn owed_with(&self, memo: &mut Memo, inputs: &Inputs) -> Result<Owed, WriteError> {
        match self.me.tier() {
            Tier::School => self.school_owed(memo, inputs).await,
            Tier::County => self.county_owed(memo, inputs).await,
            _ => Ok(Owed::default()),
        }
    }

    /// Drops the files past their retention (snapshots uploaded here after the configured days,
    /// cached copies after a week or beyond the cache's bound); returns how many.
    pub async fn retain_files(&self) -> Result<usize, WriteError> {
        let (now, days, cache) =
            (self.clock.wall_ms(), u64::from(self.files.snapshot_days), u64::from(self.files.cache_mb) << 20);
        let (ops, dropped) =
            self.reads.run(move |st| crate::runtime::files::retention_ops(st, now, days, cache)).await?;
        if !ops.is_empty() {
            ractor::call_t!(self.store, |reply| StoreMsg::WriteLocal { ops, reply: Some(reply) }, CALL_TIMEOUT_MS)
                .map_err(|e| WriteError::Unavailable(e.to_string()))??;
            info!(node = %self.me, dropped, "files past their retention dropped");
        }
        Ok(dropped)
    }

    async fn write(&self, items: Vec<(NodeId, Body)>) -> Result<(), WriteError> {
        if items.is_empty() {
            return Ok(());
        }
        ractor::call_t!(self.store, |reply| StoreMsg::Append { items, by: None, reply }, CALL_TIMEOUT_MS)
            .map_err(|e| WriteError::Unavailable(e.to_string()))??;
        Ok(())
    }

    /// The settings, rule settings and calendar in force at `unit`: its county's and the
    /// province's own registry entries (two index lookups).
    async fn in_force(&self, unit: NodeId) -> Result<(Settings, RuleSettings, WorkCalendar), StorageError> {
        let mut view = BTreeMap::new();
        for owner in [unit.ancestor_at(Tier::Province), unit.ancestor_at(Tier::County)].into_iter().flatten() {
            view.extend(self.reads.registry_of(owner).await?);
        }
        let calendar = match unit.ancestor_at(Tier::Province) {
            Some(_) => effective_calendar(&view),
            None => WorkCalendar::builtin().clone(),
        };
        Ok((effective_settings(&view, unit).0, effective_rule_settings(&view, unit), calendar))
    }

    async fn school_data(&self, now: u64) -> Result<SchoolData, StorageError> {
        let (me, today) = (self.me, china_day(now));
        let registry = self.reads.registry_of(me).await?;
        let (settings, rules, calendar) = self.in_force(me).await?;
        let ledger = self.reads.ledger(me, today.saturating_sub(LEDGER_DAYS), today + 1).await?;
        let since = now.saturating_sub(CONFIRMED_DAYS * protocol::calendar::DAY_MS);
        let updates = self
            .reads
            .run(move |st| {
                let mut by_alert: BTreeMap<EventId, (Option<AlertRaised>, Vec<Event>)> = BTreeMap::new();
                for u in related(st, EventKind::AlertUpdate, None)? {
                    if let Body::AlertUpdate(a) = &u.event.body
                        && u.event.hlc.wall_ms >= since
                    {
                        by_alert.entry(a.alert).or_default().1.push(u.event);
                    }
                }
                for (alert, (raised, _)) in by_alert.iter_mut() {
                    *raised = match read_event(st, *alert)?.map(|s| s.event.body) {
                        Some(Body::Alert(a)) => Some(a),
                        _ => None,
                    };
                }
                Ok::<_, StorageError>(by_alert)
            })
            .await?;
        let state = self.reads.warnings(Some(me)).await?;
        let cameras = registry
            .values()
            .filter(|e| e.entity.node == me && matches!(e.data, EntityData::Camera(_)))
            .map(|e| e.entity.id.clone())
            .collect();
        let offline_after_ms = u64::from(settings.camera_offline_after_s) * 1_000;
        let open = self
            .reads
            .run(move |st| {
                let mut out = Vec::new();
                for alert in crate::runtime::store::open_alerts::open_alerts(st, Some(me), u64::MAX, usize::MAX)? {
                    let at = read_event(st, alert)?.map_or(0, |s| s.event.hlc.wall_ms);
                    out.push((at, alert, escalated(st, alert)?));
                }
                Ok::<_, StorageError>(out)
            })
            .await?;
        Ok(SchoolData { registry, settings, rules, calendar, ledger, updates, state, cameras, offline_after_ms, open })
    }

    /// The school's pass at `now`: its facts from `memo` while its cursors are the same, read
    /// afresh otherwise; judged unless nothing could have changed since the last judgement.
    async fn school_owed(&self, memo: &mut Memo, inputs: &Inputs) -> Result<Owed, WriteError> {
        let (me, now) = (self.me, inputs.now);
        let fresh = match &mut memo.school {
            Some(m) => {
                m.read_at > now
                    || china_day(m.read_at) != china_day(now)
                    || !self.same_events(&mut m.cursors, &inputs.cursors).await?
            }
            None => true,
        };
        if fresh {
            memo.refreshed += 1;
            let data = self.school_data(now).await?;
            memo.school = Some(SchoolMemo { cursors: inputs.cursors.clone(), read_at: now, data, judged: None });
        }
        let Some(m) = memo.school.as_mut() else { return Ok(Owed::default()) };
        let beats = self.beats_of(&m.data, inputs, now);
        let confirmed = confirmed(&m.data.updates, now);
        // Alerts nobody judged within the hours: each moves to the county's queue (an `Escalate`
        // update), once — as the open-alert index lists them (newest first, at most 1,000).
        let mut items = Vec::new();
        if let Some(county) = me.ancestor_at(Tier::County) {
            let before = now.saturating_sub(u64::from(m.data.rules.alert_escalate_hours) * protocol::calendar::HOUR_MS);
            let stale =
                m.data.open.iter().filter(|(at, _, _)| *at <= before).take(1_000).filter(|(_, _, moved)| !moved);
            items.extend(stale.map(|(_, alert, _)| {
                let action = protocol::alert::AlertAction::Escalate { to: county };
                (me, Body::AlertUpdate(protocol::alert::AlertUpdate { alert: *alert, action }))
            }));
        }
        let unchanged =
            m.judged.as_ref().is_some_and(|(c, f, horizon)| *c == beats && *f == confirmed && now < *horizon);
        let moved = items.len();
        if unchanged && items.is_empty() {
            memo.skipped += 1;
            return Ok(Owed::default());
        }
        memo.judged += 1;
        let d = &m.data;
        let cameras: Vec<CameraLiveness> = d
            .cameras
            .iter()
            .zip(&beats)
            .filter_map(|(camera, b)| {
                let (online, since_ms, recording_days) = (*b)?;
                Some(CameraLiveness { camera: camera.clone(), online, since_ms, recording_days })
            })
            .collect();
        let working = |day: u32| d.calendar.is_working_date(u64::from(day));
        let facts = SchoolFacts {
            school: me,
            now_ms: now,
            settings: &d.settings,
            rules: &d.rules,
            working: &working,
            registry: &d.registry,
            ledger: &d.ledger,
            cameras: &cameras,
            confirmed: &confirmed,
        };
        let judged = judge_school(&facts);
        let horizon = school_horizon(&facts);
        let owed = reconcile(&judged, &d.state, &school_rules(), window_from(now), now);
        m.judged = Some((beats, confirmed, horizon));
        let mut pass = count(&owed);
        pass.moved = moved;
        let mut all: Vec<(NodeId, Body)> = owed.into_iter().map(|w| (me, Body::Warning(w))).collect();
        all.extend(items);
        Ok(Owed { items: all, cases: Vec::new(), pass })
    }

    /// The school's registered cameras at `now`, in order: `(online, last heartbeat, days of
    /// recording)` for each one heard from (a camera never heard from is not judged: the school's
    /// devices may not feed it).
    fn beats_of(&self, d: &SchoolData, inputs: &Inputs, now: u64) -> Vec<CameraSeen> {
        let Some(shared) = &self.cameras else { return Vec::new() };
        let of = |beats: &BTreeMap<String, crate::runtime::cameras::Beat>| {
            d.cameras
                .iter()
                .map(|c| beats.get(c).map(|b| (b.online_at(d.offline_after_ms, now), b.at_ms, b.recording_days)))
                .collect()
        };
        match &inputs.beats {
            Some(beats) => of(beats),
            None => of(&shared.lock()),
        }
    }

    /// The schools the county registered itself, with their names: read again only when the
    /// county wrote something since `kept` (its cursor then).
    async fn registered_schools(
        &self,
        cursors: &Cursors,
        kept: Option<(Option<protocol::SeqRanges>, BTreeMap<NodeId, String>)>,
    ) -> Result<(Option<protocol::SeqRanges>, BTreeMap<NodeId, String>), WriteError> {
        let me = self.me;
        let mine = cursors.get(me).cloned();
        if let Some((at, schools)) = kept
            && at == mine
        {
            return Ok((at, schools));
        }
        let own = self.reads.run(move |st| crate::runtime::store::read::registry_written_under(st, me)).await?;
        let mut schools = BTreeMap::new();
        for e in registry_view(own.iter().map(|s| &s.event)).values() {
            if let (EntityKind::School, EntityData::School(s)) = (e.entity.kind, &e.data)
                && e.entity.node.parent() == Some(me)
            {
                schools.insert(e.entity.node, s.name.clone());
            }
        }
        Ok((mine, schools))
    }

    async fn county_data(&self, registered: &BTreeMap<NodeId, String>) -> Result<CountyData, WriteError> {
        let me = self.me;
        let (settings, rules, calendar) = self.in_force(me).await?;
        let case_rules = CaseRules { calendar: calendar.clone(), ..CaseRules::from_settings(&settings) };
        // The county's schools: the topology's, and the ones it registered at run time (a school
        // entity has one writer, its county: the county's own registry events about its schools).
        let mut schools: BTreeMap<NodeId, String> = self
            .topology
            .children(me)
            .filter(|n| n.id.tier() == Tier::School)
            .map(|n| (n.id, n.name.clone()))
            .collect();
        schools.extend(registered.iter().map(|(s, n)| (*s, n.clone())));
        let cases: BTreeMap<_, _> =
            self.reads.all_cases().await?.into_iter().filter(|(_, c)| me.is_ancestor_or_self_of(c.school)).collect();
        let state = self.reads.warnings(None).await?;
        Ok(CountyData { rules, calendar, case_rules, schools, cases, state })
    }

    /// One of the county's schools as its store has it at `now` (the window's morning checks,
    /// its prep start, its newest contiguous event).
    async fn school_at_county(
        &self,
        school: NodeId,
        cursors: &Cursors,
        now: u64,
    ) -> Result<SchoolAtCounty, WriteError> {
        let (today, from) = (china_day(now), window_from(now));
        let ledger = self.reads.ledger(school, from, today).await?;
        let checked_days = ledger
            .values()
            .filter(|i| i.entry.kind == LedgerKind::MorningCheck && i.live().is_some())
            .map(|i| i.entry.day)
            .collect();
        let registry = self.reads.registry_of(school).await?;
        let contiguous = cursors.contiguous(school);
        let last_event_ms = self.event_ms(EventId { origin: school, seq: contiguous }).await?;
        Ok(SchoolAtCounty {
            cursor: cursors.get(school).cloned(),
            today,
            prep_start_min: school_prep_start(school, &registry),
            checked_days,
            last_event_ms,
        })
    }

    /// The county's pass at `now`: facts from `memo` while the cursors are the same (and each
    /// school's own facts while its cursor is), judged unless nothing could have changed.
    async fn county_owed(&self, memo: &mut Memo, inputs: &Inputs) -> Result<Owed, WriteError> {
        let (me, now, cursors, linked) = (self.me, inputs.now, &inputs.cursors, &inputs.linked);
        let fresh = match &mut memo.county {
            Some(m) => {
                m.read_at > now
                    || china_day(m.read_at) != china_day(now)
                    || !self.same_events(&mut m.cursors, cursors).await?
            }
            None => true,
        };
        if fresh {
            memo.refreshed += 1;
            let (kept_registered, mut per_school) = match memo.county.take() {
                Some(m) => (Some(m.registered), m.per_school),
                None => (None, BTreeMap::new()),
            };
            let registered = self.registered_schools(cursors, kept_registered).await?;
            let data = self.county_data(&registered.1).await?;
            per_school.retain(|s, _| data.schools.contains_key(s));
            for s in data.schools.keys() {
                let keep = per_school
                    .get(s)
                    .is_some_and(|k| k.cursor.as_ref() == cursors.get(*s) && k.today == china_day(now));
                if !keep {
                    per_school.insert(*s, self.school_at_county(*s, cursors, now).await?);
                }
            }
            memo.county =
                Some(CountyMemo { cursors: cursors.clone(), read_at: now, data, registered, per_school, judged: None });
        }
        let Some(m) = memo.county.as_mut() else { return Ok(Owed::default()) };
        if m.judged.as_ref().is_some_and(|(l, horizon)| l == linked && now < *horizon) {
            memo.skipped += 1;
            return Ok(Owed::default());
        }
        memo.judged += 1;
        let d = &m.data;
        let seen: Vec<SchoolSeen> = d
            .schools
            .iter()
            .filter_map(|(school, name)| {
                let k = m.per_school.get(school)?;
                Some(SchoolSeen {
                    school: *school,
                    name: name.clone(),
                    prep_start_min: k.prep_start_min,
                    checked_days: k.checked_days.clone(),
                    last_heard_ms: if linked.contains(school) { now } else { k.last_event_ms },
                })
            })
            .collect();
        let working = |day: u32| d.calendar.is_working_date(u64::from(day));
        // A county's schools share its settings (its override, or the province's).
        let rules_of = |_s: NodeId| d.case_rules.clone();
        let judged = judge_county(now, &d.rules, &working, &seen, &d.cases, &rules_of);
        let horizon = county_horizon(now, &d.rules, &seen, &d.cases, &rules_of);
        let owed = reconcile(&judged, &d.state, &county_rules(), window_from(now), now);
        let mut pass = count(&owed);
        let items: Vec<(NodeId, Body)> = owed.into_iter().map(|w| (w.key.school, Body::Warning(w))).collect();
        // Automatic cases for the warnings whose rules open one, by the rule settings of each
        // warning's school (the county's own override or the province's).
        let rules_for = |s: NodeId| (d.rules.clone(), rules_of(s));
        let fresh_cases = cases_owed(&d.state, &d.cases, &rules_for, now);
        pass.cases = fresh_cases.len();
        let cases = fresh_cases
            .into_iter()
            .map(|(school, steps)| {
                steps
                    .into_iter()
                    .map(|action| (school, Body::Case(CaseEvent { case: pending_case(me), action })))
                    .collect()
            })
            .collect();
        m.judged = Some((linked.clone(), horizon));
        Ok(Owed { items, cases, pass })
    }

    /// Whether this node holds the same events under `now` as under `kept` (cursors read earlier):
    /// a cursor that moved over no event held here (a parent's claim past events for other
    /// nodes) adds nothing. When so, `kept` becomes `now`.
    async fn same_events(&self, kept: &mut Cursors, now: &Cursors) -> Result<bool, StorageError> {
        if kept == now {
            return Ok(true);
        }
        let (old, new) = (kept.clone(), now.clone());
        let same = self
            .reads
            .run(move |st| {
                if old.iter().any(|(o, _)| new.get(o).is_none()) {
                    return Ok(false);
                }
                for (origin, ranges) in new.iter() {
                    let before = old.get(origin).cloned().unwrap_or_default();
                    if &before == ranges {
                        continue;
                    }
                    let (found, _) =
                        crate::runtime::store::read_range(st, origin, before.contiguous(), u64::MAX, usize::MAX)?;
                    if found.iter().any(|e| !before.contains(e.event.seq)) {
                        return Ok(false);
                    }
                }
                Ok::<_, StorageError>(true)
            })
            .await?;
        if same {
            *kept = now.clone();
        }
        Ok(same)
    }

    /// The HLC time of an event this node holds (0: none).
    async fn event_ms(&self, id: EventId) -> Result<u64, WriteError> {
        if id.seq == 0 {
            return Ok(0);
        }
        Ok(self
            .reads
            .run(move |st| Ok::<_, StorageError>(read_event(st, id)?.map_or(0, |e| e.event.hlc.wall_ms)))
            .await?)
    }
}

/// Whether `alert` already moved to the county's queue.
fn escalated(st: &dyn Storage, alert: EventId) -> Result<bool, StorageError> {
    Ok(related(st, EventKind::AlertUpdate, Some(alert))?.iter().any(|u| {
        matches!(&u.event.body, Body::AlertUpdate(a) if matches!(a.action, protocol::alert::AlertAction::Escalate { .. }))
    }))
}

/// The school's alerts confirmed (or overturned into confirmed) in the last 31 days at `now`, from
/// their updates of those days.
fn confirmed(updates: &BTreeMap<EventId, (Option<AlertRaised>, Vec<Event>)>, now: u64) -> Vec<Confirmed> {
    let since = now.saturating_sub(CONFIRMED_DAYS * protocol::calendar::DAY_MS);
    let mut out = Vec::new();
    for (raised, events) in updates.values() {
        let Some(a) = raised else { continue };
        let recent: Vec<&Event> = events.iter().filter(|e| e.hlc.wall_ms >= since).collect();
        if recent.is_empty() {
            continue;
        }
        let state = protocol::alert::fold_alert(
            a.detected_at_ms,
            recent.iter().filter_map(|e| match &e.body {
                Body::AlertUpdate(u) => Some((e.origin, e.by.as_ref(), &u.action)),
                _ => None,
            }),
        );
        if state.status == protocol::alert::AlertStatus::Confirmed && a.detected_at_ms >= since {
            out.push(Confirmed {
                canteen: a.canteen.clone(),
                alert_type: a.alert_type,
                detected_at_ms: a.detected_at_ms,
            });
        }
    }
    out
}

/// Drops the kept judgement (not the facts): the next pass judges.
fn forget_judgement(memo: &mut Memo) {
    if let Some(m) = memo.school.as_mut() {
        m.judged = None;
    }
    if let Some(m) = memo.county.as_mut() {
        m.judged = None;
    }
}

fn count(owed: &[WarningEvent]) -> Pass {
    let raised = owed.iter().filter(|w| matches!(w.action, protocol::warning::WarningAction::Raise { .. })).count();
    Pass { raised, resolved: owed.len() - raised, cases: 0, moved: 0 }
}
