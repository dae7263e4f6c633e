//! Tests of the case lifecycle fold: every transition and refusal, deadlines in working days, the
//! scheduler, and convergence of any permutation / duplication of a random case's events.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use topology::{NodeId, Tier};

use crate::alert::{AlertRaised, AlertType, Severity, Zone};
use crate::case::*;
use crate::event::{EventId, Hlc};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

const SCHOOL: &str = "130102-S0001";
const COUNTY: &str = "130102";
const CITY: &str = "1301";
const PROVINCE: &str = "13";
const OTHER_COUNTY: &str = "130104";
const OTHER_SCHOOL: &str = "130102-S0002";
const OTHER_CITY: &str = "1302";

fn n(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// Unix ms of a China-time (UTC+8) civil date and time.
fn cst(y: i64, m: i64, d: i64, h: u64, mi: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    u64::try_from(days).unwrap() * DAY + h * HOUR + mi * MIN - 8 * HOUR
}

/// Friday 2024-03-01 10:00 China time.
fn friday() -> u64 {
    cst(2024, 3, 1, 10, 0)
}

fn issue(deadline_ms: u64) -> CaseAction {
    CaseAction::IssueNotice { deadline_ms, text: "请整改".into() }
}

fn submit() -> CaseAction {
    CaseAction::Submit { evidence: vec!["photo-1".into()], note: "done".into() }
}

fn review(passed: bool, new_deadline_ms: Option<u64>) -> CaseAction {
    CaseAction::Review { passed, comment: "video review".into(), new_deadline_ms }
}

fn close() -> CaseAction {
    CaseAction::Close { comment: "销号".into() }
}

fn escalate(to: &str) -> CaseAction {
    CaseAction::Escalate { to: n(to) }
}

/// A case under construction: events written by named nodes at given wall times.
struct Script {
    case: CaseId,
    inputs: Vec<CaseInput>,
    seqs: BTreeMap<NodeId, u64>,
}

impl Script {
    /// A severity-General case opened by `opener` against SCHOOL at `at`.
    fn open(opener: &str, at: u64) -> Script {
        let mut s = Script { case: CaseId { opened_by: n(opener), seq: 1 }, inputs: Vec::new(), seqs: BTreeMap::new() };
        let open = CaseAction::Open {
            school: n(SCHOOL),
            severity: Severity::General,
            source: CaseSource::SpotCheck,
            title: "地面积水".into(),
            detail: "spot check".into(),
            number: 1,
        };
        s.write(opener, at, open);
        s
    }

    fn write(&mut self, by: &str, at: u64, action: CaseAction) -> EventId {
        let seq = self.seqs.entry(n(by)).or_default();
        *seq += 1;
        let id = EventId { origin: n(by), seq: *seq };
        let hlc = Hlc { wall_ms: at, logical: 0 };
        self.inputs.push(CaseInput { person: None, id, hlc, scope: n(SCHOOL), case: self.case, action });
        id
    }

    fn state(&self) -> CaseState {
        fold(self.case, &self.inputs).expect("case opened")
    }

    /// Writes a step and returns its outcome and the state after it.
    fn step(&mut self, by: &str, at: u64, action: CaseAction) -> (StepOutcome, CaseState) {
        let id = self.write(by, at, action);
        let state = self.state();
        let step = state.history.iter().find(|s| s.event == id).expect("every event is in the history");
        (step.outcome.clone(), state)
    }

    /// Writes a step that must be applied.
    fn ok(&mut self, by: &str, at: u64, action: CaseAction) -> CaseState {
        let what = format!("{by} {action:?}");
        let (outcome, state) = self.step(by, at, action);
        assert_eq!(outcome, StepOutcome::Applied, "{what}");
        state
    }

    /// Writes a step that must be refused with a reason containing `why`, changing nothing else.
    fn refused(&mut self, by: &str, at: u64, action: CaseAction, why: &str) -> CaseState {
        let before = self.state();
        let what = format!("{by} {action:?}");
        let (outcome, state) = self.step(by, at, action);
        let id = self.inputs.last().map(|i| i.id);
        match outcome {
            StepOutcome::Refused(reason) => assert!(reason.contains(why), "{what}: `{reason}` lacks `{why}`"),
            StepOutcome::Applied => panic!("{what} should be refused ({why})"),
        }
        let mut unchanged = state.clone();
        unchanged.history.retain(|h| Some(h.event) != id);
        assert_eq!(unchanged, before, "a refused step changes nothing but the history");
        state
    }
}

/// A case with a notice issued Friday 10:00 due Monday 10:00 (1 working day).
fn noticed() -> Script {
    let mut s = Script::open(COUNTY, friday());
    s.ok(COUNTY, friday() + HOUR, issue(friday() + 3 * DAY));
    s
}

#[test]
fn case_id_displays_and_parses() {
    let id = CaseId::of_open(EventId { origin: n(COUNTY), seq: 17 });
    assert_eq!(id.to_string(), "130102#17");
    assert_eq!("130102#17".parse::<CaseId>().unwrap(), id);
    assert_eq!(id.event_id(), EventId { origin: n(COUNTY), seq: 17 });
    for bad in ["130102", "130102#0", "130102#x", "1300#3", "#3", ""] {
        let e = bad.parse::<CaseId>().unwrap_err().to_string();
        assert!(e.contains("130102#17"), "{bad}: {e}");
    }
}

#[test]
fn happy_path_from_open_to_closed() {
    let mut s = Script::open(COUNTY, friday());
    let st = s.state();
    assert_eq!((st.status, st.supervisor, st.opened_at_ms), (CaseStatus::Open, n(COUNTY), friday()));
    let deadline = friday() + 3 * DAY;
    let st = s.ok(COUNTY, friday() + HOUR, issue(deadline));
    assert_eq!(st.status, CaseStatus::NoticeIssued);
    assert_eq!(
        (st.notice_at_ms, st.deadline_ms, st.first_deadline_ms),
        (Some(friday() + HOUR), Some(deadline), Some(deadline))
    );
    let st = s.ok(SCHOOL, friday() + 2 * HOUR, CaseAction::NoticeDelivery { refused: false });
    assert!(st.notice_delivered && !st.notice_refused);
    let st = s.ok(SCHOOL, friday() + 3 * HOUR, CaseAction::Acknowledge);
    assert_eq!(st.status, CaseStatus::Rectifying);
    let st = s.ok(SCHOOL, friday() + 4 * HOUR, submit());
    assert_eq!((st.status, st.submitted_at_ms), (CaseStatus::Submitted, Some(friday() + 4 * HOUR)));
    assert_eq!(st.evidence, vec!["photo-1".to_string()]);
    // Submitted Friday 14:00: the review is due two working days later, Tuesday 14:00.
    assert_eq!(st.review_due_ms(&CaseRules::default()), Some(cst(2024, 3, 5, 14, 0)));
    let st = s.ok(COUNTY, friday() + DAY, review(true, None));
    assert_eq!((st.status, st.review_due_ms(&CaseRules::default())), (CaseStatus::Reviewed, None));
    let st = s.ok(COUNTY, friday() + DAY + HOUR, close());
    assert_eq!((st.status, st.closed_at_ms), (CaseStatus::Closed, Some(friday() + DAY + HOUR)));
    assert_eq!(st.history.len(), 7);
    assert_eq!(st.refused().count(), 0);
    let names: Vec<&str> = st.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(names, ["open", "issue-notice", "notice-delivery", "acknowledge", "submit", "review", "close"]);
}

#[test]
fn authority_by_position_in_the_tree() {
    let school = n(SCHOOL);
    for sup in [COUNTY, CITY, PROVINCE] {
        for action in [close(), issue(1), CaseAction::MarkOverdue, escalate(CITY)] {
            assert_eq!(authorize(n(sup), school, &action), Ok(()), "{sup} {action:?}");
        }
        let e = authorize(n(sup), school, &CaseAction::Acknowledge).unwrap_err();
        assert!(matches!(e, Refusal::SchoolOnly { .. }), "{e}");
    }
    assert_eq!(authorize(school, school, &submit()), Ok(()));
    let e = authorize(school, school, &close()).unwrap_err();
    assert_eq!(e.to_string(), "只有 130102-S0001 的上级监管部门（县级及以上）可以执行“销号”，130102-S0001 不能");
    for stranger in [OTHER_COUNTY, OTHER_SCHOOL, OTHER_CITY] {
        for action in [close(), submit(), CaseAction::Acknowledge] {
            let e = authorize(n(stranger), school, &action).unwrap_err();
            assert_eq!(e, Refusal::Unrelated { by: n(stranger), school }, "{stranger}");
        }
    }
    assert!(matches!(authorize(n(PROVINCE), n(COUNTY), &close()), Err(Refusal::NotASchool { .. })));
}

#[test]
fn unauthorised_steps_are_recorded_and_change_nothing() {
    let mut s = noticed();
    s.refused(SCHOOL, friday() + 2 * HOUR, close(), "只有 130102-S0001 的上级监管部门");
    s.refused(
        SCHOOL,
        friday() + 2 * HOUR,
        CaseAction::Cancel { reason: "not us".into() },
        "只有 130102-S0001 的上级监管部门",
    );
    s.refused(
        OTHER_COUNTY,
        friday() + 2 * HOUR,
        CaseAction::Cancel { reason: "误判".into() },
        "既不是学校 130102-S0001",
    );
    s.refused(OTHER_SCHOOL, friday() + 2 * HOUR, CaseAction::Acknowledge, "既不是学校 130102-S0001");
    s.refused(COUNTY, friday() + 2 * HOUR, CaseAction::Acknowledge, "只有学校 130102-S0001 自己可以执行");
    let st = s.refused(CITY, friday() + 2 * HOUR, submit(), "只有学校 130102-S0001 自己可以执行");
    assert_eq!(st.status, CaseStatus::NoticeIssued);
    assert_eq!(st.refused().count(), 6);
}

#[test]
fn opening_rules() {
    // Steps ordered before the Open are kept as refused; a school cannot open a case.
    let mut s = Script::open(COUNTY, friday());
    s.write(SCHOOL, friday() - HOUR, CaseAction::Acknowledge);
    let st = s.state();
    assert_eq!(st.history[0].outcome, StepOutcome::Refused("案件尚未挂账".into()));
    assert_eq!(st.history[1].action, CaseActionKind::Open);
    let reopen = CaseAction::Open {
        school: n(SCHOOL),
        severity: Severity::Severe,
        source: CaseSource::Complaint,
        title: "again".into(),
        detail: String::new(),
        number: 2,
    };
    s.refused(CITY, friday() + HOUR, reopen.clone(), "案件已经挂账");
    // An Open that is not the case's own opening event is refused, before or after it.
    s.write(CITY, friday() - 2 * HOUR, reopen);
    let st = s.state();
    assert!(matches!(&st.history[0].outcome, StepOutcome::Refused(r) if r.contains("与案件编号 130102#1 不符")));
    assert_eq!(st.history[2].action, CaseActionKind::Open);
    assert_eq!(st.history[2].outcome, StepOutcome::Applied);
    let open_by_school = Script::open(SCHOOL, friday());
    assert_eq!(fold(open_by_school.case, &open_by_school.inputs), None);
    // A wrongly scoped step is refused.
    let mut s = noticed();
    s.inputs.push(CaseInput {
        person: None,
        id: EventId { origin: n(COUNTY), seq: 99 },
        hlc: Hlc { wall_ms: friday() + 2 * HOUR, logical: 0 },
        scope: n(OTHER_SCHOOL),
        case: s.case,
        action: CaseAction::MarkOverdue,
    });
    let st = s.state();
    assert!(matches!(&st.history[2].outcome, StepOutcome::Refused(r) if r.contains("事件记在 130102-S0002 名下")));
    // A case can also be opened by the city or province; the county still supervises it first.
    assert_eq!(Script::open(PROVINCE, friday()).state().supervisor, n(COUNTY));
}

#[test]
fn ingest_check_needs_no_state() {
    let case = CaseId { opened_by: n(COUNTY), seq: 4 };
    let open = CaseEvent { case, action: Script::open(COUNTY, 0).inputs[0].action.clone() };
    assert_eq!(check_case_event(case.event_id(), n(SCHOOL), &open), Ok(()));
    let other_id = EventId { origin: n(COUNTY), seq: 5 };
    assert!(matches!(check_case_event(other_id, n(SCHOOL), &open), Err(Refusal::OpenMismatch { .. })));
    assert!(matches!(check_case_event(case.event_id(), n(OTHER_SCHOOL), &open), Err(Refusal::Scope { .. })));
    let ack = CaseEvent { case, action: CaseAction::Acknowledge };
    assert_eq!(check_case_event(EventId { origin: n(SCHOOL), seq: 9 }, n(SCHOOL), &ack), Ok(()));
    assert!(check_case_event(EventId { origin: n(OTHER_COUNTY), seq: 9 }, n(SCHOOL), &ack).is_err());
}

#[test]
fn notice_rules() {
    let mut s = Script::open(COUNTY, friday());
    s.refused(COUNTY, friday() + HOUR, issue(friday()), "须晚于操作时间");
    s.refused(
        COUNTY,
        friday() + HOUR,
        CaseAction::IssueNotice { deadline_ms: friday() + DAY, text: " ".into() },
        "整改通知内容不能为空",
    );
    let early = CaseAction::NoticeDelivery { refused: true };
    s.refused(SCHOOL, friday() + HOUR / 2, early, "案件现为“挂账”，不能执行“送达”");
    s.ok(COUNTY, friday() + HOUR, issue(friday() + 3 * DAY));
    s.refused(COUNTY, friday() + 2 * HOUR, issue(friday() + 4 * DAY), "案件现为“已下发通知”，不能执行“整改通知”");
    let st = s.ok(SCHOOL, friday() + 2 * HOUR, CaseAction::NoticeDelivery { refused: true });
    assert!(st.notice_refused && !st.notice_delivered);
    s.refused(SCHOOL, friday() + 3 * HOUR, CaseAction::NoticeDelivery { refused: false }, "送达情况已经记录过了");
    // Acknowledging after a refusal is allowed, and the refusal stays on record.
    let st = s.ok(SCHOOL, friday() + 4 * HOUR, CaseAction::Acknowledge);
    assert!(st.notice_refused && st.notice_delivered);
}

#[test]
fn submit_may_skip_acknowledge_but_needs_evidence() {
    let mut s = noticed();
    s.refused(
        SCHOOL,
        friday() + 2 * HOUR,
        CaseAction::Submit { evidence: vec![" ".into()], note: "ok".into() },
        "佐证材料不能为空",
    );
    let st = s.ok(SCHOOL, friday() + 2 * HOUR, submit());
    assert_eq!(st.status, CaseStatus::Submitted);
    assert!(st.notice_delivered);
    s.refused(SCHOOL, friday() + 3 * HOUR, submit(), "案件现为“待复核”，不能执行“提交整改”");
    s.refused(SCHOOL, friday() + 3 * HOUR, CaseAction::Acknowledge, "不能执行“签收”");
}

#[test]
fn cancel_only_before_the_school_acts() {
    let mut s = Script::open(COUNTY, friday());
    s.refused(COUNTY, friday() + HOUR, CaseAction::Cancel { reason: "  ".into() }, "撤销原因不能为空");
    let st = s.ok(CITY, friday() + HOUR, CaseAction::Cancel { reason: "误判".into() });
    assert_eq!((st.status, st.closed_at_ms), (CaseStatus::Cancelled, Some(friday() + HOUR)));
    s.refused(COUNTY, friday() + 2 * HOUR, issue(friday() + 3 * DAY), "案件现为“已撤销”");

    let mut s = noticed();
    assert_eq!(
        s.ok(COUNTY, friday() + 2 * HOUR, CaseAction::Cancel { reason: "误判".into() }).status,
        CaseStatus::Cancelled
    );

    let mut s = noticed();
    s.ok(SCHOOL, friday() + 2 * HOUR, CaseAction::Acknowledge);
    s.refused(
        COUNTY,
        friday() + 3 * HOUR,
        CaseAction::Cancel { reason: "误判".into() },
        "案件现为“整改中”，不能执行“撤销”",
    );
}

#[test]
fn close_only_after_a_passed_review() {
    let mut s = noticed();
    s.refused(COUNTY, friday() + 2 * HOUR, close(), "案件现为“已下发通知”，不能执行“销号”");
    s.ok(SCHOOL, friday() + 3 * HOUR, submit());
    s.refused(COUNTY, friday() + 4 * HOUR, close(), "案件现为“待复核”，不能执行“销号”");
    s.refused(SCHOOL, friday() + 4 * HOUR, review(true, None), "只有 130102-S0001 的上级监管部门");
    s.ok(COUNTY, friday() + 5 * HOUR, review(true, None));
    s.refused(COUNTY, friday() + 5 * HOUR, review(true, None), "案件现为“复核通过”，不能执行“复核”");
    assert_eq!(s.ok(PROVINCE, friday() + 6 * HOUR, close()).status, CaseStatus::Closed);
    s.refused(COUNTY, friday() + 7 * HOUR, close(), "案件现为“已销号”，不能执行“销号”");
}

#[test]
fn failed_review_halves_the_deadline_and_counts_rework() {
    // Notice Friday 11:00, due Monday 10:00: a span of 71 h.
    let span = 3 * DAY - HOUR;
    let mut s = noticed();
    s.ok(SCHOOL, friday() + 4 * HOUR, submit());
    let at = friday() + 5 * HOUR;
    let st = s.ok(COUNTY, at, review(false, None));
    assert_eq!(st.status, CaseStatus::Rectifying);
    assert_eq!((st.rework, st.rejected), (1, 1));
    assert_eq!(st.deadline_ms, Some(at + span / 2), "default: half the first span");
    assert_eq!(st.first_deadline_ms, Some(friday() + 3 * DAY), "the first deadline is kept");
    // A longer requested deadline is clamped; a shorter one is kept; one in the past is refused.
    s.ok(SCHOOL, at + HOUR, submit());
    let st = s.ok(COUNTY, at + 2 * HOUR, review(false, Some(at + 30 * DAY)));
    assert_eq!(st.deadline_ms, Some(at + 2 * HOUR + span / 2));
    s.ok(SCHOOL, at + 3 * HOUR, submit());
    s.refused(COUNTY, at + 4 * HOUR, review(false, Some(at)), "须晚于操作时间");
    let st = s.ok(COUNTY, at + 4 * HOUR, review(false, Some(at + 6 * HOUR)));
    assert_eq!((st.deadline_ms, st.rework, st.rejected), (Some(at + 6 * HOUR), 3, 3));
}

#[test]
fn overdue_only_past_the_deadline_and_once() {
    let deadline = friday() + 3 * DAY;
    let mut s = noticed();
    s.refused(COUNTY, deadline, CaseAction::MarkOverdue, "尚未逾期");
    s.refused(SCHOOL, deadline + 1, CaseAction::MarkOverdue, "只有 130102-S0001 的上级监管部门");
    let st = s.ok(COUNTY, deadline + 1, CaseAction::MarkOverdue);
    assert!(st.overdue && st.overdue_marks == 1);
    s.refused(CITY, deadline + 2, CaseAction::MarkOverdue, "已经标记为逾期");
    // A late submission keeps the flag; the school no longer owes anything, so no new mark.
    s.ok(SCHOOL, deadline + HOUR, submit());
    s.refused(COUNTY, deadline + 2 * HOUR, CaseAction::MarkOverdue, "案件现为“待复核”，不能执行“逾期”");
    // A failed review sets a fresh deadline and clears the flag; it may be marked again later.
    let st = s.ok(COUNTY, deadline + 3 * HOUR, review(false, None));
    assert!(!st.overdue);
    let new_deadline = st.deadline_ms.unwrap();
    let st = s.ok(CITY, new_deadline + 1, CaseAction::MarkOverdue);
    assert!(st.overdue && st.overdue_marks == 2);
}

#[test]
fn escalation_one_level_at_a_time_and_only_once() {
    let deadline = friday() + 3 * DAY;
    let mut s = noticed();
    s.refused(COUNTY, deadline + HOUR, escalate(CITY), "不符合督办条件");
    s.ok(COUNTY, deadline + HOUR, CaseAction::MarkOverdue);
    s.refused(COUNTY, deadline + 2 * HOUR, escalate(PROVINCE), "下一级是 1301，不是 13");
    s.refused(COUNTY, deadline + 2 * HOUR, escalate(OTHER_CITY), "下一级是 1301，不是 1302");
    s.refused(COUNTY, deadline + 2 * HOUR, escalate(SCHOOL), "下一级是 1301");
    s.refused(COUNTY, deadline + 2 * HOUR, escalate(COUNTY), "已经督办至 130102");
    s.refused(OTHER_COUNTY, deadline + 2 * HOUR, escalate(CITY), "既不是学校 130102-S0001");
    let st = s.ok(COUNTY, deadline + 3 * HOUR, escalate(CITY));
    assert_eq!(st.supervisor, n(CITY));
    // The same escalation again (e.g. the city's concurrent one) is refused, not applied twice.
    s.refused(CITY, deadline + 4 * HOUR, escalate(CITY), "已经督办至 1301");
    // The county is now below the supervisor.
    s.refused(COUNTY, deadline + 5 * HOUR, escalate(PROVINCE), "本案件现由 1301 督办，130102 不能再上报督办");
    let st = s.ok(PROVINCE, deadline + 6 * HOUR, escalate(PROVINCE));
    assert_eq!(st.supervisor, n(PROVINCE));
    s.refused(PROVINCE, deadline + 7 * HOUR, escalate(CITY), "已经督办至 13");
    s.refused(PROVINCE, deadline + 7 * HOUR, escalate(OTHER_CITY), "已到最高一级");
    // The county still handles the case: escalation adds oversight.
    s.ok(SCHOOL, deadline + 8 * HOUR, submit());
    s.ok(COUNTY, deadline + 9 * HOUR, review(true, None));
    s.refused(PROVINCE, deadline + 9 * HOUR, escalate(PROVINCE), "已经督办至");
    assert_eq!(s.ok(COUNTY, deadline + 10 * HOUR, close()).status, CaseStatus::Closed);
}

#[test]
fn two_rejections_make_the_case_escalate_to_the_province_via_the_city() {
    let rules = CaseRules::default();
    let mut s = noticed();
    let mut at = friday() + 2 * HOUR;
    for round in 1..=2 {
        s.ok(SCHOOL, at, submit());
        let st = s.state();
        assert!(due(&st, at, n(COUNTY), &rules).is_empty(), "round {round}: nothing due yet");
        s.ok(COUNTY, at + HOUR, review(false, None));
        at += 2 * HOUR;
    }
    let st = s.state();
    assert!(!st.overdue && st.rejected == 2);
    assert_eq!(due(&st, at, n(COUNTY), &rules), vec![escalate(CITY)]);
    // The city backs up an offline county only after the grace period.
    assert!(due(&st, at, n(CITY), &rules).is_empty());
    assert_eq!(due(&st, at + rules.backup_grace_ms, n(CITY), &rules), vec![escalate(CITY)]);
    s.refused(COUNTY, at, escalate(PROVINCE), "下一级是 1301");
    let st = s.ok(COUNTY, at, escalate(CITY));
    assert_eq!(due(&st, at + 1, n(CITY), &rules), vec![escalate(PROVINCE)]);
    assert!(due(&st, at + 1, n(COUNTY), &rules).is_empty(), "the county is below the supervisor now");
    let st = s.ok(CITY, at + 1, escalate(PROVINCE));
    assert_eq!(st.supervisor, n(PROVINCE));
    assert!(due(&st, at + 2, n(PROVINCE), &rules).is_empty());
}

#[test]
fn scheduler_marks_overdue_then_escalates_by_working_days() {
    let rules = CaseRules::default();
    let deadline = friday() + 3 * DAY; // Monday 2024-03-04 10:00
    let mut s = noticed();
    s.ok(SCHOOL, friday() + 2 * HOUR, CaseAction::Acknowledge);
    let st = s.state();
    assert!(due(&st, deadline, n(COUNTY), &rules).is_empty(), "not past the deadline yet");
    assert_eq!(due(&st, deadline + 1, n(COUNTY), &rules), vec![CaseAction::MarkOverdue]);
    for nobody in [SCHOOL, OTHER_COUNTY, OTHER_CITY] {
        assert!(due(&st, deadline + 30 * DAY, n(nobody), &rules).is_empty(), "{nobody}");
    }
    assert!(due(&st, deadline + 1, n(CITY), &rules).is_empty(), "the city waits for the county");
    assert_eq!(due(&st, deadline + rules.backup_grace_ms + 1, n(CITY), &rules), vec![CaseAction::MarkOverdue]);
    // Thursday 10:00 is 3 working days past Monday 10:00: county 督办 → the city's list. An offline
    // county's scheduler wakes late and writes both steps at once.
    let thursday = cst(2024, 3, 7, 10, 0);
    assert_eq!(due(&st, thursday - 1, n(COUNTY), &rules), vec![CaseAction::MarkOverdue]);
    assert_eq!(due(&st, thursday, n(COUNTY), &rules), vec![CaseAction::MarkOverdue, escalate(CITY)]);
    s.ok(COUNTY, thursday, CaseAction::MarkOverdue);
    let st = s.ok(COUNTY, thursday + 1, escalate(CITY));
    // 7 working days past Monday 10:00 is the next Wednesday 10:00: city 督办 → the province.
    let wednesday = cst(2024, 3, 13, 10, 0);
    assert!(due(&st, wednesday - 1, n(CITY), &rules).is_empty());
    assert_eq!(due(&st, wednesday, n(CITY), &rules), vec![escalate(PROVINCE)]);
    assert!(due(&st, wednesday, n(PROVINCE), &rules).is_empty());
    assert_eq!(due(&st, wednesday + rules.backup_grace_ms, n(PROVINCE), &rules), vec![escalate(PROVINCE)]);
    // Once the school submits, its lateness stops counting.
    s.ok(SCHOOL, wednesday - HOUR, submit());
    assert!(due(&s.state(), wednesday + 10 * DAY, n(CITY), &rules).is_empty());
}

/// The county closes a reviewed case while the city, offline with a stale view of it overdue,
/// escalates it: whichever HLC order the two get, the case ends closed at the county's level and
/// the escalation is on record as refused.
#[test]
fn concurrent_close_and_escalation_converge() {
    let deadline = friday() + 3 * DAY;
    let base = || {
        let mut s = noticed();
        s.ok(COUNTY, deadline + HOUR, CaseAction::MarkOverdue);
        s.ok(SCHOOL, deadline + 2 * HOUR, submit());
        s.ok(COUNTY, deadline + 3 * HOUR, review(true, None));
        s
    };
    let mut finals = Vec::new();
    for (close_at, escalate_at) in
        [(deadline + 4 * HOUR, deadline + 5 * HOUR), (deadline + 5 * HOUR, deadline + 4 * HOUR)]
    {
        let mut s = base();
        let close_id = s.write(COUNTY, close_at, close());
        let escalate_id = s.write(CITY, escalate_at, escalate(CITY));
        let mut shuffled = s.inputs.clone();
        shuffled.reverse();
        let st = fold(s.case, &shuffled).unwrap();
        assert_eq!(Some(&st), fold(s.case, &s.inputs).as_ref(), "arrival order does not matter");
        assert_eq!((st.status, st.supervisor), (CaseStatus::Closed, n(COUNTY)));
        let outcome = |id| st.history.iter().find(|h| h.event == id).map(|h| h.outcome.clone());
        assert_eq!(outcome(close_id), Some(StepOutcome::Applied));
        let Some(StepOutcome::Refused(reason)) = outcome(escalate_id) else { panic!("escalation must be refused") };
        let expected =
            if escalate_at > close_at { "案件现为“已销号”" } else { "案件现为“复核通过”" };
        assert!(reason.contains(expected), "{reason}");
        finals.push((st.status, st.supervisor, st.overdue, st.closed_at_ms.is_some()));
    }
    assert_eq!(finals[0], finals[1]);
}

#[test]
fn working_days_skip_weekends_in_china_time() {
    let fri = friday();
    let mon = cst(2024, 3, 4, 10, 0);
    assert_eq!(fri, 1_709_258_400_000, "2024-03-01 10:00 UTC+8");
    assert_eq!(add_working_days(fri, 0), fri);
    assert_eq!(add_working_days(fri, 1), mon);
    assert_eq!(add_working_days(cst(2024, 3, 2, 10, 0), 1), mon, "Saturday");
    assert_eq!(add_working_days(cst(2024, 3, 3, 10, 0), 1), mon, "Sunday");
    assert_eq!(add_working_days(mon, 1), cst(2024, 3, 5, 10, 0));
    assert_eq!(add_working_days(cst(2024, 2, 29, 10, 0), 3), cst(2024, 3, 5, 10, 0), "Thursday + 3");
    assert_eq!(add_working_days(fri, 5), cst(2024, 3, 8, 10, 0));
    assert_eq!(add_working_days(fri, 10), cst(2024, 3, 15, 10, 0));
    // China time decides the weekday: Friday 23:30 in Beijing is still Friday (15:30 UTC) ...
    assert_eq!(add_working_days(cst(2024, 3, 1, 23, 30), 1), cst(2024, 3, 4, 23, 30));
    // ... and Monday 01:00 in Beijing is Sunday 17:00 UTC, yet a working day.
    assert_eq!(add_working_days(cst(2024, 3, 4, 1, 0), 1), cst(2024, 3, 5, 1, 0));
    assert_eq!(add_working_days(cst(2024, 3, 3, 1, 0), 1), cst(2024, 3, 4, 1, 0), "Sunday 01:00");

    assert_eq!(working_days_between(fri, mon - 1), 0);
    assert_eq!(working_days_between(fri, mon), 1);
    assert_eq!(working_days_between(fri, cst(2024, 3, 4, 23, 0)), 1);
    assert_eq!(working_days_between(fri, cst(2024, 3, 11, 10, 0)), 6);
    assert_eq!(working_days_between(mon, fri), 0);
    assert_eq!(working_days_between(cst(2024, 3, 2, 12, 0), cst(2024, 3, 3, 12, 0)), 0, "a weekend");

    let rules = CaseRules::default();
    assert_eq!(notice_deadline(&rules, Severity::General, fri), mon);
    assert_eq!(notice_deadline(&rules, Severity::Serious, fri), cst(2024, 3, 6, 10, 0));
    assert_eq!(notice_deadline(&rules, Severity::Severe, fri), cst(2024, 3, 4, 10, 0), "72 h, weekend included");
    assert_eq!(ChinaTime(fri).to_string(), "2024-03-01 10:00 (UTC+8)");
    assert_eq!(ChinaTime(cst(2023, 12, 31, 23, 59)).to_string(), "2023-12-31 23:59 (UTC+8)");
}

/// Deadlines, the review window and escalations count the rules' calendar: public holidays
/// are not working days, 调休 weekends are.
#[test]
fn deadlines_and_escalations_skip_public_holidays() {
    let rules = CaseRules::default();
    assert_eq!(&rules.calendar, WorkCalendar::builtin());
    // A notice on Friday 2026-02-13 before the Spring Festival (02-15 … 02-23; Saturdays 02-14
    // and 02-28 worked): 一般 (1 day) is due on Saturday 02-14, 较重 (3 days) on Wednesday 02-25.
    let fri = cst(2026, 2, 13, 10, 0);
    assert_eq!(notice_deadline(&rules, Severity::General, fri), cst(2026, 2, 14, 10, 0));
    assert_eq!(notice_deadline(&rules, Severity::Serious, fri), cst(2026, 2, 25, 10, 0));
    assert_eq!(notice_deadline(&rules, Severity::Severe, fri), cst(2026, 2, 16, 10, 0), "严重: calendar hours");
    // Monday to Friday only, the calendar before holidays: Monday 02-16 and Wednesday 02-18.
    let weekdays = CaseRules { calendar: WorkCalendar::weekdays(), ..CaseRules::default() };
    assert_eq!(notice_deadline(&weekdays, Severity::General, fri), cst(2026, 2, 16, 10, 0));
    assert_eq!(notice_deadline(&weekdays, Severity::Serious, fri), cst(2026, 2, 18, 10, 0));
    assert_ne!(weekdays, rules);

    // National Day 2026 (10-01 … 10-07, Saturday 10-10 worked): a case due Wednesday 09-30 10:00,
    // still not submitted, is 3 working days overdue on Saturday 10-10 10:00 (10-08, 10-09,
    // 10-10), not on Monday 10-05 as Monday–Friday would have it.
    let notice_at = cst(2026, 9, 29, 10, 0);
    let deadline = notice_deadline(&rules, Severity::General, notice_at);
    assert_eq!(deadline, cst(2026, 9, 30, 10, 0));
    let mut s = Script::open(COUNTY, notice_at - HOUR);
    s.ok(COUNTY, notice_at, issue(deadline));
    let st = s.ok(COUNTY, deadline + 1, CaseAction::MarkOverdue);
    assert!(due(&st, cst(2026, 10, 10, 9, 59), n(COUNTY), &rules).is_empty(), "2 working days late");
    assert_eq!(due(&st, cst(2026, 10, 10, 10, 0), n(COUNTY), &rules), vec![escalate(CITY)]);
    assert_eq!(due(&st, cst(2026, 10, 5, 10, 0), n(COUNTY), &weekdays), vec![escalate(CITY)]);

    // The review of a submission on the eve of the holiday is due 2 working days on.
    let st = s.ok(SCHOOL, cst(2026, 9, 30, 15, 0), submit());
    assert_eq!(st.review_due_ms(&rules), Some(cst(2026, 10, 9, 15, 0)));
    assert_eq!(st.review_due_ms(&weekdays), Some(cst(2026, 10, 2, 15, 0)));
}

#[test]
fn draft_from_an_alert() {
    let rules = CaseRules::default();
    let alert = AlertRaised {
        camera: "cam-3".into(),
        canteen: "一食堂".into(),
        zone: Zone::SpecialRoom,
        alert_type: AlertType::NoMask,
        severity: AlertType::NoMask.default_severity(Zone::SpecialRoom),
        detected_at_ms: friday() - HOUR,
        confidence_permille: 925,
        snapshot: "snap/1.jpg".into(),
        repeat_count: 2,
    };
    let alert_id = EventId { origin: n(SCHOOL), seq: 40 };
    let (open, notice) = draft_from_alert(alert_id, n(SCHOOL), &alert, &rules, friday());
    let CaseAction::Open { school, severity, source, title, detail, .. } = &open else { panic!("{open:?}") };
    assert_eq!((*school, *severity), (n(SCHOOL), Severity::Serious));
    assert_eq!(*source, CaseSource::AiAlert { alert: alert_id });
    assert!(title.contains("未戴口罩") && title.contains("专间"), "{title}");
    assert!(detail.contains("cam-3") && detail.contains("92.5%") && detail.contains("2024-03-01 09:00"), "{detail}");
    let CaseAction::IssueNotice { deadline_ms, text } = &notice else { panic!("{notice:?}") };
    assert_eq!(*deadline_ms, cst(2024, 3, 6, 10, 0), "较重: 3 working days");
    assert!(text.contains("2024-03-06 10:00") && text.contains("未戴口罩") && text.contains("整改"), "{text}");
    assert!(text.contains("食堂“一食堂”专间区") && detail.contains("NO_MASK"), "{text} / {detail}");
    assert!(!text.is_ascii() && !text.contains("Rectif"), "Chinese only: {text}");
    assert!(!text.contains("立即停止"));
    // The drafts are valid first steps of a case.
    let mut s = Script::open(COUNTY, friday());
    s.inputs[0].action = open;
    assert_eq!(s.ok(COUNTY, friday(), notice).status, CaseStatus::NoticeIssued);

    let smoke = AlertRaised { alert_type: AlertType::FireSmoke, severity: Severity::Severe, ..alert };
    let (_, notice) = draft_from_alert(alert_id, n(SCHOOL), &smoke, &rules, friday());
    let CaseAction::IssueNotice { deadline_ms, text } = &notice else { panic!("{notice:?}") };
    assert_eq!(*deadline_ms, friday() + 72 * HOUR);
    assert!(text.contains("立即停止") && text.contains("24 小时内"), "{text}");
}

#[test]
fn case_events_round_trip_through_bincode() {
    let s = noticed();
    let config = bincode::config::standard();
    for input in &s.inputs {
        let event = CaseEvent { case: input.case, action: input.action.clone() };
        let bytes = bincode::serde::encode_to_vec(&event, config).unwrap();
        let (back, _): (CaseEvent, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back, event);
    }
    let state = s.state();
    let bytes = bincode::serde::encode_to_vec(&state, config).unwrap();
    let (back, _): (CaseState, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
    assert_eq!(back, state);
}

// ---- Random case histories -------------------------------------------------------------------

fn pick<'a>(rng: &mut ChaCha8Rng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

/// Any action with random parameters, valid or not.
fn random_action(rng: &mut ChaCha8Rng, t: u64) -> CaseAction {
    let text = |rng: &mut ChaCha8Rng| if rng.random_bool(0.2) { String::new() } else { "说明".to_string() };
    match rng.random_range(0..11) {
        0 => CaseAction::Open {
            school: n(pick(rng, &[SCHOOL, OTHER_SCHOOL])),
            severity: Severity::ALL[rng.random_range(0..3)],
            source: CaseSource::Complaint,
            title: text(rng),
            detail: String::new(),
            number: rng.random_range(0..3),
        },
        1 => CaseAction::IssueNotice { deadline_ms: t + rng.random_range(0..4 * DAY) - DAY / 2, text: text(rng) },
        2 => CaseAction::NoticeDelivery { refused: rng.random_bool(0.3) },
        3 => CaseAction::Acknowledge,
        4 => CaseAction::Submit { evidence: vec![text(rng)], note: String::new() },
        5 => CaseAction::Review {
            passed: rng.random_bool(0.5),
            comment: text(rng),
            new_deadline_ms: rng.random_bool(0.5).then(|| t + rng.random_range(0..3 * DAY) - DAY / 2),
        },
        6 => CaseAction::Close { comment: text(rng) },
        7 => CaseAction::Cancel { reason: text(rng) },
        8 => CaseAction::MarkOverdue,
        _ => CaseAction::Escalate { to: n(pick(rng, &[COUNTY, CITY, PROVINCE, OTHER_CITY, SCHOOL])) },
    }
}

/// The step a real participant would most likely take next.
fn plausible(rng: &mut ChaCha8Rng, state: &CaseState, t: u64, rules: &CaseRules) -> (String, CaseAction) {
    let sup = pick(rng, &[COUNTY, COUNTY, CITY, PROVINCE]);
    if rng.random_bool(0.4)
        && let Some(action) = due(state, t, n(sup), rules).into_iter().next()
    {
        return (sup.to_string(), action);
    }
    let (by, action) = match state.status {
        CaseStatus::Open if rng.random_bool(0.9) => (COUNTY, issue(notice_deadline(rules, state.severity, t))),
        CaseStatus::Open | CaseStatus::NoticeIssued if rng.random_bool(0.1) => {
            (COUNTY, CaseAction::Cancel { reason: "误判".into() })
        }
        CaseStatus::NoticeIssued => match rng.random_range(0..3) {
            0 => (SCHOOL, CaseAction::NoticeDelivery { refused: rng.random_bool(0.2) }),
            1 => (SCHOOL, CaseAction::Acknowledge),
            _ => (SCHOOL, submit()),
        },
        CaseStatus::Rectifying => (SCHOOL, submit()),
        CaseStatus::Submitted => {
            (COUNTY, review(rng.random_bool(0.4), rng.random_bool(0.3).then(|| t + rng.random_range(1..2 * DAY))))
        }
        CaseStatus::Reviewed => (pick(rng, &[COUNTY, CITY]), close()),
        _ => (pick(rng, &[COUNTY, SCHOOL]), random_action(rng, t)),
    };
    (by.to_string(), action)
}

/// A realistic random history of one case: mostly plausible steps in time order, plus invalid and
/// unauthorised steps from random nodes, some with stray HLCs, a wrong scope, or another case.
fn random_case(seed: u64) -> (CaseId, Vec<CaseInput>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rules = CaseRules::default();
    let nodes = [SCHOOL, COUNTY, CITY, PROVINCE, OTHER_COUNTY, OTHER_SCHOOL, OTHER_CITY];
    let mut script = Script::open(pick(&mut rng, &[COUNTY, COUNTY, CITY, PROVINCE]), friday());
    let start = friday() + rng.random_range(0..7) * DAY;
    script.inputs[0].hlc = Hlc { wall_ms: start, logical: rng.random_range(0..3) };
    let mut t = start;
    for _ in 0..rng.random_range(3..30) {
        t += rng.random_range(0..2 * DAY);
        let state = fold(script.case, &script.inputs);
        let (by, action) = match &state {
            Some(state) if rng.random_bool(0.75) => plausible(&mut rng, state, t, &rules),
            _ => (pick(&mut rng, &nodes).to_string(), random_action(&mut rng, t)),
        };
        script.write(&by, t, action);
        let Some(last) = script.inputs.last_mut() else { continue };
        last.hlc.logical = rng.random_range(0..3);
        if rng.random_bool(0.1) {
            last.hlc.wall_ms = start - DAY + rng.random_range(0..t - start + 2 * DAY);
        }
        if rng.random_bool(0.04) {
            last.scope = n(OTHER_SCHOOL);
        }
        if rng.random_bool(0.04) {
            last.case = CaseId { opened_by: n(COUNTY), seq: 999 };
        }
    }
    (script.case, script.inputs)
}

/// The generator reaches every corner of the lifecycle, so the convergence property means something.
#[test]
fn random_cases_cover_the_lifecycle() {
    let mut statuses = BTreeSet::new();
    let (mut province, mut rejected_twice, mut refused, mut overdue) = (0, 0, 0, 0);
    for seed in 0..300 {
        let (case, inputs) = random_case(seed);
        let Some(st) = fold(case, &inputs) else { continue };
        statuses.insert(st.status);
        province += usize::from(st.supervisor == n(PROVINCE));
        rejected_twice += usize::from(st.rejected >= 2);
        refused += usize::from(st.refused().count() > 0);
        overdue += usize::from(st.overdue_marks > 0);
    }
    assert_eq!(statuses.len(), 7, "{statuses:?}");
    assert!(
        province >= 5 && rejected_twice >= 5 && refused >= 100 && overdue >= 20,
        "{province} {rejected_twice} {refused} {overdue}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any permutation of a case's events, with any of them duplicated, folds to the same state.
    #[test]
    fn any_order_and_duplication_folds_alike(seed in any::<u64>(), shuffle_seed in any::<u64>()) {
        let (case, inputs) = random_case(seed);
        let reference = fold(case, &inputs);
        let all = fold_all(&inputs);
        let mut rng = ChaCha8Rng::seed_from_u64(shuffle_seed);
        for _ in 0..4 {
            let mut mixed = inputs.clone();
            for input in &inputs {
                for _ in 0..rng.random_range(0..3) {
                    mixed.push(input.clone());
                }
            }
            mixed.shuffle(&mut rng);
            prop_assert_eq!(&fold(case, &mixed), &reference);
            prop_assert_eq!(&fold_all(&mixed), &all);
        }
        prop_assert_eq!(all.get(&case), reference.as_ref());
        if let Some(st) = &reference {
            // Every distinct event of the case is in the history exactly once, in time order.
            let ids: BTreeSet<EventId> = inputs.iter().filter(|i| i.case == case).map(|i| i.id).collect();
            let seen: Vec<EventId> = st.history.iter().map(|h| h.event).collect();
            prop_assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), ids);
            prop_assert_eq!(seen.len(), st.history.len());
            prop_assert!(st.history.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            prop_assert!(st.supervisor.is_descendant_of(n(PROVINCE)) || st.supervisor == n(PROVINCE));
            prop_assert!(st.supervisor.tier() <= Tier::County && st.supervisor.is_ancestor_or_self_of(st.school));
            prop_assert_eq!(st.closed_at_ms.is_some(), st.status.is_terminal());
            prop_assert_eq!(st.rework, st.rejected);
            prop_assert!(!(st.overdue && st.status.is_terminal()));
        }
    }

    /// `working_days_between` is the inverse of `add_working_days`.
    #[test]
    fn working_days_between_inverts_add(a in 1_600_000_000_000u64..1_900_000_000_000, gap in 0u64..40 * DAY) {
        let b = a + gap;
        let k = working_days_between(a, b);
        prop_assert!(add_working_days(a, k) <= b);
        prop_assert!(add_working_days(a, k + 1) > b);
        prop_assert!(k <= u32::try_from(gap / DAY + 1).unwrap());
    }
}
