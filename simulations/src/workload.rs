//! A school day's work, drawn from the seed at DOMAIN.md's rates: AI alerts at every school (with
//! the day's peaks), verdicts on half of them, cases from confirmed alerts and from the province's
//! online spot checks, every case's lifecycle (acknowledge, rectify, review — one in ten rejected
//! once — close; some never rectified, so they go overdue and the schedulers escalate them),
//! directives and bulletins — and every school's food-safety ledgers and camera liveness on every
//! working day ([`crate::ledgers`]). Everything is an [`Action`] at a simulated instant; actions
//! taken schedule their follow-ups.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use node::runtime::cameras::Beat;
use protocol::alert::{AlertRaised, AlertType, Severity};
use protocol::case::{CaseAction, CaseEvent, CaseId, CaseRules, CaseStatus, fold};
use protocol::{Body, Directive, EventId, EventKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use topology::{NodeId, Tier, Topology};

use crate::ledgers::{AI_ZONES, CANTEEN, CertPlan, Outage, SchoolPlan, SchoolWork, StaffPlan, draw_day, draw_outages};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
const DAY_MS: u64 = 24 * HOUR;

/// What one simulated person or device does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// A camera at `school` detects something.
    Alert { school: NodeId },
    /// A verdict on an alert: confirm (opening a case when `open_case`) or dismiss.
    Verdict { by: NodeId, alert: EventId, confirm: bool, open_case: bool },
    /// The province's online spot check of a school's canteen; a failed one opens a case per
    /// problem found.
    SpotCheck { school: NodeId, fail: bool },
    /// A step on a case by `by`.
    Step { by: NodeId, case: CaseId, step: Step },
    /// A directive from `from` to the unit `to` (a bulletin when `to` is the province).
    Directive { from: NodeId, to: NodeId },
    /// A school registers a new staff member with a health certificate (registry changes).
    Registry { school: NodeId },
    /// Midnight (China time) of the run's `day`-th day: draws every school's ledgers for the day
    /// (on a working day) and its camera outages.
    Day { day: u32 },
    /// A piece of a school's day: its registration, a ledger session, a certificate, cameras back.
    School { school: NodeId, work: SchoolWork },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Ack,
    Submit,
    Review,
    Close,
}

/// Cameras' heartbeats to keep, by camera id.
pub type Beats = Vec<(String, Beat)>;

/// Counters of what the workload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkloadStats {
    pub alerts: u64,
    pub verdicts: u64,
    pub cases_opened: u64,
    pub spot_checks: u64,
    pub spot_check_cases: u64,
    pub steps: u64,
    pub directives: u64,
    pub registry_changes: u64,
    /// Ledger writes (one session each) and the records they wrote, by kind.
    pub ledger_writes: u64,
    pub ledger_records: BTreeMap<String, u64>,
    /// Schools registered at the start (canteen, licence, staff, certificates, suppliers,
    /// cameras) and the entities they wrote; certificates registered or renewed later.
    pub schools_registered: u64,
    pub registered_entities: u64,
    pub certificates: u64,
    /// Camera outages drawn (each one camera, or a whole school's), and the cameras they took dark.
    pub camera_outages: u64,
    pub cameras_dark: u64,
    /// Actions not taken: the acting node was down, or the case had moved on meanwhile.
    pub skipped_down: u64,
    pub skipped_state: u64,
}

/// An event the system acknowledged: it must end up at every node that should hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub scope: NodeId,
    pub kind: EventKind,
    /// Simulated ms when it was written.
    pub at_ms: u64,
}

pub struct Workload {
    rng: ChaCha8Rng,
    /// The ledgers' and cameras' own stream, so they leave the alerts' draws as they were.
    lrng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<(u64, u64, Action)>>,
    next: u64,
    pub stats: WorkloadStats,
    /// Every acknowledged event.
    pub ledger: BTreeMap<EventId, Acked>,
    end_ms: u64,
    /// Wall time (unix ms) of the run's start: 00:00 China time of its first day.
    wall0: u64,
    /// Every school's canteen as drawn.
    pub schools: BTreeMap<NodeId, SchoolPlan>,
    /// Cameras dark until (simulated ms; `u64::MAX`: for good), by school and camera number.
    dark: BTreeMap<(NodeId, u8), u64>,
}

/// Alerts per school day at DOMAIN.md's rate: ≈ 0.5 per AI camera, half of ≈ 7.8 cameras per
/// canteen run AI → ≈ 1.96 per school (33,600 over Hebei's 17,183 schools).
pub const ALERTS_PER_SCHOOL_DAY: f64 = 33_600.0 / 17_183.0;

/// The day's shape: weights per hour of the day (peaks 06:00–07:30, 09:30–12:00, 15:30–17:30).
const HOUR_WEIGHTS: [f64; 24] = [
    0.2, 0.2, 0.2, 0.2, 0.2, 0.4, 3.0, 2.0, 1.0, 2.0, 3.0, 3.0, 1.0, 0.6, 0.8, 2.0, 3.0, 2.0, 0.8, 0.6, 0.4, 0.3, 0.3,
    0.2,
];

impl Workload {
    /// Plans a day of `day_ms` simulated ms over `topology`, starting at 00:00 of the day (wall
    /// time `wall0`). `intensity` scales the alert rate (1.0 = DOMAIN.md's). The ledgers follow
    /// the wall clock, whatever `day_ms`: each calendar day the run spans is a day of ledgers.
    pub fn plan(topology: &Topology, seed: u64, day_ms: u64, intensity: f64, wall0: u64) -> Workload {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0da1_1da7);
        let schools: Vec<NodeId> = topology.nodes().map(|e| e.id).filter(|n| n.tier() == Tier::School).collect();
        let counties: Vec<NodeId> = topology.nodes().map(|e| e.id).filter(|n| n.tier() == Tier::County).collect();
        let mut w = Workload {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x00ac_c705),
            queue: BinaryHeap::new(),
            next: 0,
            stats: WorkloadStats::default(),
            ledger: BTreeMap::new(),
            end_ms: day_ms,
            lrng: ChaCha8Rng::seed_from_u64(seed ^ 0x1ed9_e750),
            wall0,
            schools: BTreeMap::new(),
            dark: BTreeMap::new(),
        };
        // Every school registers its canteen at the start of the run; each midnight draws the day.
        let mut plan_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5c40_01a2);
        for s in &schools {
            w.schools.insert(*s, SchoolPlan::draw(&mut plan_rng, wall0));
            w.push(0, Action::School { school: *s, work: SchoolWork::Register });
        }
        for day in 0..day_ms.div_ceil(DAY_MS) {
            w.push(day * DAY_MS, Action::Day { day: day as u32 });
        }
        // Alerts, shaped by the hour weights, over the day (scaled to `day_ms`).
        let total_weight: f64 = HOUR_WEIGHTS.iter().sum();
        let alerts = (schools.len() as f64 * ALERTS_PER_SCHOOL_DAY * intensity).round() as u64;
        for _ in 0..alerts {
            let mut pick = rng.random::<f64>() * total_weight;
            let mut hour = 0;
            while hour < 23 && pick >= HOUR_WEIGHTS[hour] {
                pick -= HOUR_WEIGHTS[hour];
                hour += 1;
            }
            let at = ((hour as f64 + rng.random::<f64>()) / 24.0 * day_ms as f64) as u64;
            let school = schools[rng.random_range(0..schools.len())];
            w.push(at, Action::Alert { school });
        }
        // Spot checks: ≥ 200 canteens a day (scaled with the tree's size), in office hours; a
        // quarter fail, with ≈ 1.6 problems each (≈ 80 cases a day for Hebei).
        let share = schools.len() as f64 / 17_183.0;
        let checks = (200.0 * share * intensity).ceil() as u64;
        for _ in 0..checks {
            let at = ((9.0 + 8.0 * rng.random::<f64>()) / 24.0 * day_ms as f64) as u64;
            let school = schools[rng.random_range(0..schools.len())];
            w.push(at, Action::SpotCheck { school, fail: rng.random_bool(0.25) });
        }
        // A directive per county in the morning and a province bulletin in the afternoon.
        let province = topology.root();
        for c in &counties {
            if rng.random_bool(0.5) {
                let at = ((8.0 + rng.random::<f64>()) / 24.0 * day_ms as f64) as u64;
                w.push(at, Action::Directive { from: *c, to: *c });
            }
        }
        w.push(day_ms * 15 / 24, Action::Directive { from: province, to: province });
        // Staff changes: about one school in twenty registers a new staff member (with a health
        // certificate) during office hours.
        for _ in 0..(schools.len() / 20).max(1) {
            let at = ((8.0 + 9.0 * rng.random::<f64>()) / 24.0 * day_ms as f64) as u64;
            let school = schools[rng.random_range(0..schools.len())];
            w.push(at, Action::Registry { school });
        }
        w
    }

    fn push(&mut self, at: u64, a: Action) {
        self.next += 1;
        self.queue.push(Reverse((at, self.next, a)));
    }

    /// When the next action is due.
    pub fn next_at(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn pop(&mut self) -> Option<(u64, Action)> {
        self.queue.pop().map(|Reverse((t, _, a))| (t, a))
    }

    fn later(&mut self, now: u64, min: u64, max: u64, a: Action) {
        let at = now + self.rng.random_range(min..=max.max(min));
        if at < self.end_ms {
            self.push(at, a);
        }
    }

    /// A random alert body.
    pub fn alert_body(&mut self, now_wall_ms: u64) -> AlertRaised {
        // DOMAIN.md's mix (no mask 30%, no hat 22%, no uniform 14%, phone 9%, bins 10%, floor 5%,
        // smoking 3%, leave post 3%, rodent 2%, stranger 1%, fire 0.3%, video 0.7%).
        const MIX: [(AlertType, f64); 12] = [
            (AlertType::NoMask, 30.0),
            (AlertType::NoChefHat, 22.0),
            (AlertType::NoUniform, 14.0),
            (AlertType::Phone, 9.0),
            (AlertType::BinUncovered, 10.0),
            (AlertType::FloorWater, 5.0),
            (AlertType::Smoking, 3.0),
            (AlertType::LeavePost, 3.0),
            (AlertType::Rodent, 2.0),
            (AlertType::Stranger, 1.0),
            (AlertType::FireSmoke, 0.3),
            (AlertType::VideoLost, 0.7),
        ];
        let mut pick = self.rng.random::<f64>() * 100.0;
        let mut kind = AlertType::NoMask;
        for (k, w) in MIX {
            if pick < w {
                kind = k;
                break;
            }
            pick -= w;
        }
        // One of the school's AI cameras, in its zone.
        let k = self.rng.random_range(0..AI_ZONES.len());
        let (camera, zone) = (format!("cam-{:02}", k + 1), AI_ZONES[k]);
        AlertRaised {
            camera,
            canteen: CANTEEN.into(),
            zone,
            alert_type: kind,
            severity: kind.default_severity(zone),
            detected_at_ms: now_wall_ms,
            confidence_permille: self.rng.random_range(700..=990),
            snapshot: String::new(),
            repeat_count: 1,
        }
    }

    /// Records what a node acknowledged.
    pub fn acked(&mut self, stored: &[node::runtime::store::StoredEvent], at_ms: u64) {
        for s in stored {
            self.ledger.insert(s.event.id(), Acked { scope: s.event.scope, kind: s.event.kind(), at_ms });
        }
    }

    /// Follow-ups of a raised alert: half get a verdict within two hours (by the school's
    /// food-safety officer, or the county); one in ten confirmations opens a case (5% of all).
    pub fn after_alert(&mut self, now: u64, school: NodeId, alert: EventId) {
        if !self.rng.random_bool(0.5) {
            return;
        }
        let confirm = self.rng.random_bool(0.5);
        let open_case = confirm && self.rng.random_bool(0.2);
        let by = if open_case || self.rng.random_bool(0.3) { school.parent().unwrap_or(school) } else { school };
        self.later(now, 5 * MIN, 2 * HOUR, Action::Verdict { by, alert, confirm, open_case });
    }

    /// Follow-ups of a case just opened with its notice: the school acknowledges within hours;
    /// most rectify in time, ≈ 8% never do (they go overdue and get escalated).
    pub fn after_open(&mut self, now: u64, school: NodeId, case: CaseId) {
        self.later(now, 20 * MIN, 3 * HOUR, Action::Step { by: school, case, step: Step::Ack });
        if !self.rng.random_bool(0.08) {
            self.later(now, 4 * HOUR, 20 * HOUR, Action::Step { by: school, case, step: Step::Submit });
        }
    }

    /// The bodies an action writes at its node, given the node's current view of the case (for
    /// steps). `None`: nothing to write (the case moved on, or the action does not apply).
    pub fn bodies(
        &mut self,
        now_wall_ms: u64,
        action: &Action,
        case: Option<&protocol::case::CaseState>,
    ) -> Option<(NodeId, Vec<(NodeId, Body)>)> {
        match action {
            Action::Alert { school } => {
                let a = self.alert_body(now_wall_ms);
                Some((*school, vec![(*school, Body::Alert(a))]))
            }
            Action::Verdict { .. } => None, // needs the alert body: see `verdict_bodies`
            Action::SpotCheck { school, fail } => {
                use protocol::spot::FocusArea;
                // A failed check has one or two failing areas (≈ 1.6 problems on average).
                let failing = if *fail { if self.rng.random_bool(0.6) { 2 } else { 1 } } else { 0 };
                let first = self.rng.random_range(0..4);
                let failed: Vec<(FocusArea, Severity)> = (0..failing)
                    .map(|i| {
                        let severity =
                            [Severity::General, Severity::General, Severity::Serious][self.rng.random_range(0..3)];
                        (FocusArea::ALL[(first + i) % 4], severity)
                    })
                    .collect();
                let root = school.ancestors().last().unwrap_or(*school);
                let items = protocol::verdict::check_items(
                    root,
                    *school,
                    "main",
                    &failed,
                    "",
                    &CaseRules::default(),
                    now_wall_ms,
                )
                .ok()?;
                Some((root, items))
            }
            Action::Step { by, case: id, step } => {
                let st = case?;
                let action = match (step, st.status) {
                    (Step::Ack, CaseStatus::NoticeIssued) => CaseAction::Acknowledge,
                    (Step::Submit, CaseStatus::NoticeIssued | CaseStatus::Rectifying) => {
                        CaseAction::Submit { evidence: vec![format!("evidence/{id}.jpg")], note: "rectified".into() }
                    }
                    (Step::Review, CaseStatus::Submitted) => {
                        let passed = !self.rng.random_bool(0.10) || st.rework > 0;
                        CaseAction::Review { passed, comment: String::new(), new_deadline_ms: None }
                    }
                    (Step::Close, CaseStatus::Reviewed) => CaseAction::Close { comment: "rectified".into() },
                    _ => return None,
                };
                Some((*by, vec![(st.school, Body::Case(CaseEvent { case: *id, action }))]))
            }
            Action::Registry { school } => {
                use protocol::registry::{
                    EntityData, EntityKind, EntityRef, HealthCertificate, RegistryChange, RegistryOp, Staff, StaffRole,
                };
                let n = self.rng.random_range(100..100_000);
                let staff_id = format!("staff-{n}");
                let staff = RegistryChange {
                    entity: EntityRef { kind: EntityKind::Staff, node: *school, id: staff_id.clone() },
                    op: RegistryOp::Upsert(EntityData::Staff(Staff {
                        name: format!("cook {n}"),
                        role: StaffRole::Cook,
                        on_duty: true,
                    })),
                };
                let cert = RegistryChange {
                    entity: EntityRef { kind: EntityKind::HealthCertificate, node: *school, id: format!("hc-{n}") },
                    op: RegistryOp::Upsert(EntityData::HealthCertificate(HealthCertificate {
                        staff: staff_id.clone(),
                        number: format!("HC{n:08}"),
                        valid_until_ms: now_wall_ms + 365 * 24 * HOUR,
                    })),
                };
                let mut items = vec![(*school, Body::Registry(staff)), (*school, Body::Registry(cert))];
                // The new cook is on duty from today: checked as they start (on a working day).
                let day = protocol::ledger::china_day(now_wall_ms);
                if let Some(plan) = self.schools.get_mut(school) {
                    plan.staff.push(StaffPlan {
                        id: staff_id,
                        role: StaffRole::Cook,
                        cert: CertPlan::Until(now_wall_ms + 365 * 24 * HOUR),
                    });
                    let index = (plan.staff.len() - 1) as u8;
                    if protocol::calendar::WorkCalendar::builtin().is_working_date(u64::from(day)) {
                        let work = SchoolWork::LateCheck { day, staff: index };
                        items.extend(crate::ledgers::ledger_entries(*school, plan, &work, now_wall_ms));
                    }
                }
                Some((*school, items))
            }
            Action::Day { .. } | Action::School { .. } => None,
            Action::Directive { from, to } => {
                let title = if to.tier() == Tier::Province { "province bulletin" } else { "county directive" };
                let body = Body::Directive(Directive { title: title.into(), text: "see attached".into() });
                Some((*from, vec![(*to, body)]))
            }
        }
    }

    /// The bodies of a verdict on `alert` (whose body is `raised`).
    pub fn verdict_bodies(
        &self,
        now_wall_ms: u64,
        by: NodeId,
        alert: EventId,
        raised: &AlertRaised,
        confirm: bool,
        open_case: bool,
    ) -> Vec<(NodeId, Body)> {
        use protocol::verdict::{Verdict, verdict_items};
        // The workload judges alerts it has not judged yet: a fresh state; a school confirms
        // without opening a case.
        let fresh = protocol::alert::fold_alert(raised.detected_at_ms, std::iter::empty());
        let verdict = if confirm {
            Verdict::Confirm { note: String::new(), open_case: open_case && by != alert.origin }
        } else {
            Verdict::Dismiss { reason: "false positive".into() }
        };
        verdict_items(by, alert, raised, &fresh, verdict, &CaseRules::default(), now_wall_ms).unwrap_or_default()
    }

    /// The wall time an online stretch that no outage ends is stamped with.
    fn far_wall(&self) -> u64 {
        self.wall0 + self.end_ms + crate::ledgers::FAR_AHEAD_MS
    }

    /// A heartbeat of camera `k` of `school`, online until `at_wall`.
    fn beat(&self, school: NodeId, k: u8, at_wall: u64) -> (String, Beat) {
        let days = self.schools.get(&school).map_or(30, |p| p.recording_days);
        (
            format!("cam-{k:02}"),
            Beat { at_ms: at_wall, online: true, recording_days: Some(days), device: "nvr-1".into() },
        )
    }

    /// Midnight of one of the run's days (`now`, simulated ms): draws every school's ledgers for
    /// the day (on a working day of the built-in calendar, as the nodes use) and its camera
    /// outages. Returns the heartbeats to keep from now: each camera going dark today beats until
    /// its outage begins.
    pub fn plan_day(&mut self, now: u64) -> Vec<(NodeId, Beats)> {
        let day = protocol::ledger::china_day(self.wall0 + now);
        let working = protocol::calendar::WorkCalendar::builtin().is_working_date(u64::from(day));
        // Day 0 (1970-01-01) was a Thursday; Monday is 0.
        let weekday = (day + 3) % 7;
        let ids: Vec<NodeId> = self.schools.keys().copied().collect();
        let mut work = Vec::new();
        let mut outages: Vec<(NodeId, Outage)> = Vec::new();
        for s in ids {
            let Some(plan) = self.schools.get(&s) else { continue };
            if working {
                for (at, w) in draw_day(&mut self.lrng, plan, day, now, self.wall0, weekday) {
                    work.push((at, s, w));
                }
            }
            for mut o in draw_outages(&mut self.lrng, plan, now) {
                // A camera still dark from an earlier outage stays so.
                o.cameras.retain(|k| self.dark.get(&(s, *k)).is_none_or(|until| *until <= o.from));
                if !o.cameras.is_empty() {
                    outages.push((s, o));
                }
            }
        }
        for (at, school, w) in work {
            if at < self.end_ms {
                self.push(at, Action::School { school, work: w });
            }
        }
        let mut beats: BTreeMap<NodeId, Beats> = BTreeMap::new();
        for (s, o) in outages {
            self.stats.camera_outages += 1;
            self.stats.cameras_dark += o.cameras.len() as u64;
            for k in &o.cameras {
                self.dark.insert((s, *k), o.until.unwrap_or(u64::MAX));
                let b = self.beat(s, *k, self.wall0 + o.from);
                beats.entry(s).or_default().push(b);
            }
            if let Some(until) = o.until
                && until < self.end_ms
            {
                self.push(until, Action::School { school: s, work: SchoolWork::CamerasBack { cameras: o.cameras } });
            }
        }
        beats.into_iter().collect()
    }

    /// What a piece of a school's day writes at `now_wall_ms`, and the heartbeats it sets.
    pub fn school_bodies(
        &mut self,
        now_wall_ms: u64,
        school: NodeId,
        work: &SchoolWork,
    ) -> (Vec<(NodeId, Body)>, Beats) {
        let Some(plan) = self.schools.get(&school) else { return (Vec::new(), Vec::new()) };
        match work {
            SchoolWork::Register => {
                let bodies = crate::ledgers::register_bodies(school, plan);
                let beats = (1..=plan.cameras).map(|k| self.beat(school, k, self.far_wall())).collect();
                (bodies, beats)
            }
            SchoolWork::Certificate { staff } => {
                let until = now_wall_ms + 365 * DAY_MS;
                let Some(s) = plan.staff.get(usize::from(*staff)) else { return (Vec::new(), Vec::new()) };
                let body = crate::ledgers::certificate(school, &s.id, until);
                if let Some(s) = self.schools.get_mut(&school).and_then(|p| p.staff.get_mut(usize::from(*staff))) {
                    s.cert = CertPlan::Until(until);
                }
                (vec![body], Vec::new())
            }
            SchoolWork::CamerasBack { cameras } => {
                for k in cameras {
                    self.dark.remove(&(school, *k));
                }
                (Vec::new(), cameras.iter().map(|k| self.beat(school, *k, self.far_wall())).collect())
            }
            _ => (crate::ledgers::ledger_entries(school, plan, work, now_wall_ms), Vec::new()),
        }
    }

    /// Follow-ups after a step was written.
    pub fn after_step(&mut self, now: u64, by: NodeId, case: CaseId, school: NodeId, step: Step, failed_review: bool) {
        let county = school.parent().unwrap_or(by);
        match step {
            Step::Ack => {}
            Step::Submit => self.later(now, HOUR, 10 * HOUR, Action::Step { by: county, case, step: Step::Review }),
            Step::Review if failed_review => {
                self.later(now, 2 * HOUR, 10 * HOUR, Action::Step { by: school, case, step: Step::Submit })
            }
            Step::Review => self.later(now, 0, 2 * HOUR, Action::Step { by: county, case, step: Step::Close }),
            Step::Close => {}
        }
    }
}

/// Every case a node's events mention, with its inputs (one pass over the events).
pub fn cases_of(events: &[node::runtime::store::StoredEvent]) -> BTreeMap<CaseId, Vec<protocol::case::CaseInput>> {
    let mut out: BTreeMap<CaseId, Vec<protocol::case::CaseInput>> = BTreeMap::new();
    for input in node::runtime::reads::case_inputs(events) {
        out.entry(input.case).or_default().push(input);
    }
    out
}

/// Folds case `id` from the events of one node (helper for the harness).
pub fn fold_case(events: &[node::runtime::store::StoredEvent], id: CaseId) -> Option<protocol::case::CaseState> {
    fold(id, &node::runtime::reads::case_inputs(events))
}
