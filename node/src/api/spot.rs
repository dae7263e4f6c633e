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
use protocol::case::{CaseAction, ChinaTime};
use protocol::spot::{FocusArea, PassRate, pass_rates};
use protocol::verdict::check_items;
use protocol::{Body, EventKind, Severity};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};
use tracing::info;

use crate::api::AdminState;
use crate::api::kit::ApiFail;
use crate::api::kit::{ApiError, ApiResult, api_err, append, bad, internal, parse_limit, read_fail, read_storage};
use crate::api::principal::Principal;
use crate::runtime::store::{EventQuery, LIST_LIMIT_MAX, StoredEvent, list_events_where};
use protocol::people::Action;

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
    /// The inspector who recorded it (`None`: the node's operator).
    #[serde(default)]
    pub person: Option<protocol::people::Person>,
}

impl SpotCheckView {
    pub fn from_stored(s: &StoredEvent) -> Option<SpotCheckView> {
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
            person: s.event.by.clone(),
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
    /// 1 to [`LIST_LIMIT_MAX`], or `all`.
    pub limit: Option<String>,
}

/// The period filter of a listing: a China-time day (`2026-11-28`) or month (`2026-11`) as the
/// prefix of a check's date, validated by the CLI's own date parser.
fn period(p: &SpotParams) -> Result<Option<String>, String> {
    match (&p.day, &p.month) {
        (Some(_), Some(_)) => Err("give a day or a month, not both".into()),
        (Some(d), None) => {
            protocol::calendar::parse_day(d).map_err(|e| e.to_string())?;
            Ok(Some(d.trim().to_string()))
        }
        (None, Some(m)) => {
            protocol::calendar::parse_month(m).map_err(|e| e.to_string())?;
            Ok(Some(format!("{}-", m.trim())))
        }
        (None, None) => Ok(None),
    }
}

/// The newest `limit` spot checks this node holds of schools under `under`, in the period: the
/// filter runs inside the listing, which stops once it has them.
pub async fn held_checks(
    s: &AdminState,
    p: &SpotParams,
    limit: usize,
) -> Result<Vec<StoredEvent>, (StatusCode, Json<ApiError>)> {
    let period = period(p).map_err(bad)?;
    let under = p.under.unwrap_or(s.me);
    let query = EventQuery { kind: Some(EventKind::SpotCheck), under: None, limit };
    read_storage(s, move |st| {
        // Newest first (the spot checks' time index): past the period's start, nothing more.
        list_events_where(st, &query, |e| {
            let date = ChinaTime(e.event.hlc.wall_ms).date();
            if let Some(pre) = &period {
                if date.as_str() < pre.as_str() && !date.starts_with(pre.as_str()) {
                    return None;
                }
                if !date.starts_with(pre.as_str()) {
                    return Some(false);
                }
            }
            Some(under.is_ancestor_or_self_of(e.event.scope))
        })
    })
    .await
}

async fn list(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<SpotParams>,
) -> ApiResult<Vec<SpotCheckView>> {
    who.require(&s, Action::ViewSubtree).await?;
    let limit = parse_limit(p.limit.as_deref(), LIST_LIMIT_MAX)?;
    let events = held_checks(&s, &p, limit).await?;
    Ok(Json(events.iter().filter_map(SpotCheckView::from_stored).collect()))
}

async fn rates(State(s): State<AdminState>, who: Principal, Query(p): Query<SpotParams>) -> ApiResult<Vec<RateView>> {
    who.require(&s, Action::ViewSubtree).await?;
    Ok(Json(rate_views(&s, p).await?))
}

/// Pass rates per unit of this subtree (under `p.under`), in `p`'s period.
pub async fn rate_views(s: &AdminState, p: SpotParams) -> Result<Vec<RateView>, ApiFail> {
    let under = p.under.unwrap_or(s.me);
    let events = held_checks(s, &p, LIST_LIMIT_MAX).await?;
    let rolled: BTreeMap<NodeId, PassRate> = pass_rates(events.iter().map(|e| &e.event));
    // Units of this subtree only: above it, this node holds only part of their checks.
    Ok(rolled
        .into_iter()
        .filter(|(unit, _)| under.is_ancestor_or_self_of(*unit) && s.me.is_ancestor_or_self_of(*unit))
        .map(|(unit, r)| RateView {
            unit,
            tier: unit.tier(),
            checked: r.checked,
            passed: r.passed,
            percent: r.percent(),
        })
        .collect())
}

async fn record(
    State(s): State<AdminState>,
    who: Principal,
    Json(req): Json<RecordSpotCheck>,
) -> ApiResult<SpotCheckRecorded> {
    Ok(Json(record_as(&s, &who, req).await?))
}

/// Records a spot check on behalf of `who` (an inspector).
pub async fn record_as(s: &AdminState, who: &Principal, req: RecordSpotCheck) -> Result<SpotCheckRecorded, ApiFail> {
    who.require(s, Action::RecordSpotCheck).await?;
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
    let rules = s.reads.case_rules_for(school).await.map_err(read_fail)?;
    let items = check_items(s.me, school, &req.canteen, &failed, &req.note, &rules, s.clock.wall_ms()).map_err(bad)?;
    let stored = append(s, who.person(), items).await?;
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
    Ok(SpotCheckRecorded { check: view, cases })
}

/// The spot-check routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new().route("/api/spot-checks", get(list).post(record)).route("/api/spot-checks/rates", get(rates))
}
