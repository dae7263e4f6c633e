//! Cases (问题台账: 挂账 → 整改 → 复核 → 销号) as a pure, deterministic fold of case events.
//!
//! A case is opened by a supervisor against a school; every later step is one [`CaseEvent`] whose
//! scope is the school and whose writer is the event's origin. [`fold`] sorts a case's events by
//! `(hlc, origin, seq)`, drops duplicate event ids and applies them in that order, so every node
//! holding the same set of events computes the same [`CaseState`], whatever order they arrived in.
//!
//! States: `Open → NoticeIssued → Rectifying → Submitted → Reviewed → Closed`, plus `Cancelled`.
//!
//! - **Reviewed** (复核通过) sits between `Submitted` and `Closed`: DOMAIN.md makes review and
//!   close (销号) two steps of the county, so `Close` is only accepted from `Reviewed`.
//! - A failed review sends the case back to `Rectifying` (`rework` and `rejected` +1, the overdue
//!   flag cleared) with a new deadline of at most half the first deadline's span after the review.
//! - The school may `Submit` straight from `NoticeIssued`: submitting implies it received the
//!   notice, so a separate `Acknowledge` is optional.
//! - `Cancel` (误判) needs a reason and is only accepted before the school acknowledged or
//!   submitted (`Open`, `NoticeIssued`). `Closed`/`Cancelled` are final; `closed_at_ms` is set by both.
//! - **Overdue** is a flag, set by `MarkOverdue` once the event's HLC wall time is past the deadline
//!   while the school owes the rectification (`NoticeIssued`, `Rectifying`).
//! - **Escalation** (督办) moves the `supervisor` one level up (county → city → province), only
//!   when the case is overdue or rejected [`ESCALATE_AFTER_REJECTIONS`] times, and only while it is
//!   not `Reviewed`, `Closed` or `Cancelled`. It is written by the current supervisor or one of its
//!   ancestors. The thresholds in working days are the scheduler's policy ([`due`]); the fold only
//!   checks facts, so nodes with different [`CaseRules`] still fold to the same state.
//! - Every supervisor of the school (county, city, province) may open, notify, review, close and
//!   cancel, whoever the current escalation level is: escalation adds oversight, it does not take
//!   the case away from the county.
//!
//! A step that is not authorised or not allowed in the current state is kept in the history as
//! [`StepOutcome::Refused`] and changes nothing else: never silently dropped, never a panic.
//!
//! Time: deadlines are unix milliseconds. Working days are those of the rules' calendar
//! ([`CaseRules::calendar`], by default [`WorkCalendar::builtin`]): Monday–Friday in China time
//! (UTC+8), less public holidays (法定节假日), plus adjusted working weekends (调休).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::alert::{AlertRaised, Severity};
use crate::calendar::HOUR_MS;
pub use crate::calendar::{ChinaTime, WorkCalendar, add_working_days, working_days_between};
pub use crate::ids::CaseId;
use crate::ids::{EventId, Hlc};

/// A case's severity: the alert taxonomy's 一般 / 较重 / 严重, shared with alerts.
pub type CaseSeverity = Severity;

/// How many failed reviews make a case eligible for escalation even when it is not overdue
/// (DOMAIN.md: "rejected twice → city 督办"). A constant, not a rule, so every node folds alike.
pub const ESCALATE_AFTER_REJECTIONS: u32 = 2;

/// `130102-2026-0007`: the opener, the China-time year of `opened_at_ms`, the running number.
pub fn ledger_no(opened_by: NodeId, opened_at_ms: u64, number: u32) -> String {
    format!("{opened_by}-{}-{number:04}", ledger_year(opened_at_ms))
}

/// The China-time year of an instant (the ledger's year).
pub fn ledger_year(ms: u64) -> u32 {
    ChinaTime(ms).date().get(..4).and_then(|y| y.parse().ok()).unwrap_or(0)
}

/// A case id in a write meaning "the case opened by an earlier item of the same write" (its id,
/// the `Open` event's own id, is known only once the store assigns the seq).
pub fn pending_case(me: NodeId) -> CaseId {
    CaseId { opened_by: me, seq: 0 }
}

/// Where a case came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseSource {
    /// A confirmed AI camera alert (the alert event's id).
    AiAlert { alert: EventId },
    /// 网络巡查: an online spot check.
    SpotCheck,
    /// 现场检查: an on-site inspection.
    OnSite,
    /// An early-warning rule on the food-safety database.
    RuleWarning,
    /// 投诉举报: a complaint.
    Complaint,
    /// 自查: the school's own check.
    SelfCheck,
    /// An early warning whose rule's settings open a case: the warning and the raise that began
    /// its episode (one case per episode).
    Warning { key: crate::warning::WarningKey, episode: EventId },
}

/// One step of a case: the body of a case event. Wire rule: variants are encoded by position, so
/// only ever append.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseAction {
    /// 挂账: a supervisor opens a case against `school`. `number` is the opener's ledger number
    /// for the year (`130102-2026-0007`): 0 in a request, assigned by the opener's store when it
    /// writes the event, so every node shows the same number.
    Open { school: NodeId, severity: CaseSeverity, source: CaseSource, title: String, detail: String, number: u32 },
    /// 整改通知: a supervisor notifies the school, with the rectification deadline.
    IssueNotice { deadline_ms: u64, text: String },
    /// The school reports the notice delivered (or refused: 拒收, an accountability fact).
    NoticeDelivery { refused: bool },
    /// The school acknowledges the notice and starts rectifying.
    Acknowledge,
    /// The school reports the rectification, with evidence (photo / video references).
    Submit { evidence: Vec<String>, note: String },
    /// 复核: a supervisor reviews the submission; a failure sets a new (shorter) deadline.
    Review { passed: bool, comment: String, new_deadline_ms: Option<u64> },
    /// 销号: a supervisor closes a reviewed case.
    Close { comment: String },
    /// 误判: a supervisor cancels a case opened in error.
    Cancel { reason: String },
    /// A supervisor flags the case overdue (written by the scheduler, see [`due`]).
    MarkOverdue,
    /// 督办: the case moves up to `to`, the current supervisor's parent.
    Escalate { to: NodeId },
}

/// The name of a [`CaseAction`], without its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseActionKind {
    Open,
    IssueNotice,
    NoticeDelivery,
    Acknowledge,
    Submit,
    Review,
    Close,
    Cancel,
    MarkOverdue,
    Escalate,
}

impl CaseActionKind {
    /// The name a person reads: `整改通知`.
    pub fn zh(self) -> &'static str {
        match self {
            CaseActionKind::Open => "挂账",
            CaseActionKind::IssueNotice => "整改通知",
            CaseActionKind::NoticeDelivery => "送达",
            CaseActionKind::Acknowledge => "签收",
            CaseActionKind::Submit => "提交整改",
            CaseActionKind::Review => "复核",
            CaseActionKind::Close => "销号",
            CaseActionKind::Cancel => "撤销",
            CaseActionKind::MarkOverdue => "逾期",
            CaseActionKind::Escalate => "督办",
        }
    }

    /// A short name for logs and the UI: `issue-notice`.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseActionKind::Open => "open",
            CaseActionKind::IssueNotice => "issue-notice",
            CaseActionKind::NoticeDelivery => "notice-delivery",
            CaseActionKind::Acknowledge => "acknowledge",
            CaseActionKind::Submit => "submit",
            CaseActionKind::Review => "review",
            CaseActionKind::Close => "close",
            CaseActionKind::Cancel => "cancel",
            CaseActionKind::MarkOverdue => "mark-overdue",
            CaseActionKind::Escalate => "escalate",
        }
    }

    /// True for the steps the school itself takes; the others are its supervisors'.
    pub fn is_school_step(self) -> bool {
        matches!(self, CaseActionKind::NoticeDelivery | CaseActionKind::Acknowledge | CaseActionKind::Submit)
    }
}

impl fmt::Display for CaseActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CaseAction {
    /// The action's name.
    pub fn kind(&self) -> CaseActionKind {
        match self {
            CaseAction::Open { .. } => CaseActionKind::Open,
            CaseAction::IssueNotice { .. } => CaseActionKind::IssueNotice,
            CaseAction::NoticeDelivery { .. } => CaseActionKind::NoticeDelivery,
            CaseAction::Acknowledge => CaseActionKind::Acknowledge,
            CaseAction::Submit { .. } => CaseActionKind::Submit,
            CaseAction::Review { .. } => CaseActionKind::Review,
            CaseAction::Close { .. } => CaseActionKind::Close,
            CaseAction::Cancel { .. } => CaseActionKind::Cancel,
            CaseAction::MarkOverdue => CaseActionKind::MarkOverdue,
            CaseAction::Escalate { .. } => CaseActionKind::Escalate,
        }
    }
}

/// The body of one case event (to become `Body::Case`): which case, and what happened.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CaseEvent {
    pub case: CaseId,
    pub action: CaseAction,
}

/// Where a case is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseStatus {
    /// 挂账: opened, no notice yet.
    Open,
    /// 已下发整改通知: the school has a deadline.
    NoticeIssued,
    /// 整改中: acknowledged, or sent back by a failed review.
    Rectifying,
    /// 待复核: the school reported its rectification.
    Submitted,
    /// 复核通过: waiting to be closed.
    Reviewed,
    /// 已销号.
    Closed,
    /// 已撤销 (误判).
    Cancelled,
}

impl CaseStatus {
    /// A short English name: `notice-issued`.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::NoticeIssued => "notice-issued",
            CaseStatus::Rectifying => "rectifying",
            CaseStatus::Submitted => "submitted",
            CaseStatus::Reviewed => "reviewed",
            CaseStatus::Closed => "closed",
            CaseStatus::Cancelled => "cancelled",
        }
    }

    /// The Chinese name shown to users.
    pub fn zh(self) -> &'static str {
        match self {
            CaseStatus::Open => "挂账",
            CaseStatus::NoticeIssued => "已下发通知",
            CaseStatus::Rectifying => "整改中",
            CaseStatus::Submitted => "待复核",
            CaseStatus::Reviewed => "复核通过",
            CaseStatus::Closed => "已销号",
            CaseStatus::Cancelled => "已撤销",
        }
    }

    /// `Closed` and `Cancelled` are final.
    pub fn is_terminal(self) -> bool {
        matches!(self, CaseStatus::Closed | CaseStatus::Cancelled)
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// Applied to the state.
    Applied,
    /// Recorded but not applied, with the reason (a [`Refusal`]'s message).
    Refused(String),
}

/// One entry of a case's history: every distinct event of the case, applied or refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub event: EventId,
    /// The event's HLC wall time (unix ms).
    pub at_ms: u64,
    pub by: NodeId,
    /// The person at `by` who took the step (`None`: the node itself, e.g. the scheduler's
    /// escalation, or its local operator).
    #[serde(default)]
    pub person: Option<crate::people::Person>,
    pub action: CaseActionKind,
    pub outcome: StepOutcome,
    /// What the step said, as written: the notice's text and deadline, the school's note and
    /// evidence, the review's comment, the closing comment, the cancel reason, where it was
    /// escalated to. Empty for steps that say nothing.
    #[serde(default)]
    pub text: String,
}

/// A case as folded from its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseState {
    pub id: CaseId,
    pub school: NodeId,
    pub severity: CaseSeverity,
    pub source: CaseSource,
    pub title: String,
    pub detail: String,
    /// The opener's ledger number for the year of opening (see [`CaseState::ledger_no`]).
    pub number: u32,
    pub status: CaseStatus,
    /// When the notice was issued.
    pub notice_at_ms: Option<u64>,
    /// The current rectification deadline.
    pub deadline_ms: Option<u64>,
    /// The notice's deadline; a failed review's new deadline is bounded by half its span.
    pub first_deadline_ms: Option<u64>,
    /// The school acknowledged, submitted, or reported the notice delivered.
    pub notice_delivered: bool,
    /// The school refused the notice (拒收): sticky, an accountability fact.
    pub notice_refused: bool,
    /// The latest submission's time and evidence.
    pub submitted_at_ms: Option<u64>,
    pub evidence: Vec<String>,
    /// Rework rounds (one per failed review).
    pub rework: u32,
    /// Failed reviews.
    pub rejected: u32,
    /// Past the current deadline while the school owes the rectification (cleared by a failed
    /// review's new deadline, and on close / cancel).
    pub overdue: bool,
    /// How many times the case was flagged overdue (never decreases).
    pub overdue_marks: u32,
    /// The escalation level: the school's county, then its city, then the province.
    pub supervisor: NodeId,
    pub opened_at_ms: u64,
    /// When the case was closed or cancelled.
    pub closed_at_ms: Option<u64>,
    pub history: Vec<Step>,
}

impl CaseState {
    /// The number a person says: the opening supervisor, the China-time year of opening and the
    /// opener's running number that year, `130102-2026-0007`.
    pub fn ledger_no(&self) -> String {
        ledger_no(self.id.opened_by, self.opened_at_ms, self.number)
    }

    /// When the review of the current submission is due (2 working days by default).
    pub fn review_due_ms(&self, rules: &CaseRules) -> Option<u64> {
        let at = self.submitted_at_ms.filter(|_| self.status == CaseStatus::Submitted)?;
        Some(rules.calendar.add_working_days(at, rules.review_days))
    }

    /// The refused steps, for the "flagged" list of a supervisor.
    pub fn refused(&self) -> impl Iterator<Item = &Step> {
        self.history.iter().filter(|s| matches!(s.outcome, StepOutcome::Refused(_)))
    }

    /// The time of the latest applied review (a failed one while the case is not `Reviewed`).
    fn last_review_at(&self) -> Option<u64> {
        self.history
            .iter()
            .rev()
            .find(|s| s.action == CaseActionKind::Review && s.outcome == StepOutcome::Applied)
            .map(|s| s.at_ms)
    }
}

/// One case event as the fold sees it (built from an event whose body is `Body::Case`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseInput {
    /// The event's id; its origin is the writer.
    pub id: EventId,
    pub hlc: Hlc,
    /// The event's scope: must be the case's school.
    pub scope: NodeId,
    pub case: CaseId,
    pub action: CaseAction,
    /// The person who took the step at the writing node, if any.
    pub person: Option<crate::people::Person>,
}

impl CaseInput {
    /// The node that wrote the event.
    pub fn by(&self) -> NodeId {
        self.id.origin
    }

    /// The fold order, as [`crate::event::Event::order_key`]: HLC, then origin, then seq.
    pub fn order_key(&self) -> (Hlc, NodeId, u64) {
        (self.hlc, self.id.origin, self.id.seq)
    }
}

/// Why a case step is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{node} 不是学校：案件只针对学校")]
    NotASchool { node: NodeId },
    #[error("{by} 既不是学校 {school}，也不是它的上级监管部门")]
    Unrelated { by: NodeId, school: NodeId },
    #[error("只有 {school} 的上级监管部门（县级及以上）可以执行“{}”，{by} 不能", action.zh())]
    SupervisorOnly { action: CaseActionKind, by: NodeId, school: NodeId },
    #[error("只有学校 {school} 自己可以执行“{}”，{by} 不能", action.zh())]
    SchoolOnly { action: CaseActionKind, by: NodeId, school: NodeId },
    #[error("事件记在 {scope} 名下，而案件属于学校 {school}")]
    Scope { scope: NodeId, school: NodeId },
    #[error("案件尚未挂账")]
    NotOpened,
    #[error("挂账事件 {event} 与案件编号 {case} 不符")]
    OpenMismatch { event: EventId, case: CaseId },
    #[error("案件已经挂账")]
    AlreadyOpened,
    #[error("案件现为“{}”，不能执行“{}”", status.zh(), action.zh())]
    WrongState { action: CaseActionKind, status: CaseStatus },
    #[error("{what}不能为空")]
    Empty { what: &'static str },
    #[error("整改期限 {} 须晚于操作时间 {}", ChinaTime(*.deadline_ms), ChinaTime(*.at_ms))]
    DeadlineNotAfter { deadline_ms: u64, at_ms: u64 },
    #[error("尚未逾期：整改期限为 {}，操作时间为 {}", ChinaTime(*.deadline_ms), ChinaTime(*.at_ms))]
    NotPastDeadline { deadline_ms: u64, at_ms: u64 },
    #[error("已经标记为逾期")]
    AlreadyOverdue,
    #[error("整改通知的送达情况已经记录过了")]
    DeliveryRecorded,
    #[error("已经督办至 {supervisor}")]
    AlreadyEscalated { to: NodeId, supervisor: NodeId },
    #[error("督办须逐级上报：下一级是 {expected}，不是 {to}")]
    NotNextLevel { to: NodeId, expected: NodeId },
    #[error("已到最高一级：本案件由省级督办")]
    AtTop,
    #[error("本案件现由 {supervisor} 督办，{by} 不能再上报督办")]
    BelowSupervisor { by: NodeId, supervisor: NodeId },
    #[error("不符合督办条件：既未逾期，也未被复核退回 {ESCALATE_AFTER_REJECTIONS} 次")]
    NotEligible,
}

/// Who may take `action` on a case of `school`: its supervisors (strict ancestors: county, city,
/// province) open, notify, review, close, cancel, mark overdue and escalate; the school itself
/// acknowledges, submits and reports delivery; anybody else may do nothing.
pub fn authorize(by: NodeId, school: NodeId, action: &CaseAction) -> Result<(), Refusal> {
    if school.tier() != Tier::School {
        return Err(Refusal::NotASchool { node: school });
    }
    let kind = action.kind();
    if by == school {
        if kind.is_school_step() { Ok(()) } else { Err(Refusal::SupervisorOnly { action: kind, by, school }) }
    } else if by.is_ancestor_or_self_of(school) {
        if kind.is_school_step() { Err(Refusal::SchoolOnly { action: kind, by, school }) } else { Ok(()) }
    } else {
        Err(Refusal::Unrelated { by, school })
    }
}

/// The checks on one case event that need no case state, for the ingest path (`check_event`): the
/// scope is a school, an `Open` opens the case named by its own event id about its scope, and the
/// origin may take the action there. The fold re-checks all of this against the case itself.
pub fn check_case_event(id: EventId, scope: NodeId, event: &CaseEvent) -> Result<(), Refusal> {
    if let CaseAction::Open { school, .. } = &event.action {
        if *school != scope {
            return Err(Refusal::Scope { scope, school: *school });
        }
        if CaseId::of_open(id) != event.case {
            return Err(Refusal::OpenMismatch { event: id, case: event.case });
        }
    }
    authorize(id.origin, scope, &event.action)
}

/// `Ok` if `ok`, else the refusal `err` makes.
fn ensure(ok: bool, err: impl FnOnce() -> Refusal) -> Result<(), Refusal> {
    if ok { Ok(()) } else { Err(err()) }
}

fn non_blank(text: &str, what: &'static str) -> Result<(), Refusal> {
    if text.trim().is_empty() { Err(Refusal::Empty { what }) } else { Ok(()) }
}

/// Whether `input` can open case `case` (authority, scope, a title): the reason it cannot.
pub fn check_open(case: CaseId, input: &CaseInput) -> Result<(), Refusal> {
    CaseState::open(case, input).map(|_| ())
}

impl CaseState {
    /// Starts a case from its `Open` event.
    fn open(case: CaseId, input: &CaseInput) -> Result<CaseState, Refusal> {
        let CaseAction::Open { school, severity, source, title, detail, number } = &input.action else {
            return Err(Refusal::NotOpened);
        };
        if input.id != case.event_id() {
            return Err(Refusal::OpenMismatch { event: input.id, case });
        }
        authorize(input.by(), *school, &input.action)?;
        if input.scope != *school {
            return Err(Refusal::Scope { scope: input.scope, school: *school });
        }
        non_blank(title, "案件标题")?;
        let supervisor = school.parent().ok_or(Refusal::NotASchool { node: *school })?;
        Ok(CaseState {
            id: case,
            school: *school,
            severity: *severity,
            source: source.clone(),
            title: title.clone(),
            detail: detail.clone(),
            number: *number,
            status: CaseStatus::Open,
            notice_at_ms: None,
            deadline_ms: None,
            first_deadline_ms: None,
            notice_delivered: false,
            notice_refused: false,
            submitted_at_ms: None,
            evidence: Vec::new(),
            rework: 0,
            rejected: 0,
            overdue: false,
            overdue_marks: 0,
            supervisor,
            opened_at_ms: input.hlc.wall_ms,
            closed_at_ms: None,
            history: Vec::new(),
        })
    }

    /// Applies one event after the `Open`, recording it in the history either way.
    fn apply(&mut self, input: &CaseInput) {
        let outcome = match self.transition(input) {
            Ok(()) => StepOutcome::Applied,
            Err(refusal) => StepOutcome::Refused(refusal.to_string()),
        };
        self.history.push(step(input, outcome));
    }

    /// Checks one transition and, only if every check passes, applies it.
    fn transition(&mut self, input: &CaseInput) -> Result<(), Refusal> {
        use CaseStatus as S;
        let (by, at, status) = (input.by(), input.hlc.wall_ms, self.status);
        authorize(by, self.school, &input.action)?;
        if input.scope != self.school {
            return Err(Refusal::Scope { scope: input.scope, school: self.school });
        }
        let wrong = || Refusal::WrongState { action: input.action.kind(), status };
        match &input.action {
            CaseAction::Open { .. } => return Err(Refusal::AlreadyOpened),
            CaseAction::IssueNotice { deadline_ms, text } => {
                ensure(status == S::Open, wrong)?;
                non_blank(text, "整改通知内容")?;
                if *deadline_ms <= at {
                    return Err(Refusal::DeadlineNotAfter { deadline_ms: *deadline_ms, at_ms: at });
                }
                self.status = S::NoticeIssued;
                self.notice_at_ms = Some(at);
                self.deadline_ms = Some(*deadline_ms);
                self.first_deadline_ms = Some(*deadline_ms);
            }
            CaseAction::NoticeDelivery { refused } => {
                ensure(self.notice_at_ms.is_some() && !status.is_terminal(), wrong)?;
                ensure(!self.notice_delivered && !self.notice_refused, || Refusal::DeliveryRecorded)?;
                if *refused {
                    self.notice_refused = true;
                } else {
                    self.notice_delivered = true;
                }
            }
            CaseAction::Acknowledge => {
                ensure(status == S::NoticeIssued, wrong)?;
                self.status = S::Rectifying;
                self.notice_delivered = true;
            }
            CaseAction::Submit { evidence, .. } => {
                ensure(matches!(status, S::NoticeIssued | S::Rectifying), wrong)?;
                if evidence.iter().all(|e| e.trim().is_empty()) {
                    return Err(Refusal::Empty { what: "佐证材料" });
                }
                self.status = S::Submitted;
                self.notice_delivered = true;
                self.submitted_at_ms = Some(at);
                self.evidence = evidence.clone();
            }
            CaseAction::Review { passed, new_deadline_ms, .. } => {
                ensure(status == S::Submitted, wrong)?;
                if *passed {
                    self.status = S::Reviewed;
                } else {
                    let span = match (self.notice_at_ms, self.first_deadline_ms) {
                        (Some(notice), Some(first)) => first.saturating_sub(notice),
                        _ => 0,
                    };
                    let latest = at.saturating_add(span / 2);
                    let deadline = match *new_deadline_ms {
                        Some(d) if d <= at => return Err(Refusal::DeadlineNotAfter { deadline_ms: d, at_ms: at }),
                        Some(d) => d.min(latest),
                        None => latest,
                    };
                    self.status = S::Rectifying;
                    self.deadline_ms = Some(deadline);
                    self.rework = self.rework.saturating_add(1);
                    self.rejected = self.rejected.saturating_add(1);
                    self.overdue = false;
                }
            }
            CaseAction::Close { .. } => {
                ensure(status == S::Reviewed, wrong)?;
                self.finish(S::Closed, at);
            }
            CaseAction::Cancel { reason } => {
                ensure(matches!(status, S::Open | S::NoticeIssued), wrong)?;
                non_blank(reason, "撤销原因")?;
                self.finish(S::Cancelled, at);
            }
            CaseAction::MarkOverdue => {
                ensure(matches!(status, S::NoticeIssued | S::Rectifying), wrong)?;
                ensure(!self.overdue, || Refusal::AlreadyOverdue)?;
                let deadline = self.deadline_ms.ok_or_else(wrong)?;
                if at <= deadline {
                    return Err(Refusal::NotPastDeadline { deadline_ms: deadline, at_ms: at });
                }
                self.overdue = true;
                self.overdue_marks = self.overdue_marks.saturating_add(1);
            }
            CaseAction::Escalate { to } => {
                ensure(!status.is_terminal() && status != S::Reviewed, wrong)?;
                // At or below the current level (and on the school's path): a duplicate.
                if to.tier() != Tier::School
                    && self.supervisor.is_ancestor_or_self_of(*to)
                    && to.is_ancestor_or_self_of(self.school)
                {
                    return Err(Refusal::AlreadyEscalated { to: *to, supervisor: self.supervisor });
                }
                let expected = self.supervisor.parent().ok_or(Refusal::AtTop)?;
                if *to != expected {
                    return Err(Refusal::NotNextLevel { to: *to, expected });
                }
                if !by.is_ancestor_or_self_of(self.supervisor) {
                    return Err(Refusal::BelowSupervisor { by, supervisor: self.supervisor });
                }
                ensure(self.overdue || self.rejected >= ESCALATE_AFTER_REJECTIONS, || Refusal::NotEligible)?;
                self.supervisor = *to;
            }
        }
        Ok(())
    }

    fn finish(&mut self, status: CaseStatus, at: u64) {
        self.status = status;
        self.closed_at_ms = Some(at);
        self.overdue = false;
    }
}

fn step(input: &CaseInput, outcome: StepOutcome) -> Step {
    let text = match &input.action {
        CaseAction::Open { title, detail, .. } if detail.is_empty() => title.clone(),
        CaseAction::Open { title, detail, .. } => format!("{title}\n{detail}"),
        CaseAction::IssueNotice { deadline_ms, text } => {
            format!("{text}\n整改期限 {}", ChinaTime(*deadline_ms).minute())
        }
        CaseAction::NoticeDelivery { refused: true } => "拒收".into(),
        CaseAction::NoticeDelivery { refused: false } | CaseAction::Acknowledge | CaseAction::MarkOverdue => {
            String::new()
        }
        CaseAction::Submit { evidence, note } if evidence.is_empty() => note.clone(),
        CaseAction::Submit { evidence, note } => format!("{note}\n佐证材料: {}", evidence.join(", ")),
        CaseAction::Review { passed, comment, new_deadline_ms } => {
            let verdict = if *passed { "复核通过" } else { "复核不通过" };
            let again = new_deadline_ms.map(|d| format!("，新期限 {}", ChinaTime(d).minute())).unwrap_or_default();
            if comment.is_empty() { format!("{verdict}{again}") } else { format!("{verdict}{again}: {comment}") }
        }
        CaseAction::Close { comment } => comment.clone(),
        CaseAction::Cancel { reason } => reason.clone(),
        CaseAction::Escalate { to } => format!("督办至 {to}"),
    };
    Step {
        event: input.id,
        at_ms: input.hlc.wall_ms,
        by: input.by(),
        person: input.person.clone(),
        action: input.action.kind(),
        outcome,
        text,
    }
}

/// The fold order: `(hlc, origin, seq)`, then the content as a tie-break so even two different
/// events claiming one id order the same everywhere; then the first of each event id is kept.
fn fold_order<'a>(inputs: impl Iterator<Item = &'a CaseInput>) -> Vec<&'a CaseInput> {
    let mut sorted: Vec<&CaseInput> = inputs.collect();
    sorted.sort_by(|a, b| {
        let content = |i: &'a CaseInput| (i.scope, i.case, &i.action);
        a.order_key().cmp(&b.order_key()).then_with(|| content(a).cmp(&content(b)))
    });
    let mut seen = BTreeSet::new();
    sorted.retain(|i| seen.insert(i.id));
    sorted
}

/// Folds the events of case `case` found in `inputs` (others are ignored) into its state: sorted
/// by `(hlc, origin, seq)`, duplicate event ids dropped, applied in order. Events ordered before
/// the `Open` are kept in the history as refused ("case not opened"). `None` until a valid `Open`
/// (the event whose id is `case`, from a supervisor of its school) is among them.
pub fn fold(case: CaseId, inputs: &[CaseInput]) -> Option<CaseState> {
    let mut before_open = Vec::new();
    let mut state: Option<CaseState> = None;
    for input in fold_order(inputs.iter().filter(|i| i.case == case)) {
        if let Some(s) = state.as_mut() {
            s.apply(input);
            continue;
        }
        match CaseState::open(case, input) {
            Ok(mut s) => {
                s.history = std::mem::take(&mut before_open);
                s.history.push(step(input, StepOutcome::Applied));
                state = Some(s);
            }
            Err(refusal) => before_open.push(step(input, StepOutcome::Refused(refusal.to_string()))),
        }
    }
    state
}

/// Folds every case named in `inputs`; cases without a valid `Open` are left out.
pub fn fold_all(inputs: &[CaseInput]) -> BTreeMap<CaseId, CaseState> {
    let mut by_case: BTreeMap<CaseId, Vec<CaseInput>> = BTreeMap::new();
    for input in inputs {
        by_case.entry(input.case).or_default().push(input.clone());
    }
    by_case.into_iter().filter_map(|(case, events)| fold(case, &events).map(|s| (case, s))).collect()
}

/// Deadlines and escalation thresholds (DOMAIN.md defaults; a county may override). They drive
/// the writers ([`notice_deadline`], [`due`]), never the fold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRules {
    /// 一般: rectify and report back within this many working days.
    pub general_days: u32,
    /// 较重: working days.
    pub serious_days: u32,
    /// 严重: stop at once, report within 24 h, rectify within this many (calendar) hours.
    pub severe_hours: u32,
    /// The review is due this many working days after a submission.
    pub review_days: u32,
    /// Overdue this many working days → escalate from the county to the city (county 督办).
    pub overdue_county_days: u32,
    /// Overdue this many working days → escalate from the city to the province (city 督办).
    pub overdue_city_days: u32,
    /// An ancestor of the current supervisor writes a missing overdue flag or escalation itself
    /// once it has been due this long (the supervisor may be offline).
    pub backup_grace_ms: u64,
    /// The working days the days above count (default: [`WorkCalendar::builtin`]). Not
    /// serialized: a calendar comes from the holiday schedules in force, not with the rules.
    #[serde(skip)]
    pub calendar: WorkCalendar,
}

impl Default for CaseRules {
    fn default() -> CaseRules {
        CaseRules {
            general_days: 1,
            serious_days: 3,
            severe_hours: 72,
            review_days: 2,
            overdue_county_days: 3,
            overdue_city_days: 7,
            backup_grace_ms: 24 * HOUR_MS,
            calendar: WorkCalendar::default(),
        }
    }
}

impl CaseRules {
    /// The rules of the settings in force (deadlines, review window, escalation thresholds), on
    /// the built-in calendar (set [`CaseRules::calendar`] for another).
    pub fn from_settings(s: &crate::registry::Settings) -> CaseRules {
        CaseRules {
            general_days: s.deadline_general_days,
            serious_days: s.deadline_serious_days,
            severe_hours: s.deadline_severe_hours,
            review_days: s.review_days,
            overdue_county_days: s.overdue_county_days,
            overdue_city_days: s.overdue_city_days,
            ..CaseRules::default()
        }
    }
}

/// The rectification deadline of a notice issued at `notice_at_ms`: 一般 and 较重 in working days,
/// 严重 in calendar hours.
pub fn notice_deadline(rules: &CaseRules, severity: CaseSeverity, notice_at_ms: u64) -> u64 {
    match severity {
        Severity::General => rules.calendar.add_working_days(notice_at_ms, rules.general_days),
        Severity::Serious => rules.calendar.add_working_days(notice_at_ms, rules.serious_days),
        Severity::Severe => notice_at_ms.saturating_add(u64::from(rules.severe_hours).saturating_mul(HOUR_MS)),
    }
}

/// The escalation owed now, if any: the next level and when it became due.
fn escalation_due(state: &CaseState, overdue: bool, now_ms: u64, rules: &CaseRules) -> Option<(NodeId, u64)> {
    if state.status.is_terminal() || state.status == CaseStatus::Reviewed {
        return None;
    }
    let to = state.supervisor.parent()?;
    let need_days = if to.tier() == Tier::City { rules.overdue_county_days } else { rules.overdue_city_days };
    let mut since: Option<u64> = None;
    if overdue && let Some(deadline) = state.deadline_ms {
        // The school's lateness stops counting when it submits.
        let late_until =
            if state.status == CaseStatus::Submitted { state.submitted_at_ms.unwrap_or(now_ms) } else { now_ms };
        if rules.calendar.working_days_between(deadline, late_until) >= need_days {
            since = Some(rules.calendar.add_working_days(deadline, need_days));
        }
    }
    // Rejected twice: city 督办, i.e. up to the province, one level at a time.
    if state.rejected >= ESCALATE_AFTER_REJECTIONS
        && let Some(at) = state.last_review_at()
    {
        since = Some(since.map_or(at, |s| s.min(at)));
    }
    since.map(|at| (to, at))
}

/// What supervising node `me` should write for this case at `now_ms`, in order:
///
/// - `MarkOverdue` once the deadline has passed while the school owes the rectification;
/// - `Escalate` to the current supervisor's parent once the case has been overdue for
///   `overdue_county_days` working days (county → city) or `overdue_city_days` (city → province),
///   or rejected [`ESCALATE_AFTER_REJECTIONS`] times (county → city → province).
///
/// The current supervisor writes them as soon as they are due; each of its ancestors writes them
/// too once they have been due for `rules.backup_grace_ms` (the supervisor may be offline).
/// Concurrent duplicates are harmless: the fold refuses the second ("already …"). Nodes below the
/// current supervisor, the school and unrelated nodes get nothing.
pub fn due(state: &CaseState, now_ms: u64, me: NodeId, rules: &CaseRules) -> Vec<CaseAction> {
    let mut out = Vec::new();
    if state.status.is_terminal() || me == state.school || !me.is_ancestor_or_self_of(state.supervisor) {
        return out;
    }
    let delay = if me == state.supervisor { 0 } else { rules.backup_grace_ms };
    let mut overdue = state.overdue;
    if !overdue
        && matches!(state.status, CaseStatus::NoticeIssued | CaseStatus::Rectifying)
        && let Some(deadline) = state.deadline_ms
        && now_ms > deadline.saturating_add(delay)
    {
        out.push(CaseAction::MarkOverdue);
        overdue = true;
    }
    if let Some((to, since)) = escalation_due(state, overdue, now_ms, rules)
        && now_ms >= since.saturating_add(delay)
    {
        out.push(CaseAction::Escalate { to });
    }
    out
}

/// Drafts the `Open` and `IssueNotice` actions for a confirmed AI alert raised at `school`, the
/// notice issued at `notice_at_ms` with the deadline of the alert's severity.
pub fn draft_from_alert(
    alert_id: EventId,
    school: NodeId,
    alert: &AlertRaised,
    rules: &CaseRules,
    notice_at_ms: u64,
) -> (CaseAction, CaseAction) {
    let (kind, zone, severity) = (alert.alert_type, alert.zone, alert.severity);
    let detected = ChinaTime(alert.detected_at_ms);
    let deadline_ms = notice_deadline(rules, severity, notice_at_ms);
    let deadline = ChinaTime(deadline_ms);
    let confidence = format!("{}.{}%", alert.confidence_permille / 10, alert.confidence_permille % 10);
    let title = format!("{}（{}）· {}", kind.zh(), kind.code(), zone.zh());
    let detail = format!(
        "AI 摄像头 {camera} 于 {detected} 在食堂“{canteen}”{zone_zh}区检测到“{kind_zh}”（{code}），\
         置信度 {confidence}，合并 {n} 次，截图 {snapshot}。",
        camera = alert.camera,
        canteen = alert.canteen,
        zone_zh = zone.zh(),
        kind_zh = kind.zh(),
        code = kind.code(),
        n = alert.repeat_count,
        snapshot = if alert.snapshot.is_empty() { "无" } else { &alert.snapshot },
    );
    let stop_zh = if severity == Severity::Severe {
        "请立即停止相关作业，24 小时内报告处置情况；"
    } else {
        ""
    };
    let text = format!(
        "整改通知：贵校食堂“{canteen}”{zone_zh}区于 {detected} 经智能监测发现“{kind_zh}”（{sev_zh}问题）。\
         {stop_zh}请于 {deadline} 前完成整改，并上传整改前后照片或视频作为佐证材料；逾期未整改将按规定督办。",
        canteen = alert.canteen,
        zone_zh = zone.zh(),
        kind_zh = kind.zh(),
        sev_zh = severity.zh(),
    );
    let open = CaseAction::Open {
        school,
        severity,
        source: CaseSource::AiAlert { alert: alert_id },
        title,
        detail,
        number: 0,
    };
    (open, CaseAction::IssueNotice { deadline_ms, text })
}
