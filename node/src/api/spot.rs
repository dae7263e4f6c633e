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
use crate::api::kit::{
    ApiError, ApiResult, api_err, append, bad, internal, name_of, parse_limit, read_fail, read_storage,
};
use crate::api::principal::Principal;
use crate::runtime::store::{EventQuery, LIST_LIMIT_MAX, StoredEvent, list_events_where};
use protocol::files::parse_ref;
use protocol::people::Action;
use protocol::registry::{EntityData, EntityKind, EntityRef};

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
    /// A snapshot per failed area (`sha256:…`, a file uploaded to this node first with
    /// `POST /api/files`): named in the detail of the case that area opens.
    #[serde(default)]
    pub snapshots: Vec<AreaSnapshot>,
}

/// The snapshot of one failed focus area.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaSnapshot {
    pub area: FocusArea,
    /// `sha256:…`
    pub file: String,
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
        (Some(_), Some(_)) => Err("请给出日期或月份之一，不能同时给".into()),
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

/// Records a spot check on behalf of `who` (an inspector). The school (and its county) must exist
/// — in the topology, or registered by its county — and the canteen must be one the school
/// registered (when this node holds any of its canteens); otherwise nothing is written.
pub async fn record_as(s: &AdminState, who: &Principal, req: RecordSpotCheck) -> Result<SpotCheckRecorded, ApiFail> {
    who.require(s, Action::RecordSpotCheck).await?;
    let school = req.school;
    if s.me.tier() == Tier::School {
        return Err(api_err(StatusCode::FORBIDDEN, "学校不做网络巡查，由县区、市或省级巡查"));
    }
    if school.tier() != Tier::School {
        return Err(bad(format!("{school} 不是学校编码（学校编码形如 130102-S0001）")));
    }
    if !s.me.is_ancestor_or_self_of(school) {
        return Err(api_err(StatusCode::FORBIDDEN, format!("{} 只能巡查本辖区的学校，{school} 不在本辖区", s.me)));
    }
    let canteen = req.canteen.trim().to_string();
    check_registered(s, school, &canteen).await?;
    let severity = match req.severity.as_deref() {
        None => Severity::General,
        Some(v) => v.parse::<Severity>().map_err(|e| bad(e.to_string()))?,
    };
    let mut failed = req.failed.clone();
    failed.sort();
    if failed.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad("同一方面被重复标为不合格"));
    }
    let snapshots = check_snapshots(s, &failed, &req.snapshots).await?;
    let failed: Vec<(FocusArea, Severity)> = failed.into_iter().map(|a| (a, severity)).collect();
    let rules = s.reads.case_rules_for(school).await.map_err(read_fail)?;
    let mut items = check_items(s.me, school, &canteen, &failed, &req.note, &rules, s.clock.wall_ms()).map_err(bad)?;
    // Each failed area's case names its snapshot (the events carry the reference, never the bytes).
    for (_, body) in &mut items {
        if let Body::Case(c) = body
            && let CaseAction::Open { title, detail, .. } = &mut c.action
            && let Some((_, file)) = snapshots.iter().find(|(a, _)| title.ends_with(a.zh()))
        {
            detail.push_str(&format!("\n巡查截图：{file}"));
        }
    }
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

/// Refuses a school this node does not know — neither in the topology nor registered by its
/// county — naming the county when that does not exist either, and a canteen the school did not
/// register (when this node holds any of its canteens).
pub async fn check_registered(s: &AdminState, school: NodeId, canteen: &str) -> Result<(), ApiFail> {
    if canteen.is_empty() {
        return Err(bad("请填写食堂"));
    }
    let view = s.reads.registry_of(school).await.map_err(read_fail)?;
    let registered = view.contains_key(&EntityRef { kind: EntityKind::School, node: school, id: String::new() });
    if s.topology.get(school).is_none() && !registered {
        let county = school.parent().unwrap_or(school);
        if s.topology.get(county).is_none() {
            return Err(bad(format!(
                "学校 {school} 不存在：县区 {county} 不是本省的县区，也没有这所学校的登记，未保存任何记录"
            )));
        }
        return Err(bad(format!(
            "学校 {school} 不存在：{}（{county}）没有登记这所学校，未保存任何记录",
            name_of(s, county)
        )));
    }
    let canteens: Vec<&str> = view
        .iter()
        .filter(|(r, e)| r.kind == EntityKind::Canteen && matches!(e.data, EntityData::Canteen(_)))
        .map(|(r, _)| r.id.as_str())
        .collect();
    if !canteens.is_empty() && !canteens.contains(&canteen) {
        return Err(bad(format!(
            "{}（{school}）没有登记食堂“{canteen}”，已登记的食堂：{}，未保存任何记录",
            name_of(s, school),
            canteens.join("、")
        )));
    }
    Ok(())
}

/// The snapshots of failed areas, each a file this node holds, at most one per area, and only for
/// areas that failed.
async fn check_snapshots(
    s: &AdminState,
    failed: &[FocusArea],
    given: &[AreaSnapshot],
) -> Result<Vec<(FocusArea, String)>, ApiFail> {
    let mut out: Vec<(FocusArea, String)> = Vec::new();
    for snap in given {
        if !failed.contains(&snap.area) {
            return Err(bad(format!("{}合格，不需要截图；截图只随不合格的方面保存", snap.area.zh())));
        }
        if out.iter().any(|(a, _)| *a == snap.area) {
            return Err(bad(format!("{}有两张截图，每个方面一张", snap.area.zh())));
        }
        let file = snap.file.trim().to_string();
        let hash = parse_ref(&file)
            .ok_or_else(|| bad(format!("截图“{file}”不是文件引用（应形如 sha256:…，先用 POST /api/files 上传）")))?;
        let meta = read_storage(s, move |st| crate::runtime::files::read_meta(st, &hash)).await?;
        if meta.is_none() {
            return Err(bad(format!("截图 {file} 不在本节点的文件库里，请先上传")));
        }
        out.push((snap.area, file));
    }
    Ok(out)
}

/// The spot-check routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new().route("/api/spot-checks", get(list).post(record)).route("/api/spot-checks/rates", get(rates))
}
