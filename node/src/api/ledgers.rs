//! The school's food-safety ledgers (食品安全台账) at a node: the admin API routes.
//!
//! - `POST /api/ledger` — at a school, by a person who may keep its ledgers (principal,
//!   food-safety officer) or the operator: a new record, a correction (same id), or a void with
//!   its reason. Checked by [`protocol::ledger::LedgerEntry::validate`] and against the school's
//!   registry ([`protocol::ledger::check_against`]: the staff member, canteen, supplier and batches
//!   exist; no purchase from a supplier whose licence has expired); a refusal is 400 with the
//!   Chinese reason and writes nothing. A written record wakes the warning engine.
//! - `GET /api/ledger?school=&kind=&from=&to=` — one school's records of the days `from..=to`
//!   (default today; at most 62 days), newest first.
//! - `GET /api/ledger/days?under=&day=` — per school of the subtree, that day's counts of each
//!   kind: which schools filled in their ledgers (at most [`DAYS_SCHOOLS_MAX`] schools).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use protocol::Body;
use protocol::calendar::{ChinaTime, parse_day, rfc3339};
use protocol::ledger::{
    LedgerEntry, LedgerItem, LedgerKind, LedgerOp, LedgerRecord, check_against, china_day, day_str,
};
use protocol::people::Action;
use protocol::registry::{EntityData, EntityKind};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};
use tracing::info;

use crate::api::AdminState;
use crate::api::kit::{ApiFail, ApiResult, api_err, append, bad, name_of, parse_node, parse_under, read_fail};
use crate::api::principal::Principal;

/// Most days one listing spans.
pub const LEDGER_SPAN_DAYS_MAX: u32 = 62;
/// Most schools the per-day summary covers.
pub const DAYS_SCHOOLS_MAX: usize = 2_000;

/// A record to write (`mingchu ledger add`, the console's forms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerWrite {
    pub kind: LedgerKind,
    /// The China-time day it belongs to, `2026-12-01` (default: today).
    #[serde(default)]
    pub date: Option<String>,
    /// The record's id: a new one is made when absent; an existing id is corrected (or voided).
    #[serde(default)]
    pub id: Option<String>,
    /// The record (absent for a void).
    #[serde(default)]
    pub record: Option<LedgerRecord>,
    /// Void the record `id`, with this reason.
    #[serde(default)]
    pub void_reason: Option<String>,
    /// When it happened: `07:10` on the record's day, or `2026-12-01 07:10`. Sets the record's
    /// time (checked, sampled, received, done); a time of 0 in the record means now (or, for
    /// another day, 12:00 that day).
    #[serde(default)]
    pub at: Option<String>,
}

/// Sets the record's own time from `at` (or fills a 0 with now, or noon of another day).
fn set_time(record: &mut LedgerRecord, day: u32, at: Option<&str>, now: u64) -> Result<(), ApiFail> {
    let given = match at.map(str::trim).filter(|a| !a.is_empty()) {
        None => None,
        Some(a) if a.len() <= 5 && a.contains(':') => {
            let ms =
                protocol::calendar::parse_instant(&format!("{} {a}", day_str(day))).map_err(|e| bad(e.to_string()))?;
            Some(ms)
        }
        Some(a) => Some(protocol::calendar::parse_instant(a).map_err(|e| bad(e.to_string()))?),
    };
    let default = if china_day(now) == day { now } else { protocol::ledger::at_minute(day, 12 * 60) };
    let slot = match record {
        LedgerRecord::MorningCheck(m) => &mut m.checked_at_ms,
        LedgerRecord::FoodSample(f) => &mut f.sampled_at_ms,
        LedgerRecord::Purchase(p) => &mut p.received_at_ms,
        LedgerRecord::Disinfection(d) => &mut d.done_at_ms,
        LedgerRecord::AccompaniedMeal(_) | LedgerRecord::HazardCheck(_) | LedgerRecord::PesticideTest(_) => {
            return Ok(());
        }
    };
    match given {
        Some(ms) => *slot = ms,
        None if *slot == 0 => *slot = default,
        None => {}
    }
    Ok(())
}

/// A record as the API, the CLI and the console show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerView {
    pub school: NodeId,
    pub school_name: String,
    pub id: String,
    pub kind: LedgerKind,
    pub kind_zh: String,
    /// `2026-12-01`.
    pub date: String,
    /// One line a person reads.
    pub summary: String,
    pub record: Option<LedgerRecord>,
    pub voided: bool,
    /// The reason of the void, when voided.
    pub void_reason: String,
    /// How many times it was written (1: never corrected).
    pub versions: u32,
    pub person: Option<protocol::people::Person>,
    pub updated_at_ms: u64,
    pub updated_at: String,
    pub event: String,
}

impl LedgerView {
    pub fn new(s: &AdminState, item: &LedgerItem) -> LedgerView {
        let void_reason = match &item.entry.op {
            LedgerOp::Void { reason } => reason.clone(),
            LedgerOp::Record(_) => String::new(),
        };
        LedgerView {
            school: item.school,
            school_name: name_of(s, item.school),
            id: item.entry.id.clone(),
            kind: item.entry.kind,
            kind_zh: item.entry.kind.zh().to_string(),
            date: day_str(item.entry.day),
            summary: item.record.as_ref().map(|r| r.summary()).unwrap_or_default(),
            record: item.record.clone(),
            voided: item.voided,
            void_reason,
            versions: item.versions,
            person: item.updated_by_person.clone(),
            updated_at_ms: item.updated_hlc.wall_ms,
            updated_at: rfc3339(item.updated_hlc.wall_ms),
            event: item.updated_by.to_string(),
        }
    }
}

/// A day a person typed, or today.
fn day_of(s: &AdminState, date: Option<&str>) -> Result<u32, ApiFail> {
    match date.map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(china_day(s.clock.wall_ms())),
        Some(d) => {
            let day = parse_day(d).map_err(|e| bad(e.to_string()))?;
            u32::try_from(day).map_err(|_| bad(format!("日期 {d} 超出范围")))
        }
    }
}

/// Writes a ledger record on behalf of `who`.
pub async fn record_as(s: &AdminState, who: &Principal, req: LedgerWrite) -> Result<LedgerView, ApiFail> {
    who.require(s, Action::KeepLedgers).await?;
    if s.me.tier() != Tier::School {
        return Err(api_err(StatusCode::FORBIDDEN, "台账由学校自己填报；本节点不是学校"));
    }
    let now = s.clock.wall_ms();
    let day = day_of(s, req.date.as_deref())?;
    let today = china_day(now);
    let records = s
        .reads
        .ledger(s.me, today.saturating_sub(LEDGER_SPAN_DAYS_MAX).min(day), today.max(day) + 1)
        .await
        .map_err(read_fail)?;
    let op = match (req.record, req.void_reason) {
        (Some(_), Some(_)) => return Err(bad("一次只能登记一条记录或作废一条记录，不能同时进行")),
        (Some(mut r), None) => {
            set_time(&mut r, day, req.at.as_deref(), now)?;
            LedgerOp::Record(r)
        }
        (None, Some(reason)) => LedgerOp::Void { reason },
        (None, None) => return Err(bad("请给出记录内容（record）或作废原因（void_reason）")),
    };
    let id = match req.id.map(|i| i.trim().to_string()).filter(|i| !i.is_empty()) {
        Some(id) => id,
        None if matches!(op, LedgerOp::Void { .. }) => return Err(bad("作废时须给出记录编号")),
        None => {
            let date = day_str(day).replace('-', "");
            let prefix = format!("{}-{date}-", req.kind.short());
            let taken: Vec<u32> =
                records.keys().filter_map(|(_, id)| id.strip_prefix(&prefix).and_then(|n| n.parse().ok())).collect();
            format!("{prefix}{}", taken.iter().max().map_or(1, |n| n + 1))
        }
    };
    // A correction keeps the record's day.
    let day = match records.get(&(s.me, id.clone())) {
        Some(old) if req.date.is_none() => old.entry.day,
        _ => day,
    };
    let entry = LedgerEntry { kind: req.kind, id, day, op };
    entry.validate().map_err(bad)?;
    let registry = s.reads.registry_of(s.me).await.map_err(read_fail)?;
    let records: BTreeMap<String, LedgerItem> = records.into_iter().map(|((_, id), item)| (id, item)).collect();
    if let Some(old) = records.get(&entry.id)
        && old.entry.day != entry.day
    {
        return Err(bad(format!(
            "记录 {} 属于 {}，不能改到 {}；请作废后重新登记",
            entry.id,
            day_str(old.entry.day),
            day_str(entry.day)
        )));
    }
    check_against(s.me, &entry, &registry, &records, now).map_err(bad)?;
    let (kind, id) = (entry.kind, entry.id.clone());
    let stored = append(s, who.person(), vec![(s.me, Body::Ledger(entry))]).await?;
    s.scan_now.notify_one();
    info!(node = %s.me, kind = kind.as_str(), %id, by = %who.label(), "ledger record written");
    let e = &stored.first().ok_or_else(|| crate::api::kit::internal("the record was not stored"))?.event;
    let Body::Ledger(entry) = &e.body else { return Err(crate::api::kit::internal("the record was not stored")) };
    let old = records.get(&id);
    let (record, voided) = match &entry.op {
        LedgerOp::Record(r) => (Some(r.clone()), false),
        LedgerOp::Void { .. } => (old.and_then(|o| o.record.clone()), true),
    };
    let item = LedgerItem {
        entry: entry.clone(),
        voided,
        record,
        versions: old.map_or(1, |o| o.versions + 1),
        school: s.me,
        updated_by: e.id(),
        updated_by_person: e.by.clone(),
        updated_hlc: e.hlc,
        created_hlc: old.map_or(e.hlc, |o| o.created_hlc),
    };
    Ok(LedgerView::new(s, &item))
}

/// A sample's disposal (`mingchu ledger dispose`): the record corrected with its disposal time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispose {
    pub id: String,
    /// `2026-12-03 12:30`, or `12:30` today; default now.
    #[serde(default)]
    pub at: Option<String>,
}

/// Records a food sample's disposal on behalf of `who`.
pub async fn dispose_as(s: &AdminState, who: &Principal, req: Dispose) -> Result<LedgerView, ApiFail> {
    who.require(s, Action::KeepLedgers).await?;
    let now = s.clock.wall_ms();
    let today = china_day(now);
    let records =
        s.reads.ledger(s.me, today.saturating_sub(LEDGER_SPAN_DAYS_MAX), today + 1).await.map_err(read_fail)?;
    let Some(item) = records.get(&(s.me, req.id.clone())) else {
        return Err(api_err(
            StatusCode::NOT_FOUND,
            format!("近 {LEDGER_SPAN_DAYS_MAX} 天没有编号为 {} 的留样记录", req.id),
        ));
    };
    let Some(LedgerRecord::FoodSample(mut f)) = item.live().cloned() else {
        return Err(bad(format!("记录 {} 不是有效的留样记录", req.id)));
    };
    let at = match req.at.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => now,
        Some(a) if a.len() <= 5 => {
            protocol::calendar::parse_instant(&format!("{} {a}", day_str(today))).map_err(|e| bad(e.to_string()))?
        }
        Some(a) => protocol::calendar::parse_instant(a).map_err(|e| bad(e.to_string()))?,
    };
    f.disposed_at_ms = Some(at);
    let write = LedgerWrite {
        kind: LedgerKind::FoodSample,
        date: Some(day_str(item.entry.day)),
        id: Some(req.id),
        record: Some(LedgerRecord::FoodSample(f)),
        void_reason: None,
        at: None,
    };
    record_as(s, who, write).await
}

async fn dispose(State(s): State<AdminState>, who: Principal, Json(req): Json<Dispose>) -> ApiResult<LedgerView> {
    Ok(Json(dispose_as(&s, &who, req).await?))
}

async fn record(State(s): State<AdminState>, who: Principal, Json(req): Json<LedgerWrite>) -> ApiResult<LedgerView> {
    Ok(Json(record_as(&s, &who, req).await?))
}

#[derive(Debug, Default, Deserialize)]
pub struct LedgerParams {
    pub school: Option<String>,
    pub kind: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Include voided records.
    pub voided: Option<bool>,
}

/// One school's records of a span of days, newest first.
pub async fn list_as(s: &AdminState, who: &Principal, p: &LedgerParams) -> Result<Vec<LedgerView>, ApiFail> {
    who.require(s, Action::ViewSubtree).await?;
    let school = match p.school.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => parse_node("school", v)?,
        None if s.me.tier() == Tier::School => s.me,
        None => return Err(bad("请指定学校（school）/ give the school")),
    };
    if school.tier() != Tier::School {
        return Err(bad(format!("{school} 不是学校")));
    }
    who.require_in_scope(s, school).await?;
    let kind = match p.kind.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(k) => Some(k.parse::<LedgerKind>().map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let to = day_of(s, p.to.as_deref())?;
    let from = match p.from.as_deref() {
        Some(f) if !f.trim().is_empty() => day_of(s, Some(f))?,
        _ => to,
    };
    if from > to {
        return Err(bad(format!("开始日期 {} 晚于结束日期 {}", day_str(from), day_str(to))));
    }
    if to - from >= LEDGER_SPAN_DAYS_MAX {
        return Err(bad(format!("一次最多查询 {LEDGER_SPAN_DAYS_MAX} 天")));
    }
    let items = s.reads.ledger(school, from, to).await.map_err(read_fail)?;
    let mut out: Vec<LedgerView> = items
        .values()
        .filter(|i| kind.is_none_or(|k| i.entry.kind == k))
        .filter(|i| p.voided.unwrap_or(false) || !i.voided)
        .map(|i| LedgerView::new(s, i))
        .collect();
    out.sort_by(|a, b| b.date.cmp(&a.date).then(b.updated_at_ms.cmp(&a.updated_at_ms)));
    Ok(out)
}

async fn list(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<LedgerParams>,
) -> ApiResult<Vec<LedgerView>> {
    Ok(Json(list_as(&s, &who, &p).await?))
}

/// One school's ledger on one day: how many records of each kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerDay {
    pub school: NodeId,
    pub school_name: String,
    pub date: String,
    /// Per kind (in [`LedgerKind::ALL`] order), live records that day.
    pub counts: Vec<(LedgerKind, u32)>,
    /// Staff on duty at the school (the morning checks owed on a working day).
    pub on_duty: u32,
    /// The day's four daily records (晨检、留样、校领导陪餐、消毒) all present.
    pub complete: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct DaysParams {
    pub under: Option<String>,
    pub day: Option<String>,
}

/// Which schools of the subtree (or `under`) filled in their ledgers on a day.
pub async fn days_as(s: &AdminState, who: &Principal, p: &DaysParams) -> Result<Vec<LedgerDay>, ApiFail> {
    who.require(s, Action::ViewSubtree).await?;
    let under = parse_under(p.under.as_deref())?.unwrap_or(s.me);
    who.require_in_scope(s, under).await?;
    let day = day_of(s, p.day.as_deref())?;
    let registry = s.reads.registry().await.map_err(read_fail)?;
    let mut schools: BTreeMap<NodeId, u32> =
        s.topology.subtree(under).filter(|n| n.id.tier() == Tier::School).map(|n| (n.id, 0)).collect();
    for e in registry.values() {
        if e.entity.kind == EntityKind::School && under.is_ancestor_or_self_of(e.entity.node) {
            schools.entry(e.entity.node).or_insert(0);
        }
        if let EntityData::Staff(st) = &e.data
            && st.on_duty
            && let Some(n) = schools.get_mut(&e.entity.node)
        {
            *n += 1;
        }
    }
    if schools.len() > DAYS_SCHOOLS_MAX {
        return Err(bad(format!(
            "{under} 下有 {} 所学校，超过一次 {DAYS_SCHOOLS_MAX} 所的上限；请用 under 指定县区",
            schools.len()
        )));
    }
    let mut out = Vec::with_capacity(schools.len());
    for (school, on_duty) in schools {
        let items = s.reads.ledger(school, day, day).await.map_err(read_fail)?;
        let counts: Vec<(LedgerKind, u32)> = LedgerKind::ALL
            .into_iter()
            .map(|k| (k, items.values().filter(|i| i.entry.kind == k && i.live().is_some()).count() as u32))
            .collect();
        let n = |k: LedgerKind| counts.iter().find(|(c, _)| *c == k).map_or(0, |(_, n)| *n);
        let leader = items.values().any(|i| {
            matches!(i.live(), Some(LedgerRecord::AccompaniedMeal(a)) if a.companion == protocol::ledger::Companion::Leader)
        });
        let complete = n(LedgerKind::MorningCheck) > 0
            && n(LedgerKind::FoodSample) > 0
            && leader
            && n(LedgerKind::Disinfection) > 0;
        out.push(LedgerDay { school, school_name: name_of(s, school), date: day_str(day), counts, on_duty, complete });
    }
    Ok(out)
}

async fn days(State(s): State<AdminState>, who: Principal, Query(p): Query<DaysParams>) -> ApiResult<Vec<LedgerDay>> {
    Ok(Json(days_as(&s, &who, &p).await?))
}

/// China time of a record field for display.
pub fn minute(ms: u64) -> String {
    ChinaTime(ms).minute()
}

/// The ledger routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/ledger", get(list).post(record))
        .route("/api/ledger/dispose", axum::routing::post(dispose))
        .route("/api/ledger/days", get(days))
}
