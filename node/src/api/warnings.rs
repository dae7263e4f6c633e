//! Early warnings (预警) at a node: the admin API routes.
//!
//! - `GET /api/warnings?school=&under=&active=&rule=&level=&limit=` — the warnings this node holds
//!   about schools of its subtree, active first, then newest: each with its rule, level, text,
//!   evidence, when raised and resolved, who judged it, and the automatic case it opened.
//! - `GET /api/warnings/candidates?under=` — 约谈 candidates (the same problem confirmed again and
//!   again at a canteen) and 问责 records (a notice refused, a rectification rejected 3 times).
//! - `POST /api/warnings/evaluate` — runs the warning engine now (the operator, or a person who may
//!   change settings), and answers what it wrote.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::calendar::rfc3339;
use protocol::case::CaseSource;
use protocol::ledger::day_str;
use protocol::people::Action;
use protocol::rules::{Candidate, accountability_candidates, interview_candidates};
use protocol::warning::{Level, RuleId, WarningKey, WarningState};
use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::api::AdminState;
use crate::api::kit::{ApiFail, ApiResult, bad, name_of, parse_limit, parse_under, read_fail};
use crate::api::principal::Principal;

/// Most warnings one listing returns.
pub const WARNINGS_LIMIT_MAX: usize = 5_000;

/// A warning as the API, the CLI and the console show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningView {
    /// `rule/school/subject/period`.
    pub key: String,
    pub rule: RuleId,
    pub rule_zh: String,
    pub school: NodeId,
    pub school_name: String,
    pub subject: String,
    /// The day or month it is about (`2026-12-01`), empty for a standing condition.
    pub period: String,
    /// The current level; `None` once resolved.
    pub level: Option<Level>,
    pub peak: Level,
    pub active: bool,
    pub text: String,
    pub evidence: Vec<String>,
    pub first_raised_ms: u64,
    pub raised_ms: u64,
    pub raised_at: String,
    pub resolved_ms: Option<u64>,
    pub resolve_reason: String,
    pub raises: u32,
    /// The node that judged it: the school, or its county.
    pub judged_by: NodeId,
    /// The automatic case it opened (`130102#17`) and its ledger number.
    pub case: Option<String>,
    pub case_no: Option<String>,
}

impl WarningView {
    pub fn new(s: &AdminState, w: &WarningState, case: Option<(String, String)>) -> WarningView {
        WarningView {
            key: w.key.to_string(),
            rule: w.key.rule,
            rule_zh: w.key.rule.zh().to_string(),
            school: w.key.school,
            school_name: name_of(s, w.key.school),
            subject: w.key.subject.clone(),
            period: if w.key.period == 0 { String::new() } else { day_str(w.key.period) },
            level: w.level,
            peak: w.peak,
            active: w.active(),
            text: w.text.clone(),
            evidence: w.evidence.clone(),
            first_raised_ms: w.first_raised_ms,
            raised_ms: w.raised_ms,
            raised_at: rfc3339(w.raised_ms),
            resolved_ms: w.resolved_ms,
            resolve_reason: w.resolve_reason.clone(),
            raises: w.raises,
            judged_by: w.written_by,
            case: case.as_ref().map(|c| c.0.clone()),
            case_no: case.map(|c| c.1),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct WarningParams {
    pub school: Option<String>,
    pub under: Option<String>,
    /// Only active ones (default), or `false` for all.
    pub active: Option<bool>,
    pub rule: Option<String>,
    pub level: Option<String>,
    pub limit: Option<String>,
}

/// The warnings of the subtree, filtered, active first then newest.
pub async fn list_as(s: &AdminState, who: &Principal, p: &WarningParams) -> Result<Vec<WarningView>, ApiFail> {
    who.require(s, Action::ViewSubtree).await?;
    let school = parse_under(p.school.as_deref())?;
    let under = parse_under(p.under.as_deref())?.or(school).unwrap_or(s.me);
    who.require_in_scope(s, under).await?;
    let rule = match p.rule.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => Some(r.parse::<RuleId>().map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let level = match p.level.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(l) => Some(l.parse::<Level>().map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let limit = parse_limit(p.limit.as_deref(), WARNINGS_LIMIT_MAX)?;
    let active_only = p.active.unwrap_or(true);
    let held = s.reads.warnings(school).await.map_err(read_fail)?;
    let cases = automatic_cases(s).await?;
    let mut out: Vec<WarningView> = held
        .values()
        .filter(|w| under.is_ancestor_or_self_of(w.key.school))
        .filter(|w| !active_only || w.active())
        .filter(|w| rule.is_none_or(|r| w.key.rule == r))
        .filter(|w| level.is_none_or(|l| w.level == Some(l)))
        .map(|w| WarningView::new(s, w, cases.get(&(w.key.clone(), w.episode)).cloned()))
        .collect();
    out.sort_by(|a, b| {
        b.active.cmp(&a.active).then(b.level.cmp(&a.level)).then(b.raised_ms.cmp(&a.raised_ms)).then(a.key.cmp(&b.key))
    });
    out.truncate(limit);
    Ok(out)
}

/// The automatic cases this node holds, by the warning episode they name: `(id, ledger number)`.
async fn automatic_cases(
    s: &AdminState,
) -> Result<BTreeMap<(WarningKey, protocol::EventId), (String, String)>, ApiFail> {
    let cases = s.reads.case_heads(false).await.map_err(read_fail)?;
    Ok(cases
        .into_iter()
        .filter_map(|(id, c)| match &c.source {
            CaseSource::Warning { key, episode } => Some(((key.clone(), *episode), (id.to_string(), c.ledger_no()))),
            _ => None,
        })
        .collect())
}

async fn list(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<WarningParams>,
) -> ApiResult<Vec<WarningView>> {
    Ok(Json(list_as(&s, &who, &p).await?))
}

/// The two candidate lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidates {
    /// 约谈: the same problem confirmed again and again.
    pub interview: Vec<CandidateView>,
    /// 问责: a notice refused, a rectification rejected 3 times.
    pub accountability: Vec<CandidateView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateView {
    pub school: NodeId,
    pub school_name: String,
    pub subject: String,
    pub reason: String,
    pub evidence: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct UnderParams {
    pub under: Option<String>,
}

/// The 约谈 and 问责 candidates of the subtree (or `under`).
pub async fn candidates_as(s: &AdminState, who: &Principal, p: &UnderParams) -> Result<Candidates, ApiFail> {
    who.require(s, Action::ViewSubtree).await?;
    let under = parse_under(p.under.as_deref())?.unwrap_or(s.me);
    who.require_in_scope(s, under).await?;
    let warnings = s.reads.warnings(None).await.map_err(read_fail)?;
    let cases = s.reads.case_heads(false).await.map_err(read_fail)?;
    let view = |c: Candidate| CandidateView {
        school: c.school,
        school_name: name_of(s, c.school),
        subject: c.subject,
        reason: c.reason,
        evidence: c.evidence,
    };
    let mine = |c: &Candidate| under.is_ancestor_or_self_of(c.school);
    Ok(Candidates {
        interview: interview_candidates(&warnings).into_iter().filter(mine).map(view).collect(),
        accountability: accountability_candidates(&cases).into_iter().filter(mine).map(view).collect(),
    })
}

async fn candidates(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<UnderParams>,
) -> ApiResult<Candidates> {
    Ok(Json(candidates_as(&s, &who, &p).await?))
}

/// What one evaluation wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluated {
    pub raised: usize,
    pub resolved: usize,
    pub cases: usize,
    /// Alerts unjudged past the hours (24) that moved to the county's queue.
    pub moved: usize,
}

async fn evaluate(State(s): State<AdminState>, who: Principal) -> ApiResult<Evaluated> {
    who.require(&s, Action::ViewSubtree).await?;
    let pass = s.engine.pass().await.map_err(crate::api::kit::write_fail)?;
    Ok(Json(Evaluated { raised: pass.raised, resolved: pass.resolved, cases: pass.cases, moved: pass.moved }))
}

/// The warning routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/warnings", get(list))
        .route("/api/warnings/candidates", get(candidates))
        .route("/api/warnings/evaluate", post(evaluate))
}
