//! 监管大屏: a supervising unit's subtree at a glance on a 1920×1080 wall screen — its units on a
//! map (the operator's GeoJSON when configured, else a schematic grid) coloured by cameras online
//! and open problems, the problems by category, 30 days of AI alerts and of spot-check pass
//! rates, the open, overdue and 督办 cases, and the headline numbers.
//!
//! `GET /screen` is the page (dark, its own layout); its script (`/assets/screen.js`, ECharts
//! embedded in the binary) asks `GET /screen/data` every `screen_refresh_s` seconds and redraws the
//! charts in place. Everything comes from this node's own store and health table — the daily
//! counters ([`crate::runtime::store::rollup`]), the open cases' heads, the cameras its schools
//! report — so a county's screen keeps working while the province is unreachable.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, html};
use protocol::AlertType;
use protocol::case::CaseState;
use protocol::health::{NodeState, derive_all};
use protocol::people::Action;
use protocol::spot::FocusArea;
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::health::{camera_sums, roster, shared};
use crate::console::layout::Nav;
use crate::console::pages::{Ctx, forbidden};
use crate::runtime::store::rollup::{self, CASE_SOURCES, Metric};

/// Days in the trends (today and the 29 before it).
pub const TREND_DAYS: u32 = 30;
/// Cases listed on the screen (escalated first, then overdue, then the newest).
pub const CASE_ROWS: usize = 8;
/// One number and its label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

/// The headline numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headline {
    pub schools: u64,
    /// Registered canteens; a school that registered none counts as one (its node is its kitchen).
    pub canteens: u64,
    /// Cameras the schools report, and of them online.
    pub cameras: u64,
    pub cameras_online: u64,
    /// Schools whose node is live (reporting, or failed over to an ancestor).
    pub schools_live: u64,
    pub alerts_today: u64,
    pub alerts_30d: u64,
    pub spot_checked_30d: u64,
    pub spot_passed_30d: u64,
    pub open_cases: u64,
    pub overdue_cases: u64,
    /// Open cases escalated above the school's county (督办).
    pub escalated_cases: u64,
}

/// One unit on the map or the grid: a child of the screen's node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitCell {
    pub code: NodeId,
    pub name: String,
    /// The 6-digit administrative code a GeoJSON's `adcode` carries (`130100` for city 1301);
    /// empty for a school.
    pub adcode: String,
    pub schools: u64,
    pub canteens: u64,
    pub cameras: u64,
    pub cameras_online: u64,
    /// Cameras online in ‰ of those reported; `None` when none are.
    pub online_permille: Option<u32>,
    pub open_cases: u64,
    pub overdue_cases: u64,
    pub escalated_cases: u64,
    pub alerts_today: u64,
    pub alerts_30d: u64,
}

impl UnitCell {
    fn new(code: NodeId, name: String, adcode: String) -> UnitCell {
        UnitCell {
            code,
            name,
            adcode,
            schools: 0,
            canteens: 0,
            cameras: 0,
            cameras_online: 0,
            online_permille: None,
            open_cases: 0,
            overdue_cases: 0,
            escalated_cases: 0,
            alerts_today: 0,
            alerts_30d: 0,
        }
    }
}

/// A case as the screen lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRow {
    pub number: String,
    pub school_name: String,
    pub title: String,
    pub status_zh: String,
    pub overdue: bool,
    pub escalated: bool,
    /// `2026-12-05` (China time), empty without a deadline.
    pub deadline: String,
}

/// The answer of `GET /screen/data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScreenData {
    pub unit: NodeId,
    pub unit_name: String,
    /// `省级` / `市级` / `县级`.
    pub tier_zh: String,
    pub now_ms: u64,
    /// `2026-12-05 17:00` (China time).
    pub now: String,
    pub refresh_s: u32,
    pub headline: Headline,
    /// The trend's days, oldest first: `11-06`.
    pub days: Vec<String>,
    pub alerts_by_day: Vec<u64>,
    pub spot_checked_by_day: Vec<u64>,
    pub spot_passed_by_day: Vec<u64>,
    /// The 30 days' AI alerts by type, most first (types with none left out).
    pub alert_types: Vec<Count>,
    /// The 30 days' spot checks' failed areas.
    pub spot_problems: Vec<Count>,
    /// The 30 days' cases opened, by where they came from.
    pub case_sources: Vec<Count>,
    pub cases: Vec<CaseRow>,
    pub units: Vec<UnitCell>,
    /// Whether `/screen/map.json` serves a GeoJSON of the region.
    pub map: bool,
}

/// What the storage read gives: the registered schools and cities, the node's daily counters,
/// the open cases, and how long each took.
type StoreParts =
    (Vec<NodeId>, BTreeMap<u32, BTreeMap<Metric, u64>>, BTreeMap<protocol::case::CaseId, CaseState>, Parts);

fn alerts_of(day: Option<&BTreeMap<Metric, u64>>) -> u64 {
    day.map_or(0, |m| m.iter().filter(|(k, _)| matches!(k, Metric::Alert(_))).map(|(_, n)| n).sum())
}

fn metric_of(day: Option<&BTreeMap<Metric, u64>>, metric: Metric) -> u64 {
    day.and_then(|m| m.get(&metric)).copied().unwrap_or(0)
}

/// How long each part of one answer took, in milliseconds, named as `Server-Timing` names them.
pub type Parts = Vec<(&'static str, f64)>;

fn lap(parts: &mut Parts, name: &'static str, since: &mut std::time::Instant) {
    let now = std::time::Instant::now();
    parts.push((name, (now - *since).as_secs_f64() * 1e3));
    *since = now;
}

/// The screen's data for `s`'s node at its clock's now.
pub async fn screen_data(s: &AdminState) -> Result<ScreenData, String> {
    screen_data_timed(s).await.map(|(d, _)| d)
}

/// [`screen_data`], and how long each of its parts took.
pub async fn screen_data_timed(s: &AdminState) -> Result<(ScreenData, Parts), String> {
    let mut parts = Parts::new();
    let mut since = std::time::Instant::now();
    let me = s.me;
    let now = s.clock.wall_ms();
    let today = protocol::ledger::china_day(now);
    let first = today.saturating_sub(TREND_DAYS - 1);

    let (registered, mine, open, store_parts): StoreParts = s
        .reads
        .run(move |st| {
            let mut parts = Parts::new();
            let mut since = std::time::Instant::now();
            let registered = rollup::registered_units(st)?;
            lap(&mut parts, "units", &mut since);
            let mine = rollup::daily(st, me, first, today)?;
            lap(&mut parts, "counters", &mut since);
            let open = crate::runtime::store::case_summaries::case_heads(st, true)?;
            lap(&mut parts, "cases", &mut since);
            Ok::<StoreParts, crate::storage::StorageError>((registered, mine, open, parts))
        })
        .await
        .map_err(|e| format!("读取本节点数据失败：{e}"))?;
    let store_ms: f64 = store_parts.iter().map(|(_, ms)| ms).sum();
    lap(&mut parts, "store", &mut since);
    parts.push(("store-queue", (parts[0].1 - store_ms).max(0.0)));
    parts.extend(store_parts);

    // Who exists below: the topology, the run-time registrations and whoever reported.
    let health = shared(s).await.map_err(|e| crate::console::pages::reason(&e))?;
    let (all, derived, cameras) = {
        let table = health.lock();
        let all = roster(&s.topology, &table, &registered, me);
        let derived = derive_all(me, &all, &table, now, &health.timing);
        let cameras = camera_sums(&derived, &table, me);
        (all, derived, cameras)
    };
    let children: Vec<NodeId> = all.iter().copied().filter(|n| n.parent() == Some(me)).collect();
    let live: Vec<NodeId> = derived
        .iter()
        .filter(|d| d.node.tier() == Tier::School && matches!(d.state, NodeState::Live | NodeState::FailedOver))
        .map(|d| d.node)
        .collect();
    lap(&mut parts, "health", &mut since);

    let kids = children.clone();
    let (per_child, canteens) = s
        .reads
        .run(move |st| {
            let days = kids.iter().map(|c| rollup::daily(st, *c, first, today)).collect::<Result<Vec<_>, _>>()?;
            let units: Vec<NodeId> = std::iter::once(me).chain(kids.iter().copied()).collect();
            Ok::<_, crate::storage::StorageError>((days, rollup::canteen_sums(st, &units)?))
        })
        .await
        .map_err(|e| format!("读取本节点数据失败：{e}"))?;
    lap(&mut parts, "children", &mut since);

    // The child of `me` a node belongs to.
    let child_of = |n: NodeId| n.path_up().find(|a| a.parent() == Some(me));
    let mut cells: BTreeMap<NodeId, UnitCell> = children
        .iter()
        .map(|c| {
            let adcode = if c.tier() == Tier::School { String::new() } else { format!("{:06}", c.to_raw().0) };
            let name = crate::api::kit::name_of(s, *c);
            let name = if name.is_empty() { c.to_string() } else { name };
            (*c, UnitCell::new(*c, name, adcode))
        })
        .collect();
    let mut head = Headline::default();
    for n in all.iter().filter(|n| n.tier() == Tier::School) {
        head.schools += 1;
        if let Some(cell) = child_of(*n).and_then(|c| cells.get_mut(&c)) {
            cell.schools += 1;
        }
    }
    // Canteens: those registered, and a school that registered none counts as one.
    let kitchens = |unit: NodeId, schools: u64| {
        let sum = canteens.get(&unit).copied().unwrap_or_default();
        u64::from(sum.canteens) + schools.saturating_sub(u64::from(sum.schools_with))
    };
    head.canteens = kitchens(me, head.schools);
    for (c, cell) in cells.iter_mut() {
        cell.canteens = kitchens(*c, cell.schools);
    }
    head.schools_live = live.len() as u64;
    if let Some((reg, on)) = cameras.get(&me) {
        (head.cameras, head.cameras_online) = (u64::from(*reg), u64::from(*on));
    }
    for (c, cell) in cells.iter_mut() {
        if let Some((reg, on)) = cameras.get(c) {
            (cell.cameras, cell.cameras_online) = (u64::from(*reg), u64::from(*on));
            cell.online_permille = (*reg > 0).then(|| (u64::from(*on) * 1000 / u64::from(*reg)) as u32);
        }
    }
    for (c, days) in children.iter().zip(&per_child) {
        if let Some(cell) = cells.get_mut(c) {
            cell.alerts_today = alerts_of(days.get(&today));
            cell.alerts_30d = days.values().map(|d| alerts_of(Some(d))).sum();
        }
    }

    // The trends and the categories, from the node's own counters.
    let mut days = Vec::new();
    let (mut alerts_by_day, mut checked, mut passed) = (Vec::new(), Vec::new(), Vec::new());
    for d in first..=today {
        let at = mine.get(&d);
        days.push(
            protocol::calendar::ChinaTime(protocol::calendar::day_start_ms(u64::from(d))).date()[5..].to_string(),
        );
        alerts_by_day.push(alerts_of(at));
        checked.push(metric_of(at, Metric::SpotChecked));
        passed.push(metric_of(at, Metric::SpotPassed));
    }
    head.alerts_today = alerts_of(mine.get(&today));
    head.alerts_30d = alerts_by_day.iter().sum();
    head.spot_checked_30d = checked.iter().sum();
    head.spot_passed_30d = passed.iter().sum();
    let total = |m: Metric| mine.values().map(|d| d.get(&m).copied().unwrap_or(0)).sum::<u64>();
    let ranked = |mut v: Vec<Count>| {
        v.retain(|c| c.count > 0);
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    };
    let alert_types =
        ranked(AlertType::all().map(|t| Count { name: t.zh().to_string(), count: total(Metric::Alert(t)) }).collect());
    let spot_problems = ranked(
        FocusArea::ALL
            .iter()
            .map(|a| Count { name: a.zh().to_string(), count: total(Metric::SpotFailed(*a)) })
            .collect(),
    );
    let case_sources = ranked(
        CASE_SOURCES
            .iter()
            .enumerate()
            .map(|(i, name)| Count { name: name.to_string(), count: total(Metric::CaseOpened(i as u8)) })
            .collect(),
    );

    // The open cases: counted per child, the most pressing listed.
    let escalated = |c: &CaseState| c.supervisor.tier() < Tier::County && c.supervisor != c.school;
    let mut pressing: Vec<&CaseState> = Vec::new();
    for c in open.values().filter(|c| c.school.in_subtree_of(me) && !c.status.is_terminal()) {
        head.open_cases += 1;
        head.overdue_cases += u64::from(c.overdue);
        head.escalated_cases += u64::from(escalated(c));
        if let Some(cell) = child_of(c.school).and_then(|k| cells.get_mut(&k)) {
            cell.open_cases += 1;
            cell.overdue_cases += u64::from(c.overdue);
            cell.escalated_cases += u64::from(escalated(c));
        }
        pressing.push(c);
    }
    pressing.sort_by_key(|c| {
        (std::cmp::Reverse(escalated(c)), std::cmp::Reverse(c.overdue), std::cmp::Reverse(c.opened_at_ms))
    });
    let cases = pressing
        .into_iter()
        .take(CASE_ROWS)
        .map(|c| CaseRow {
            number: c.ledger_no(),
            school_name: {
                let n = crate::api::kit::name_of(s, c.school);
                if n.is_empty() { c.school.to_string() } else { n }
            },
            title: c.title.clone(),
            status_zh: c.status.zh().to_string(),
            overdue: c.overdue,
            escalated: escalated(c),
            deadline: c.deadline_ms.map(|d| protocol::calendar::ChinaTime(d).date()).unwrap_or_default(),
        })
        .collect();
    lap(&mut parts, "compose", &mut since);
    Ok((
        ScreenData {
            unit: me,
            unit_name: crate::api::kit::name_of(s, me),
            tier_zh: me.tier().zh().to_string(),
            now_ms: now,
            now: protocol::calendar::ChinaTime(now).minute(),
            refresh_s: s.screen.refresh_s,
            headline: head,
            days,
            alerts_by_day,
            spot_checked_by_day: checked,
            spot_passed_by_day: passed,
            alert_types,
            spot_problems,
            case_sources,
            cases,
            units: cells.into_values().collect(),
            map: s.screen.map.is_some(),
        },
        parts,
    ))
}

/// Why the person may not open the screen here (`None`: they may): only a supervising unit's
/// accounts with the action.
fn refusal(ctx: &Ctx) -> Option<&'static str> {
    if ctx.0.me.tier() == Tier::School {
        return Some("监管大屏只在省、市、县监管单位提供，学校没有大屏。");
    }
    if !ctx.may(Action::ViewScreen) {
        return Some("您的角色不能查看监管大屏。");
    }
    None
}

/// `GET /screen`: the page. The script draws it from `/screen/data`.
pub async fn page(State(s): State<AdminState>, ctx: Ctx) -> Response {
    if let Some(why) = refusal(&ctx) {
        return forbidden(ctx, Nav::Screen, why);
    }
    let name = &ctx.0.unit_name;
    let title = format!("{name}明厨亮灶智慧监管大屏");
    let panel = |id: &str, title: &str| {
        html! {
            section.panel id={ "panel-" (id) } {
                h2 { (title) }
                div.chart id={ "chart-" (id) } {}
            }
        }
    };
    let cards: [(&str, &str); 9] = [
        ("schools", "学校"),
        ("canteens", "食堂"),
        ("cameras", "摄像头在线"),
        ("live", "学校节点在线"),
        ("alerts-today", "今日 AI 预警"),
        ("alerts-30d", "近 30 天 AI 预警"),
        ("open", "未销号问题"),
        ("overdue", "逾期未整改"),
        ("escalated", "督办"),
    ];
    let body = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=1920";
                title { (title) }
                link rel="stylesheet" href="/assets/screen.css";
                script src="/assets/echarts.min.js" defer {}
                script src="/assets/screen.js" defer {}
            }
            body.screen data-refresh=(s.screen.refresh_s) data-map=(if s.screen.map.is_some() { "1" } else { "" }) {
                header.bar {
                    a.back href="/" { "‹ 返回控制台" }
                    h1 { (title) }
                    div.clock {
                        span #now { "—" }
                        span #state { "正在读取数据…" }
                    }
                }
                div.cards #cards {
                    @for (id, label) in cards {
                        div.card {
                            div.n id={ "n-" (id) } { "—" }
                            div.l { (label) }
                            @if matches!(id, "cameras" | "live") { div.s id={ "s-" (id) } {} }
                        }
                    }
                }
                main.grid {
                    div.col {
                        (panel("types", "问题分布（近 30 天 AI 预警类型）"))
                        (panel("sources", "问题来源（近 30 天立案）"))
                    }
                    div.col.center {
                        section.panel.map #panel-map {
                            h2 #map-title { "下辖单位分布" }
                            div.chart #chart-map {}
                            p.legend #map-note {}
                        }
                        section.panel.cases #panel-cases {
                            h2 { "问题台账：未销号、逾期与督办" }
                            table #case-table {
                                thead { tr { th { "编号" } th { "学校" } th { "问题" } th { "状态" } th { "期限" } } }
                                tbody {}
                            }
                        }
                    }
                    div.col {
                        (panel("alerts", "AI 预警趋势（近 30 天）"))
                        (panel("spot", "网络巡查合格率（近 30 天）"))
                    }
                }
            }
        }
    };
    (StatusCode::OK, body).into_response()
}

/// `GET /screen/data`: the JSON the page redraws from.
pub async fn data(State(s): State<AdminState>, ctx: Ctx) -> Response {
    if let Some(why) = refusal(&ctx) {
        return (StatusCode::FORBIDDEN, Json(serde_json::json!({ "error": why }))).into_response();
    }
    match screen_data_timed(&s).await {
        Ok((d, mut parts)) => {
            let started = std::time::Instant::now();
            let mut resp = Json(d).into_response();
            parts.push(("json", started.elapsed().as_secs_f64() * 1e3));
            let timing = parts.iter().map(|(n, ms)| format!("{n};dur={ms:.2}")).collect::<Vec<_>>().join(", ");
            if let Ok(v) = axum::http::HeaderValue::from_str(&timing) {
                resp.headers_mut().insert("server-timing", v);
            }
            resp
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": e }))).into_response(),
    }
}

/// `GET /screen/map.json`: the configured GeoJSON (404 when none is).
pub async fn map(State(s): State<AdminState>, ctx: Ctx) -> Response {
    if let Some(why) = refusal(&ctx) {
        return forbidden(ctx, Nav::Screen, why);
    }
    match &s.screen.map {
        Some(bytes) => (
            [(header::CONTENT_TYPE, "application/geo+json"), (header::CACHE_CONTROL, "private, max-age=3600")],
            bytes.to_vec(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "未配置地图文件（[console] screen_map）" })))
            .into_response(),
    }
}
