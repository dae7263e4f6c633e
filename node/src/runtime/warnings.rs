//! The early-warning engine: the node side of `protocol::rules`. It runs in the node's scheduler
//! task (every `case_scan_ms`, at once when the clock moves, and when a write changed a school's
//! facts — [`Wake`]), reads the facts beside the store actor, judges them with the pure rules and
//! writes only the warning events [`protocol::warning::reconcile`] says are owed, in one storage
//! write. Run twice on the same facts — after a restart — it writes nothing.
//!
//! - **A school** judges its own rules over its registry, ledgers, cameras and confirmed alerts,
//!   with the settings and calendar in force: this works while it is cut off from its county.
//! - **A county** judges what a silent school cannot report (no morning check has reached it and
//!   the school is not linked), its schools' cases past their deadline or review window, and opens
//!   the automatic cases (and notices) the rule settings ask for ([`protocol::rules::cases_owed`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use protocol::Body;
use protocol::case::{CaseEvent, pending_case};
use protocol::ledger::{LedgerKind, china_day};
use protocol::registry::{EntityData, EntityKind};
use protocol::rules::{
    CameraLiveness, Confirmed, SchoolFacts, SchoolSeen, cases_owed, county_rules, judge_county, judge_school,
    school_prep_start, school_rules, window_from,
};
use protocol::warning::reconcile;
use protocol::{EventId, EventKind};
use ractor::ActorRef;
use topology::{NodeId, Tier, Topology};
use tracing::info;

use crate::clock::Clock;
use crate::runtime::reads::Reads;
use crate::runtime::root::NodeMsg;
use crate::runtime::store::{StoreMsg, WriteError, read_event, related};

/// How long the engine waits for the store's flush or the node's status.
const CALL_TIMEOUT_MS: u64 = 10_000;
/// Ledger days a school's judgement reads (two months: the parent-meal rule looks at last month).
const LEDGER_DAYS: u32 = 62;

/// What the engine needs besides the store.
#[derive(Clone)]
pub struct Engine {
    pub me: NodeId,
    pub store: ActorRef<StoreMsg>,
    pub node: ActorRef<NodeMsg>,
    pub reads: Reads,
    pub clock: Arc<dyn Clock>,
    pub topology: Arc<Topology>,
    /// The school's cameras' last heartbeats (the device intake keeps them); `None` in the
    /// simulator, whose schools have no devices.
    pub cameras: Option<crate::runtime::cameras::SharedCameras>,
    /// One pass at a time (the scheduler's and one asked for through the admin API), so two
    /// passes never both write what the same facts owe.
    pub lock: Arc<tokio::sync::Mutex<()>>,
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

impl Engine {
    /// One pass at `clock.wall_ms()`: the school's rules at a school, the county's at a county.
    pub async fn pass(&self) -> Result<Pass, WriteError> {
        let _one = self.lock.lock().await;
        match self.me.tier() {
            Tier::School => self.school_pass().await,
            Tier::County => self.county_pass().await,
            _ => Ok(Pass::default()),
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

    async fn school_pass(&self) -> Result<Pass, WriteError> {
        let (me, now) = (self.me, self.clock.wall_ms());
        let today = china_day(now);
        let registry = self.reads.registry_of(me).await?;
        let settings = self.reads.settings_for(me).await?.0;
        let rules = self.reads.rule_settings_for(me).await?;
        let calendar = self.reads.calendar_for(me).await?;
        let ledger = self.reads.ledger(me, today.saturating_sub(LEDGER_DAYS), today + 1).await?;
        let cameras = match &self.cameras {
            Some(c) => crate::runtime::cameras::camera_liveness(&self.reads, me, c, now)
                .await?
                .into_iter()
                .filter_map(|l| {
                    // A camera never heard from is not judged (the school's devices may not feed
                    // it); one heard from is online or offline since its last heartbeat.
                    let at = l.last_heartbeat_ms?;
                    Some(CameraLiveness {
                        camera: l.camera,
                        online: l.online,
                        since_ms: at,
                        recording_days: l.recording_days,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let confirmed = self.confirmed(now).await?;
        let state = self.reads.warnings(Some(me)).await?;
        let working = |d: u32| calendar.is_working_date(u64::from(d));
        let judged = judge_school(&SchoolFacts {
            school: me,
            now_ms: now,
            settings: &settings,
            rules: &rules,
            working: &working,
            registry: &registry,
            ledger: &ledger,
            cameras: &cameras,
            confirmed: &confirmed,
        });
        let owed = reconcile(&judged, &state, &school_rules(), window_from(now), now);
        let mut pass = count(&owed);
        let mut items: Vec<(NodeId, Body)> = owed.into_iter().map(|w| (me, Body::Warning(w))).collect();
        let stale = self.stale_alerts(now, rules.alert_escalate_hours).await?;
        pass.moved = stale.len();
        items.extend(stale);
        self.write(items).await?;
        if pass != Pass::default() {
            info!(node = %me, raised = pass.raised, resolved = pass.resolved, moved = pass.moved, "warnings: the school's rules judged");
        }
        Ok(pass)
    }

    /// The school's alerts nobody judged within `hours` and not yet moved: each moves to the
    /// county's queue (an `Escalate` update).
    async fn stale_alerts(&self, now: u64, hours: u32) -> Result<Vec<(NodeId, Body)>, WriteError> {
        let (me, before) = (self.me, now.saturating_sub(u64::from(hours) * protocol::calendar::HOUR_MS));
        let Some(county) = me.ancestor_at(Tier::County) else { return Ok(Vec::new()) };
        Ok(self
            .reads
            .run(move |st| {
                let mut out = Vec::new();
                for alert in crate::runtime::store::open_alerts::open_alerts(st, Some(me), before, 1_000)? {
                    let moved = related(st, EventKind::AlertUpdate, Some(alert))?.iter().any(|u| {
                        matches!(&u.event.body, Body::AlertUpdate(a) if matches!(a.action, protocol::alert::AlertAction::Escalate { .. }))
                    });
                    if !moved {
                        let update = protocol::alert::AlertUpdate {
                            alert,
                            action: protocol::alert::AlertAction::Escalate { to: county },
                        };
                        out.push((me, Body::AlertUpdate(update)));
                    }
                }
                Ok::<_, crate::storage::StorageError>(out)
            })
            .await?)
    }

    /// The school's alerts confirmed (or overturned into confirmed) in the last 31 days.
    async fn confirmed(&self, now: u64) -> Result<Vec<Confirmed>, WriteError> {
        let since = now.saturating_sub(31 * protocol::calendar::DAY_MS);
        let out = self
            .reads
            .run(move |st| {
                let updates = related(st, EventKind::AlertUpdate, None)?;
                let mut by_alert: BTreeMap<EventId, Vec<&protocol::Event>> = BTreeMap::new();
                for u in &updates {
                    if let Body::AlertUpdate(a) = &u.event.body
                        && u.event.hlc.wall_ms >= since
                    {
                        by_alert.entry(a.alert).or_default().push(&u.event);
                    }
                }
                let mut out = Vec::new();
                for (alert, events) in by_alert {
                    let Some(raised) = read_event(st, alert)? else { continue };
                    let Body::Alert(a) = &raised.event.body else { continue };
                    let state = protocol::alert::fold_alert(
                        a.detected_at_ms,
                        events.iter().filter_map(|e| match &e.body {
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
                Ok::<_, crate::storage::StorageError>(out)
            })
            .await?;
        Ok(out)
    }

    async fn county_pass(&self) -> Result<Pass, WriteError> {
        let (me, now) = (self.me, self.clock.wall_ms());
        let today = china_day(now);
        let from = window_from(now);
        let rules = self.reads.rule_settings_for(me).await?;
        let calendar = self.reads.calendar_for(me).await?;
        let registry = self.reads.registry().await?;
        // The county's schools: the topology's and the ones it registered at run time.
        let mut schools: BTreeMap<NodeId, String> = self
            .topology
            .children(me)
            .filter(|n| n.id.tier() == Tier::School)
            .map(|n| (n.id, n.name.clone()))
            .collect();
        for e in registry.values() {
            if let (EntityKind::School, EntityData::School(s)) = (e.entity.kind, &e.data)
                && e.entity.node.parent() == Some(me)
            {
                schools.insert(e.entity.node, s.name.clone());
            }
        }
        let status = ractor::call_t!(self.node, NodeMsg::Status, CALL_TIMEOUT_MS)
            .map_err(|e| WriteError::Unavailable(e.to_string()))?;
        let linked: BTreeSet<NodeId> =
            status.children.iter().filter(|l| l.state == crate::runtime::link::LinkState::Up).map(|l| l.peer).collect();
        let cursors = self.reads.run(crate::runtime::store::all_cursors).await?;
        let mut seen = Vec::with_capacity(schools.len());
        for (school, name) in schools {
            let ledger = self.reads.ledger(school, from, today).await?;
            let checked_days = ledger
                .values()
                .filter(|i| i.entry.kind == LedgerKind::MorningCheck && i.live().is_some())
                .map(|i| i.entry.day)
                .collect();
            seen.push(SchoolSeen {
                school,
                name,
                prep_start_min: school_prep_start(school, &registry),
                checked_days,
                last_heard_ms: if linked.contains(&school) {
                    now
                } else {
                    self.event_ms(EventId { origin: school, seq: cursors.contiguous(school) }).await?
                },
            });
        }
        let cases: BTreeMap<_, _> =
            self.reads.all_cases().await?.into_iter().filter(|(_, c)| me.is_ancestor_or_self_of(c.school)).collect();
        // A county's schools share its settings (its override, or the province's).
        let case_rules = self.reads.case_rules_for(me).await?;
        let working = |d: u32| calendar.is_working_date(u64::from(d));
        let rules_of = |_s: NodeId| case_rules.clone();
        let judged = judge_county(now, &rules, &working, &seen, &cases, &rules_of);
        let state = self.reads.warnings(None).await?;
        let owed = reconcile(&judged, &state, &county_rules(), from, now);
        let mut pass = count(&owed);
        let mut items: Vec<(NodeId, Body)> = owed.into_iter().map(|w| (w.key.school, Body::Warning(w))).collect();
        // Automatic cases for the warnings whose rules open one, by the rule settings of each
        // warning's school (the county's own override or the province's).
        let rules_for = |s: NodeId| (rules.clone(), rules_of(s));
        let fresh = cases_owed(&state, &cases, &rules_for, now);
        pass.cases = fresh.len();
        self.write(std::mem::take(&mut items)).await?;
        // One write per case: a pending id names the case opened earlier in the same write.
        for (school, steps) in fresh {
            let items = steps
                .into_iter()
                .map(|action| (school, Body::Case(CaseEvent { case: pending_case(me), action })))
                .collect();
            self.write(items).await?;
        }
        if pass != Pass::default() {
            info!(node = %me, raised = pass.raised, resolved = pass.resolved, cases = pass.cases, "warnings: the county's rules judged");
        }
        Ok(pass)
    }
}

impl Engine {
    /// The HLC time of an event this node holds (0: none).
    async fn event_ms(&self, id: EventId) -> Result<u64, WriteError> {
        if id.seq == 0 {
            return Ok(0);
        }
        Ok(self
            .reads
            .run(move |st| {
                Ok::<_, crate::storage::StorageError>(read_event(st, id)?.map_or(0, |e| e.event.hlc.wall_ms))
            })
            .await?)
    }
}

fn count(owed: &[protocol::warning::WarningEvent]) -> Pass {
    let raised = owed.iter().filter(|w| matches!(w.action, protocol::warning::WarningAction::Raise { .. })).count();
    Pass { raised, resolved: owed.len() - raised, cases: 0, moved: 0 }
}
