//! Alerts: the AI-detection taxonomy of DOMAIN.md, severities, kitchen zones, and the alert body.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use topology::Tier;

/// Rectification severity: 一般 / 较重 / 严重. It sets the rectification deadline of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// 一般
    General,
    /// 较重
    Serious,
    /// 严重
    Severe,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::General, Severity::Serious, Severity::Severe];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::General => "general",
            Severity::Serious => "serious",
            Severity::Severe => "severe",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Severity::General => "一般",
            Severity::Serious => "较重",
            Severity::Severe => "严重",
        }
    }
}

/// Kitchen zones where cameras sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Zone {
    /// 粗加工
    RoughProcessing,
    /// 切配
    Cutting,
    /// 烹饪
    Cooking,
    /// 专间
    SpecialRoom,
    /// 洗消
    Washing,
    /// 备餐
    Serving,
    /// 留样
    Sampling,
    /// 库房
    Storage,
    /// 出入口
    Entrance,
    /// 就餐区
    Dining,
}

/// The AI detection types of DOMAIN.md's taxonomy, plus the device types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertType {
    NoMask,
    NoChefHat,
    NoUniform,
    NoGloves,
    Smoking,
    Phone,
    LeavePost,
    Stranger,
    Rodent,
    Insect,
    BinUncovered,
    BinOverflow,
    FloorWater,
    FloorDebris,
    MisplacedFood,
    FireSmoke,
    VideoLost,
    Occluded,
}

/// `(type, CODE, 名称, default severity)` in DOMAIN.md order.
const TAXONOMY: [(AlertType, &str, &str, Severity); 18] = [
    (AlertType::NoMask, "NO_MASK", "未戴口罩", Severity::General),
    (AlertType::NoChefHat, "NO_CHEF_HAT", "未戴厨师帽", Severity::General),
    (AlertType::NoUniform, "NO_UNIFORM", "未穿工作服", Severity::General),
    (AlertType::NoGloves, "NO_GLOVES", "未戴手套", Severity::General),
    (AlertType::Smoking, "SMOKING", "吸烟", Severity::Severe),
    (AlertType::Phone, "PHONE", "玩手机/打电话", Severity::General),
    (AlertType::LeavePost, "LEAVE_POST", "离岗", Severity::Serious),
    (AlertType::Stranger, "STRANGER", "陌生人闯入", Severity::Serious),
    (AlertType::Rodent, "RODENT", "鼠患", Severity::Severe),
    (AlertType::Insect, "INSECT", "蟑螂/蚊蝇", Severity::Serious),
    (AlertType::BinUncovered, "BIN_UNCOVERED", "垃圾桶未盖", Severity::General),
    (AlertType::BinOverflow, "BIN_OVERFLOW", "垃圾桶满溢", Severity::General),
    (AlertType::FloorWater, "FLOOR_WATER", "地面积水", Severity::General),
    (AlertType::FloorDebris, "FLOOR_DEBRIS", "地面垃圾", Severity::General),
    (AlertType::MisplacedFood, "MISPLACED_FOOD", "食材落地/违规置物", Severity::Serious),
    (AlertType::FireSmoke, "FIRE_SMOKE", "明火/烟雾", Severity::Severe),
    (AlertType::VideoLost, "VIDEO_LOST", "视频丢失", Severity::Serious),
    (AlertType::Occluded, "OCCLUDED", "视频遮挡", Severity::Serious),
];

impl AlertType {
    pub fn all() -> impl Iterator<Item = AlertType> {
        TAXONOMY.iter().map(|t| t.0)
    }

    fn entry(self) -> &'static (AlertType, &'static str, &'static str, Severity) {
        // The table lists every variant exactly once, in declaration order.
        &TAXONOMY[self as usize]
    }

    /// The code used on the command line and in JSON: `NO_MASK`.
    pub fn code(self) -> &'static str {
        self.entry().1
    }

    pub fn zh(self) -> &'static str {
        self.entry().2
    }

    /// DOMAIN.md's default severity; a mask violation in a 专间 (special room) is 较重.
    pub fn default_severity(self, zone: Zone) -> Severity {
        match (self, zone) {
            (AlertType::NoMask, Zone::SpecialRoom) => Severity::Serious,
            _ => self.entry().3,
        }
    }
}

impl fmt::Display for AlertType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("没有“{given}”这种{what}，可选：{expected}")]
pub struct ParseNameError {
    pub what: &'static str,
    pub given: String,
    pub expected: String,
}

impl FromStr for AlertType {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<AlertType, ParseNameError> {
        let want = s.trim().to_ascii_uppercase().replace('-', "_");
        TAXONOMY.iter().find(|t| t.1 == want).map(|t| t.0).ok_or_else(|| ParseNameError {
            what: "告警类型",
            given: s.to_string(),
            expected: TAXONOMY.iter().map(|t| t.1).collect::<Vec<_>>().join(", "),
        })
    }
}

impl FromStr for Severity {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Severity, ParseNameError> {
        Severity::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s.trim()) || v.zh() == s.trim()).ok_or_else(
            || ParseNameError {
                what: "严重程度",
                given: s.to_string(),
                expected: "general (一般), serious (较重), severe (严重)".to_string(),
            },
        )
    }
}

const ZONES: [(Zone, &str, &str); 10] = [
    (Zone::RoughProcessing, "rough-processing", "粗加工"),
    (Zone::Cutting, "cutting", "切配"),
    (Zone::Cooking, "cooking", "烹饪"),
    (Zone::SpecialRoom, "special-room", "专间"),
    (Zone::Washing, "washing", "洗消"),
    (Zone::Serving, "serving", "备餐"),
    (Zone::Sampling, "sampling", "留样"),
    (Zone::Storage, "storage", "库房"),
    (Zone::Entrance, "entrance", "出入口"),
    (Zone::Dining, "dining", "就餐区"),
];

impl Zone {
    pub fn as_str(self) -> &'static str {
        ZONES[self as usize].1
    }
    pub fn zh(self) -> &'static str {
        ZONES[self as usize].2
    }
}

impl FromStr for Zone {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Zone, ParseNameError> {
        let want = s.trim().to_ascii_lowercase().replace('_', "-");
        ZONES.iter().find(|z| z.1 == want || z.2 == s.trim()).map(|z| z.0).ok_or_else(|| ParseNameError {
            what: "区域",
            given: s.to_string(),
            expected: ZONES.iter().map(|z| z.1).collect::<Vec<_>>().join(", "),
        })
    }
}

/// Longest camera / canteen / snapshot reference accepted in an alert (bytes).
pub const ALERT_TEXT_BYTES_MAX: usize = 128;

/// An alert raised at a school: an AI detection from one of its kitchen cameras.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRaised {
    pub camera: String,
    pub canteen: String,
    pub zone: Zone,
    pub alert_type: AlertType,
    pub severity: Severity,
    /// When the camera detected it (unix ms, the school's clock).
    pub detected_at_ms: u64,
    /// Detector confidence in per mille (0..=1000).
    pub confidence_permille: u16,
    pub snapshot: String,
    /// How many detections were merged into this alert (1 for a fresh one).
    pub repeat_count: u32,
}

/// Why an alert body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("{field}不能为空")]
    Empty { field: &'static str },
    #[error("{field}长 {len} 字节，超过 {max} 字节的上限")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("置信度 {0}‰ 超过了 1000‰")]
    Confidence(u16),
    #[error("重复次数至少为 1")]
    RepeatCount,
}

impl AlertRaised {
    /// Checks the fields a user or peer could get wrong.
    pub fn validate(&self) -> Result<(), AlertError> {
        for (field, v, required) in
            [("摄像头", &self.camera, true), ("食堂", &self.canteen, true), ("截图", &self.snapshot, false)]
        {
            if required && v.trim().is_empty() {
                return Err(AlertError::Empty { field });
            }
            if v.len() > ALERT_TEXT_BYTES_MAX {
                return Err(AlertError::TooLong { field, len: v.len(), max: ALERT_TEXT_BYTES_MAX });
            }
        }
        if self.confidence_permille > 1000 {
            return Err(AlertError::Confidence(self.confidence_permille));
        }
        if self.repeat_count == 0 {
            return Err(AlertError::RepeatCount);
        }
        Ok(())
    }
}

/// Longest note or reason on an alert update (bytes).
pub const ALERT_NOTE_BYTES_MAX: usize = 1024;

/// A verdict on an alert, or another detection merged into it. Scoped to the alert's school.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertUpdate {
    pub alert: crate::event::EventId,
    pub action: AlertAction,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertAction {
    /// Checked by a person at the school or a supervisor: a real problem. `case` names the case it
    /// opened or joined, if any.
    Confirm { note: String, case: Option<crate::case::CaseId> },
    /// A false positive (误报), with the reason.
    Dismiss { reason: String },
    /// The same camera saw the same thing again within the merge window (written by the school).
    Repeat { detected_at_ms: u64 },
    /// A supervisor of the school (county and above) overturns the school's own dismissal: the
    /// alert is confirmed after all, with the supervisor's reason; the school's dismissal stays on
    /// record beside it.
    Overturn { reason: String },
    /// Nobody judged the alert within the settings' hours (24 h): it moves to the county's queue
    /// (`to`), written by the school's warning engine. Not a verdict: the alert stays open.
    Escalate { to: topology::NodeId },
}

impl AlertUpdate {
    pub fn validate(&self) -> Result<(), AlertError> {
        let (field, text) = match &self.action {
            AlertAction::Confirm { note, .. } => ("备注", note),
            AlertAction::Dismiss { reason } => {
                if reason.trim().is_empty() {
                    return Err(AlertError::Empty { field: "误报原因" });
                }
                ("误报原因", reason)
            }
            AlertAction::Repeat { .. } | AlertAction::Escalate { .. } => return Ok(()),
            AlertAction::Overturn { reason } => {
                if reason.trim().is_empty() {
                    return Err(AlertError::Empty { field: "推翻误报的理由" });
                }
                ("理由", reason)
            }
        };
        if text.len() > ALERT_NOTE_BYTES_MAX {
            return Err(AlertError::TooLong { field, len: text.len(), max: ALERT_NOTE_BYTES_MAX });
        }
        Ok(())
    }
}

/// Where an alert stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertStatus {
    New,
    Confirmed,
    Dismissed,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::New => "new",
            AlertStatus::Confirmed => "confirmed",
            AlertStatus::Dismissed => "dismissed",
        }
    }

    /// The name a person reads: `已确认`.
    pub fn zh(self) -> &'static str {
        match self {
            AlertStatus::New => "待处理",
            AlertStatus::Confirmed => "已确认",
            AlertStatus::Dismissed => "已判为误报",
        }
    }
}

/// An alert's state: the fold of its updates in event order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    pub status: AlertStatus,
    /// Detections merged into the alert, itself included.
    pub detections: u32,
    pub last_detected_ms: u64,
    /// Who gave the verdict (the node, and the person there), and its note or reason.
    pub decided_by: Option<topology::NodeId>,
    #[serde(default)]
    pub decided_by_person: Option<crate::people::Person>,
    pub verdict_text: String,
    /// The school's own dismissal that a supervisor overturned: who dismissed it and why.
    #[serde(default)]
    pub overturned: Option<Overturned>,
    pub case: Option<crate::case::CaseId>,
    /// Later verdicts that contradicted the first (concurrent decisions): kept out, counted.
    pub conflicting_verdicts: u32,
    /// Unjudged past the settings' hours, the alert moved to this unit's queue (the county).
    #[serde(default)]
    pub escalated_to: Option<topology::NodeId>,
}

/// A school's dismissal of its own alert, overturned by a supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overturned {
    pub dismissed_by: topology::NodeId,
    pub dismissed_by_person: Option<crate::people::Person>,
    pub dismissal_reason: String,
}

/// One update of an alert as [`fold_alert`] reads it: the writing node, the person there (if
/// any), and the action.
pub type UpdateRef<'a> = (topology::NodeId, Option<&'a crate::people::Person>, &'a AlertAction);

/// Folds an alert's updates **sorted by event order** (HLC, origin, seq) and without duplicates:
/// the first verdict stands; a later confirmation may attach the case the alert joined; a
/// contradicting later verdict is counted, not applied — except a supervisor's overturn of the
/// school's own dismissal, which confirms the alert and keeps the dismissal on record.
pub fn fold_alert<'a>(detected_at_ms: u64, updates: impl IntoIterator<Item = UpdateRef<'a>>) -> AlertState {
    let mut st = AlertState {
        status: AlertStatus::New,
        detections: 1,
        last_detected_ms: detected_at_ms,
        decided_by: None,
        decided_by_person: None,
        verdict_text: String::new(),
        overturned: None,
        case: None,
        conflicting_verdicts: 0,
        escalated_to: None,
    };
    for (by, person, action) in updates {
        match action {
            AlertAction::Escalate { to } => {
                if st.escalated_to.is_none() {
                    st.escalated_to = Some(*to);
                }
            }
            AlertAction::Repeat { detected_at_ms } => {
                st.detections = st.detections.saturating_add(1);
                st.last_detected_ms = st.last_detected_ms.max(*detected_at_ms);
            }
            AlertAction::Confirm { note, case } => match st.status {
                AlertStatus::New => {
                    st.status = AlertStatus::Confirmed;
                    st.decided_by = Some(by);
                    st.decided_by_person = person.cloned();
                    st.verdict_text = note.clone();
                    st.case = *case;
                }
                AlertStatus::Confirmed => {
                    if st.case.is_none() {
                        st.case = *case;
                    }
                }
                AlertStatus::Dismissed => st.conflicting_verdicts += 1,
            },
            AlertAction::Dismiss { reason } => match st.status {
                AlertStatus::New => {
                    st.status = AlertStatus::Dismissed;
                    st.decided_by = Some(by);
                    st.decided_by_person = person.cloned();
                    st.verdict_text = reason.clone();
                }
                AlertStatus::Dismissed => {}
                AlertStatus::Confirmed => st.conflicting_verdicts += 1,
            },
            AlertAction::Overturn { reason } => match (st.status, st.decided_by) {
                (AlertStatus::Dismissed, Some(school))
                    if school.tier() == Tier::School && by != school && by.is_ancestor_or_self_of(school) =>
                {
                    st.overturned = Some(Overturned {
                        dismissed_by: school,
                        dismissed_by_person: st.decided_by_person.take(),
                        dismissal_reason: std::mem::take(&mut st.verdict_text),
                    });
                    st.status = AlertStatus::Confirmed;
                    st.decided_by = Some(by);
                    st.decided_by_person = person.cloned();
                    st.verdict_text = reason.clone();
                }
                _ => st.conflicting_verdicts += 1,
            },
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taxonomy_table_matches_declaration_order() {
        for (i, t) in TAXONOMY.iter().enumerate() {
            assert_eq!(t.0 as usize, i, "{}", t.1);
            assert_eq!(t.1.parse::<AlertType>().unwrap(), t.0);
        }
        for (i, z) in ZONES.iter().enumerate() {
            assert_eq!(z.0 as usize, i);
            assert_eq!(z.1.parse::<Zone>().unwrap(), z.0);
            assert_eq!(z.2.parse::<Zone>().unwrap(), z.0);
        }
    }

    #[test]
    fn names_parse_leniently_and_fail_clearly() {
        assert_eq!("no_mask".parse::<AlertType>().unwrap(), AlertType::NoMask);
        assert_eq!("严重".parse::<Severity>().unwrap(), Severity::Severe);
        let e = "NO_HAT".parse::<AlertType>().unwrap_err().to_string();
        assert!(e.contains("NO_HAT") && e.contains("NO_CHEF_HAT"), "{e}");
    }

    #[test]
    fn default_severity_follows_domain() {
        assert_eq!(AlertType::Smoking.default_severity(Zone::Cooking), Severity::Severe);
        assert_eq!(AlertType::NoMask.default_severity(Zone::Cooking), Severity::General);
        assert_eq!(AlertType::NoMask.default_severity(Zone::SpecialRoom), Severity::Serious);
    }

    #[test]
    fn the_first_verdict_stands_and_repeats_count() {
        let (school, county) = ("130102-S0001".parse().unwrap(), "130102".parse().unwrap());
        let dismiss = AlertAction::Dismiss { reason: "shadow".into() };
        let confirm = AlertAction::Confirm { note: String::new(), case: None };
        let repeat = AlertAction::Repeat { detected_at_ms: 50 };
        let st = fold_alert(
            10,
            [(school, None, &repeat), (school, None, &dismiss), (county, None, &confirm), (school, None, &repeat)],
        );
        assert_eq!(st.status, AlertStatus::Dismissed);
        assert_eq!(st.decided_by, Some(school));
        assert_eq!((st.detections, st.last_detected_ms, st.conflicting_verdicts), (3, 50, 1));
        let st = fold_alert(10, [(county, None, &confirm), (school, None, &dismiss)]);
        assert_eq!((st.status, st.conflicting_verdicts), (AlertStatus::Confirmed, 1));
        assert_eq!(fold_alert(10, []).status, AlertStatus::New);
    }

    #[test]
    fn a_supervisor_overturns_the_schools_own_dismissal_and_both_stay_on_record() {
        let (school, county, other) =
            ("130102-S0001".parse().unwrap(), "130102".parse().unwrap(), "130104".parse().unwrap());
        let cook = crate::people::Person { account: "wang".into(), name: "王".into() };
        let boss = crate::people::Person { account: "li.na".into(), name: "李娜".into() };
        let dismiss = AlertAction::Dismiss { reason: "影子".into() };
        let overturn = AlertAction::Overturn { reason: "画面清楚是老鼠".into() };
        let st = fold_alert(10, [(school, Some(&cook), &dismiss), (county, Some(&boss), &overturn)]);
        assert_eq!(st.status, AlertStatus::Confirmed);
        assert_eq!((st.decided_by, st.decided_by_person.as_ref()), (Some(county), Some(&boss)));
        let o = st.overturned.expect("the dismissal stays on record");
        assert_eq!((o.dismissed_by, o.dismissed_by_person, o.dismissal_reason.as_str()), (school, Some(cook), "影子"));
        // Another county, the school itself, or an alert the county itself dismissed: no overturn.
        for (first, by) in [(school, other), (school, school), (county, county)] {
            let st = fold_alert(10, [(first, None, &dismiss), (by, None, &overturn)]);
            assert_eq!((st.status, st.conflicting_verdicts), (AlertStatus::Dismissed, 1), "{first} then {by}");
        }
        assert!(
            AlertUpdate {
                alert: crate::EventId { origin: school, seq: 1 },
                action: AlertAction::Overturn { reason: " ".into() }
            }
            .validate()
            .is_err()
        );
    }
}
