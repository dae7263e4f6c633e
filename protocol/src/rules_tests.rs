//! Each early-warning rule fires at its threshold and clears when its cause goes away.

use std::collections::{BTreeMap, BTreeSet};

use topology::NodeId;

use crate::alert::AlertType;
use crate::calendar::{DAY_MS, HOUR_MS};
use crate::case::{CaseAction, CaseInput, CaseRules, CaseSource, fold};
use crate::event::{Body, Event, EventId, Hlc};
use crate::ids::CaseId;
use crate::ledger::*;
use crate::registry::*;
use crate::rules::*;
use crate::warning::*;

const MON: u32 = 20_423; // 2025-12-01, a Monday

fn school() -> NodeId {
    "130102-S0001".parse().unwrap()
}

fn at(day: u32, h: u16, m: u16) -> u64 {
    at_minute(day, h * 60 + m)
}

fn weekdays(d: u32) -> bool {
    (u64::from(d) + 3) % 7 < 5
}

struct World {
    registry: BTreeMap<EntityRef, Entity>,
    events: Vec<Event>,
    cameras: Vec<CameraLiveness>,
    confirmed: Vec<Confirmed>,
    settings: Settings,
    rules: RuleSettings,
}

impl World {
    fn new() -> World {
        let mut w = World {
            registry: BTreeMap::new(),
            events: Vec::new(),
            cameras: Vec::new(),
            confirmed: Vec::new(),
            settings: Settings::default(),
            rules: RuleSettings::default(),
        };
        w.put("c1", EntityData::Canteen(Canteen { name: "一食堂".into(), address: String::new() }));
        w.put(
            "c1",
            EntityData::CanteenLicence(CanteenLicence {
                licence_no: "JY113".into(),
                valid_until_ms: at(MON + 365, 0, 0),
                mode: OperationMode::SelfRun,
                prep_start_min: 7 * 60,
                meals: vec![MealSlot { meal: Meal::Lunch, start_min: 11 * 60 + 30, end_min: 12 * 60 + 30 }],
            }),
        );
        w.put("st1", EntityData::Staff(Staff { name: "张三".into(), role: StaffRole::Cook, on_duty: true }));
        w.put(
            "hc1",
            EntityData::HealthCertificate(HealthCertificate {
                staff: "st1".into(),
                number: "HC-1".into(),
                valid_until_ms: at(MON + 200, 0, 0),
            }),
        );
        w
    }

    fn put(&mut self, id: &str, data: EntityData) {
        let r = EntityRef { kind: data.kind(), node: school(), id: id.into() };
        self.registry.insert(
            r.clone(),
            Entity {
                entity: r,
                data,
                updated_by: EventId { origin: school(), seq: 1 },
                updated_by_person: None,
                updated_hlc: Hlc::default(),
            },
        );
    }

    fn record(&mut self, id: &str, day: u32, r: LedgerRecord) {
        let seq = self.events.len() as u64 + 1;
        self.events.push(Event {
            origin: school(),
            seq,
            hlc: Hlc { wall_ms: seq, logical: 0 },
            scope: school(),
            body: Body::Ledger(LedgerEntry { kind: r.kind(), id: id.into(), day, op: LedgerOp::Record(r) }),
            by: None,
        });
    }

    fn judge(&self, now: u64) -> BTreeMap<WarningKey, Judgement> {
        let ledger = ledger_view(&self.events);
        judge_school(&SchoolFacts {
            school: school(),
            now_ms: now,
            settings: &self.settings,
            rules: &self.rules,
            working: &weekdays,
            registry: &self.registry,
            ledger: &ledger,
            cameras: &self.cameras,
            confirmed: &self.confirmed,
        })
    }

    /// The level `rule` judges for `subject` in `period` at `now` (`None`: clear or not judged).
    fn level(&self, now: u64, rule: RuleId, subject: &str, period: u32) -> Option<Level> {
        let key = WarningKey { rule, school: school(), subject: subject.into(), period };
        match self.judge(now).get(&key) {
            Some(Judgement::Raise { level, .. }) => Some(*level),
            _ => None,
        }
    }
}

fn check(staff: &str, day: u32, temp: u16, sent_home: bool) -> LedgerRecord {
    LedgerRecord::MorningCheck(MorningCheck {
        staff: staff.into(),
        temperature_dc: temp,
        symptoms: vec![],
        sent_home,
        checked_at_ms: at(day, 6, 40),
        note: String::new(),
    })
}

fn sample(day: u32, grams: u32, disposed: Option<u64>, fridge: bool) -> LedgerRecord {
    LedgerRecord::FoodSample(FoodSample {
        canteen: "c1".into(),
        meal: Meal::Lunch,
        dish: "米饭".into(),
        grams,
        sampled_at_ms: at(day, 12, 0),
        refrigerated: fridge,
        disposed_at_ms: disposed,
        batches: vec![],
        sampled_by: "李四".into(),
    })
}

fn meal(companion: Companion) -> LedgerRecord {
    LedgerRecord::AccompaniedMeal(AccompaniedMeal {
        canteen: "c1".into(),
        meal: Meal::Lunch,
        companion,
        name: "王校长".into(),
        rating: 5,
        remarks: String::new(),
    })
}

#[test]
fn health_certificates_expire_by_level_and_missing_ones_are_red() {
    let mut w = World::new();
    let days = |d: u32| at(MON + 200 - d, 9, 0);
    assert_eq!(w.level(days(40), RuleId::HealthCertExpiring, "st1", 0), None);
    assert_eq!(w.level(days(20), RuleId::HealthCertExpiring, "st1", 0), Some(Level::Yellow));
    assert_eq!(w.level(days(5), RuleId::HealthCertExpiring, "st1", 0), Some(Level::Orange));
    assert_eq!(w.level(at(MON + 201, 9, 0), RuleId::HealthCertExpiring, "st1", 0), Some(Level::Red));
    // A new certificate clears it.
    w.put(
        "hc2",
        EntityData::HealthCertificate(HealthCertificate {
            staff: "st1".into(),
            number: "HC-2".into(),
            valid_until_ms: at(MON + 600, 0, 0),
        }),
    );
    assert_eq!(w.level(at(MON + 201, 9, 0), RuleId::HealthCertExpiring, "st1", 0), None);
    // On duty with none: red; off duty: nothing.
    w.put("st2", EntityData::Staff(Staff { name: "赵六".into(), role: StaffRole::Helper, on_duty: true }));
    assert_eq!(w.level(at(MON, 9, 0), RuleId::HealthCertMissing, "st2", 0), Some(Level::Red));
    w.put("st2", EntityData::Staff(Staff { name: "赵六".into(), role: StaffRole::Helper, on_duty: false }));
    assert_eq!(w.level(at(MON, 9, 0), RuleId::HealthCertMissing, "st2", 0), None);
}

#[test]
fn morning_checks_yellow_at_prep_orange_an_hour_later_red_when_abnormal_on_duty() {
    let mut w = World::new();
    assert_eq!(w.level(at(MON, 6, 59), RuleId::MorningCheckMissing, "st1", MON), None);
    assert_eq!(w.level(at(MON, 7, 0), RuleId::MorningCheckMissing, "st1", MON), Some(Level::Yellow));
    assert_eq!(w.level(at(MON, 8, 0), RuleId::MorningCheckMissing, "st1", MON), Some(Level::Orange));
    // Not on a weekend.
    assert!(!w.judge(at(MON + 5, 9, 0)).keys().any(|k| k.rule == RuleId::MorningCheckMissing && k.period == MON + 5));
    w.record("mc1", MON, check("st1", MON, 385, false));
    assert_eq!(w.level(at(MON, 8, 0), RuleId::MorningCheckMissing, "st1", MON), None);
    assert_eq!(w.level(at(MON, 8, 0), RuleId::MorningCheckAbnormal, "st1", MON), Some(Level::Red));
    w.record("mc1", MON, check("st1", MON, 385, true));
    assert_eq!(w.level(at(MON, 8, 0), RuleId::MorningCheckAbnormal, "st1", MON), None);
    // Yesterday's missing check is still judged (and cleared by a late record).
    assert_eq!(w.level(at(MON + 1, 6, 0), RuleId::MorningCheckMissing, "st1", MON), None);
}

#[test]
fn samples_missing_light_or_kept_short() {
    let mut w = World::new();
    let subject = "c1/lunch";
    assert_eq!(w.level(at(MON, 13, 29), RuleId::SampleMissing, subject, MON), None);
    assert_eq!(w.level(at(MON, 13, 30), RuleId::SampleMissing, subject, MON), Some(Level::Orange));
    w.record("fs1", MON, sample(MON, 100, None, true));
    assert_eq!(w.level(at(MON, 13, 30), RuleId::SampleMissing, subject, MON), None);
    assert_eq!(w.level(at(MON, 13, 30), RuleId::SampleUnderweight, "fs1", MON), Some(Level::Yellow));
    w.record("fs1", MON, sample(MON, 150, Some(at(MON + 1, 12, 0)), true));
    assert_eq!(w.level(at(MON + 1, 13, 0), RuleId::SampleUnderweight, "fs1", MON), None);
    assert_eq!(w.level(at(MON + 1, 13, 0), RuleId::SampleKeptShort, "fs1", MON), Some(Level::Red));
    w.record("fs1", MON, sample(MON, 150, Some(at(MON + 2, 12, 0)), true));
    assert_eq!(w.level(at(MON + 2, 13, 0), RuleId::SampleKeptShort, "fs1", MON), None);
    w.record("fs1", MON, sample(MON, 150, None, false));
    assert_eq!(w.level(at(MON, 13, 0), RuleId::SampleKeptShort, "fs1", MON), Some(Level::Red));
}

#[test]
fn leader_meals_missing_and_in_a_row() {
    let mut w = World::new();
    // The school starts keeping ledgers on Monday: meals before do not count.
    w.record("mc1", MON, check("st1", MON, 365, false));
    assert_eq!(w.level(at(MON, 14, 29), RuleId::LeaderMealMissing, "c1/lunch", MON), None);
    assert_eq!(w.level(at(MON, 14, 30), RuleId::LeaderMealMissing, "c1/lunch", MON), Some(Level::Yellow));
    // Monday, Tuesday, Wednesday without: orange on Wednesday afternoon.
    assert_eq!(w.level(at(MON + 1, 15, 0), RuleId::LeaderMealStreak, "c1", 0), None);
    assert_eq!(w.level(at(MON + 2, 15, 0), RuleId::LeaderMealStreak, "c1", 0), Some(Level::Orange));
    w.record("am1", MON + 2, meal(Companion::Leader));
    assert_eq!(w.level(at(MON + 2, 15, 0), RuleId::LeaderMealStreak, "c1", 0), None);
    assert_eq!(w.level(at(MON + 2, 15, 0), RuleId::LeaderMealMissing, "c1/lunch", MON + 2), None);
}

#[test]
fn parent_meals_per_month_once_the_month_has_ended() {
    let mut w = World::new();
    let dec1 = MON;
    let jan5 = MON + 35;
    // December used the ledger but had no parent meal: yellow in January, for December.
    w.record("mc1", dec1, check("st1", dec1, 365, false));
    assert_eq!(w.level(at(jan5, 9, 0), RuleId::ParentMealMissing, "c1", dec1), Some(Level::Yellow));
    w.record("pm1", dec1 + 10, meal(Companion::Parent));
    assert_eq!(w.level(at(jan5, 9, 0), RuleId::ParentMealMissing, "c1", dec1), None);
    assert_eq!(month_start(jan5), dec1 + 31);
}

#[test]
fn purchases_and_licences() {
    let mut w = World::new();
    w.put(
        "sp1",
        EntityData::Supplier(Supplier {
            name: "放心菜店".into(),
            licence_no: "JY1".into(),
            licence_valid_until_ms: at(MON + 20, 0, 0),
            contact: String::new(),
        }),
    );
    let buy = |inspection: &str| {
        LedgerRecord::Purchase(Purchase {
            supplier: "sp1".into(),
            item: "猪肉".into(),
            batch: "B7".into(),
            quantity_milli: 20_000,
            unit: "kg".into(),
            received_at_ms: at(MON, 7, 0),
            inspection_cert: inspection.into(),
            invoice: "INV-1".into(),
        })
    };
    w.record("p1", MON, buy(""));
    assert_eq!(w.level(at(MON + 1, 6, 59), RuleId::PurchaseCertsIncomplete, "p1", MON), None);
    assert_eq!(w.level(at(MON + 1, 7, 0), RuleId::PurchaseCertsIncomplete, "p1", MON), Some(Level::Yellow));
    assert_eq!(w.level(at(MON + 3, 7, 0), RuleId::PurchaseCertsIncomplete, "p1", MON), Some(Level::Orange));
    w.record("p1", MON, buy("QC-9"));
    assert_eq!(w.level(at(MON + 3, 7, 0), RuleId::PurchaseCertsIncomplete, "p1", MON), None);
    assert_eq!(w.level(at(MON, 9, 0), RuleId::SupplierLicence, "sp1", 0), Some(Level::Yellow));
    assert_eq!(w.level(at(MON + 21, 9, 0), RuleId::SupplierLicence, "sp1", 0), Some(Level::Red));
    assert_eq!(w.level(at(MON + 365 - 60, 9, 0), RuleId::CanteenLicence, "c1", 0), Some(Level::Yellow));
    assert_eq!(w.level(at(MON + 365 - 10, 9, 0), RuleId::CanteenLicence, "c1", 0), Some(Level::Orange));
    assert_eq!(w.level(at(MON + 366, 9, 0), RuleId::CanteenLicence, "c1", 0), Some(Level::Red));
    assert_eq!(w.level(at(MON + 100, 9, 0), RuleId::CanteenLicence, "c1", 0), None);
}

#[test]
fn cameras_offline_rate_and_recordings() {
    let mut w = World::new();
    for i in 1..=5 {
        w.put(
            &format!("cam{i}"),
            EntityData::Camera(Camera {
                canteen: "c1".into(),
                name: format!("{i} 号"),
                zone: crate::alert::Zone::Cooking,
                ai_enabled: true,
                parent_visible: false,
            }),
        );
    }
    let live = |i: u32, online: bool, since: u64, days: Option<u32>| CameraLiveness {
        camera: format!("cam{i}"),
        online,
        since_ms: since,
        recording_days: days,
    };
    w.cameras = (1..=5).map(|i| live(i, true, at(MON, 6, 0), Some(30))).collect();
    assert_eq!(w.level(at(MON, 9, 0), RuleId::CameraOffline, "cam1", 0), None);
    assert_eq!(w.level(at(MON, 9, 0), RuleId::CameraRateLow, "c1", 0), None);
    w.cameras[0] = live(1, false, at(MON, 8, 0), Some(20));
    assert_eq!(w.level(at(MON, 9, 0), RuleId::CameraOffline, "cam1", 0), Some(Level::Yellow));
    assert_eq!(w.level(at(MON, 9, 0), RuleId::RecordingShort, "cam1", 0), Some(Level::Red));
    // Outside operating hours: held, not raised.
    let night = w.judge(at(MON, 22, 0));
    assert_eq!(
        night.get(&WarningKey { rule: RuleId::CameraOffline, school: school(), subject: "cam1".into(), period: 0 }),
        Some(&Judgement::Hold)
    );
    // 4/5 online = 80%: not low. 3/5 for over two hours: orange.
    assert_eq!(w.level(at(MON, 11, 0), RuleId::CameraRateLow, "c1", 0), None);
    w.cameras[1] = live(2, false, at(MON, 8, 30), Some(30));
    assert_eq!(w.level(at(MON, 10, 29), RuleId::CameraRateLow, "c1", 0), None);
    assert_eq!(w.level(at(MON, 10, 31), RuleId::CameraRateLow, "c1", 0), Some(Level::Orange));
    // None online for a day: red, even at night.
    w.cameras = (1..=5).map(|i| live(i, false, at(MON, 8, 0), Some(30))).collect();
    assert_eq!(w.level(at(MON + 1, 8, 1), RuleId::CameraRateLow, "c1", 0), Some(Level::Red));
    assert_eq!(w.level(at(MON + 1, 23, 0), RuleId::CameraRateLow, "c1", 0), Some(Level::Red));
}

#[test]
fn the_daily_report_at_eight_pm() {
    let mut w = World::new();
    let s = school().to_string();
    assert_eq!(w.level(at(MON, 19, 59), RuleId::DailyReportMissing, &s, MON), None);
    assert_eq!(w.level(at(MON, 20, 0), RuleId::DailyReportMissing, &s, MON), Some(Level::Yellow));
    w.record("mc1", MON, check("st1", MON, 365, false));
    w.record("fs1", MON, sample(MON, 150, None, true));
    w.record("am1", MON, meal(Companion::Leader));
    assert_eq!(w.level(at(MON, 20, 0), RuleId::DailyReportMissing, &s, MON), Some(Level::Yellow));
    w.record(
        "ds1",
        MON,
        LedgerRecord::Disinfection(Disinfection {
            canteen: "c1".into(),
            target: "餐饮具".into(),
            method: DisinfectMethod::Heat,
            minutes: 15,
            done_at_ms: at(MON, 13, 0),
            done_by: "李四".into(),
        }),
    );
    assert_eq!(w.level(at(MON, 20, 0), RuleId::DailyReportMissing, &s, MON), None);
}

#[test]
fn repeat_violations_in_seven_and_thirty_days() {
    let mut w = World::new();
    let c = |d: u32| Confirmed { canteen: "c1".into(), alert_type: AlertType::NoMask, detected_at_ms: at(d, 10, 0) };
    w.confirmed = vec![c(MON), c(MON + 10), c(MON + 20)];
    let now = at(MON + 21, 9, 0);
    assert_eq!(w.level(now, RuleId::RepeatViolationWeek, "c1/NO_MASK", 0), None);
    assert_eq!(w.level(now, RuleId::RepeatViolationMonth, "c1/NO_MASK", 0), Some(Level::Orange));
    w.confirmed = vec![c(MON + 18), c(MON + 19), c(MON + 20)];
    assert_eq!(w.level(now, RuleId::RepeatViolationWeek, "c1/NO_MASK", 0), Some(Level::Orange));
}

fn case_events(county: NodeId, actions: Vec<CaseAction>, at_ms: u64) -> Vec<CaseInput> {
    let id = CaseId { opened_by: county, seq: 1 };
    actions
        .into_iter()
        .enumerate()
        .map(|(i, action)| CaseInput {
            id: EventId { origin: county, seq: i as u64 + 1 },
            hlc: Hlc { wall_ms: at_ms + i as u64 * (DAY_MS + 1), logical: 0 },
            scope: school(),
            case: id,
            action,
            person: None,
        })
        .collect()
}

#[test]
fn the_county_judges_silent_schools_and_late_cases() {
    let county: NodeId = "130102".parse().unwrap();
    let seen = |checked: bool, heard: bool| SchoolSeen {
        school: school(),
        name: "一中".into(),
        prep_start_min: 7 * 60,
        checked_days: if checked { BTreeSet::from([MON]) } else { BTreeSet::new() },
        last_heard_ms: if heard { at(MON, 7, 30) } else { at(MON - 1, 16, 0) },
    };
    let rules = RuleSettings::default();
    let none = BTreeMap::new();
    let judge = |s: SchoolSeen, now| judge_county(now, &rules, &weekdays, &[s], &none, &|_| CaseRules::default());
    let key = WarningKey { rule: RuleId::SchoolSilent, school: school(), subject: school().to_string(), period: MON };
    assert!(matches!(
        judge(seen(false, false), at(MON, 8, 0)).get(&key),
        Some(Judgement::Raise { level: Level::Yellow, .. })
    ));
    assert!(matches!(judge(seen(false, false), at(MON, 7, 59)).get(&key), Some(Judgement::Clear { .. })));
    assert!(matches!(judge(seen(false, true), at(MON, 8, 0)).get(&key), Some(Judgement::Clear { .. })));
    assert!(matches!(judge(seen(true, false), at(MON, 8, 0)).get(&key), Some(Judgement::Clear { .. })));

    // A case notified Monday with a deadline Tuesday 09:00, not rectified.
    let inputs = case_events(
        county,
        vec![
            CaseAction::Open {
                school: school(),
                severity: crate::alert::Severity::General,
                source: CaseSource::OnSite,
                title: "地面积水".into(),
                detail: String::new(),
                number: 1,
            },
            CaseAction::IssueNotice { deadline_ms: at(MON + 1, 9, 0), text: "整改".into() },
            CaseAction::MarkOverdue,
        ],
        at(MON - 1, 9, 0),
    );
    let id = CaseId { opened_by: county, seq: 1 };
    let cases = BTreeMap::from([(id, fold(id, &inputs).unwrap())]);
    let out = judge_county(at(MON + 2, 9, 0), &rules, &weekdays, &[], &cases, &|_| CaseRules::default());
    let key = WarningKey { rule: RuleId::RectificationOverdue, school: school(), subject: id.to_string(), period: 0 };
    assert!(matches!(out.get(&key), Some(Judgement::Raise { level: Level::Red, .. })), "{out:?}");
}

#[test]
fn a_warning_whose_rule_opens_a_case_gets_one_case_per_episode() {
    let county: NodeId = "130102".parse().unwrap();
    let key = WarningKey { rule: RuleId::HealthCertMissing, school: school(), subject: "st2".into(), period: 0 };
    let raise = Event {
        origin: school(),
        seq: 9,
        hlc: Hlc { wall_ms: at(MON, 9, 0), logical: 0 },
        scope: school(),
        body: Body::Warning(WarningEvent {
            key: key.clone(),
            action: WarningAction::Raise {
                level: Level::Red,
                text: "在岗人员赵六没有登记健康证".into(),
                evidence: vec![],
                at_ms: at(MON, 9, 0),
            },
        }),
        by: None,
    };
    let warnings = fold_warnings([&raise]);
    let rules_for = |_| (RuleSettings::default(), CaseRules::default());
    let owed = cases_owed(&warnings, &BTreeMap::new(), &rules_for, at(MON, 9, 1));
    assert_eq!(owed.len(), 1);
    let (s, steps) = &owed[0];
    assert_eq!(*s, school());
    assert!(
        matches!(&steps[0], CaseAction::Open { source: CaseSource::Warning { episode, .. }, severity: crate::alert::Severity::Severe, .. } if *episode == raise.id())
    );
    let CaseAction::IssueNotice { deadline_ms, .. } = steps[1] else { panic!("{steps:?}") };
    assert_eq!(deadline_ms, at(MON, 9, 1) + 72 * HOUR_MS);
    // Once the case exists: nothing more.
    let inputs = case_events(county, steps.clone(), at(MON, 9, 1));
    let id = CaseId { opened_by: county, seq: 1 };
    let cases = BTreeMap::from([(id, fold(id, &inputs).unwrap())]);
    assert!(cases_owed(&warnings, &cases, &rules_for, at(MON, 9, 2)).is_empty());
    // Notify-only rules open nothing.
    let quiet = |_| {
        (
            RuleSettings { actions: vec![(RuleId::HealthCertMissing, RuleAction::Notify)], ..RuleSettings::default() },
            CaseRules::default(),
        )
    };
    assert!(cases_owed(&warnings, &BTreeMap::new(), &quiet, at(MON, 9, 2)).is_empty());
}

/// What reconcile acts on in a judgement: for each key, raised at which level, clear or held.
fn shape(j: &BTreeMap<WarningKey, Judgement>) -> BTreeMap<WarningKey, Option<Option<Level>>> {
    j.iter()
        .map(|(k, j)| {
            let v = match j {
                Judgement::Raise { level, .. } => Some(Some(*level)),
                Judgement::Clear { .. } => Some(None),
                Judgement::Hold => None,
            };
            (k.clone(), v)
        })
        .collect()
}

/// `school_horizon` is never late: judged minute by minute over four days (ledgers on some days,
/// certificates, licences and a supplier crossing their thresholds, a purchase without its
/// invoice, cameras going offline, confirmed alerts ageing out, three meals a day), every
/// judgement before the horizon is the one judged when it was computed.
#[test]
fn the_horizon_holds_every_judgement_until_it_passes() {
    let mut w = World::new();
    let day0 = MON + 2; // a Wednesday: the weekend comes on day 3
    w.put(
        "c1",
        EntityData::CanteenLicence(CanteenLicence {
            licence_no: "JY113".into(),
            valid_until_ms: at(day0 + 31, 10, 17),
            mode: OperationMode::SelfRun,
            prep_start_min: 6 * 60 + 30,
            meals: vec![
                MealSlot { meal: Meal::Breakfast, start_min: 7 * 60, end_min: 7 * 60 + 40 },
                MealSlot { meal: Meal::Lunch, start_min: 11 * 60 + 40, end_min: 12 * 60 + 30 },
                MealSlot { meal: Meal::Dinner, start_min: 17 * 60 + 40, end_min: 18 * 60 + 30 },
            ],
        }),
    );
    w.put(
        "hc1",
        EntityData::HealthCertificate(HealthCertificate {
            staff: "st1".into(),
            number: "HC-1".into(),
            valid_until_ms: at(day0 + 8, 15, 3) + 1_234,
        }),
    );
    w.put("st2", EntityData::Staff(Staff { name: "赵六".into(), role: StaffRole::Helper, on_duty: true }));
    w.put(
        "hc2",
        EntityData::HealthCertificate(HealthCertificate {
            staff: "st2".into(),
            number: "HC-2".into(),
            valid_until_ms: at(day0 + 1, 9, 41),
        }),
    );
    w.put(
        "sp1",
        EntityData::Supplier(Supplier {
            name: "放心菜店".into(),
            licence_no: "JY1".into(),
            licence_valid_until_ms: at(day0 + 31, 4, 4),
            contact: String::new(),
        }),
    );
    w.put(
        "cam1",
        EntityData::Camera(Camera {
            canteen: "c1".into(),
            name: "后厨".into(),
            zone: crate::alert::Zone::Cooking,
            ai_enabled: true,
            parent_visible: false,
        }),
    );
    w.put(
        "cam2",
        EntityData::Camera(Camera {
            canteen: "c1".into(),
            name: "库房".into(),
            zone: crate::alert::Zone::Storage,
            ai_enabled: false,
            parent_visible: false,
        }),
    );
    // A second canteen (the default plan) whose one camera has been offline since yesterday.
    w.put("c2", EntityData::Canteen(Canteen { name: "二食堂".into(), address: String::new() }));
    w.put(
        "cam3",
        EntityData::Camera(Camera {
            canteen: "c2".into(),
            name: "后厨".into(),
            zone: crate::alert::Zone::Cooking,
            ai_enabled: true,
            parent_visible: false,
        }),
    );
    w.cameras = vec![
        CameraLiveness { camera: "cam1".into(), online: false, since_ms: at(day0, 9, 13), recording_days: Some(20) },
        CameraLiveness { camera: "cam2".into(), online: true, since_ms: at(day0 - 1, 16, 2), recording_days: None },
        CameraLiveness { camera: "cam3".into(), online: false, since_ms: at(day0 - 1, 16, 2), recording_days: None },
    ];
    let confirmed = |kind, t| Confirmed { canteen: "c1".into(), alert_type: kind, detected_at_ms: t };
    w.confirmed = vec![
        confirmed(AlertType::Smoking, at(day0 - 7, 10, 5)),
        confirmed(AlertType::Smoking, at(day0 - 29, 23, 50)),
        confirmed(AlertType::NoMask, at(day0 - 6, 8, 0)),
        confirmed(AlertType::NoMask, at(day0 - 2, 8, 0)),
        confirmed(AlertType::NoMask, at(day0 - 1, 8, 0)),
    ];
    w.record("mc1", day0, check("st1", day0, 365, false));
    w.record("fs1", day0, sample(day0, 100, None, true));
    w.record(
        "pu1",
        day0,
        LedgerRecord::Purchase(Purchase {
            supplier: "sp1".into(),
            item: "青菜".into(),
            batch: "B1".into(),
            quantity_milli: 1_000,
            unit: "kg".into(),
            received_at_ms: at(day0, 7, 23) + 17_000,
            inspection_cert: "JY-B1".into(),
            invoice: String::new(),
        }),
    );
    w.record("am1", day0 + 1, meal(Companion::Leader));
    let facts_judge = |w: &World, now: u64| {
        let ledger = ledger_view(&w.events);
        let f = SchoolFacts {
            school: school(),
            now_ms: now,
            settings: &w.settings,
            rules: &w.rules,
            working: &weekdays,
            registry: &w.registry,
            ledger: &ledger,
            cameras: &w.cameras,
            confirmed: &w.confirmed,
        };
        (shape(&judge_school(&f)), school_horizon(&f))
    };
    let mut now = at(day0 - 1, 23, 0);
    let (mut base, mut horizon) = facts_judge(&w, now);
    let mut judged = 1;
    while now < at(day0 + 4, 0, 0) {
        now += 60_000;
        let (shape, h) = facts_judge(&w, now);
        if now >= horizon {
            (base, horizon) = (shape, h);
            judged += 1;
        } else {
            assert_eq!(
                shape,
                base,
                "the judgement changed at {} before the horizon {}",
                ChinaTimeFmt(now),
                ChinaTimeFmt(horizon)
            );
        }
        assert!(horizon > now);
    }
    // Far fewer judgements than minutes (5 × 1,440), and more than the days.
    assert!(judged > 20 && judged < 200, "{judged} judgements");
}

struct ChinaTimeFmt(u64);

impl std::fmt::Display for ChinaTimeFmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::calendar::ChinaTime(self.0).minute())
    }
}

/// `county_horizon` is never late either: silent schools (one linked, one not) and a submitted
/// case's review window, judged minute by minute over three days.
#[test]
fn the_county_horizon_holds_every_judgement_until_it_passes() {
    let county: NodeId = "130102".parse().unwrap();
    let s2: NodeId = "130102-S0002".parse().unwrap();
    let day0 = MON + 3;
    let rules = RuleSettings::default();
    let case_rules = |_s: NodeId| CaseRules::default();
    let id = CaseId { opened_by: county, seq: 1 };
    let step = |seq: u64, t: u64, action: CaseAction| CaseInput {
        id: EventId { origin: if matches!(action, CaseAction::Submit { .. }) { school() } else { county }, seq },
        hlc: Hlc { wall_ms: t, logical: 0 },
        scope: school(),
        case: id,
        action,
        person: None,
    };
    let open = step(
        1,
        at(day0 - 1, 9, 0),
        CaseAction::Open {
            school: school(),
            severity: crate::alert::Severity::General,
            source: CaseSource::SelfCheck,
            title: "t".into(),
            detail: String::new(),
            number: 1,
        },
    );
    let notice =
        step(2, at(day0 - 1, 9, 1), CaseAction::IssueNotice { deadline_ms: at(day0 + 2, 9, 0), text: "n".into() });
    let submit = step(3, at(day0 - 1, 15, 7), CaseAction::Submit { evidence: vec!["e".into()], note: String::new() });
    let case = fold(id, &[open, notice, submit]).unwrap();
    let cases = BTreeMap::from([(id, case)]);
    let judge = |now: u64| {
        let seen = |s: NodeId, prep: u16, linked: bool| SchoolSeen {
            school: s,
            name: "x".into(),
            prep_start_min: prep,
            checked_days: BTreeSet::from([day0 - 1]),
            last_heard_ms: if linked { now } else { at(day0 - 1, 17, 0) },
        };
        let schools = [seen(school(), 7 * 60, true), seen(s2, 6 * 60 + 50, false)];
        let j = judge_county(now, &rules, &weekdays, &schools, &cases, &case_rules);
        (shape(&j), county_horizon(now, &rules, &schools, &cases, &case_rules))
    };
    let mut now = at(day0 - 1, 20, 0);
    let (mut base, mut horizon) = judge(now);
    while now < at(day0 + 3, 0, 0) {
        now += 60_000;
        let (shape, h) = judge(now);
        if now >= horizon {
            (base, horizon) = (shape, h);
        } else {
            assert_eq!(
                shape,
                base,
                "the judgement changed at {} before the horizon {}",
                ChinaTimeFmt(now),
                ChinaTimeFmt(horizon)
            );
        }
    }
}
