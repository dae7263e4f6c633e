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
//! **What a pass keeps** ([`Memo`], under the engine's lock). Events are only ever added, never
//! changed, and a node's stored cursors change in the same storage write as the events they
//! cover. A pass reads the cursors; the events held under them that were not held under the last
//! pass's are the only news, and each fact is read from events of its own kinds ([`Part`]): the
//! registry and settings from registry events, the ledgers from ledger records, the confirmed and
//! open alerts from alerts and their updates, the warnings from warning events, the cases from
//! case steps. So a pass reads again only the parts whose kinds arrived (a county only the
//! schools whose records did) — not the registry, two months of ledgers, the alerts and the
//! warnings every time. And when nothing arrived, the cameras' liveness and the confirmed alerts
//! are those judged last, and the clock has not reached that judgement's horizon
//! ([`protocol::rules::school_horizon`], [`protocol::rules::county_horizon`]: the first instant
//! at which a rule's time threshold could change a judgement), judging again would owe nothing:
//! the pass writes nothing without judging. The outcome is that of judging every pass from fresh
//! reads: debug builds (the simulator and the tests) also do exactly that on every pass and stop
//! the process if the two ever differ.

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
use crate::runtime::cameras::Beat;
use crate::runtime::reads::Reads;
use crate::runtime::root::NodeMsg;
use crate::runtime::store::{StoreMsg, WriteError, read_event, related};
use crate::storage::{Storage, StorageError};

/// How long the engine waits for the store's flush or the node's status.
const CALL_TIMEOUT_MS: u64 = 10_000;
/// Ledger days a school's judgement reads (two months: the parent-meal rule looks at last month).
const LEDGER_DAYS: u32 = 62;
/// How often files past their retention are looked for (ms).
const RETAIN_EVERY_MS: u64 = 3_600_000;

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

/// What the last passes read and judged, kept while no event they come from arrived.
#[derive(Default)]
pub struct Memo {
    /// The stored cursors the kept facts are as of (shared with the pass's inputs while the
    /// storage's version stays the same: an unchanged pass copies and compares none of them).
    cursors: Arc<Cursors>,
    /// The storage's version those cursors were read at: while it is the same, nothing stored
    /// changed and a pass takes them without reading ([`crate::storage::Storage::version`]).
    version: Option<u64>,
    /// When files past their retention were last dropped.
    retained_at: Option<u64>,
    /// The time of the last pass (a clock that went back reads everything again).
    at: u64,
    school: Option<SchoolData>,
    county: Option<CountyData>,
    /// The last judgement, if it owed nothing.
    judged: Option<Judged>,
    /// Passes that read a part of the facts again, that judged, and that found nothing could have
    /// changed since the last judgement (the simulator reports them).
    pub refreshed: u64,
    pub judged_passes: u64,
    pub skipped: u64,
}

/// Which facts an event kind feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Registry,
    Ledger,
    Alerts,
    Warnings,
    Cases,
}

impl Part {
    fn of(kind: EventKind) -> Option<Part> {
        match kind {
            EventKind::Registry => Some(Part::Registry),
            EventKind::Ledger => Some(Part::Ledger),
            EventKind::Alert | EventKind::AlertUpdate => Some(Part::Alerts),
            EventKind::Warning => Some(Part::Warnings),
            EventKind::Case => Some(Part::Cases),
            _ => None,
        }
    }
}

/// What a judgement took besides the events — the cameras, the confirmed alerts, the county's
/// linked schools — and its horizon.
#[derive(Clone, PartialEq)]
struct Judged {
    cameras: Vec<CameraSeen>,
    /// The cameras' heartbeats kept when `cameras` was taken ([`SharedCameras::changes`]), and
    /// the first instant one of them turns offline by its age: before then, with no heartbeat
    /// kept since and no registry read, the cameras are those judged.
    cameras_changes: u64,
    cameras_until: u64,
    confirmed: Vec<Confirmed>,
    linked: BTreeSet<NodeId>,
    horizon: u64,
}

/// A registered camera as judged: `(online, last heartbeat, days of recording)`; `None`: never
/// heard from.
type CameraSeen = Option<(bool, u64, Option<u32>)>;

/// The registry's part of a school's or county's facts.
#[derive(Clone)]
struct InForce {
    /// The school's own registry (a county: empty).
    registry: BTreeMap<EntityRef, Entity>,
    settings: Settings,
    rules: RuleSettings,
    calendar: WorkCalendar,
    /// The registered cameras (ids, sorted) and how long after its last heartbeat one is offline.
    cameras: Vec<String>,
    offline_after_ms: u64,
}

/// Alert updates written since the repeat rules' window began when read, by alert, with the
/// alert as raised.
type Updates = BTreeMap<EventId, (Option<AlertRaised>, Vec<Event>)>;

/// A school's facts as read from its store.
#[derive(Clone)]
struct SchoolData {
    in_force: InForce,
    ledger: BTreeMap<(NodeId, String), LedgerItem>,
    /// The day the ledger window was read for.
    ledger_day: u32,
    updates: Updates,
    /// The open alerts (no verdict yet), newest first: when raised (as the open-alert index has
    /// it), and whether already moved to the county's queue.
    open: Vec<(u64, EventId, bool)>,
    state: BTreeMap<WarningKey, WarningState>,
}

/// One of a county's schools as its store has it.
#[derive(Clone)]
struct SchoolAtCounty {
    day: u32,
    prep_start_min: u16,
    checked_days: BTreeSet<u32>,
}

/// A county's facts as read from its store.
#[derive(Clone)]
struct CountyData {
    in_force: InForce,
    /// The county's schools with their names: the topology's and those it registered.
    schools: BTreeMap<NodeId, String>,
    per_school: BTreeMap<NodeId, SchoolAtCounty>,
    cases: BTreeMap<CaseId, CaseState>,
    state: BTreeMap<WarningKey, WarningState>,
}

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
    /// The storage's version, read before the cursors.
    version: u64,
    cursors: Arc<Cursors>,
    beats: Option<BTreeMap<String, Beat>>,
    /// The cameras' heartbeats kept before the pass began ([`SharedCameras::changes`]).
    cameras_changes: u64,
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
        let inputs = self.inputs(Some(&memo)).await?;
        let owed = self.owed_with(&mut memo, &inputs).await?;
        if cfg!(debug_assertions) {
            // Debug builds judge every pass from fresh reads too (when no event arrived meanwhile:
            // a running node's links write beside the engine): the memo must not change a thing.
            let fresh = self.owed_with(&mut Memo::default(), &inputs).await?;
            let still = self.reads.run(crate::runtime::store::all_cursors).await? == *inputs.cursors;
            if still && fresh != owed {
                crate::runtime::invariant::broken(format_args!(
                    "node {}, warning engine at {}: the kept facts owe {:?}, fresh reads owe {:?}",
                    self.me, inputs.now, owed.items, fresh.items
                ));
            }
        }
        if owed != Owed::default() {
            // Only a judgement that owed nothing is kept: a write that fails is judged again.
            memo.judged = None;
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
        let inputs = self.inputs(None).await?;
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

    /// Since the engine started: passes that read a part of the facts again, that judged, and
    /// that found nothing could have changed.
    pub async fn passes(&self) -> [u64; 3] {
        let memo = self.lock.lock().await;
        [memo.refreshed, memo.judged_passes, memo.skipped]
    }

    /// The pass's inputs; the stored cursors are `memo`'s while the storage's version is the one
    /// they were read at.
    async fn inputs(&self, memo: Option<&Memo>) -> Result<Inputs, WriteError> {
        let now = self.clock.wall_ms();
        let version = self.reads.version();
        let cursors = match memo {
            Some(m) if m.version == Some(version) => m.cursors.clone(),
            _ => Arc::new(self.reads.run(crate::runtime::store::all_cursors).await?),
        };
        // The count before the beats: the beats read after it are at least as new.
        let cameras_changes = self.cameras.as_ref().map_or(0, |c| c.changes());
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
        Ok(Inputs { now, version, cursors, beats, cameras_changes, linked })
    }

    /// Drops the files past their retention (snapshots uploaded here after the configured days,
    /// cached copies after a week or beyond the cache's bound), at most once an hour; returns how
    /// many.
    pub async fn retain_files(&self) -> Result<usize, WriteError> {
        let (now, days, cache) =
            (self.clock.wall_ms(), u64::from(self.files.snapshot_days), u64::from(self.files.cache_mb) << 20);
        {
            let mut memo = self.lock.lock().await;
            if memo.retained_at.is_some_and(|at| at <= now && now - at < RETAIN_EVERY_MS) {
                return Ok(0);
            }
            memo.retained_at = Some(now);
        }
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

    /// Brings `memo`'s facts up to the events held under `inputs.cursors`: all of them when none
    /// are kept (or the clock went back), else the parts that events arrived for (and the ledger
    /// window on a new day). Returns the origins whose events arrived (`None`: everything was
    /// read), and whether any fact was read.
    async fn catch_up(&self, memo: &mut Memo, inputs: &Inputs) -> Result<(Option<BTreeSet<NodeId>>, bool), WriteError> {
        let caught = self.catch_up_reads(memo, inputs).await;
        if caught.is_ok() {
            (memo.cursors, memo.version, memo.at) = (inputs.cursors.clone(), Some(inputs.version), inputs.now);
        } else {
            // A read failed part way: nothing kept is known to be current any more.
            (memo.school, memo.county) = (None, None);
        }
        caught
    }

    async fn catch_up_reads(
        &self,
        memo: &mut Memo,
        inputs: &Inputs,
    ) -> Result<(Option<BTreeSet<NodeId>>, bool), WriteError> {
        let now = inputs.now;
        let kept = memo.at <= now && (memo.school.is_some() || memo.county.is_some());
        let news = if kept { self.news(&memo.cursors, &inputs.cursors).await? } else { None };
        let Some(news) = news else {
            memo.refreshed += 1;
            match self.me.tier() {
                Tier::School => memo.school = Some(self.school_data(now).await?),
                _ => memo.county = Some(self.county_data(now).await?),
            }
            return Ok((None, true));
        };
        let parts: BTreeSet<Part> = news.values().flatten().copied().collect();
        let today = china_day(now);
        let mut read = false;
        if let Some(d) = memo.school.as_mut() {
            if parts.contains(&Part::Registry) {
                d.in_force = self.in_force().await?;
                read = true;
            }
            if parts.contains(&Part::Ledger) || d.ledger_day != today {
                d.ledger = self.reads.ledger(self.me, today.saturating_sub(LEDGER_DAYS), today + 1).await?;
                d.ledger_day = today;
                read = true;
            }
            if parts.contains(&Part::Alerts) {
                (d.updates, d.open) = self.alerts(now).await?;
                read = true;
            }
            if parts.contains(&Part::Warnings) {
                d.state = self.reads.warnings(Some(self.me)).await?;
                read = true;
            }
        }
        if let Some(d) = memo.county.as_mut() {
            if parts.contains(&Part::Registry) {
                d.in_force = self.in_force().await?;
                d.schools = self.schools().await?;
                read = true;
            }
            if parts.contains(&Part::Cases) {
                d.cases = self.cases().await?;
                read = true;
            }
            if parts.contains(&Part::Warnings) {
                d.state = self.reads.warnings(None).await?;
                read = true;
            }
            d.per_school.retain(|s, _| d.schools.contains_key(s));
            for s in d.schools.keys() {
                let arrived = news.get(s).is_some_and(|p| p.contains(&Part::Ledger) || p.contains(&Part::Registry));
                if arrived || d.per_school.get(s).is_none_or(|k| k.day != today) {
                    d.per_school.insert(*s, self.school_at_county(*s, now).await?);
                    read = true;
                }
            }
        }
        if read {
            memo.refreshed += 1;
        }
        Ok((Some(news.into_keys().collect()), read))
    }

    /// The facts each origin's events held under `now` and not under `kept` feed
    /// ([`crate::runtime::store::read::arrived`]); `None`: read everything.
    async fn news(
        &self,
        kept: &Cursors,
        now: &Cursors,
    ) -> Result<Option<BTreeMap<NodeId, BTreeSet<Part>>>, StorageError> {
        if std::ptr::eq(kept, now) || kept == now {
            return Ok(Some(BTreeMap::new()));
        }
        let (before, now) = (kept.clone(), now.clone());
        let arrived = self.reads.run(move |st| crate::runtime::store::read::arrived(st, &before, &now)).await?;
        Ok(arrived.map(|by| {
            by.into_iter().map(|(origin, kinds)| (origin, kinds.into_iter().filter_map(Part::of).collect())).collect()
        }))
    }

    /// The settings, rule settings and calendar in force here (its county's and the province's
    /// own registry entries: two index lookups), and at a school its own registry.
    async fn in_force(&self) -> Result<InForce, StorageError> {
        let me = self.me;
        let mut view = BTreeMap::new();
        for owner in [me.ancestor_at(Tier::Province), me.ancestor_at(Tier::County)].into_iter().flatten() {
            view.extend(self.reads.registry_of(owner).await?);
        }
        let calendar = match me.ancestor_at(Tier::Province) {
            Some(_) => effective_calendar(&view),
            None => WorkCalendar::builtin().clone(),
        };
        let (settings, rules) = (effective_settings(&view, me).0, effective_rule_settings(&view, me));
        let registry = if me.tier() == Tier::School { self.reads.registry_of(me).await? } else { BTreeMap::new() };
        let cameras = registry
            .values()
            .filter(|e| e.entity.node == me && matches!(e.data, EntityData::Camera(_)))
            .map(|e| e.entity.id.clone())
            .collect();
        let offline_after_ms = u64::from(settings.camera_offline_after_s) * 1_000;
        Ok(InForce { registry, settings, rules, calendar, cameras, offline_after_ms })
    }

    /// The school's alert updates of the repeat rules' window, by alert, and its open alerts.
    async fn alerts(&self, now: u64) -> Result<(Updates, Vec<(u64, EventId, bool)>), StorageError> {
        let me = self.me;
        let since = now.saturating_sub(CONFIRMED_DAYS * protocol::calendar::DAY_MS);
        self.reads
            .run(move |st| {
                let mut by_alert: Updates = BTreeMap::new();
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
                let mut open = Vec::new();
                for alert in crate::runtime::store::open_alerts::open_alerts(st, Some(me), u64::MAX, usize::MAX)? {
                    let at = read_event(st, alert)?.map_or(0, |s| s.event.hlc.wall_ms);
                    open.push((at, alert, escalated(st, alert)?));
                }
                Ok((by_alert, open))
            })
            .await
    }

    async fn school_data(&self, now: u64) -> Result<SchoolData, StorageError> {
        let today = china_day(now);
        let in_force = self.in_force().await?;
        let ledger = self.reads.ledger(self.me, today.saturating_sub(LEDGER_DAYS), today + 1).await?;
        let (updates, open) = self.alerts(now).await?;
        let state = self.reads.warnings(Some(self.me)).await?;
        Ok(SchoolData { in_force, ledger, ledger_day: today, updates, open, state })
    }

    /// The school's pass: its facts brought up to the events it holds, judged unless nothing
    /// could have changed since the last judgement.
    async fn school_owed(&self, memo: &mut Memo, inputs: &Inputs) -> Result<Owed, WriteError> {
        let (me, now) = (self.me, inputs.now);
        // Only the parts read again matter here: other events (a directive, a case step) change
        // nothing the school's rules judge.
        let (_, read) = self.catch_up(memo, inputs).await?;
        let Some(d) = memo.school.as_ref() else { return Ok(Owed::default()) };
        let confirmed = confirmed(&d.updates, now);
        // Alerts nobody judged within the hours: each moves to the county's queue (an `Escalate`
        // update), once — as the open-alert index lists them (newest first, at most 1,000).
        let mut items = Vec::new();
        if let Some(county) = me.ancestor_at(Tier::County) {
            let hours = u64::from(d.in_force.rules.alert_escalate_hours);
            let before = now.saturating_sub(hours * protocol::calendar::HOUR_MS);
            let stale = d.open.iter().filter(|(at, _, _)| *at <= before).take(1_000).filter(|(_, _, moved)| !moved);
            items.extend(stale.map(|(_, alert, _)| {
                let action = protocol::alert::AlertAction::Escalate { to: county };
                (me, Body::AlertUpdate(protocol::alert::AlertUpdate { alert: *alert, action }))
            }));
        }
        // Without a registry read, the cameras are those judged while no heartbeat was kept since
        // and none of them aged offline yet; else they are taken again and compared.
        let same_cameras = |j: &Judged| j.cameras_changes == inputs.cameras_changes && now < j.cameras_until;
        let kept =
            memo.judged.as_ref().filter(|j| !read && items.is_empty() && j.confirmed == confirmed && now < j.horizon);
        let beats = match kept {
            Some(j) if same_cameras(j) => None,
            _ => Some(self.beats_of(&d.in_force, inputs, now)),
        };
        let unchanged = kept.is_some_and(|j| beats.as_ref().is_none_or(|(b, _)| j.cameras == *b));
        if unchanged {
            if let (Some(j), Some((_, until))) = (memo.judged.as_mut(), beats) {
                // The same cameras, taken again: kept as of now.
                (j.cameras_changes, j.cameras_until) = (inputs.cameras_changes, until);
            }
            memo.skipped += 1;
            return Ok(Owed::default());
        }
        let (beats, cameras_until) = beats.unwrap_or_else(|| self.beats_of(&d.in_force, inputs, now));
        memo.judged_passes += 1;
        let f = &d.in_force;
        let cameras: Vec<CameraLiveness> = f
            .cameras
            .iter()
            .zip(&beats)
            .filter_map(|(camera, b)| {
                let (online, since_ms, recording_days) = (*b)?;
                Some(CameraLiveness { camera: camera.clone(), online, since_ms, recording_days })
            })
            .collect();
        let working = |day: u32| f.calendar.is_working_date(u64::from(day));
        let facts = SchoolFacts {
            school: me,
            now_ms: now,
            settings: &f.settings,
            rules: &f.rules,
            working: &working,
            registry: &f.registry,
            ledger: &d.ledger,
            cameras: &cameras,
            confirmed: &confirmed,
        };
        let judged = judge_school(&facts);
        let horizon = school_horizon(&facts);
        let owed = reconcile(&judged, &d.state, &school_rules(), window_from(now), now);
        let mut pass = count(&owed);
        pass.moved = items.len();
        memo.judged = Some(Judged {
            cameras: beats,
            cameras_changes: inputs.cameras_changes,
            cameras_until,
            confirmed,
            linked: BTreeSet::new(),
            horizon,
        });
        let mut all: Vec<(NodeId, Body)> = owed.into_iter().map(|w| (me, Body::Warning(w))).collect();
        all.extend(items);
        Ok(Owed { items: all, cases: Vec::new(), pass })
    }

    /// The school's registered cameras at `now`, in order: `(online, last heartbeat, days of
    /// recording)` for each one heard from (a camera never heard from is not judged: the school's
    /// devices may not feed it); and the first instant after `now` at which one of them turns
    /// offline by the age of its heartbeat (`u64::MAX`: none will).
    fn beats_of(&self, f: &InForce, inputs: &Inputs, now: u64) -> (Vec<CameraSeen>, u64) {
        let Some(shared) = &self.cameras else { return (Vec::new(), u64::MAX) };
        let of = |beats: &BTreeMap<String, Beat>| {
            let mut until = u64::MAX;
            let seen = f
                .cameras
                .iter()
                .map(|c| {
                    beats.get(c).map(|b| {
                        let online = b.online_at(f.offline_after_ms, now);
                        if online {
                            until = until.min(b.at_ms.saturating_add(f.offline_after_ms));
                        }
                        (online, b.at_ms, b.recording_days)
                    })
                })
                .collect();
            (seen, until)
        };
        match &inputs.beats {
            Some(beats) => of(beats),
            None => of(&shared.lock()),
        }
    }

    /// The county's schools with their names: the topology's, and the ones it registered at run
    /// time (a school entity has one writer, its county: the county's own registry events about
    /// its schools).
    async fn schools(&self) -> Result<BTreeMap<NodeId, String>, StorageError> {
        let me = self.me;
        let mut schools: BTreeMap<NodeId, String> = self
            .topology
            .children(me)
            .filter(|n| n.id.tier() == Tier::School)
            .map(|n| (n.id, n.name.clone()))
            .collect();
        let own = self.reads.run(move |st| crate::runtime::store::read::registry_written_under(st, me)).await?;
        for e in registry_view(own.iter().map(|s| &s.event)).values() {
            if let (EntityKind::School, EntityData::School(s)) = (e.entity.kind, &e.data)
                && e.entity.node.parent() == Some(me)
            {
                schools.insert(e.entity.node, s.name.clone());
            }
        }
        Ok(schools)
    }

    /// The cases of the county's schools.
    async fn cases(&self) -> Result<BTreeMap<CaseId, CaseState>, StorageError> {
        let me = self.me;
        Ok(self.reads.all_cases().await?.into_iter().filter(|(_, c)| me.is_ancestor_or_self_of(c.school)).collect())
    }

    async fn county_data(&self, now: u64) -> Result<CountyData, StorageError> {
        let in_force = self.in_force().await?;
        let schools = self.schools().await?;
        let mut per_school = BTreeMap::new();
        for s in schools.keys() {
            per_school.insert(*s, self.school_at_county(*s, now).await?);
        }
        let (cases, state) = (self.cases().await?, self.reads.warnings(None).await?);
        Ok(CountyData { in_force, schools, per_school, cases, state })
    }

    /// One of the county's schools as its store has it at `now`: the window's morning checks and
    /// its prep start.
    async fn school_at_county(&self, school: NodeId, now: u64) -> Result<SchoolAtCounty, StorageError> {
        let (today, from) = (china_day(now), window_from(now));
        let ledger = self.reads.ledger(school, from, today).await?;
        let checked_days = ledger
            .values()
            .filter(|i| i.entry.kind == LedgerKind::MorningCheck && i.live().is_some())
            .map(|i| i.entry.day)
            .collect();
        let registry = self.reads.registry_of(school).await?;
        Ok(SchoolAtCounty { day: today, prep_start_min: school_prep_start(school, &registry), checked_days })
    }

    /// The county's pass: its facts brought up to the events it holds, judged unless nothing
    /// could have changed since the last judgement.
    async fn county_owed(&self, memo: &mut Memo, inputs: &Inputs) -> Result<Owed, WriteError> {
        let (me, now, linked) = (self.me, inputs.now, &inputs.linked);
        // Besides the facts read again, a school not linked was heard from when its newest event
        // came.
        let (news, read) = self.catch_up(memo, inputs).await?;
        let Some(d) = memo.county.as_ref() else { return Ok(Owed::default()) };
        let heard = news.is_none_or(|origins| origins.iter().any(|o| d.schools.contains_key(o) && !linked.contains(o)));
        if !read && !heard && memo.judged.as_ref().is_some_and(|j| j.linked == *linked && now < j.horizon) {
            memo.skipped += 1;
            return Ok(Owed::default());
        }
        memo.judged_passes += 1;
        let mut seen = Vec::with_capacity(d.schools.len());
        for (school, name) in &d.schools {
            let Some(k) = d.per_school.get(school) else { continue };
            // Heard from: now while linked, else the newest event of its own held contiguously.
            let last_heard_ms = if linked.contains(school) {
                now
            } else {
                self.event_ms(EventId { origin: *school, seq: inputs.cursors.contiguous(*school) }).await?
            };
            seen.push(SchoolSeen {
                school: *school,
                name: name.clone(),
                prep_start_min: k.prep_start_min,
                checked_days: k.checked_days.clone(),
                last_heard_ms,
            });
        }
        let f = &d.in_force;
        let working = |day: u32| f.calendar.is_working_date(u64::from(day));
        // A county's schools share its settings (its override, or the province's).
        let case_rules = CaseRules { calendar: f.calendar.clone(), ..CaseRules::from_settings(&f.settings) };
        let rules_of = |_s: NodeId| case_rules.clone();
        let judged = judge_county(now, &f.rules, &working, &seen, &d.cases, &rules_of);
        let horizon = county_horizon(now, &f.rules, &seen, &d.cases, &rules_of);
        let owed = reconcile(&judged, &d.state, &county_rules(), window_from(now), now);
        let mut pass = count(&owed);
        let items: Vec<(NodeId, Body)> = owed.into_iter().map(|w| (w.key.school, Body::Warning(w))).collect();
        // Automatic cases for the warnings whose rules open one, by the rule settings of each
        // warning's school (the county's own override or the province's).
        let rules_for = |s: NodeId| (f.rules.clone(), rules_of(s));
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
        memo.judged = Some(Judged {
            cameras: Vec::new(),
            cameras_changes: inputs.cameras_changes,
            cameras_until: u64::MAX,
            confirmed: Vec::new(),
            linked: linked.clone(),
            horizon,
        });
        Ok(Owed { items, cases, pass })
    }

    async fn owed_with(&self, memo: &mut Memo, inputs: &Inputs) -> Result<Owed, WriteError> {
        match self.me.tier() {
            Tier::School => self.school_owed(memo, inputs).await,
            Tier::County => self.county_owed(memo, inputs).await,
            _ => Ok(Owed::default()),
        }
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
fn confirmed(updates: &Updates, now: u64) -> Vec<Confirmed> {
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

fn count(owed: &[WarningEvent]) -> Pass {
    let raised = owed.iter().filter(|w| matches!(w.action, protocol::warning::WarningAction::Raise { .. })).count();
    Pass { raised, resolved: owed.len() - raised, cases: 0, moved: 0 }
}
