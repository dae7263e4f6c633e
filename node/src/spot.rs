//! Online spot checks (网络巡查) at a node: the admin API routes and their client.
//!
//! - `POST /api/spot-checks` records a check a supervisor (county, city or province) made of a
//!   school canteen in its subtree: the four focus areas scored, the failed ones named. Each failed
//!   area puts a case on the books at the school with its rectification notice (source: spot
//!   check), in the same write as the check, so the check and its cases replicate together.
//! - `GET /api/spot-checks?under=&day=&month=&limit=` lists the checks this node holds, newest
//!   first: those of schools under `under` (default: all it holds), on one China-time day or month.
//! - `GET /api/spot-checks/rates?under=&day=&month=` rolls them up: checked, passed and the pass
//!   rate of every unit of this node's subtree (or `under`'s) that had a check in the period.
//!
//! By the holds rule a check lives at the school and every unit above it, so each level computes
//! its own subtree's pass rates from its own store, while any level above it is offline.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use protocol::case::{CaseAction, CaseEvent, CaseRules, CaseSource, ChinaTime, notice_deadline};
use protocol::spot::{FocusArea, PassRate, SpotCheck, pass_rates};
use protocol::{Body, EventKind, Severity};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};
use tracing::info;

use crate::admin::{AdminClient, AdminState, ApiError, ApiResult, api_err, append, bad, internal, read_storage};
use crate::store::{EventQuery, LIST_LIMIT_MAX, StoredEvent, list_events_where, pending_case};

/// What recording a check of `school` by `by` writes, in one request: the check (all four areas
/// scored, `failed` failing), then for each failed area a case opened at the school with its
/// rectification notice (deadline by severity from `now_ms`). Shared by the admin API and the
/// simulator's workload.
pub fn check_items(
    by: NodeId,
    school: NodeId,
    canteen: &str,
    failed: &[(FocusArea, Severity)],
    note: &str,
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
            title: format!("网络巡查不合格: {} ({})", area.zh(), area.as_str()),
            detail: if note.is_empty() { format!("canteen {canteen}") } else { format!("canteen {canteen}: {note}") },
        };
        let notice = CaseAction::IssueNotice {
            deadline_ms: notice_deadline(&CaseRules::default(), severity, now_ms),
            text: format!("请按期整改{}并上传佐证材料。Rectify {} and upload evidence.", area.zh(), area.as_str()),
        };
        for action in [open, notice] {
            items.push((school, Body::Case(CaseEvent { case: pending_case(by), action })));
        }
    }
    Ok(items)
}

/// A spot check to record (the CLI's `spot record`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpotCheck {
    pub school: NodeId,
    /// The canteen viewed (a school may have several).
    #[serde(default = "main_canteen")]
    pub canteen: String,
    /// The focus areas that failed; every other area scored passes.
    #[serde(default)]
    pub failed: Vec<FocusArea>,
    #[serde(default)]
    pub note: String,
    /// Severity of the cases the failures open: general (default), serious or severe.
    #[serde(default)]
    pub severity: Option<String>,
}

fn main_canteen() -> String {
    "main".into()
}

/// A spot check as the admin API and the CLI show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotCheckView {
    /// The check's event (`origin#seq`).
    pub id: String,
    pub school: NodeId,
    pub canteen: String,
    /// The supervising unit that made the check.
    pub by: NodeId,
    pub at_ms: u64,
    /// The China-time day of the check.
    pub day: String,
    pub passed: bool,
    pub failed: Vec<FocusArea>,
    pub scored: Vec<FocusArea>,
    pub note: String,
}

impl SpotCheckView {
    fn from_stored(s: &StoredEvent) -> Option<SpotCheckView> {
        let Body::SpotCheck(c) = &s.event.body else { return None };
        Some(SpotCheckView {
            id: s.event.id().to_string(),
            school: s.event.scope,
            canteen: c.canteen.clone(),
            by: s.event.origin,
            at_ms: s.event.hlc.wall_ms,
            day: ChinaTime(s.event.hlc.wall_ms).date(),
            passed: c.passed(),
            failed: c.results.iter().filter(|(_, ok)| !ok).map(|(a, _)| *a).collect(),
            scored: c.results.iter().map(|(a, _)| *a).collect(),
            note: c.note.clone(),
        })
    }
}

/// A recorded check and the cases its failures opened (ids `origin#seq`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotCheckRecorded {
    pub check: SpotCheckView,
    pub cases: Vec<String>,
}

/// One unit's pass rate over a period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateView {
    pub unit: NodeId,
    pub tier: Tier,
    pub checked: u64,
    pub passed: u64,
    pub percent: f64,
}

#[derive(Debug, Default, Deserialize)]
pub struct SpotParams {
    pub under: Option<NodeId>,
    /// `2026-11-28` (China time).
    pub day: Option<String>,
    /// `2026-11`.
    pub month: Option<String>,
    pub limit: Option<usize>,
}

/// The period filter of a listing: a China-time day (`2026-11-28`) or month (`2026-11`) as the
/// prefix of a check's date, validated by the CLI's own date parser.
fn period(p: &SpotParams) -> Result<Option<String>, String> {
    // Zero-padded, as `ChinaTime::date` writes it; not unix ms (which the parser also takes).
    let is_date = |d: &str| d.len() == 10 && d.contains('-') && crate::cli_registry::parse_day_or_ms(d).is_ok();
    match (&p.day, &p.month) {
        (Some(_), Some(_)) => Err("give a day or a month, not both".into()),
        (Some(d), None) if is_date(d) => Ok(Some(d.clone())),
        (Some(d), None) => Err(format!("day `{d}` is not YYYY-MM-DD")),
        (None, Some(m)) if is_date(&format!("{m}-01")) => Ok(Some(format!("{m}-"))),
        (None, Some(m)) => Err(format!("month `{m}` is not YYYY-MM")),
        (None, None) => Ok(None),
    }
}

/// The newest `limit` spot checks this node holds of schools under `under`, in the period: the
/// filter runs inside the listing, which stops once it has them.
async fn held_checks(
    s: &AdminState,
    p: &SpotParams,
    limit: usize,
) -> Result<Vec<StoredEvent>, (StatusCode, Json<ApiError>)> {
    let period = period(p).map_err(bad)?;
    let under = p.under.unwrap_or(s.me);
    let query = EventQuery { kind: Some(EventKind::SpotCheck), under: None, limit };
    read_storage(s, move |st| {
        list_events_where(st, &query, |e| {
            Some(
                under.is_ancestor_or_self_of(e.event.scope)
                    && period
                        .as_ref()
                        .is_none_or(|pre| ChinaTime(e.event.hlc.wall_ms).date().starts_with(pre.as_str())),
            )
        })
        .map_err(|e| e.to_string())
    })
    .await
}

async fn list(State(s): State<AdminState>, Query(p): Query<SpotParams>) -> ApiResult<Vec<SpotCheckView>> {
    let limit = p.limit.unwrap_or(100).clamp(1, LIST_LIMIT_MAX);
    let events = held_checks(&s, &p, limit).await?;
    Ok(Json(events.iter().filter_map(SpotCheckView::from_stored).collect()))
}

async fn rates(State(s): State<AdminState>, Query(p): Query<SpotParams>) -> ApiResult<Vec<RateView>> {
    let under = p.under.unwrap_or(s.me);
    let events = held_checks(&s, &p, LIST_LIMIT_MAX).await?;
    let rolled: BTreeMap<NodeId, PassRate> = pass_rates(events.iter().map(|e| &e.event));
    // Units of this subtree only: above it, this node holds only part of their checks.
    Ok(Json(
        rolled
            .into_iter()
            .filter(|(unit, _)| under.is_ancestor_or_self_of(*unit) && s.me.is_ancestor_or_self_of(*unit))
            .map(|(unit, r)| RateView {
                unit,
                tier: unit.tier(),
                checked: r.checked,
                passed: r.passed,
                percent: r.percent(),
            })
            .collect(),
    ))
}

async fn record(State(s): State<AdminState>, Json(req): Json<RecordSpotCheck>) -> ApiResult<SpotCheckRecorded> {
    let school = req.school;
    if s.me.tier() == Tier::School {
        return Err(api_err(StatusCode::FORBIDDEN, "a school does not spot-check; its county, city or province does"));
    }
    if school.tier() != Tier::School || !s.me.is_ancestor_or_self_of(school) {
        return Err(api_err(
            StatusCode::FORBIDDEN,
            format!("{} spot-checks schools of its own subtree; {school} is not one", s.me),
        ));
    }
    let severity = match req.severity.as_deref() {
        None => Severity::General,
        Some(v) => v.parse::<Severity>().map_err(|e| bad(e.to_string()))?,
    };
    let mut failed = req.failed.clone();
    failed.sort();
    if failed.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad("a focus area is named as failed twice"));
    }
    let failed: Vec<(FocusArea, Severity)> = failed.into_iter().map(|a| (a, severity)).collect();
    let items = check_items(s.me, school, &req.canteen, &failed, &req.note, s.clock.wall_ms()).map_err(bad)?;
    let stored = append(&s, items).await?;
    let view =
        stored.first().and_then(SpotCheckView::from_stored).ok_or_else(|| internal("the check was not stored"))?;
    let cases: Vec<String> = stored
        .iter()
        .filter_map(|e| match &e.event.body {
            Body::Case(c) if matches!(c.action, CaseAction::Open { .. }) => Some(c.case.to_string()),
            _ => None,
        })
        .collect();
    info!(node = %s.me, %school, passed = view.passed, cases = cases.len(), "spot check recorded");
    Ok(Json(SpotCheckRecorded { check: view, cases }))
}

/// The spot-check routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new().route("/api/spot-checks", get(list).post(record)).route("/api/spot-checks/rates", get(rates))
}

/// A listing's query string.
fn query_string(under: Option<NodeId>, day: Option<&str>, month: Option<&str>, limit: Option<usize>) -> String {
    let mut q = Vec::new();
    if let Some(u) = under {
        q.push(format!("under={u}"));
    }
    if let Some(d) = day {
        q.push(format!("day={d}"));
    }
    if let Some(m) = month {
        q.push(format!("month={m}"));
    }
    if let Some(l) = limit {
        q.push(format!("limit={l}"));
    }
    q.join("&")
}

impl AdminClient {
    pub fn spot_check(&self, req: &RecordSpotCheck) -> anyhow::Result<SpotCheckRecorded> {
        self.post("/api/spot-checks", req)
    }

    pub fn spot_checks(
        &self,
        under: Option<NodeId>,
        day: Option<&str>,
        month: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<SpotCheckView>> {
        self.get(&format!("/api/spot-checks?{}", query_string(under, day, month, Some(limit))))
    }

    pub fn pass_rates(
        &self,
        under: Option<NodeId>,
        day: Option<&str>,
        month: Option<&str>,
    ) -> anyhow::Result<Vec<RateView>> {
        self.get(&format!("/api/spot-checks/rates?{}", query_string(under, day, month, None)))
    }
}

/// One line per check.
pub fn render_check(c: &SpotCheckView) -> String {
    let verdict = if c.passed {
        "passed".to_string()
    } else {
        let failed: Vec<String> = c.failed.iter().map(|a| format!("{} {}", a.key(), a.zh())).collect();
        format!("FAILED: {}", failed.join(", "))
    };
    let note = if c.note.is_empty() { String::new() } else { format!("  \"{}\"", c.note) };
    format!("{}  {}  {} canteen {}  by {}  {verdict}{note}", c.id, c.day, c.school, c.canteen, c.by)
}

/// The pass-rate table.
pub fn render_rates(rates: &[RateView]) -> String {
    if rates.is_empty() {
        return "no spot checks in this period\n".into();
    }
    let mut out = format!("{:<14} {:<9} {:>8} {:>8} {:>9}\n", "unit", "tier", "checked", "passed", "pass rate");
    for r in rates {
        out.push_str(&format!(
            "{:<14} {:<9} {:>8} {:>8} {:>8.2}%\n",
            r.unit.to_string(),
            r.tier.as_str(),
            r.checked,
            r.passed,
            r.percent
        ));
    }
    out
}
