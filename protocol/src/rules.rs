//! The early-warning rules (DOMAIN.md's table) as pure functions: what each rule judges about a
//! school now, from its registry, ledgers, cameras, confirmed alerts, the calendar and the
//! settings — `now_ms` passed in. [`judge_school`] is run by the school node (on every change and
//! on a schedule: so warnings work while it is cut off), [`judge_county`] by its county for what a
//! silent school cannot report and for the county's own case deadlines; [`crate::warning::reconcile`]
//! turns judgements into the events owed, and [`cases_owed`] turns active warnings into the
//! automatic cases the settings ask for.
//!
//! Daily rules judge the days of the window `[today − WINDOW_DAYS + 1, today]`, so a record entered
//! late (yesterday's morning check) still resolves its warning; older days are history.

use std::collections::{BTreeMap, BTreeSet};

use topology::NodeId;

use crate::alert::AlertType;
use crate::calendar::{ChinaTime, DAY_MS, HOUR_MS, days_from_civil};
use crate::case::{CaseAction, CaseRules, CaseSource, CaseState, CaseStatus, notice_deadline};
use crate::ids::CaseId;
use crate::ledger::{Companion, LedgerItem, LedgerKind, LedgerRecord, Meal, at_minute, china_day, day_str};
use crate::registry::{Entity, EntityData, EntityKind, EntityRef, MealSlot, Settings};
use crate::warning::{Judgement, Level, RuleAction, RuleId, RuleSettings, WarningKey, WarningState};

/// Days a daily rule looks back (today included).
pub const WINDOW_DAYS: u32 = 4;
/// Purchases are judged this many days back.
pub const PURCHASE_DAYS: u32 = 30;
/// How far back a leader-meal streak is looked for (days).
const STREAK_LOOKBACK_DAYS: u32 = 14;

/// A canteen's working day when it registered none: prep from 07:00, lunch 11:30–12:30.
pub const DEFAULT_PREP_START_MIN: u16 = 7 * 60;
pub const DEFAULT_MEALS: [MealSlot; 1] =
    [MealSlot { meal: Meal::Lunch, start_min: 11 * 60 + 30, end_min: 12 * 60 + 30 }];

/// One camera's liveness as the school's devices report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraLiveness {
    pub camera: String,
    /// Heartbeats say online and the last is recent.
    pub online: bool,
    /// Since when it has been in that state (unix ms).
    pub since_ms: u64,
    /// Days of recordings its recorder keeps, if reported.
    pub recording_days: Option<u32>,
}

/// An alert confirmed as a real problem (for the repeat rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmed {
    pub canteen: String,
    pub alert_type: AlertType,
    pub detected_at_ms: u64,
}

/// Everything [`judge_school`] reads.
pub struct SchoolFacts<'a> {
    pub school: NodeId,
    pub now_ms: u64,
    pub settings: &'a Settings,
    pub rules: &'a RuleSettings,
    /// Whether a China-time day number is a working (school) day.
    pub working: &'a dyn Fn(u32) -> bool,
    /// The school's registry (its staff, certificates, canteens, licences, suppliers, cameras).
    pub registry: &'a BTreeMap<EntityRef, Entity>,
    /// The school's ledger records of at least the last two months, by `(school, id)`.
    pub ledger: &'a BTreeMap<(NodeId, String), LedgerItem>,
    pub cameras: &'a [CameraLiveness],
    /// Confirmed alerts of the last 30 days.
    pub confirmed: &'a [Confirmed],
}

/// The rules [`judge_school`] judges (a school's warnings of other rules are not its to resolve).
pub fn school_rules() -> Vec<RuleId> {
    RuleId::ALL.into_iter().filter(|r| r.evaluator() == topology::Tier::School).collect()
}

/// The rules [`judge_county`] judges.
pub fn county_rules() -> Vec<RuleId> {
    RuleId::ALL.into_iter().filter(|r| r.evaluator() == topology::Tier::County).collect()
}

/// The first day of the window at `now_ms`.
pub fn window_from(now_ms: u64) -> u32 {
    china_day(now_ms).saturating_sub(WINDOW_DAYS - 1)
}

/// The first day of the China-time month of `day`.
pub fn month_start(day: u32) -> u32 {
    let date = day_str(day);
    let (y, m) = (date[..4].parse::<i64>().unwrap_or(1970), date[5..7].parse::<i64>().unwrap_or(1));
    u32::try_from(days_from_civil(y, m, 1)).unwrap_or(0)
}

/// A canteen's serving plan: prep start and meals (its licence's, or the default).
#[derive(Clone, Debug)]
pub struct Plan {
    pub prep_start_min: u16,
    pub meals: Vec<MealSlot>,
}

/// Each canteen of the school with its plan.
pub fn plans(school: NodeId, registry: &BTreeMap<EntityRef, Entity>) -> BTreeMap<String, (String, Plan)> {
    let mut out = BTreeMap::new();
    for e in registry.values().filter(|e| e.entity.node == school) {
        if let EntityData::Canteen(c) = &e.data {
            let plan = match registry.get(&EntityRef {
                kind: EntityKind::CanteenLicence,
                node: school,
                id: e.entity.id.clone(),
            }) {
                Some(Entity { data: EntityData::CanteenLicence(l), .. }) if !l.meals.is_empty() => {
                    Plan { prep_start_min: l.prep_start_min, meals: l.meals.clone() }
                }
                Some(Entity { data: EntityData::CanteenLicence(l), .. }) => {
                    Plan { prep_start_min: l.prep_start_min, meals: DEFAULT_MEALS.to_vec() }
                }
                _ => Plan { prep_start_min: DEFAULT_PREP_START_MIN, meals: DEFAULT_MEALS.to_vec() },
            };
            out.insert(e.entity.id.clone(), (c.name.clone(), plan));
        }
    }
    out
}

/// The school's prep start: its earliest canteen's (the default without canteens).
pub fn school_prep_start(school: NodeId, registry: &BTreeMap<EntityRef, Entity>) -> u16 {
    plans(school, registry).values().map(|(_, p)| p.prep_start_min).min().unwrap_or(DEFAULT_PREP_START_MIN)
}

fn days_left(until_ms: u64, now_ms: u64) -> i64 {
    if until_ms < now_ms { -(((now_ms - until_ms) / DAY_MS) as i64) - 1 } else { ((until_ms - now_ms) / DAY_MS) as i64 }
}

fn expiry_text(what: &str, until_ms: u64, now_ms: u64) -> String {
    let d = days_left(until_ms, now_ms);
    let date = ChinaTime(until_ms).date();
    if d < 0 { format!("{what}已于 {date} 过期") } else { format!("{what}将于 {date} 到期，还剩 {d} 天") }
}

/// What the school's rules judge now: every key of every school rule it can judge.
pub fn judge_school(f: &SchoolFacts<'_>) -> BTreeMap<WarningKey, Judgement> {
    let mut out = BTreeMap::new();
    let key = |rule, subject: &str, period| WarningKey { rule, school: f.school, subject: subject.to_string(), period };
    let clear = |reason: &str| Judgement::Clear { reason: reason.to_string() };
    let raise = |level, text: String, evidence: Vec<String>| Judgement::Raise { level, text, evidence };
    let now = f.now_ms;
    let today = china_day(now);
    let reg = |kind| f.registry.values().filter(move |e| e.entity.kind == kind && e.entity.node == f.school);
    let live = |kind: LedgerKind| {
        f.ledger
            .values()
            .filter(move |i| i.school == f.school && i.entry.kind == kind)
            .filter_map(|i| i.live().map(|r| (i, r)))
    };

    // Health certificates.
    let mut certs: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for e in reg(EntityKind::HealthCertificate) {
        if let EntityData::HealthCertificate(c) = &e.data {
            let best = certs.entry(&c.staff).or_insert((c.valid_until_ms, &c.number));
            if c.valid_until_ms > best.0 {
                *best = (c.valid_until_ms, &c.number);
            }
        }
    }
    // On-duty staff with the day their entry was written (not judged for days before).
    let mut on_duty: Vec<(&str, String, u32)> = Vec::new();
    for e in reg(EntityKind::Staff) {
        let EntityData::Staff(s) = &e.data else { continue };
        let id = e.entity.id.as_str();
        let who = format!("{}（{}）", s.name, s.role.zh());
        match certs.get(id) {
            Some((until, number)) => {
                let d = days_left(*until, now);
                let level = if d < 0 {
                    Some(Level::Red)
                } else if d <= i64::from(f.rules.health_cert_orange_days) {
                    Some(Level::Orange)
                } else if d <= i64::from(f.settings.health_cert_warn_days) {
                    Some(Level::Yellow)
                } else {
                    None
                };
                let j = match level {
                    Some(l) => raise(
                        l,
                        expiry_text(&format!("{who}的健康证 {number} "), *until, now),
                        vec![number.to_string()],
                    ),
                    None => clear("健康证在有效期内"),
                };
                out.insert(key(RuleId::HealthCertExpiring, id, 0), j);
                out.insert(key(RuleId::HealthCertMissing, id, 0), clear("已有健康证"));
            }
            None => {
                out.insert(key(RuleId::HealthCertExpiring, id, 0), clear("无健康证（见“在岗人员无健康证”）"));
                let j = if s.on_duty {
                    raise(
                        Level::Red,
                        format!("在岗人员{who}没有登记健康证，须立即调离岗位并补办"),
                        vec![id.to_string()],
                    )
                } else {
                    clear("不在岗")
                };
                out.insert(key(RuleId::HealthCertMissing, id, 0), j);
            }
        }
        if s.on_duty {
            on_duty.push((id, who, china_day(e.updated_hlc.wall_ms)));
        }
    }

    // Ledger records of the window, by day — from the day the school started keeping its ledgers
    // or registered its canteens and staff (a new school is not judged for the days before).
    let from = window_from(now);
    let started = f
        .ledger
        .values()
        .filter(|i| i.school == f.school)
        .map(|i| i.entry.day)
        .chain(
            f.registry
                .values()
                .filter(|e| {
                    e.entity.node == f.school && matches!(e.entity.kind, EntityKind::Canteen | EntityKind::Staff)
                })
                .map(|e| china_day(e.updated_hlc.wall_ms)),
        )
        .min()
        .unwrap_or(today);
    let days: Vec<u32> = (from.max(started)..=today).collect();
    let on = |kind: LedgerKind, day: u32| live(kind).filter(move |(i, _)| i.entry.day == day);
    let plans = plans(f.school, f.registry);
    let prep = plans.values().map(|(_, p)| p.prep_start_min).min().unwrap_or(DEFAULT_PREP_START_MIN);

    // Morning checks.
    for &day in &days {
        if !(f.working)(day) {
            continue;
        }
        let checks: BTreeMap<&str, &crate::ledger::MorningCheck> = on(LedgerKind::MorningCheck, day)
            .filter_map(|(_, r)| match r {
                LedgerRecord::MorningCheck(m) => Some((m.staff.as_str(), m)),
                _ => None,
            })
            .collect();
        let due = at_minute(day, prep);
        for (id, who, since) in &on_duty {
            if day < *since {
                continue;
            }
            let date = day_str(day);
            match checks.get(id) {
                Some(m) => {
                    out.insert(key(RuleId::MorningCheckMissing, id, day), clear("已晨检"));
                    let j = if m.abnormal() && !m.sent_home {
                        raise(
                            Level::Red,
                            format!(
                                "{who} {date} 晨检异常（体温 {}.{}℃{}），仍在岗，须立即离岗",
                                m.temperature_dc / 10,
                                m.temperature_dc % 10,
                                if m.symptoms.is_empty() {
                                    String::new()
                                } else {
                                    format!("，{}", m.symptoms.iter().map(|s| s.zh()).collect::<Vec<_>>().join("、"))
                                }
                            ),
                            vec![id.to_string()],
                        )
                    } else {
                        clear("晨检正常或已离岗")
                    };
                    out.insert(key(RuleId::MorningCheckAbnormal, id, day), j);
                }
                None if now >= due => {
                    let late = now >= due + u64::from(f.rules.morning_check_orange_min) * 60_000;
                    let level = if late { Level::Orange } else { Level::Yellow };
                    let text = format!("在岗人员{who} {date} 开工前未做晨检");
                    out.insert(key(RuleId::MorningCheckMissing, id, day), raise(level, text, vec![id.to_string()]));
                    out.insert(key(RuleId::MorningCheckAbnormal, id, day), clear("未晨检"));
                }
                None => {
                    out.insert(key(RuleId::MorningCheckMissing, id, day), clear("未到开工时间"));
                }
            }
        }
    }

    // Samples and leader meals per served meal.
    let sample_days: Vec<u32> = days.iter().copied().filter(|d| (f.working)(*d)).collect();
    for (canteen, (name, plan)) in &plans {
        for &day in &sample_days {
            for slot in &plan.meals {
                let subject = format!("{canteen}/{}", slot.meal.as_str());
                let end = at_minute(day, slot.end_min);
                let meal_zh = format!("食堂“{name}” {} {}", day_str(day), slot.meal.zh());
                let sampled = on(LedgerKind::FoodSample, day).any(
                    |(_, r)| matches!(r, LedgerRecord::FoodSample(s) if s.canteen == *canteen && s.meal == slot.meal),
                );
                let j = if sampled {
                    clear("已留样")
                } else if now >= end + u64::from(f.rules.sample_grace_min) * 60_000 {
                    raise(Level::Orange, format!("{meal_zh}未留样"), vec![subject.clone()])
                } else {
                    clear("未到判定时间")
                };
                out.insert(key(RuleId::SampleMissing, &subject, day), j);
                let led = on(LedgerKind::AccompaniedMeal, day).any(|(_, r)| {
                    matches!(r, LedgerRecord::AccompaniedMeal(a) if a.canteen == *canteen && a.meal == slot.meal && a.companion == Companion::Leader)
                });
                let j = if led {
                    clear("已有校领导陪餐")
                } else if now >= end + u64::from(f.rules.leader_meal_grace_min) * 60_000 {
                    raise(Level::Yellow, format!("{meal_zh}无校领导陪餐记录"), vec![subject.clone()])
                } else {
                    clear("未到判定时间")
                };
                out.insert(key(RuleId::LeaderMealMissing, &subject, day), j);
            }
        }
        // The last N served meals past their grace, newest first.
        // Meals before the school kept any ledger record do not count.
        let need = f.rules.leader_meal_streak as usize;
        let first = f.ledger.values().filter(|i| i.school == f.school).map(|i| i.entry.day).min().unwrap_or(today + 1);
        let mut recent: Vec<(u32, Meal, bool)> = Vec::new();
        'back: for day in (today.saturating_sub(STREAK_LOOKBACK_DAYS).max(first)..=today).rev() {
            if !(f.working)(day) {
                continue;
            }
            for slot in plan.meals.iter().rev() {
                if now < at_minute(day, slot.end_min) + u64::from(f.rules.leader_meal_grace_min) * 60_000 {
                    continue;
                }
                let led = live(LedgerKind::AccompaniedMeal).any(|(i, r)| {
                    i.entry.day == day
                        && matches!(r, LedgerRecord::AccompaniedMeal(a) if a.canteen == *canteen && a.meal == slot.meal && a.companion == Companion::Leader)
                });
                recent.push((day, slot.meal, led));
                if recent.len() >= need {
                    break 'back;
                }
            }
        }
        let j = if recent.len() >= need && need > 0 && recent.iter().all(|(_, _, led)| !led) {
            let list: Vec<String> =
                recent.iter().rev().map(|(d, m, _)| format!("{} {}", day_str(*d), m.zh())).collect();
            raise(
                Level::Orange,
                format!("食堂“{name}”连续 {need} 餐无校领导陪餐：{}", list.join("、")),
                vec![canteen.clone()],
            )
        } else {
            clear("近期有校领导陪餐")
        };
        out.insert(key(RuleId::LeaderMealStreak, canteen, 0), j);

        // Parent meals: last month, once it has ended (and the school kept ledgers in it).
        let this_month = month_start(today);
        let last_month = month_start(this_month.saturating_sub(1));
        let in_month = |m: u32| move |d: u32| d >= m && month_start(d) == m;
        let count = |m: u32| {
            live(LedgerKind::AccompaniedMeal)
                .filter(|(i, r)| {
                    in_month(m)(i.entry.day)
                        && matches!(r, LedgerRecord::AccompaniedMeal(a) if a.canteen == *canteen && a.companion == Companion::Parent)
                })
                .count() as u32
        };
        let used = f.ledger.values().any(|i| i.school == f.school && in_month(last_month)(i.entry.day));
        let want = f.rules.parent_meals_per_month;
        let j = if want == 0 || count(last_month) >= want {
            clear("已有家长陪餐")
        } else if used {
            let month = &day_str(last_month)[..7];
            raise(
                Level::Yellow,
                format!("食堂“{name}” {month} 家长陪餐 {} 次，少于要求的 {want} 次", count(last_month)),
                vec![],
            )
        } else {
            clear("该月未使用台账")
        };
        out.insert(key(RuleId::ParentMealMissing, canteen, last_month), j);
        if count(this_month) >= want {
            out.insert(key(RuleId::ParentMealMissing, canteen, this_month), clear("已有家长陪餐"));
        }
    }

    // Sample records: weight and keeping.
    for (item, r) in live(LedgerKind::FoodSample).filter(|(i, _)| i.entry.day >= from) {
        let LedgerRecord::FoodSample(s) = r else { continue };
        let id = item.entry.id.as_str();
        let canteen = plans.get(&s.canteen).map_or(s.canteen.as_str(), |(n, _)| n.as_str());
        let what = format!("{} 食堂“{canteen}”{}“{}”留样", day_str(item.entry.day), s.meal.zh(), s.dish);
        let j = if s.grams < f.settings.sample_min_grams {
            raise(
                Level::Yellow,
                format!("{what}仅 {} 克，少于 {} 克", s.grams, f.settings.sample_min_grams),
                vec![id.into()],
            )
        } else {
            clear("重量达标")
        };
        out.insert(key(RuleId::SampleUnderweight, id, item.entry.day), j);
        let keep_ms = u64::from(f.settings.sample_keep_hours) * HOUR_MS;
        let j = match s.disposed_at_ms {
            _ if !s.refrigerated => raise(Level::Red, format!("{what}未冷藏保存"), vec![id.into()]),
            Some(d) if d.saturating_sub(s.sampled_at_ms) < keep_ms => raise(
                Level::Red,
                format!(
                    "{what}保存 {} 小时即处置，少于 {} 小时",
                    d.saturating_sub(s.sampled_at_ms) / HOUR_MS,
                    f.settings.sample_keep_hours
                ),
                vec![id.into()],
            ),
            _ => clear("冷藏保存"),
        };
        out.insert(key(RuleId::SampleKeptShort, id, item.entry.day), j);
    }

    // Purchases: certificates (索证索票).
    for (item, r) in live(LedgerKind::Purchase).filter(|(i, _)| i.entry.day + PURCHASE_DAYS > today) {
        let LedgerRecord::Purchase(p) = r else { continue };
        let id = item.entry.id.as_str();
        let age = now.saturating_sub(p.received_at_ms);
        let missing: Vec<&str> = [("检验合格证明", &p.inspection_cert), ("票据", &p.invoice)]
            .into_iter()
            .filter(|(_, v)| v.trim().is_empty())
            .map(|(n, _)| n)
            .collect();
        let j = if missing.is_empty() {
            clear("证票齐全")
        } else if age >= u64::from(f.rules.purchase_yellow_hours) * HOUR_MS {
            let level =
                if age >= u64::from(f.rules.purchase_orange_hours) * HOUR_MS { Level::Orange } else { Level::Yellow };
            let text = format!(
                "{} 验收的 {}（批次 {}）已 {} 小时仍缺{}",
                ChinaTime(p.received_at_ms).minute(),
                p.item,
                p.batch,
                age / HOUR_MS,
                missing.join("、")
            );
            raise(level, text, vec![id.into()])
        } else {
            clear("未到判定时间")
        };
        out.insert(key(RuleId::PurchaseCertsIncomplete, id, item.entry.day), j);
    }

    // Supplier and canteen licences.
    for e in reg(EntityKind::Supplier) {
        let EntityData::Supplier(s) = &e.data else { continue };
        let d = days_left(s.licence_valid_until_ms, now);
        let j = if d < 0 {
            raise(
                Level::Red,
                expiry_text(&format!("供应商“{}”的许可证 {} ", s.name, s.licence_no), s.licence_valid_until_ms, now)
                    + "，已停止向其采购",
                vec![e.entity.id.clone()],
            )
        } else if d <= i64::from(f.rules.supplier_warn_days) {
            raise(
                Level::Yellow,
                expiry_text(&format!("供应商“{}”的许可证 {} ", s.name, s.licence_no), s.licence_valid_until_ms, now),
                vec![e.entity.id.clone()],
            )
        } else {
            clear("许可证在有效期内")
        };
        out.insert(key(RuleId::SupplierLicence, &e.entity.id, 0), j);
    }
    for e in reg(EntityKind::CanteenLicence) {
        let EntityData::CanteenLicence(l) = &e.data else { continue };
        let d = days_left(l.valid_until_ms, now);
        let level = if d < 0 {
            Some(Level::Red)
        } else if d <= i64::from(f.rules.canteen_licence_orange_days) {
            Some(Level::Orange)
        } else if d <= i64::from(f.rules.canteen_licence_yellow_days) {
            Some(Level::Yellow)
        } else {
            None
        };
        let name = plans.get(&e.entity.id).map_or(e.entity.id.as_str(), |(n, _)| n.as_str());
        let j = match level {
            Some(l2) => raise(
                l2,
                expiry_text(&format!("食堂“{name}”的食品经营许可证 {} ", l.licence_no), l.valid_until_ms, now),
                vec![e.entity.id.clone()],
            ),
            None => clear("许可证在有效期内"),
        };
        out.insert(key(RuleId::CanteenLicence, &e.entity.id, 0), j);
    }

    // Cameras.
    let cams: BTreeMap<&str, (&str, &str)> = reg(EntityKind::Camera)
        .filter_map(|e| match &e.data {
            EntityData::Camera(c) => Some((e.entity.id.as_str(), (c.canteen.as_str(), c.name.as_str()))),
            _ => None,
        })
        .collect();
    let operating = |canteen: &str| {
        let Some((_, plan)) = plans.get(canteen) else { return false };
        let minute = crate::ledger::china_minute(now);
        (f.working)(today)
            && minute >= plan.prep_start_min
            && plan.meals.iter().map(|m| m.end_min).max().is_some_and(|end| minute <= end)
    };
    let mut per_canteen: BTreeMap<&str, Vec<&CameraLiveness>> = BTreeMap::new();
    for c in f.cameras {
        let Some((canteen, name)) = cams.get(c.camera.as_str()) else { continue };
        per_canteen.entry(canteen).or_default().push(c);
        let j = if c.online {
            clear("摄像头已恢复在线")
        } else if operating(canteen) {
            raise(
                Level::Yellow,
                format!("摄像头“{name}”自 {} 起离线（营业时间内）", ChinaTime(c.since_ms).minute()),
                vec![c.camera.clone()],
            )
        } else {
            Judgement::Hold
        };
        out.insert(key(RuleId::CameraOffline, &c.camera, 0), j);
        if let Some(days) = c.recording_days {
            let j = if days < f.settings.recording_keep_days {
                raise(
                    Level::Red,
                    format!("摄像头“{name}”的录像只保存 {days} 天，少于 {} 天", f.settings.recording_keep_days),
                    vec![c.camera.clone()],
                )
            } else {
                clear("录像保存天数达标")
            };
            out.insert(key(RuleId::RecordingShort, &c.camera, 0), j);
        }
    }
    for (canteen, list) in per_canteen {
        let total = list.len() as u64;
        let mut offline_since: Vec<u64> = list.iter().filter(|c| !c.online).map(|c| c.since_ms).collect();
        offline_since.sort_unstable();
        let online = total - offline_since.len() as u64;
        let name = plans.get(canteen).map_or(canteen, |(n, _)| n.as_str());
        let low = online * 100 < total * u64::from(f.rules.camera_rate_min_pct);
        let j = if !low {
            clear("摄像头在线率达标")
        } else {
            // The rate fell below the threshold when the m-th camera went offline, m the fewest
            // offline cameras that make it low.
            let m = (1..=total)
                .find(|m| (total - m) * 100 < total * u64::from(f.rules.camera_rate_min_pct))
                .unwrap_or(total);
            let low_since = offline_since.get(m as usize - 1).copied().unwrap_or(now);
            let none_since = offline_since.last().copied().unwrap_or(now);
            if online == 0 && now.saturating_sub(none_since) >= u64::from(f.rules.camera_none_hours) * HOUR_MS {
                raise(
                    Level::Red,
                    format!("食堂“{name}”的 {total} 路摄像头自 {} 起全部离线", ChinaTime(none_since).minute()),
                    vec![canteen.to_string()],
                )
            } else if operating(canteen)
                && now.saturating_sub(low_since) >= u64::from(f.rules.camera_rate_after_min) * 60_000
            {
                raise(
                    Level::Orange,
                    format!(
                        "食堂“{name}”摄像头在线 {online}/{total}，低于 {}% 已超过 {} 分钟",
                        f.rules.camera_rate_min_pct, f.rules.camera_rate_after_min
                    ),
                    vec![canteen.to_string()],
                )
            } else {
                Judgement::Hold
            }
        };
        out.insert(key(RuleId::CameraRateLow, canteen, 0), j);
    }

    // The daily report at 20:00.
    let subject = f.school.to_string();
    for &day in &days {
        if !(f.working)(day) {
            continue;
        }
        let mut missing = Vec::new();
        if on(LedgerKind::MorningCheck, day).next().is_none() {
            missing.push("晨检");
        }
        if on(LedgerKind::FoodSample, day).next().is_none() {
            missing.push("留样");
        }
        if !on(LedgerKind::AccompaniedMeal, day)
            .any(|(_, r)| matches!(r, LedgerRecord::AccompaniedMeal(a) if a.companion == Companion::Leader))
        {
            missing.push("校领导陪餐");
        }
        if on(LedgerKind::Disinfection, day).next().is_none() {
            missing.push("消毒");
        }
        let due = at_minute(day, f.rules.daily_report_minute as u16);
        let j = if missing.is_empty() {
            clear("当日台账已填报")
        } else if now >= due {
            raise(Level::Yellow, format!("{} 台账未填报：{}", day_str(day), missing.join("、")), vec![])
        } else {
            clear("未到判定时间")
        };
        out.insert(key(RuleId::DailyReportMissing, &subject, day), j);
    }

    // Repeat violations by canteen and type.
    let mut by: BTreeMap<(&str, AlertType), Vec<u64>> = BTreeMap::new();
    for c in f.confirmed {
        by.entry((c.canteen.as_str(), c.alert_type)).or_default().push(c.detected_at_ms);
    }
    for ((canteen, kind), times) in by {
        let subject = format!("{canteen}/{}", kind.code());
        let n = f.rules.repeat_count as usize;
        let within = |days: u64| times.iter().filter(|t| now.saturating_sub(**t) <= days * DAY_MS).count();
        let name = plans.get(canteen).map_or(canteen, |(n, _)| n.as_str());
        // A severe type (smoking, rodents, fire) repeated at all is a repeat.
        let severe = kind.default_severity(crate::alert::Zone::Cooking) == crate::alert::Severity::Severe;
        for (rule, days) in [(RuleId::RepeatViolationWeek, 7), (RuleId::RepeatViolationMonth, 30)] {
            let count = within(days);
            let need = if severe && rule == RuleId::RepeatViolationMonth { n.min(2) } else { n };
            let j = if count >= need {
                raise(
                    Level::Orange,
                    format!("食堂“{name}” {days} 天内 {count} 次确认“{}”（{}）", kind.zh(), kind.code()),
                    vec![subject.clone()],
                )
            } else {
                clear("同类问题已减少")
            };
            out.insert(key(rule, &subject, 0), j);
        }
    }
    out
}

/// The earliest instant after `f.now_ms` at which [`judge_school`] may judge otherwise on the
/// same facts — another level, clear instead of raise, hold, or another set of keys: the next
/// China-time midnight (the window, the month), today's schedule (prep start and its orange
/// threshold, each meal's end plus the sample and leader graces, the canteens' operating hours,
/// the daily report), the days left of certificates and licences crossing a threshold, a purchase
/// reaching its hours, an offline camera reaching its minutes or hours, a confirmed alert leaving
/// the 7- and 30-day windows. Until then, with the facts unchanged, judging again owes nothing new:
/// the engine need not (`node::runtime::warnings`). Conservative: an instant listed where nothing
/// changes costs one judgement. Every threshold `judge_school` compares with `now` must be here
/// (`rules_tests::the_horizon_holds_every_judgement_until_it_passes` sweeps the minutes).
pub fn school_horizon(f: &SchoolFacts<'_>) -> u64 {
    let now = f.now_ms;
    let today = china_day(now);
    let mut h = at_minute(today + 1, 0);
    let mut at = |t: u64| {
        if t > now && t < h {
            h = t;
        }
    };
    let min = |m: u32| u64::from(m) * 60_000;
    // Days left `d` of an expiry (`days_left`): `d <= k` from `until + 1 − (k + 1)` days on, and
    // negative from `until + 1`.
    let expiry = |until: u64, ks: &[u32], at: &mut dyn FnMut(u64)| {
        at(until.saturating_add(1));
        for k in ks {
            at(until.saturating_add(1).saturating_sub((u64::from(*k) + 1) * DAY_MS));
        }
    };
    let mine = f.registry.values().filter(|e| e.entity.node == f.school);
    for e in mine {
        match &e.data {
            EntityData::HealthCertificate(c) => {
                expiry(c.valid_until_ms, &[f.rules.health_cert_orange_days, f.settings.health_cert_warn_days], &mut at)
            }
            EntityData::Supplier(s) => expiry(s.licence_valid_until_ms, &[f.rules.supplier_warn_days], &mut at),
            EntityData::CanteenLicence(l) => expiry(
                l.valid_until_ms,
                &[f.rules.canteen_licence_yellow_days, f.rules.canteen_licence_orange_days],
                &mut at,
            ),
            _ => {}
        }
    }
    // Today's schedule: the school's prep start (morning checks), each canteen's operating hours
    // (cameras), each meal's graces (samples, leader meals, the streak), the daily report.
    let plans = plans(f.school, f.registry);
    let prep = plans.values().map(|(_, p)| p.prep_start_min).min().unwrap_or(DEFAULT_PREP_START_MIN);
    at(at_minute(today, prep));
    at(at_minute(today, prep) + min(f.rules.morning_check_orange_min));
    for (_, plan) in plans.values() {
        at(at_minute(today, plan.prep_start_min));
        if let Some(end) = plan.meals.iter().map(|m| m.end_min).max() {
            at(at_minute(today, end) + 60_000);
        }
        for slot in &plan.meals {
            let end = at_minute(today, slot.end_min);
            at(end + min(f.rules.sample_grace_min));
            at(end + min(f.rules.leader_meal_grace_min));
        }
    }
    at(at_minute(today, f.rules.daily_report_minute as u16));
    // Purchases reach their hours.
    for i in f.ledger.values().filter(|i| i.school == f.school) {
        if let Some(LedgerRecord::Purchase(p)) = i.live() {
            at(p.received_at_ms + u64::from(f.rules.purchase_yellow_hours) * HOUR_MS);
            at(p.received_at_ms + u64::from(f.rules.purchase_orange_hours) * HOUR_MS);
        }
    }
    // Offline cameras reach the rate rule's minutes and the all-offline hours.
    for c in f.cameras {
        at(c.since_ms + min(f.rules.camera_rate_after_min));
        at(c.since_ms + u64::from(f.rules.camera_none_hours) * HOUR_MS);
    }
    // Confirmed alerts leave the repeat windows.
    for c in f.confirmed {
        at(c.detected_at_ms + 7 * DAY_MS + 1);
        at(c.detected_at_ms + 30 * DAY_MS + 1);
    }
    h
}

/// What the county knows about one of its schools for [`judge_county`].
#[derive(Clone, Debug)]
pub struct SchoolSeen {
    pub school: NodeId,
    pub name: String,
    pub prep_start_min: u16,
    /// The days of the window on which the county holds a morning check of the school.
    pub checked_days: BTreeSet<u32>,
    /// When the county last heard from the school: now while their link is up, else the time of
    /// the newest event of the school's own it holds (a school that failed over to the city still
    /// reaches the county through it). 0: never.
    pub last_heard_ms: u64,
}

/// What the county's rules judge now: schools silent on a working morning, and its schools' cases
/// past their deadline or review window.
pub fn judge_county(
    now_ms: u64,
    rules: &RuleSettings,
    working: &dyn Fn(u32) -> bool,
    schools: &[SchoolSeen],
    cases: &BTreeMap<CaseId, CaseState>,
    case_rules: &dyn Fn(NodeId) -> CaseRules,
) -> BTreeMap<WarningKey, Judgement> {
    let mut out = BTreeMap::new();
    let today = china_day(now_ms);
    let clear = |r: &str| Judgement::Clear { reason: r.to_string() };
    for s in schools {
        for day in window_from(now_ms)..=today {
            if !working(day) {
                continue;
            }
            let key =
                WarningKey { rule: RuleId::SchoolSilent, school: s.school, subject: s.school.to_string(), period: day };
            let due = at_minute(day, s.prep_start_min) + u64::from(rules.school_silent_after_min) * 60_000;
            // Heard from this morning: the school is there and judges its own morning checks.
            let heard = s.last_heard_ms >= at_minute(day, s.prep_start_min);
            let j = if s.checked_days.contains(&day) {
                clear("已收到学校晨检记录")
            } else if heard {
                clear("学校已恢复连接，由学校自行预警")
            } else if day == today && now_ms >= due {
                Judgement::Raise {
                    level: Level::Yellow,
                    text: format!("{}（{}）{} 未上报晨检，且区县当前联系不上该校节点", s.name, s.school, day_str(day)),
                    evidence: vec![],
                }
            } else if day == today {
                clear("未到判定时间")
            } else {
                Judgement::Hold
            };
            out.insert(key, j);
        }
    }
    for (id, c) in cases {
        let subject = id.to_string();
        let key = |rule| WarningKey { rule, school: c.school, subject: subject.clone(), period: 0 };
        let no = c.ledger_no();
        let j = if c.overdue && !c.status.is_terminal() {
            Judgement::Raise {
                level: Level::Red,
                text: format!(
                    "问题 {no}“{}”整改已逾期（期限 {}）",
                    c.title,
                    c.deadline_ms.map_or("未定".to_string(), |d| ChinaTime(d).minute())
                ),
                evidence: vec![subject.clone()],
            }
        } else {
            clear("已整改或已销号")
        };
        out.insert(key(RuleId::RectificationOverdue), j);
        let due = c.review_due_ms(&case_rules(c.school));
        let j = match due {
            Some(due) if c.status == CaseStatus::Submitted && now_ms > due => Judgement::Raise {
                level: Level::Yellow,
                text: format!("问题 {no}“{}”的整改已提交，复核期限 {} 已过", c.title, ChinaTime(due).minute()),
                evidence: vec![subject.clone()],
            },
            _ => clear("已复核或未到期限"),
        };
        out.insert(key(RuleId::ReviewOverdue), j);
    }
    out
}

/// The earliest instant after `now_ms` at which [`judge_county`] may judge otherwise on the same
/// facts (the schools seen, linked or not, and the cases): the next China-time midnight, each
/// school's prep start today (a linked school is heard from this morning from then on) and its
/// silent threshold, a submitted case's review window passing. See [`school_horizon`].
pub fn county_horizon(
    now_ms: u64,
    rules: &RuleSettings,
    schools: &[SchoolSeen],
    cases: &BTreeMap<CaseId, CaseState>,
    case_rules: &dyn Fn(NodeId) -> CaseRules,
) -> u64 {
    let today = china_day(now_ms);
    let mut h = at_minute(today + 1, 0);
    let mut at = |t: u64| {
        if t > now_ms && t < h {
            h = t;
        }
    };
    for s in schools {
        let prep = at_minute(today, s.prep_start_min);
        at(prep);
        at(prep + u64::from(rules.school_silent_after_min) * 60_000);
    }
    for c in cases.values() {
        if let Some(due) = c.review_due_ms(&case_rules(c.school)) {
            at(due.saturating_add(1));
        }
    }
    h
}

/// The automatic cases owed for active warnings: for each active warning whose rule's action (in
/// the rule settings of its school) opens a case, and no case names this episode of the warning
/// yet, an `Open` (and an `IssueNotice` when the action says so) — written by the school's county.
pub fn cases_owed(
    warnings: &BTreeMap<WarningKey, WarningState>,
    cases: &BTreeMap<CaseId, CaseState>,
    rules_for: &dyn Fn(NodeId) -> (RuleSettings, CaseRules),
    now_ms: u64,
) -> Vec<(NodeId, Vec<CaseAction>)> {
    let named: BTreeSet<(&WarningKey, crate::ids::EventId)> = cases
        .values()
        .filter_map(|c| match &c.source {
            CaseSource::Warning { key, episode } => Some((key, *episode)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (key, st) in warnings {
        let Some(level) = st.level else { continue };
        if named.contains(&(key, st.episode)) {
            continue;
        }
        let (rs, cr) = rules_for(key.school);
        let action = rs.action(key.rule);
        if action == RuleAction::Notify {
            continue;
        }
        let severity = level.severity();
        let open = CaseAction::Open {
            school: key.school,
            severity,
            source: CaseSource::Warning { key: key.clone(), episode: st.episode },
            title: format!("预警：{}", key.rule.zh()),
            detail: format!(
                "{}预警（规则“{}”，{} 起）：{}{}",
                level.zh(),
                key.rule.zh(),
                ChinaTime(st.first_raised_ms).minute(),
                st.text,
                if st.evidence.is_empty() { String::new() } else { format!("。依据：{}", st.evidence.join("、")) }
            ),
            number: 0,
        };
        let mut steps = vec![open];
        if action == RuleAction::CaseAndNotice {
            let deadline_ms = notice_deadline(&cr, severity, now_ms);
            steps.push(CaseAction::IssueNotice {
                deadline_ms,
                text: format!(
                    "整改通知：系统预警“{}”（{}）：{}。请于 {} 前完成整改，并上传整改佐证材料；逾期未整改将按规定督办。",
                    key.rule.zh(),
                    level.zh(),
                    st.text,
                    ChinaTime(deadline_ms).minute()
                ),
            });
        }
        out.push((key.school, steps));
    }
    out
}

/// A candidate for an interview (约谈) or an accountability record (问责), with why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub school: NodeId,
    /// The canteen (interview) or the case's ledger number (accountability).
    pub subject: String,
    pub reason: String,
    /// The warning key or case id it rests on.
    pub evidence: String,
}

/// 约谈 candidates: the schools whose canteens had the same problem confirmed 3 times in 30 days,
/// or a severe one repeated — the active "30 天内同类问题反复" warnings.
pub fn interview_candidates(warnings: &BTreeMap<WarningKey, WarningState>) -> Vec<Candidate> {
    warnings
        .values()
        .filter(|w| w.key.rule == RuleId::RepeatViolationMonth && w.active())
        .map(|w| Candidate {
            school: w.key.school,
            subject: w.key.subject.split('/').next().unwrap_or_default().to_string(),
            reason: w.text.clone(),
            evidence: w.key.to_string(),
        })
        .collect()
}

/// 问责 records: cases whose notice the school refused, or whose rectification was rejected at
/// review 3 times or more.
pub fn accountability_candidates(cases: &BTreeMap<CaseId, CaseState>) -> Vec<Candidate> {
    cases
        .iter()
        .filter_map(|(id, c)| {
            let reason = if c.notice_refused {
                format!("拒收整改通知（问题“{}”）", c.title)
            } else if c.rejected >= 3 {
                format!("整改 {} 次复核未通过（问题“{}”）", c.rejected, c.title)
            } else {
                return None;
            };
            Some(Candidate { school: c.school, subject: c.ledger_no(), reason, evidence: id.to_string() })
        })
        .collect()
}
