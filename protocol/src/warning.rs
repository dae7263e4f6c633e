//! Early warnings (预警) as events: what a rule found about a school, raised once per
//! `(rule, subject, period)` and resolved by a later event when the condition clears.
//!
//! - A [`WarningEvent`] is scoped to the school it is about. The rules of [`RuleId::evaluator`]
//!   `School` are written by the school itself (where the ledgers are written, so warnings work
//!   while it is cut off); the rules a silent school cannot report, and those about a case's
//!   review and deadline, by its county. [`check_warning`] enforces it on every write and arrival.
//! - [`fold_warnings`] gives each key its state (active with a level, or resolved) from its
//!   events in event order, whatever order they arrived in.
//! - [`reconcile`] compares what the rules judge now with the state and returns only the events
//!   owed: a raise for a new or changed level, a resolve for a cleared condition. Run again on the
//!   same facts (a restart) it returns nothing.
//! - [`RuleSettings`]: thresholds and, per rule, what a warning does — notify, open a case, or open
//!   a case and issue its notice. Province default, county override, like [`Settings`].
//!
//! Wire: positional (bincode 2 via serde). Variants and fields are only ever appended.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::alert::ParseNameError;
use crate::event::{Body, Event, EventId};
use crate::registry::{Entity, EntityData, EntityKind, EntityRef};

/// Longest warning text or resolve reason (bytes).
pub const WARNING_TEXT_BYTES_MAX: usize = 1024;
/// Longest subject (bytes).
pub const WARNING_SUBJECT_BYTES_MAX: usize = 160;
/// Most evidence items on a raise.
pub const WARNING_EVIDENCE_MAX: usize = 16;

/// A warning's level: 黄 (yellow), 橙 (orange), 红 (red).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Yellow,
    Orange,
    Red,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Yellow, Level::Orange, Level::Red];
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Yellow => "yellow",
            Level::Orange => "orange",
            Level::Red => "red",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Level::Yellow => "黄色",
            Level::Orange => "橙色",
            Level::Red => "红色",
        }
    }
    /// The case severity an automatic case of this level gets: yellow 一般, orange 较重, red 严重.
    pub fn severity(self) -> crate::alert::Severity {
        match self {
            Level::Yellow => crate::alert::Severity::General,
            Level::Orange => crate::alert::Severity::Serious,
            Level::Red => crate::alert::Severity::Severe,
        }
    }
}

impl FromStr for Level {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Level, ParseNameError> {
        let t = s.trim();
        let want = t.to_ascii_lowercase();
        Level::ALL.into_iter().find(|l| l.as_str() == want || l.zh() == t || l.zh().starts_with(t)).ok_or_else(|| {
            ParseNameError {
                what: "预警等级",
                given: s.to_string(),
                expected: "yellow（黄色）, orange（橙色）, red（红色）".into(),
            }
        })
    }
}

/// Which rule of DOMAIN.md's early-warning table found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    /// A health certificate expires within 30 days (yellow), 7 (orange), or has expired (red).
    HealthCertExpiring,
    /// A staff member on duty has no health certificate (red; opens a case).
    HealthCertMissing,
    /// An on-duty staff member unchecked by prep start (yellow), 60 min later (orange).
    MorningCheckMissing,
    /// Abnormal at the morning check but still on duty (red).
    MorningCheckAbnormal,
    /// No sample of a served meal by the meal's end + 1 h (orange).
    SampleMissing,
    /// A sample under 125 g (yellow).
    SampleUnderweight,
    /// A sample disposed of within 48 h, or not refrigerated (red).
    SampleKeptShort,
    /// No leader accompanied a served meal by its end + 2 h (yellow).
    LeaderMealMissing,
    /// The last 3 served meals had no accompanying leader (orange).
    LeaderMealStreak,
    /// No parent accompanied a meal in the period (yellow).
    ParentMealMissing,
    /// A purchase's certificates incomplete 24 h after receipt (yellow), 72 h (orange).
    PurchaseCertsIncomplete,
    /// A supplier's licence expires within 30 days (yellow) or has expired (red).
    SupplierLicence,
    /// The canteen's licence expires within 90 days (yellow), 30 (orange), or has expired (red).
    CanteenLicence,
    /// A camera missed its keep-alives in operating hours (yellow).
    CameraOffline,
    /// Under 80% of a canteen's cameras online for over 2 h (orange); none for 24 h (red).
    CameraRateLow,
    /// A recorder keeps fewer than 30 days of recordings (red).
    RecordingShort,
    /// By 20:00 a working day's morning check, sample, leader meal or disinfection is missing
    /// (yellow).
    DailyReportMissing,
    /// The same canteen and alert type confirmed 3 times in 7 days (orange).
    RepeatViolationWeek,
    /// The same canteen and alert type confirmed 3 times in 30 days (orange; opens a case).
    RepeatViolationMonth,
    /// Judged by the county: no morning check of the day has reached it and the school is not
    /// reachable (yellow) — the school's own rules cannot speak while it is silent.
    SchoolSilent,
    /// Judged by the case's county: a rectification past its deadline (red; the case escalates
    /// by the case rules).
    RectificationOverdue,
    /// Judged by the case's county: a review not done within its window (yellow).
    ReviewOverdue,
}

impl RuleId {
    pub const ALL: [RuleId; 22] = [
        RuleId::HealthCertExpiring,
        RuleId::HealthCertMissing,
        RuleId::MorningCheckMissing,
        RuleId::MorningCheckAbnormal,
        RuleId::SampleMissing,
        RuleId::SampleUnderweight,
        RuleId::SampleKeptShort,
        RuleId::LeaderMealMissing,
        RuleId::LeaderMealStreak,
        RuleId::ParentMealMissing,
        RuleId::PurchaseCertsIncomplete,
        RuleId::SupplierLicence,
        RuleId::CanteenLicence,
        RuleId::CameraOffline,
        RuleId::CameraRateLow,
        RuleId::RecordingShort,
        RuleId::DailyReportMissing,
        RuleId::RepeatViolationWeek,
        RuleId::RepeatViolationMonth,
        RuleId::SchoolSilent,
        RuleId::RectificationOverdue,
        RuleId::ReviewOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::HealthCertExpiring => "health-cert-expiring",
            RuleId::HealthCertMissing => "health-cert-missing",
            RuleId::MorningCheckMissing => "morning-check-missing",
            RuleId::MorningCheckAbnormal => "morning-check-abnormal",
            RuleId::SampleMissing => "sample-missing",
            RuleId::SampleUnderweight => "sample-underweight",
            RuleId::SampleKeptShort => "sample-kept-short",
            RuleId::LeaderMealMissing => "leader-meal-missing",
            RuleId::LeaderMealStreak => "leader-meal-streak",
            RuleId::ParentMealMissing => "parent-meal-missing",
            RuleId::PurchaseCertsIncomplete => "purchase-certs-incomplete",
            RuleId::SupplierLicence => "supplier-licence",
            RuleId::CanteenLicence => "canteen-licence",
            RuleId::CameraOffline => "camera-offline",
            RuleId::CameraRateLow => "camera-rate-low",
            RuleId::RecordingShort => "recording-short",
            RuleId::DailyReportMissing => "daily-report-missing",
            RuleId::RepeatViolationWeek => "repeat-violation-week",
            RuleId::RepeatViolationMonth => "repeat-violation-month",
            RuleId::SchoolSilent => "school-silent",
            RuleId::RectificationOverdue => "rectification-overdue",
            RuleId::ReviewOverdue => "review-overdue",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            RuleId::HealthCertExpiring => "健康证临期或过期",
            RuleId::HealthCertMissing => "在岗人员无健康证",
            RuleId::MorningCheckMissing => "晨检未做",
            RuleId::MorningCheckAbnormal => "晨检异常仍在岗",
            RuleId::SampleMissing => "未留样",
            RuleId::SampleUnderweight => "留样不足 125 克",
            RuleId::SampleKeptShort => "留样未冷藏或不足 48 小时即处置",
            RuleId::LeaderMealMissing => "无校领导陪餐",
            RuleId::LeaderMealStreak => "连续多餐无校领导陪餐",
            RuleId::ParentMealMissing => "本期无家长陪餐",
            RuleId::PurchaseCertsIncomplete => "采购证票不全",
            RuleId::SupplierLicence => "供应商许可证临期或过期",
            RuleId::CanteenLicence => "食堂许可证临期或过期",
            RuleId::CameraOffline => "摄像头离线",
            RuleId::CameraRateLow => "摄像头在线率低",
            RuleId::RecordingShort => "录像保存不足 30 天",
            RuleId::DailyReportMissing => "当日台账未填报",
            RuleId::RepeatViolationWeek => "7 天内同类问题反复",
            RuleId::RepeatViolationMonth => "30 天内同类问题反复",
            RuleId::SchoolSilent => "学校失联未报晨检",
            RuleId::RectificationOverdue => "整改逾期",
            RuleId::ReviewOverdue => "复核超期",
        }
    }

    /// The tier of the node that judges this rule (and is the only writer of its warnings).
    pub fn evaluator(self) -> Tier {
        match self {
            RuleId::SchoolSilent | RuleId::RectificationOverdue | RuleId::ReviewOverdue => Tier::County,
            _ => Tier::School,
        }
    }

    /// What a warning of this rule does by default (DOMAIN.md: "on duty with none → red + case";
    /// "≥ 3 in 30 d → case"; the others notify).
    pub fn default_action(self) -> RuleAction {
        match self {
            RuleId::HealthCertMissing | RuleId::RepeatViolationMonth => RuleAction::CaseAndNotice,
            _ => RuleAction::Notify,
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.zh())
    }
}

impl FromStr for RuleId {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<RuleId, ParseNameError> {
        let t = s.trim();
        let want = t.to_ascii_lowercase().replace('_', "-");
        RuleId::ALL.into_iter().find(|r| r.as_str() == want || r.zh() == t).ok_or_else(|| ParseNameError {
            what: "预警规则",
            given: s.to_string(),
            expected: RuleId::ALL.map(|r| r.as_str()).join(", "),
        })
    }
}

/// What a warning of a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    /// Shown and counted; no case.
    Notify,
    /// The county opens a case (挂账) naming the warning.
    Case,
    /// The county opens a case and issues its rectification notice (整改通知).
    CaseAndNotice,
}

impl RuleAction {
    pub const ALL: [RuleAction; 3] = [RuleAction::Notify, RuleAction::Case, RuleAction::CaseAndNotice];
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Notify => "notify",
            RuleAction::Case => "case",
            RuleAction::CaseAndNotice => "case-and-notice",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            RuleAction::Notify => "仅提醒",
            RuleAction::Case => "自动挂账",
            RuleAction::CaseAndNotice => "自动挂账并下发整改通知",
        }
    }
}

impl FromStr for RuleAction {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<RuleAction, ParseNameError> {
        let t = s.trim();
        RuleAction::ALL.into_iter().find(|a| a.as_str() == t.to_ascii_lowercase() || a.zh() == t).ok_or_else(|| {
            ParseNameError {
                what: "规则动作",
                given: s.to_string(),
                expected: "notify（仅提醒）, case（自动挂账）, case-and-notice（自动挂账并下发整改通知）".into(),
            }
        })
    }
}

/// Rule thresholds beyond [`crate::registry::Settings`]'s, and what each rule's warnings do.
/// Province default, county override (the same lookup as the settings: [`effective_rule_settings`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSettings {
    /// Per rule, when not the rule's [`RuleId::default_action`].
    pub actions: Vec<(RuleId, RuleAction)>,
    /// A health certificate this close to expiry is orange (days).
    pub health_cert_orange_days: u32,
    /// An unchecked on-duty staff member turns orange this long after prep start (minutes).
    pub morning_check_orange_min: u32,
    /// A served meal's sample is missing this long after the meal ends (minutes).
    pub sample_grace_min: u32,
    /// A served meal's leader companion is missing this long after the meal ends (minutes).
    pub leader_meal_grace_min: u32,
    /// This many served meals in a row without a leader is orange.
    pub leader_meal_streak: u32,
    /// Parent-accompanied meals expected per calendar month.
    pub parent_meals_per_month: u32,
    /// A purchase's certificates incomplete this long after receipt: yellow, then orange (hours).
    pub purchase_yellow_hours: u32,
    pub purchase_orange_hours: u32,
    /// A supplier licence this close to expiry is yellow (days).
    pub supplier_warn_days: u32,
    /// The canteen licence this close to expiry: yellow, then orange (days).
    pub canteen_licence_yellow_days: u32,
    pub canteen_licence_orange_days: u32,
    /// A canteen with under this share of its cameras online (percent)…
    pub camera_rate_min_pct: u32,
    /// …for this long is orange (minutes); none online for `camera_none_hours` is red.
    pub camera_rate_after_min: u32,
    pub camera_none_hours: u32,
    /// The daily report is judged at this China time (minutes after midnight; 20:00).
    pub daily_report_minute: u32,
    /// Confirmations of the same canteen and type that make a repeat (in 7 and in 30 days).
    pub repeat_count: u32,
    /// An alert nobody judged for this many hours moves to the county's queue.
    pub alert_escalate_hours: u32,
    /// The county's "school silent" warning, this long after prep start (minutes).
    pub school_silent_after_min: u32,
}

impl Default for RuleSettings {
    fn default() -> RuleSettings {
        RuleSettings {
            actions: Vec::new(),
            health_cert_orange_days: 7,
            morning_check_orange_min: 60,
            sample_grace_min: 60,
            leader_meal_grace_min: 120,
            leader_meal_streak: 3,
            parent_meals_per_month: 1,
            purchase_yellow_hours: 24,
            purchase_orange_hours: 72,
            supplier_warn_days: 30,
            canteen_licence_yellow_days: 90,
            canteen_licence_orange_days: 30,
            camera_rate_min_pct: 80,
            camera_rate_after_min: 120,
            camera_none_hours: 24,
            daily_report_minute: 20 * 60,
            repeat_count: 3,
            alert_escalate_hours: 24,
            school_silent_after_min: 60,
        }
    }
}

impl RuleSettings {
    /// What a warning of `rule` does under these settings.
    pub fn action(&self, rule: RuleId) -> RuleAction {
        self.actions.iter().rev().find(|(r, _)| *r == rule).map_or(rule.default_action(), |(_, a)| *a)
    }

    /// Checks what a person could get wrong; Chinese messages.
    pub fn validate(&self) -> Result<(), String> {
        if self.actions.len() > RuleId::ALL.len() * 2 {
            return Err(format!("规则动作最多 {} 条", RuleId::ALL.len() * 2));
        }
        let nonzero = [
            ("健康证橙色预警天数", self.health_cert_orange_days),
            ("留样宽限分钟", self.sample_grace_min),
            ("陪餐宽限分钟", self.leader_meal_grace_min),
            ("连续无陪餐餐数", self.leader_meal_streak),
            ("采购证票黄色预警小时", self.purchase_yellow_hours),
            ("供应商许可证预警天数", self.supplier_warn_days),
            ("食堂许可证黄色预警天数", self.canteen_licence_yellow_days),
            ("摄像头在线率阈值", self.camera_rate_min_pct),
            ("同类问题次数", self.repeat_count),
            ("告警上交小时", self.alert_escalate_hours),
        ];
        for (name, v) in nonzero {
            if v == 0 {
                return Err(format!("{name}须大于 0"));
            }
        }
        if self.purchase_orange_hours < self.purchase_yellow_hours {
            return Err("采购证票橙色预警小时不能少于黄色预警小时".into());
        }
        if self.canteen_licence_orange_days > self.canteen_licence_yellow_days {
            return Err("食堂许可证橙色预警天数不能多于黄色预警天数".into());
        }
        if self.camera_rate_min_pct > 100 {
            return Err(format!("摄像头在线率阈值 {}% 超过 100%", self.camera_rate_min_pct));
        }
        if self.daily_report_minute >= 24 * 60 {
            return Err("当日台账判定时间须在 00:00 至 23:59 之间".into());
        }
        Ok(())
    }
}

/// The rule settings in force for `unit`: its county's override, else the province's, else the
/// defaults (the lookup of [`crate::registry::effective_settings`]).
pub fn effective_rule_settings(view: &BTreeMap<EntityRef, Entity>, unit: NodeId) -> RuleSettings {
    let of = |node: NodeId| match view.get(&EntityRef { kind: EntityKind::RuleSettings, node, id: String::new() }) {
        Some(Entity { data: EntityData::RuleSettings(s), .. }) => Some(s.clone()),
        _ => None,
    };
    unit.ancestor_at(Tier::County)
        .and_then(of)
        .or_else(|| unit.ancestor_at(Tier::Province).and_then(of))
        .unwrap_or_default()
}

/// What a warning is about: `(rule, school, subject, period)`. The subject is the school-local
/// thing (a staff id, `c1/lunch`, a record id, a camera, a case); the period a China-time day
/// number for daily rules, the first day of the month for monthly ones, 0 for standing conditions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WarningKey {
    pub rule: RuleId,
    pub school: NodeId,
    pub subject: String,
    pub period: u32,
}

impl fmt::Display for WarningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.rule.as_str(), self.school, self.subject, self.period)
    }
}

impl FromStr for WarningKey {
    type Err = String;
    /// `rule/school/subject/period` (the subject may hold `/`).
    fn from_str(s: &str) -> Result<WarningKey, String> {
        let bad = || format!("“{s}”不是预警编号（规则/学校/对象/周期）");
        let (rule, rest) = s.split_once('/').ok_or_else(bad)?;
        let (school, rest) = rest.split_once('/').ok_or_else(bad)?;
        let (subject, period) = rest.rsplit_once('/').ok_or_else(bad)?;
        Ok(WarningKey {
            rule: rule.parse().map_err(|_| bad())?,
            school: school.parse().map_err(|_| bad())?,
            subject: subject.to_string(),
            period: period.parse().map_err(|_| bad())?,
        })
    }
}

/// What happens to a warning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningAction {
    /// Raised (again after a resolve, or at another level), with what was found.
    Raise { level: Level, text: String, evidence: Vec<String>, at_ms: u64 },
    /// The condition cleared.
    Resolve { reason: String, at_ms: u64 },
}

/// The body of a warning event (`Body::Warning`), scoped to `key.school`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningEvent {
    pub key: WarningKey,
    pub action: WarningAction,
}

/// The authority and shape rule of a warning event written by `origin` with scope `scope`.
pub fn check_warning(origin: NodeId, scope: NodeId, w: &WarningEvent) -> Result<(), String> {
    let k = &w.key;
    if k.school != scope || scope.tier() != Tier::School {
        return Err(format!("关于 {} 的预警须记在该学校名下，而不是 {scope}", k.school));
    }
    let writer = match k.rule.evaluator() {
        Tier::School => Some(scope),
        _ => scope.ancestor_at(Tier::County),
    };
    if writer != Some(origin) {
        return Err(format!(
            "{origin} 不能就 {scope} 写“{}”预警：这条规则只由{}判定",
            k.rule.zh(),
            writer.map_or("（无人）".to_string(), |w| format!(" {w} "))
        ));
    }
    if k.subject.is_empty() || k.subject.len() > WARNING_SUBJECT_BYTES_MAX || k.subject.chars().any(char::is_control) {
        return Err(format!("预警对象须为 1 到 {WARNING_SUBJECT_BYTES_MAX} 字节，且不含控制字符"));
    }
    let (text, evidence) = match &w.action {
        WarningAction::Raise { text, evidence, .. } => (text, evidence.as_slice()),
        WarningAction::Resolve { reason, .. } => (reason, &[][..]),
    };
    if text.len() > WARNING_TEXT_BYTES_MAX
        || evidence.len() > WARNING_EVIDENCE_MAX
        || evidence.iter().any(|e| e.len() > WARNING_SUBJECT_BYTES_MAX)
    {
        return Err(format!("预警说明最多 {WARNING_TEXT_BYTES_MAX} 字节，依据最多 {WARNING_EVIDENCE_MAX} 条"));
    }
    Ok(())
}

/// One warning as folded from its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningState {
    pub key: WarningKey,
    /// `Some` while active.
    pub level: Option<Level>,
    /// The highest level it ever reached.
    pub peak: Level,
    /// The latest raise's text and evidence.
    pub text: String,
    pub evidence: Vec<String>,
    pub first_raised_ms: u64,
    pub raised_ms: u64,
    /// The event of the latest raise.
    pub raise_event: EventId,
    /// The raise that began the current (or last) active episode: a level change keeps it, a
    /// raise after a resolve starts a new one. An automatic case names it, so one episode opens
    /// at most one case.
    pub episode: EventId,
    pub resolved_ms: Option<u64>,
    pub resolve_reason: String,
    /// Raise events (a level change counts), and resolves.
    pub raises: u32,
    pub resolves: u32,
    pub written_by: NodeId,
}

impl WarningState {
    pub fn active(&self) -> bool {
        self.level.is_some()
    }
}

/// Folds warning events (any order, duplicates allowed; other bodies and events failing
/// [`check_warning`] ignored) into each key's state.
pub fn fold_warnings<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<WarningKey, WarningState> {
    let mut mine: Vec<(&Event, &WarningEvent)> = events
        .into_iter()
        .filter_map(|e| match &e.body {
            Body::Warning(w) if check_warning(e.origin, e.scope, w).is_ok() => Some((e, w)),
            _ => None,
        })
        .collect();
    mine.sort_by_key(|(e, _)| e.order_key());
    mine.dedup_by_key(|(e, _)| e.id());
    let mut out: BTreeMap<WarningKey, WarningState> = BTreeMap::new();
    for (e, w) in mine {
        match &w.action {
            WarningAction::Raise { level, text, evidence, at_ms } => {
                let st = out.entry(w.key.clone()).or_insert_with(|| WarningState {
                    key: w.key.clone(),
                    level: None,
                    peak: *level,
                    text: String::new(),
                    evidence: Vec::new(),
                    first_raised_ms: *at_ms,
                    raised_ms: *at_ms,
                    raise_event: e.id(),
                    episode: e.id(),
                    resolved_ms: None,
                    resolve_reason: String::new(),
                    raises: 0,
                    resolves: 0,
                    written_by: e.origin,
                });
                if st.level.is_none() {
                    st.episode = e.id();
                }
                st.level = Some(*level);
                st.peak = st.peak.max(*level);
                st.text = text.clone();
                st.evidence = evidence.clone();
                st.raised_ms = *at_ms;
                st.raise_event = e.id();
                st.resolved_ms = None;
                st.resolve_reason.clear();
                st.raises += 1;
                st.written_by = e.origin;
            }
            WarningAction::Resolve { reason, at_ms } => {
                if let Some(st) = out.get_mut(&w.key)
                    && st.level.is_some()
                {
                    st.level = None;
                    st.resolved_ms = Some(*at_ms);
                    st.resolve_reason = reason.clone();
                    st.resolves += 1;
                }
            }
        }
    }
    out
}

/// What a rule judges about one key now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// The condition holds at this level.
    Raise { level: Level, text: String, evidence: Vec<String> },
    /// The condition does not hold (resolves an active warning with this reason).
    Clear { reason: String },
    /// Not judged now (outside operating hours): an active warning stays as it is.
    Hold,
}

/// The events owed: a raise where the judgement's level differs from the state's (new, changed,
/// or raised again after a resolve); a resolve where an active warning is judged clear — and for
/// an active warning of the `rules` judged here that no judgement names, when its period is within
/// `window_from` (a period before it is history, left as it is; 0 is a standing condition, always
/// judged): its subject is gone. Deterministic: keys in order.
pub fn reconcile(
    judged: &BTreeMap<WarningKey, Judgement>,
    state: &BTreeMap<WarningKey, WarningState>,
    rules: &[RuleId],
    window_from: u32,
    now_ms: u64,
) -> Vec<WarningEvent> {
    let mut out = Vec::new();
    for (key, j) in judged {
        let active = state.get(key).and_then(|s| s.level);
        match j {
            Judgement::Raise { level, text, evidence } if active != Some(*level) => out.push(WarningEvent {
                key: key.clone(),
                action: WarningAction::Raise {
                    level: *level,
                    text: cut(text, WARNING_TEXT_BYTES_MAX),
                    evidence: evidence
                        .iter()
                        .take(WARNING_EVIDENCE_MAX)
                        .map(|e| cut(e, WARNING_SUBJECT_BYTES_MAX))
                        .collect(),
                    at_ms: now_ms,
                },
            }),
            Judgement::Clear { reason } if active.is_some() => out.push(WarningEvent {
                key: key.clone(),
                action: WarningAction::Resolve { reason: cut(reason, WARNING_TEXT_BYTES_MAX), at_ms: now_ms },
            }),
            _ => {}
        }
    }
    for (key, st) in state {
        if st.active()
            && rules.contains(&key.rule)
            && !judged.contains_key(key)
            && (key.period == 0 || key.period >= window_from)
        {
            out.push(WarningEvent {
                key: key.clone(),
                action: WarningAction::Resolve {
                    reason: "预警对象已不存在或已不在岗".into(), at_ms: now_ms
                },
            });
        }
    }
    out
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Hlc;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn key(rule: RuleId, subject: &str, period: u32) -> WarningKey {
        WarningKey { rule, school: id("130102-S0001"), subject: subject.into(), period }
    }

    fn ev(origin: &str, seq: u64, wall: u64, w: WarningEvent) -> Event {
        Event {
            origin: id(origin),
            seq,
            hlc: Hlc { wall_ms: wall, logical: 0 },
            scope: w.key.school,
            body: Body::Warning(w),
            by: None,
        }
    }

    fn raise(level: Level) -> Judgement {
        Judgement::Raise { level, text: "t".into(), evidence: vec![] }
    }

    #[test]
    fn only_the_rules_evaluator_writes_its_warnings() {
        let s = id("130102-S0001");
        let w = |rule| WarningEvent {
            key: WarningKey { rule, school: s, subject: "x".into(), period: 0 },
            action: WarningAction::Resolve { reason: String::new(), at_ms: 0 },
        };
        assert_eq!(check_warning(s, s, &w(RuleId::SampleMissing)), Ok(()));
        assert!(check_warning(id("130102"), s, &w(RuleId::SampleMissing)).is_err());
        assert_eq!(check_warning(id("130102"), s, &w(RuleId::SchoolSilent)), Ok(()));
        assert!(check_warning(s, s, &w(RuleId::SchoolSilent)).is_err());
        assert!(check_warning(id("1301"), s, &w(RuleId::SchoolSilent)).is_err());
        // Scoped elsewhere than its school.
        assert!(check_warning(id("130102"), id("130102"), &w(RuleId::SchoolSilent)).is_err());
    }

    #[test]
    fn raised_once_resolved_once_and_nothing_on_a_rerun() {
        let k = key(RuleId::SampleMissing, "c1/lunch", 20_424);
        let mut judged = BTreeMap::from([(k.clone(), raise(Level::Orange))]);
        let state = BTreeMap::new();
        let first = reconcile(&judged, &state, &[RuleId::SampleMissing], 20_423, 100);
        assert_eq!(first.len(), 1);
        let events: Vec<Event> =
            first.into_iter().enumerate().map(|(i, w)| ev("130102-S0001", i as u64 + 1, 100, w)).collect();
        let state = fold_warnings(&events);
        assert!(state[&k].active());
        // The same facts again: nothing.
        assert!(reconcile(&judged, &state, &[RuleId::SampleMissing], 20_423, 200).is_empty());
        // Cleared: one resolve.
        judged.insert(k.clone(), Judgement::Clear { reason: "已补录".into() });
        let second = reconcile(&judged, &state, &[RuleId::SampleMissing], 20_423, 300);
        assert!(matches!(second[..], [WarningEvent { action: WarningAction::Resolve { .. }, .. }]));
        let mut all = events.clone();
        all.push(ev("130102-S0001", 2, 300, second[0].clone()));
        let state = fold_warnings(&all);
        assert!(!state[&k].active());
        assert_eq!(state[&k].resolve_reason, "已补录");
        assert!(reconcile(&judged, &state, &[RuleId::SampleMissing], 20_423, 400).is_empty());
        // Any arrival order folds the same.
        let mut rev = all.clone();
        rev.reverse();
        assert_eq!(fold_warnings(&rev), state);
    }

    #[test]
    fn unjudged_actives_resolve_inside_the_window_only() {
        let old = key(RuleId::MorningCheckMissing, "st1", 20_000);
        let recent = key(RuleId::MorningCheckMissing, "st2", 20_424);
        let standing = key(RuleId::HealthCertExpiring, "st3", 0);
        let other_rule = key(RuleId::CameraOffline, "cam1", 0);
        let events: Vec<Event> = [&old, &recent, &standing, &other_rule]
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                ev(
                    "130102-S0001",
                    i as u64 + 1,
                    10,
                    WarningEvent {
                        key: k.clone(),
                        action: WarningAction::Raise {
                            level: Level::Yellow,
                            text: "t".into(),
                            evidence: vec![],
                            at_ms: 10,
                        },
                    },
                )
            })
            .collect();
        let state = fold_warnings(&events);
        let out =
            reconcile(&BTreeMap::new(), &state, &[RuleId::MorningCheckMissing, RuleId::HealthCertExpiring], 20_423, 20);
        let resolved: Vec<&WarningKey> = out.iter().map(|w| &w.key).collect();
        assert_eq!(resolved, vec![&standing, &recent]);
        // Hold keeps an active warning as it is.
        let hold = BTreeMap::from([(other_rule.clone(), Judgement::Hold)]);
        assert!(reconcile(&hold, &state, &[RuleId::CameraOffline], 0, 20).is_empty());
    }

    #[test]
    fn a_level_change_is_a_new_raise_and_keys_print_and_parse() {
        let k = key(RuleId::HealthCertExpiring, "st/1", 0);
        let e1 = ev(
            "130102-S0001",
            1,
            10,
            WarningEvent {
                key: k.clone(),
                action: WarningAction::Raise { level: Level::Yellow, text: "a".into(), evidence: vec![], at_ms: 10 },
            },
        );
        let state = fold_warnings([&e1]);
        let out = reconcile(&BTreeMap::from([(k.clone(), raise(Level::Red))]), &state, &[], 0, 20);
        assert!(matches!(out[0].action, WarningAction::Raise { level: Level::Red, .. }));
        assert_eq!(k.to_string().parse::<WarningKey>().unwrap(), k);
        assert!("nope".parse::<WarningKey>().is_err());
    }

    #[test]
    fn settings_validate_and_actions_default() {
        let s = RuleSettings::default();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.action(RuleId::HealthCertMissing), RuleAction::CaseAndNotice);
        assert_eq!(s.action(RuleId::SampleMissing), RuleAction::Notify);
        let s2 = RuleSettings { actions: vec![(RuleId::SampleMissing, RuleAction::Case)], ..RuleSettings::default() };
        assert_eq!(s2.action(RuleId::SampleMissing), RuleAction::Case);
        let bad = RuleSettings { purchase_orange_hours: 1, ..RuleSettings::default() };
        assert!(bad.validate().unwrap_err().contains("采购证票"));
        assert_eq!("红".parse::<Level>().unwrap(), Level::Red);
    }
}
