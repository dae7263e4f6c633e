//! The province's daily spot-check draw (每日抽查名单) and its worklist, at the province only.
//!
//! - `GET /api/spot-draw?day=` — the day's draw (default: today, China time). Today's is drawn on
//!   first asking if it is a working day by the calendar in force, with a fresh random seed from
//!   the OS, and kept; any other day answers only what was kept. Each item says whether a check of
//!   it has been recorded here since the draw's day (the worklist's done / not done).
//! - `GET /api/spot-draw/verify?day=` — re-runs a kept draw from its inputs (the seed, the
//!   registry's canteens as of the draw, the kept draws of its window) and says whether it comes
//!   out the same.
//! - `GET /api/spot-draw/inputs?day=` — those inputs in full, for an auditor to re-run the pure
//!   draw away from any node (`mingchu spot rerun --inputs FILE`).
//! - `GET|PUT /api/spot-draw/settings` — the quota and the window in weeks (管理员 changes them).
//!
//! Secrecy: a draw is never an event (an event of the province's scope is held by every node).
//! It lives in [`Space::Draws`], a local keyspace no link replicates, and every route here refuses
//! at any node but the province, so a county cannot learn in advance which canteens will be looked
//! at; once a check is recorded, the check replicates like any other.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use protocol::calendar::{ChinaTime, day_start_ms, parse_day};
use protocol::draw::{CanteenRef, CountyShare, DrawInputs, DrawSettings, assign, candidates_digest, draw};
use protocol::people::{Action, Person, Role};
use protocol::registry::{Entity, EntityData, EntityKind, EntityRef, registry_view};
use protocol::spot::FocusArea;
use protocol::{Body, EventKind};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};
use tracing::info;

use crate::api::AdminState;
use crate::api::audit::put_local;
use crate::api::kit::{ApiFail, ApiResult, api_err, bad, internal, read_fail, read_storage};
use crate::api::principal::Principal;
use crate::runtime::store::{EventQuery, LIST_LIMIT_MAX, LocalSpace, list_events_where, related};
use crate::storage::{Space, StorageError};

/// The key of the draw's settings in [`Space::Draws`].
const SETTINGS_KEY: &[u8] = b"settings";

fn draw_key(day: &str) -> Vec<u8> {
    format!("draw/{day}").into_bytes()
}

/// One canteen of a kept draw and the inspector it went to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawItem {
    pub school: NodeId,
    pub canteen: String,
    /// The canteen's registered name then (`学生食堂`).
    #[serde(default)]
    pub canteen_name: String,
    /// The account of the province's inspector it is assigned to (`None`: the province had no
    /// inspector account at the draw; any inspector takes it).
    pub inspector: Option<String>,
}

/// A day's draw as the province keeps it: everything an auditor needs to re-run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawRecord {
    /// `2026-12-01` (China time).
    pub day: String,
    /// The random seed the draw used (from the OS at the draw, kept only here).
    pub seed: u64,
    pub settings: DrawSettings,
    /// When the draw was made: the registry's canteens as of this instant were the candidates.
    pub drawn_at_ms: u64,
    /// Who asked first (`None`: the node's operator).
    pub drawn_by: Option<Person>,
    /// Registered canteens of the province's schools then.
    pub candidates: u32,
    /// Their fingerprint ([`candidates_digest`]).
    pub candidates_digest: String,
    /// The earlier days whose kept draws were kept out (the window).
    pub history_days: Vec<String>,
    /// Canteens kept out for having been drawn in the window.
    pub excluded: u32,
    pub counties: Vec<CountyShare>,
    /// How many short of the quota it fell (too few canteens outside the window).
    pub shortfall: u32,
    pub items: Vec<DrawItem>,
}

/// A recorded check of a worklist item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDone {
    /// The check's event (`origin#seq`).
    pub check: String,
    pub at_ms: u64,
    pub passed: bool,
    pub failed: Vec<FocusArea>,
    pub person: Option<Person>,
}

/// One line of the worklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    pub school: NodeId,
    pub school_name: String,
    pub canteen: String,
    pub canteen_name: String,
    pub county: NodeId,
    pub county_name: String,
    pub inspector: Option<String>,
    /// `None`: not checked yet.
    pub done: Option<ItemDone>,
}

/// A day's draw with its worklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawView {
    pub draw: DrawRecord,
    pub items: Vec<WorkItem>,
    pub done: u32,
    /// The command that re-runs it (for an auditor).
    pub verify_command: String,
}

/// The outcome of re-running a kept draw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawVerified {
    pub day: String,
    pub seed: u64,
    /// The re-run drew the same canteens, in the same order.
    pub same: bool,
    pub candidates_then: String,
    pub candidates_now: String,
    /// Canteens in one list and not the other (empty when `same`).
    pub differences: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DayParams {
    pub day: Option<String>,
}

/// Refuses at any node but the province: only the province draws and sees the draw.
pub fn province_only(s: &AdminState) -> Result<(), ApiFail> {
    if s.me.tier() == Tier::Province {
        return Ok(());
    }
    Err(api_err(StatusCode::FORBIDDEN, "每日抽查名单只在省级抽取和查看，本单位看不到抽查名单"))
}

/// One draw at a time per process: two first askings of a day must not draw twice.
fn draw_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// The draw's settings in force (the defaults until a 管理员 set them).
pub async fn settings(s: &AdminState) -> Result<DrawSettings, ApiFail> {
    let raw = read_storage(s, |st| st.get(Space::Draws, SETTINGS_KEY)).await?;
    match raw {
        None => Ok(DrawSettings::default()),
        Some(v) => serde_json::from_slice(&v).map_err(|e| internal(format!("抽查设置记录损坏：{e}"))),
    }
}

/// Sets the draw's settings (a 管理员 of the province); later draws use them.
pub async fn set_settings_as(s: &AdminState, who: &Principal, new: DrawSettings) -> Result<DrawSettings, ApiFail> {
    province_only(s)?;
    who.require(s, Action::ChangeSettings).await?;
    new.validate().map_err(bad)?;
    put_local(s, LocalSpace::Draws, SETTINGS_KEY.to_vec(), serde_json::to_vec(&new).map_err(internal)?).await?;
    info!(node = %s.me, quota = new.quota, window_weeks = new.window_weeks, "spot draw settings changed");
    Ok(new)
}

/// The draw kept for `day`, if any.
async fn kept(s: &AdminState, day: &str) -> Result<Option<DrawRecord>, ApiFail> {
    let key = draw_key(day);
    let raw = read_storage(s, move |st| st.get(Space::Draws, &key)).await?;
    raw.map(|v| serde_json::from_slice(&v).map_err(|e| internal(format!("{day} 的抽查名单记录损坏：{e}")))).transpose()
}

/// The kept draws of the days `from..to` (day numbers), oldest first.
async fn kept_between(s: &AdminState, from: u64, to: u64) -> Result<Vec<DrawRecord>, ApiFail> {
    if from >= to {
        return Ok(Vec::new());
    }
    let first = draw_key(&ChinaTime(day_start_ms(from)).date());
    let last = draw_key(&ChinaTime(day_start_ms(to - 1)).date());
    read_storage(s, move |st| {
        let mut out = Vec::new();
        for item in st.scan(Space::Draws, &first, &last) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt(format!("a kept draw: {e}")))?);
        }
        Ok(out)
    })
    .await
}

/// The day asked for (`None`: today, China time), checked, with its day number.
fn day_of(s: &AdminState, day: Option<&str>) -> Result<(String, u64), ApiFail> {
    let day = match day.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => d.to_string(),
        None => ChinaTime(s.clock.wall_ms()).date(),
    };
    let n = parse_day(&day).map_err(|e| bad(e.to_string()))?;
    Ok((day, n))
}

/// The registry's canteens of the province's schools as of `as_of_ms` (events stamped later are
/// left out, so a re-run sees what the draw saw), and the province's inspectors then.
async fn candidates_as_of(s: &AdminState, as_of_ms: u64) -> Result<Candidates, ApiFail> {
    let events = read_storage(s, |st| related(st, EventKind::Registry, None)).await?;
    let view = registry_view(events.iter().map(|e| &e.event).filter(|e| e.hlc.wall_ms <= as_of_ms));
    let me = s.me;
    let mut canteens = Vec::new();
    let mut names = BTreeMap::new();
    let mut inspectors = Vec::new();
    for (r, e) in &view {
        match &e.data {
            EntityData::Canteen(c) if me.is_ancestor_or_self_of(r.node) && school_known_in(s, &view, r.node) => {
                let c_ref = CanteenRef { school: r.node, canteen: r.id.clone() };
                names.insert(c_ref.clone(), c.name.clone());
                canteens.push(c_ref);
            }
            EntityData::Account(a) if r.node == me && a.role == Role::Inspector && !a.disabled => {
                inspectors.push(r.id.clone())
            }
            _ => {}
        }
    }
    inspectors.sort();
    Ok(Candidates { canteens, names, inspectors })
}

/// What a draw draws from.
struct Candidates {
    canteens: Vec<CanteenRef>,
    /// Each canteen's registered name.
    names: BTreeMap<CanteenRef, String>,
    /// The province's inspectors' accounts, by id.
    inspectors: Vec<String>,
}

/// Whether `school` is a school of the topology or registered by its county (and not removed).
fn school_known_in(s: &AdminState, view: &BTreeMap<EntityRef, Entity>, school: NodeId) -> bool {
    school.tier() == Tier::School
        && (s.topology.get(school).is_some()
            || view.contains_key(&EntityRef { kind: EntityKind::School, node: school, id: String::new() }))
}

/// The day's draw: kept, or drawn now if the day is today and a working day. `who` needs to see
/// the subtree; the node must be the province.
pub async fn draw_as(s: &AdminState, who: &Principal, day: Option<&str>) -> Result<DrawView, ApiFail> {
    province_only(s)?;
    who.require(s, Action::ViewSubtree).await?;
    let (day, n) = day_of(s, day)?;
    let _one = draw_lock().lock().await;
    let record = match kept(s, &day).await? {
        Some(r) => r,
        None => make_draw(s, who, &day, n).await?,
    };
    view(s, record).await
}

async fn make_draw(s: &AdminState, who: &Principal, day: &str, n: u64) -> Result<DrawRecord, ApiFail> {
    let now = s.clock.wall_ms();
    let today = ChinaTime(now).date();
    if day != today {
        return Err(api_err(
            StatusCode::NOT_FOUND,
            format!("{day} 没有抽查名单：名单只在当天抽取（今天是 {today}），过去未抽取的日子不补抽"),
        ));
    }
    let calendar = s.reads.calendar_for(s.me).await.map_err(read_fail)?;
    if !calendar.is_working_date(n) {
        return Err(api_err(
            StatusCode::CONFLICT,
            format!("{day} 不是工作日（按省里的工作日历：周末、法定节假日），当天不抽查"),
        ));
    }
    let settings = settings(s).await?;
    let history = kept_between(s, settings.window(n).start, n).await?;
    let recent: BTreeSet<CanteenRef> = history
        .iter()
        .flat_map(|d| d.items.iter().map(|i| CanteenRef { school: i.school, canteen: i.canteen.clone() }))
        .collect();
    let Candidates { canteens: candidates, names, inspectors } = candidates_as_of(s, now).await?;
    let seed = {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        OsRng.next_u64()
    };
    let drawn = draw(day, seed, settings.quota, &candidates, &recent);
    let owners = assign(drawn.items.len(), &inspectors);
    let excluded = candidates.iter().collect::<BTreeSet<_>>().iter().filter(|c| recent.contains(**c)).count() as u32;
    let record = DrawRecord {
        day: day.to_string(),
        seed,
        settings,
        drawn_at_ms: now,
        drawn_by: who.person(),
        candidates: candidates.iter().collect::<BTreeSet<_>>().len() as u32,
        candidates_digest: candidates_digest(&candidates),
        history_days: history.iter().map(|d| d.day.clone()).collect(),
        excluded,
        counties: drawn.counties,
        shortfall: drawn.shortfall,
        items: drawn
            .items
            .into_iter()
            .zip(owners)
            .map(|(c, inspector)| DrawItem {
                canteen_name: names.get(&c).cloned().unwrap_or_default(),
                school: c.school,
                canteen: c.canteen,
                inspector,
            })
            .collect(),
    };
    put_local(s, LocalSpace::Draws, draw_key(day), serde_json::to_vec(&record).map_err(internal)?).await?;
    info!(node = %s.me, %day, drawn = record.items.len(), shortfall = record.shortfall, "daily spot-check draw made");
    Ok(record)
}

/// A kept draw with each item's done / not done: a check of its canteen recorded here (by this
/// node) on or after the draw's day.
async fn view(s: &AdminState, record: DrawRecord) -> Result<DrawView, ApiFail> {
    let me = s.me;
    let since = record.day.clone();
    let query = EventQuery { kind: Some(EventKind::SpotCheck), under: None, limit: LIST_LIMIT_MAX };
    let checks = read_storage(s, move |st| {
        list_events_where(st, &query, |e| {
            if ChinaTime(e.event.hlc.wall_ms).date() < since {
                return None;
            }
            Some(e.event.origin == me)
        })
    })
    .await?;
    let mut done: BTreeMap<(NodeId, String), ItemDone> = BTreeMap::new();
    for e in &checks {
        let Body::SpotCheck(c) = &e.event.body else { continue };
        // Newest first: the earliest check since the draw's day stays.
        done.insert(
            (e.event.scope, c.canteen.clone()),
            ItemDone {
                check: e.event.id().to_string(),
                at_ms: e.event.hlc.wall_ms,
                passed: c.passed(),
                failed: c.results.iter().filter(|(_, ok)| !ok).map(|(a, _)| *a).collect(),
                person: e.event.by.clone(),
            },
        );
    }
    let name = |n: NodeId| crate::api::kit::name_of(s, n);
    let items: Vec<WorkItem> = record
        .items
        .iter()
        .map(|i| {
            let county = i.school.ancestor_at(Tier::County).unwrap_or(i.school);
            WorkItem {
                school: i.school,
                school_name: name(i.school),
                canteen: i.canteen.clone(),
                canteen_name: i.canteen_name.clone(),
                county,
                county_name: name(county),
                inspector: i.inspector.clone(),
                done: done.get(&(i.school, i.canteen.clone())).cloned(),
            }
        })
        .collect();
    let finished = items.iter().filter(|i| i.done.is_some()).count() as u32;
    let verify_command = format!("mingchu spot draw --day {} --verify", record.day);
    Ok(DrawView { draw: record, items, done: finished, verify_command })
}

/// The inputs of the kept draw of `day`, as they are now kept: its seed and quota, the registry's
/// canteens as of the draw, the canteens of the kept draws of its window.
pub async fn inputs_as(
    s: &AdminState,
    who: &Principal,
    day: Option<&str>,
) -> Result<(DrawRecord, DrawInputs), ApiFail> {
    province_only(s)?;
    who.require(s, Action::ViewSubtree).await?;
    let (day, _) = day_of(s, day)?;
    let record = kept(s, &day).await?.ok_or_else(|| api_err(StatusCode::NOT_FOUND, format!("{day} 没有抽查名单")))?;
    let mut recent = BTreeSet::new();
    for d in &record.history_days {
        let earlier = kept(s, d).await?.ok_or_else(|| internal(format!("{day} 的抽查名单所依据的 {d} 名单不见了")))?;
        recent.extend(earlier.items.into_iter().map(|i| CanteenRef { school: i.school, canteen: i.canteen }));
    }
    let mut candidates = candidates_as_of(s, record.drawn_at_ms).await?.canteens;
    candidates.sort();
    let inputs = DrawInputs {
        day,
        seed: record.seed,
        quota: record.settings.quota,
        candidates,
        recent: recent.into_iter().collect(),
    };
    Ok((record, inputs))
}

/// Re-runs the kept draw of `day` from its inputs and compares.
pub async fn verify_as(s: &AdminState, who: &Principal, day: Option<&str>) -> Result<DrawVerified, ApiFail> {
    let (record, inputs) = inputs_as(s, who, day).await?;
    let (day, candidates) = (inputs.day.clone(), inputs.candidates.clone());
    let again = inputs.rerun();
    let kept_list: Vec<CanteenRef> =
        record.items.iter().map(|i| CanteenRef { school: i.school, canteen: i.canteen.clone() }).collect();
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (kept_list.iter().collect(), again.items.iter().collect());
    let differences = a
        .symmetric_difference(&b)
        .map(|c| {
            format!(
                "{}{} {}/{}",
                if a.contains(c) { "-" } else { "+" },
                crate::api::kit::name_of(s, c.school),
                c.school,
                c.canteen
            )
        })
        .collect();
    Ok(DrawVerified {
        day,
        seed: record.seed,
        same: kept_list == again.items,
        candidates_then: record.candidates_digest,
        candidates_now: candidates_digest(&candidates),
        differences,
    })
}

async fn get_draw(State(s): State<AdminState>, who: Principal, Query(p): Query<DayParams>) -> ApiResult<DrawView> {
    Ok(Json(draw_as(&s, &who, p.day.as_deref()).await?))
}

async fn get_verify(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<DayParams>,
) -> ApiResult<DrawVerified> {
    Ok(Json(verify_as(&s, &who, p.day.as_deref()).await?))
}

async fn get_inputs(State(s): State<AdminState>, who: Principal, Query(p): Query<DayParams>) -> ApiResult<DrawInputs> {
    Ok(Json(inputs_as(&s, &who, p.day.as_deref()).await?.1))
}

async fn get_settings(State(s): State<AdminState>, who: Principal) -> ApiResult<DrawSettings> {
    province_only(&s)?;
    who.require(&s, Action::ViewSubtree).await?;
    Ok(Json(settings(&s).await?))
}

async fn put_settings(
    State(s): State<AdminState>,
    who: Principal,
    Json(new): Json<DrawSettings>,
) -> ApiResult<DrawSettings> {
    Ok(Json(set_settings_as(&s, &who, new).await?))
}

/// The draw's routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/spot-draw", get(get_draw))
        .route("/api/spot-draw/verify", get(get_verify))
        .route("/api/spot-draw/inputs", get(get_inputs))
        .route("/api/spot-draw/settings", get(get_settings).put(put_settings))
}
