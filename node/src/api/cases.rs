//! Cases at a node: the admin API routes and the views. Every answer is folded from the node's
//! own store with `protocol::case`, so every node on a case's path computes the same state. (Alert
//! verdicts live in `api::alerts`, the scheduler in `runtime::scheduler`.)
//!
//! Routes: `GET|POST /api/cases`, `GET /api/cases/{id}` (by id or ledger number),
//! `POST /api/cases/{id}/steps`.
//!
//! A step is checked before it is written: authority (the school acknowledges and submits; its
//! supervisors do the rest) and the case's current state. A refused step is answered with the
//! reason, counted in the store's `refused_steps`, and not written. Steps made concurrently at
//! different nodes are all written and the fold settles them, recording the loser as refused.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::case::{
    CaseAction, CaseEvent, CaseId, CaseInput, CaseRules, CaseSource, CaseState, CaseStatus, StepOutcome, authorize,
    fold, notice_deadline, pending_case,
};
use protocol::{Body, EventId, EventKind, Hlc, Severity};
use serde::{Deserialize, Serialize};
use topology::NodeId;
use tracing::info;

use crate::api::AdminState;
use crate::api::kit::{
    ApiError, ApiFail, ApiResult, api_err, append, bad, internal, name_of, one_of, parse_under, read_fail, refuse,
};
use crate::api::principal::Principal;
use crate::runtime::reads::case_inputs;
use protocol::people::Action;

/// A case as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseView {
    pub id: String,
    pub school: NodeId,
    pub status: CaseStatus,
    pub status_zh: String,
    pub severity: String,
    pub title: String,
    pub deadline_ms: Option<u64>,
    pub overdue: bool,
    /// The level supervising it now (county, or higher once escalated).
    pub supervisor: NodeId,
    pub rework: u32,
    pub opened_at_ms: u64,
    pub closed_at_ms: Option<u64>,
    /// Steps recorded but refused (out of order, concurrent, without authority).
    pub refused_steps: usize,
    /// The ledger number a person says: `130102-2026-0007`.
    #[serde(default)]
    pub number: String,
    #[serde(default)]
    pub school_name: String,
    #[serde(default)]
    pub severity_zh: String,
    /// `opened_at_ms` and `deadline_ms` in RFC 3339, China time.
    #[serde(default)]
    pub opened_at: String,
    #[serde(default)]
    pub deadline_at: Option<String>,
    /// A submitted case: when its review is due, by the review window of the settings in force.
    #[serde(default)]
    pub review_due_ms: Option<u64>,
}

impl CaseView {
    pub fn of(s: &CaseState) -> CaseView {
        CaseView {
            id: s.id.to_string(),
            school: s.school,
            status: s.status,
            status_zh: s.status.zh().to_string(),
            severity: s.severity.as_str().to_string(),
            title: s.title.clone(),
            deadline_ms: s.deadline_ms,
            overdue: s.overdue,
            supervisor: s.supervisor,
            rework: s.rework,
            opened_at_ms: s.opened_at_ms,
            closed_at_ms: s.closed_at_ms,
            refused_steps: s.refused().count(),
            number: s.ledger_no(),
            school_name: String::new(),
            severity_zh: s.severity.zh().to_string(),
            opened_at: protocol::calendar::rfc3339(s.opened_at_ms),
            deadline_at: s.deadline_ms.map(protocol::calendar::rfc3339),
            review_due_ms: None,
        }
    }
}

/// The values `case list --status` takes: `open` (not closed or cancelled) or one status.
pub const CASE_STATUS_FILTERS: [&str; 7] =
    ["open", "notice-issued", "rectifying", "submitted", "reviewed", "closed", "cancelled"];

#[derive(Debug, Default, Deserialize)]
pub struct CaseListParams {
    /// Only cases of schools in this subtree.
    pub under: Option<String>,
    /// `open` (not closed or cancelled), or one status (`submitted`, `closed`, …).
    pub status: Option<String>,
    /// Only cases whose current supervisor is this node (its 督办 list).
    #[serde(default)]
    pub supervised_here: bool,
    /// Only cases past their deadline while the school owes the rectification.
    #[serde(default)]
    pub overdue: bool,
}

async fn list_cases(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<CaseListParams>,
) -> ApiResult<Vec<CaseView>> {
    who.require(&s, Action::ViewSubtree).await?;
    Ok(Json(case_views(&s, p).await?))
}

/// The cases this node holds matching `p`, newest first.
pub async fn case_views(s: &AdminState, p: CaseListParams) -> Result<Vec<CaseView>, ApiFail> {
    Ok(case_views_newest(s, p, usize::MAX).await?.1)
}

/// How many cases this node holds match `p`, and the newest `limit` of them.
pub async fn case_views_newest(
    s: &AdminState,
    p: CaseListParams,
    limit: usize,
) -> Result<(usize, Vec<CaseView>), ApiFail> {
    let under = parse_under(p.under.as_deref())?;
    let status = match p.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(st) => Some(one_of("status", st, &CASE_STATUS_FILTERS)?),
    };
    // Read beside the store actor: a province's month of case steps never delays replication.
    // Open cases have their own index: the supervisors' lists never read the closed ones.
    let cases = s.reads.case_heads(status == Some("open")).await.map_err(read_fail)?;
    let mut matching: Vec<&CaseState> = cases
        .values()
        .filter(|c| {
            under.is_none_or(|u| u.is_ancestor_or_self_of(c.school))
                && match status {
                    None => true,
                    Some("open") => !c.status.is_terminal(),
                    Some(st) => c.status.as_str() == st,
                }
                && (!p.supervised_here || c.supervisor == s.me)
                && (!p.overdue || c.overdue)
        })
        .collect();
    matching.sort_by_key(|c| std::cmp::Reverse((c.opened_at_ms, c.id)));
    let total = matching.len();
    // The rules in force per county (a county's override or the province's), read once each.
    let mut rules: std::collections::BTreeMap<Option<NodeId>, CaseRules> = Default::default();
    let mut out = Vec::new();
    for c in matching.into_iter().take(limit) {
        let county = c.school.ancestor_at(topology::Tier::County);
        let review_due_ms = match rules.entry(county) {
            std::collections::btree_map::Entry::Occupied(r) => c.review_due_ms(r.get()),
            std::collections::btree_map::Entry::Vacant(v) => {
                c.review_due_ms(v.insert(s.reads.case_rules_for(c.school).await.map_err(read_fail)?))
            }
        };
        out.push(CaseView { school_name: name_of(s, c.school), review_due_ms, ..CaseView::of(c) });
    }
    Ok((total, out))
}

/// A case named by its id (`130102#12`) or its ledger number (`130102-2026-0007`).
/// A case whose opener is neither above nor below this node cannot concern it: 403, counted.
pub async fn parse_case(s: &AdminState, who: &Principal, id: &str) -> Result<CaseId, ApiFail> {
    let id = id.trim();
    if let Ok(c) = id.parse::<CaseId>() {
        who.require_related(s, c.opened_by).await?;
        return Ok(c);
    }
    let parts: Vec<&str> = id.split('-').collect();
    let ledger_shape = parts.len() == 3
        && parts[1].len() == 4
        && parts[2].len() == 4
        && parts.iter().skip(1).all(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !ledger_shape {
        return Err(bad(format!("“{id}”不是案件号：请给案件号（130102#12）或台账编号（130102-2026-0007）")));
    }
    if let Ok(opener) = parts[0].parse::<NodeId>() {
        who.require_related(s, opener).await?;
    }
    // The heads carry the ledger number: no history is decoded to find it.
    let cases = s.reads.case_heads(false).await.map_err(read_fail)?;
    cases
        .values()
        .find(|c| c.ledger_no() == id)
        .map(|c| c.id)
        .ok_or_else(|| api_err(StatusCode::NOT_FOUND, format!("{} 没有台账编号为“{id}”的案件", s.me)))
}

async fn show_case(State(s): State<AdminState>, who: Principal, Path(id): Path<String>) -> ApiResult<CaseState> {
    who.require(&s, Action::ViewSubtree).await?;
    let id = parse_case(&s, &who, &id).await?;
    match s.reads.case(id).await.map_err(read_fail)? {
        Some(c) => Ok(Json(c)),
        None => Err(api_err(StatusCode::NOT_FOUND, format!("{} 没有案件 {id}", s.me))),
    }
}

/// Opens a case (the CLI's `case open`), with its rectification notice unless `notice` is false.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCase {
    pub school: NodeId,
    /// general | serious | severe (一般 / 较重 / 严重).
    pub severity: String,
    /// spot-check | on-site | rule-warning | complaint | self-check.
    #[serde(default)]
    pub source: Option<String>,
    pub title: String,
    #[serde(default)]
    pub detail: String,
    /// Issue the notice at once (default true), with this text and deadline (default: by severity).
    #[serde(default = "yes")]
    pub notice: bool,
    #[serde(default)]
    pub notice_text: Option<String>,
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse::<Severity>().map_err(|e| e.to_string())
}

fn parse_source(s: Option<&str>) -> Result<CaseSource, String> {
    Ok(match s {
        None | Some("spot-check") => CaseSource::SpotCheck,
        Some("on-site") => CaseSource::OnSite,
        Some("rule-warning") => CaseSource::RuleWarning,
        Some("complaint") => CaseSource::Complaint,
        Some("self-check") => CaseSource::SelfCheck,
        Some(other) => {
            return Err(format!(
                "没有“{other}”这种案件来源，可选：spot-check（抽查）、on-site（现场检查）、rule-warning（规则预警）、complaint（投诉）、self-check（自查）（AI 告警请用 `alert confirm --open-case` 挂账）"
            ));
        }
    })
}

/// Refuses (and counts) a step this node may not take, or that the case's state does not allow.
/// Checks `actions` (in order) against `state` as if `me` wrote them now.
async fn precheck(
    s: &AdminState,
    school: NodeId,
    case: Option<(CaseId, &[CaseInput])>,
    actions: &[CaseAction],
) -> Result<(), (StatusCode, Json<ApiError>)> {
    for a in actions {
        if let Err(e) = authorize(s.me, school, a) {
            return Err(refuse(s, StatusCode::FORBIDDEN, e.to_string()).await);
        }
    }
    let Some((id, existing)) = case else { return Ok(()) };
    let mut all = existing.to_vec();
    let wall = s.clock.wall_ms();
    let newest = all.iter().map(|i| i.hlc).max().unwrap_or_default();
    for (n, a) in actions.iter().enumerate() {
        // After everything held, as the store's HLC will place it.
        let hlc = if wall > newest.wall_ms {
            Hlc { wall_ms: wall, logical: n as u32 }
        } else {
            Hlc { wall_ms: newest.wall_ms, logical: newest.logical + 1 + n as u32 }
        };
        all.push(CaseInput {
            person: None,
            id: EventId { origin: s.me, seq: u64::MAX - n as u64 },
            hlc,
            scope: school,
            case: id,
            action: a.clone(),
        });
    }
    if existing.is_empty()
        && let Some(first) = all.first()
        && let Err(why) = protocol::case::check_open(id, first)
    {
        return Err(refuse(s, StatusCode::BAD_REQUEST, format!("不能挂账：{why}")).await);
    }
    let state = fold(id, &all).ok_or_else(|| bad(format!("没有案件 {id}")))?;
    let tail = state.history.iter().rev().take(actions.len());
    for step in tail {
        if let StepOutcome::Refused(why) = &step.outcome {
            return Err(refuse(s, StatusCode::CONFLICT, format!("{} refused: {why}", step.action)).await);
        }
    }
    Ok(())
}

async fn open_case(State(s): State<AdminState>, who: Principal, Json(req): Json<OpenCase>) -> ApiResult<CaseState> {
    open_case_as(&s, &who, req).await.map(Json)
}

/// Opens a case on behalf of `who` (a supervisor), with its notice unless `req.notice` is false.
pub async fn open_case_as(s: &AdminState, who: &Principal, req: OpenCase) -> Result<CaseState, ApiFail> {
    let s = s.clone();
    who.require(&s, Action::SuperviseCase).await?;
    who.require_in_scope(&s, req.school).await?;
    let severity = parse_severity(&req.severity).map_err(bad)?;
    let source = parse_source(req.source.as_deref()).map_err(bad)?;
    let school = req.school;
    let mut actions =
        vec![CaseAction::Open { school, severity, source, title: req.title, detail: req.detail, number: 0 }];
    if req.notice {
        let now = s.clock.wall_ms();
        let rules = s.reads.case_rules_for(school).await.map_err(read_fail)?;
        let deadline_ms = req.deadline_ms.unwrap_or_else(|| notice_deadline(&rules, severity, now));
        let text = req.notice_text.unwrap_or_else(|| "请按期整改并上传佐证材料。".into());
        actions.push(CaseAction::IssueNotice { deadline_ms, text });
    }
    // The new case folded as if written now: a refused step (a blank title, a deadline in the
    // past) refuses the whole request before anything is written.
    // The first checked action gets the provisional event id (me, u64::MAX): the case's own id.
    precheck(&s, school, Some((CaseId { opened_by: s.me, seq: u64::MAX }, &[])), &actions).await?;
    let items = actions
        .into_iter()
        .map(|action| (school, Body::Case(CaseEvent { case: pending_case(s.me), action })))
        .collect();
    let stored = append(&s, who.person(), items).await?;
    let id = match stored.first().map(|e| &e.event.body) {
        Some(Body::Case(c)) => c.case,
        _ => return Err(internal("the open event was not stored")),
    };
    info!(node = %s.me, case = %id, %school, "case opened");
    s.reads.case(id).await.map_err(read_fail)?.ok_or_else(|| internal("case not found after opening"))
}

/// One step on a case (the CLI's `case notice|ack|submit|review|close|cancel|escalate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StepRequest {
    Notice {
        text: String,
        deadline_ms: Option<u64>,
    },
    /// The school received the notice.
    Ack,
    /// The school refuses the notice (recorded; counts towards accountability).
    RefuseNotice,
    Submit {
        evidence: Vec<String>,
        note: String,
    },
    Review {
        passed: bool,
        comment: String,
        new_deadline_ms: Option<u64>,
    },
    Close {
        comment: String,
    },
    Cancel {
        reason: String,
    },
    /// 督办 by hand: one level up from the current supervisor.
    Escalate,
}

fn step_actions(req: StepRequest, state: &CaseState, rules: &CaseRules, now: u64) -> Vec<CaseAction> {
    match req {
        StepRequest::Notice { text, deadline_ms } => {
            let deadline_ms = deadline_ms.unwrap_or_else(|| notice_deadline(rules, state.severity, now));
            vec![CaseAction::IssueNotice { deadline_ms, text }]
        }
        StepRequest::Ack => vec![CaseAction::NoticeDelivery { refused: false }, CaseAction::Acknowledge],
        StepRequest::RefuseNotice => vec![CaseAction::NoticeDelivery { refused: true }],
        StepRequest::Submit { evidence, note } => vec![CaseAction::Submit { evidence, note }],
        StepRequest::Review { passed, comment, new_deadline_ms } => {
            vec![CaseAction::Review { passed, comment, new_deadline_ms }]
        }
        StepRequest::Close { comment } => vec![CaseAction::Close { comment }],
        StepRequest::Cancel { reason } => vec![CaseAction::Cancel { reason }],
        StepRequest::Escalate => match state.supervisor.parent() {
            Some(to) => vec![CaseAction::Escalate { to }],
            None => vec![CaseAction::Escalate { to: state.supervisor }],
        },
    }
}

async fn case_step(
    State(s): State<AdminState>,
    who: Principal,
    Path(id): Path<String>,
    Json(req): Json<StepRequest>,
) -> ApiResult<CaseState> {
    case_step_as(&s, &who, &id, req).await.map(Json)
}

/// One step on a case by `who`: the school's steps need [`Action::AnswerCase`], the supervisor's
/// [`Action::SuperviseCase`].
pub async fn case_step_as(s: &AdminState, who: &Principal, id: &str, req: StepRequest) -> Result<CaseState, ApiFail> {
    let s = s.clone();
    let needs = match req {
        StepRequest::Ack | StepRequest::RefuseNotice | StepRequest::Submit { .. } => Action::AnswerCase,
        _ => Action::SuperviseCase,
    };
    who.require(&s, needs).await?;
    let id = parse_case(&s, who, id).await?;
    let existing = case_inputs(&s.reads.related(EventKind::Case, Some(id.event_id())).await.map_err(read_fail)?);
    let Some(state) = fold(id, &existing) else {
        let why = format!("{} 没有案件 {id}（案件只保存在其学校和学校的上级监管部门）", s.me);
        return Err(refuse(&s, StatusCode::NOT_FOUND, why).await);
    };
    let rules = s.reads.case_rules_for(state.school).await.map_err(read_fail)?;
    let mut actions = step_actions(req, &state, &rules, s.clock.wall_ms());
    // Delivery is recorded once; acknowledging later still goes ahead.
    if state.notice_delivered || state.notice_refused {
        actions.retain(|a| !matches!(a, CaseAction::NoticeDelivery { refused: false }));
    }
    precheck(&s, state.school, Some((id, &existing)), &actions).await?;
    let items = actions.into_iter().map(|action| (state.school, Body::Case(CaseEvent { case: id, action }))).collect();
    append(&s, who.person(), items).await?;
    s.reads.case(id).await.map_err(read_fail)?.ok_or_else(|| internal("case vanished"))
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/cases", get(list_cases).post(open_case))
        .route("/api/cases/{id}", get(show_case))
        .route("/api/cases/{id}/steps", post(case_step))
}
