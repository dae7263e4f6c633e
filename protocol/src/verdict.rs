//! Composing what a person's decision writes, as pure functions the admin API and the simulator
//! both call: a verdict on an AI alert (confirm, optionally opening a case with its notice, or
//! dismiss as 误报), and an online spot check with a case per failed focus area. Each returns the
//! `(scope, body)` items of one atomic write, or why the decision is refused — before anything is
//! written.

use topology::{NodeId, Tier};

use crate::alert::{AlertAction, AlertRaised, AlertState, AlertStatus, AlertUpdate, Severity};
use crate::case::{CaseAction, CaseEvent, CaseRules, CaseSource, draft_from_alert, notice_deadline, pending_case};
use crate::event::Body;
use crate::ids::EventId;
use crate::spot::{FocusArea, SpotCheck};

/// A person's verdict on an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A real problem; with `open_case`, a supervisor also opens a case and issues its notice.
    Confirm { note: String, open_case: bool },
    /// A false positive (误报), with the reason.
    Dismiss { reason: String },
    /// A supervisor overturns the school's own dismissal (the alert is real after all).
    Overturn { reason: String },
}

/// Why a verdict is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerdictRefusal {
    /// The node may not judge this alert, or may not open a case (authority).
    #[error("{0}")]
    Forbidden(String),
    /// The alert already has a verdict.
    #[error("{0}")]
    Conflict(String),
    /// The verdict itself is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The items a verdict by `by` on alert `alert_id` (raised as `alert`, now in state `current`)
/// writes, in one atomic write: with a case, its `Open` and `IssueNotice` (deadline by `rules`
/// from `now_ms`), then the alert update referring to it. The school itself and its county, city
/// and province may judge; only a supervisor opens a case. A second verdict is refused, except a
/// confirmation that opens a case for an alert already confirmed.
pub fn verdict_items(
    by: NodeId,
    alert_id: EventId,
    alert: &AlertRaised,
    current: &AlertState,
    verdict: Verdict,
    rules: &CaseRules,
    now_ms: u64,
) -> Result<Vec<(NodeId, Body)>, VerdictRefusal> {
    let school = alert_id.origin;
    if by != school && !(by.is_ancestor_or_self_of(school) && by.tier() <= Tier::County) {
        return Err(VerdictRefusal::Forbidden(format!(
            "{by} 不能判定 {school} 的告警：只有该学校及其县、市、省级监管部门可以"
        )));
    }
    if let Verdict::Overturn { reason } = verdict {
        let dismissed_by_school =
            current.status == AlertStatus::Dismissed && current.decided_by.is_some_and(|d| d == school);
        if by.tier() == Tier::School {
            return Err(VerdictRefusal::Forbidden("只有学校的上级监管部门可以推翻学校的误报判定".into()));
        }
        if !dismissed_by_school {
            return Err(VerdictRefusal::Conflict(format!("告警 {alert_id} 不是学校自行判定的误报，无需推翻")));
        }
        let update = AlertUpdate { alert: alert_id, action: AlertAction::Overturn { reason } };
        update.validate().map_err(|e| VerdictRefusal::Invalid(e.to_string()))?;
        return Ok(vec![(school, Body::AlertUpdate(update))]);
    }
    let open_case = matches!(verdict, Verdict::Confirm { open_case: true, .. });
    if current.status != AlertStatus::New && !open_case {
        let who = current.decided_by.map(|n| n.to_string()).unwrap_or_default();
        return Err(VerdictRefusal::Conflict(format!(
            "告警 {alert_id} 已由 {who} 处理（{}），不能再次判定",
            current.status.zh()
        )));
    }
    if open_case && by.tier() == Tier::School {
        return Err(VerdictRefusal::Forbidden("案件由县级及以上监管部门挂账，学校不能自行挂账".into()));
    }
    let mut items = Vec::new();
    if open_case {
        let (open, notice) = draft_from_alert(alert_id, school, alert, rules, now_ms);
        for action in [open, notice] {
            items.push((school, Body::Case(CaseEvent { case: pending_case(by), action })));
        }
    }
    let action = match verdict {
        Verdict::Confirm { note, open_case } => {
            AlertAction::Confirm { note, case: open_case.then(|| pending_case(by)) }
        }
        Verdict::Dismiss { reason } => AlertAction::Dismiss { reason },
        Verdict::Overturn { reason } => AlertAction::Overturn { reason },
    };
    let update = AlertUpdate { alert: alert_id, action };
    update.validate().map_err(|e| VerdictRefusal::Invalid(e.to_string()))?;
    items.push((school, Body::AlertUpdate(update)));
    Ok(items)
}

/// What recording a check of `school` by `by` writes, in one atomic write: the check (all four
/// areas scored, `failed` failing), then for each failed area a case opened at the school with its
/// rectification notice (deadline by severity and `rules` from `now_ms`).
pub fn check_items(
    by: NodeId,
    school: NodeId,
    canteen: &str,
    failed: &[(FocusArea, Severity)],
    note: &str,
    rules: &CaseRules,
    now_ms: u64,
) -> Result<Vec<(NodeId, Body)>, String> {
    let check = SpotCheck {
        canteen: canteen.to_string(),
        results: FocusArea::ALL.into_iter().map(|a| (a, !failed.iter().any(|(f, _)| *f == a))).collect(),
        note: note.to_string(),
    };
    check.validate()?;
    let mut items = vec![(school, Body::SpotCheck(check))];
    for &(area, severity) in failed {
        let open = CaseAction::Open {
            school,
            severity,
            source: CaseSource::SpotCheck,
            title: format!("网络巡查不合格：{}", area.zh()),
            detail: if note.is_empty() {
                format!("食堂“{canteen}”")
            } else {
                format!("食堂“{canteen}”：{note}")
            },
            number: 0,
        };
        let notice = CaseAction::IssueNotice {
            deadline_ms: notice_deadline(rules, severity, now_ms),
            text: format!("网络巡查发现{}不合格，请按期整改并上传佐证材料。", area.zh()),
        };
        for action in [open, notice] {
            items.push((school, Body::Case(CaseEvent { case: pending_case(by), action })));
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertType, Zone};

    fn alert() -> AlertRaised {
        AlertRaised {
            camera: "cam-1".into(),
            canteen: "main".into(),
            zone: Zone::Cooking,
            alert_type: AlertType::NoChefHat,
            severity: Severity::General,
            detected_at_ms: 1_000,
            confidence_permille: 900,
            snapshot: String::new(),
            repeat_count: 1,
        }
    }

    fn fresh() -> AlertState {
        crate::alert::fold_alert(1_000, std::iter::empty())
    }

    #[test]
    fn a_verdict_is_refused_before_anything_is_written() {
        let school: NodeId = "130102-S0001".parse().unwrap();
        let id = EventId { origin: school, seq: 3 };
        let rules = CaseRules::default();
        let other: NodeId = "130103".parse().unwrap();
        let confirm = Verdict::Confirm { note: String::new(), open_case: true };
        assert!(matches!(
            verdict_items(other, id, &alert(), &fresh(), confirm.clone(), &rules, 5),
            Err(VerdictRefusal::Forbidden(_))
        ));
        assert!(matches!(
            verdict_items(school, id, &alert(), &fresh(), confirm.clone(), &rules, 5),
            Err(VerdictRefusal::Forbidden(_))
        ));
        let county: NodeId = "130102".parse().unwrap();
        let items = verdict_items(county, id, &alert(), &fresh(), confirm, &rules, 5).unwrap();
        assert_eq!(items.len(), 3, "open, notice and the confirmation");
        let dismiss = Verdict::Dismiss { reason: String::new() };
        assert!(matches!(
            verdict_items(county, id, &alert(), &fresh(), dismiss, &rules, 5),
            Err(VerdictRefusal::Invalid(_))
        ));
    }
}
