//! 台账: the food-safety ledgers (食品安全台账).
//!
//! - At a **school** (`/ledger?date=`): the day's records grouped by kind — 晨检、留样、采购索证索票、
//!   陪餐、隐患排查、消毒、农残快检 — each a table with the fields a person needs, who recorded it,
//!   how often it was corrected, and voided ones struck through with the reason; the day's four
//!   daily items at the top; a form per kind for a person who may keep the ledgers (the principal,
//!   the food-safety officer), a 处置 button on samples not disposed of yet and a 作废 form with
//!   its reason on every record.
//! - At a **county, city or province** (`/ledger?under=&date=`): the day's completeness per school
//!   of the subtree, worst first, each school linking to its records (`/ledger?school=`), which
//!   are shown read-only.
//!
//! Every read and write goes through the admin API's own functions (`list_as`, `days_as`,
//! `record_as`, `dispose_as`), so a form is checked, written and attributed like `mingchu ledger`.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::calendar::{ChinaTime, DayKind};
use protocol::ledger::{Companion, LedgerKind, LedgerRecord, china_day, day_str};
use protocol::people::Action;
use protocol::registry::{Entity, EntityData, EntityKind, EntityRef};
use serde::Deserialize;
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::ledgers::{
    DaysParams, Dispose, LedgerDay, LedgerParams, LedgerView, LedgerWrite, days_as, dispose_as, list_as, record_as,
};
use crate::console::layout::{Flash, Nav, csrf_field, empty, page as shell};
use crate::console::pages::alerts::urlencode;
use crate::console::pages::ledger_forms::{self, Choices, StaffChoice, Sticky, SupplierChoice};
use crate::console::pages::spot::form_urlencoded_pairs;
use crate::console::pages::{Ctx, field, forbidden, reason, refused};

#[derive(Debug, Default, Deserialize)]
pub struct LedgerQuery {
    /// The day, `2026-12-01` (default today).
    pub date: Option<String>,
    /// One school's records (at a supervising node).
    pub school: Option<String>,
    /// Only the schools under this unit (the completeness table).
    pub under: Option<String>,
    /// The kind just written: its form stays open and the notice shows beside it.
    pub k: Option<String>,
}

/// Days of purchases a sample or a rapid test may name as its batch.
pub const BATCH_DAYS: u32 = 7;
/// Most schools in the completeness table.
pub const SCHOOL_ROWS: usize = 500;

pub async fn page(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<LedgerQuery>) -> Response {
    render(&s, ctx, &q, StatusCode::OK, Sticky::default()).await
}

/// The page with a refusal, and the status it deserves.
fn fail(ctx: Ctx, code: StatusCode, why: &str) -> Response {
    let c = ctx.with_error(why.to_string());
    refused(code, shell(&c.0, Nav::Ledger, "食品安全台账", html! { p { a href="/ledger" { "返回今天的台账" } } }))
}

async fn render(s: &AdminState, ctx: Ctx, q: &LedgerQuery, code: StatusCode, sticky: Sticky) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Ledger, "您的角色不能查看台账");
    }
    let today = china_day(s.clock.wall_ms());
    let day = match q.date.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => today,
        Some(d) => match protocol::calendar::parse_day(d).ok().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n > today => {
                return fail(ctx, StatusCode::BAD_REQUEST, &format!("{d} 还没有到，台账只能查看今天及以前的日期。"));
            }
            Some(n) => n,
            None => return fail(ctx, StatusCode::BAD_REQUEST, &format!("“{}”不是日期，请写成 2026-12-01。", cut(d))),
        },
    };
    let school = match q.school.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<NodeId>() {
            Ok(n) if n.tier() == Tier::School => Some(n),
            Ok(n) => return fail(ctx, StatusCode::BAD_REQUEST, &format!("{n} 不是学校。")),
            Err(_) => {
                return fail(
                    ctx,
                    StatusCode::BAD_REQUEST,
                    &format!("“{}”不是学校编号，学校编号形如 130102-S0001。", cut(v)),
                );
            }
        },
    };
    let focus = q.k.as_deref().and_then(|k| k.parse::<LedgerKind>().ok());
    match school {
        Some(n) => school_day(s, ctx, n, day, today, code, sticky, focus).await,
        None if s.me.tier() == Tier::School => school_day(s, ctx, s.me, day, today, code, sticky, focus).await,
        None => overview(s, ctx, q.under.as_deref().map(str::trim).unwrap_or(""), day, today, code).await,
    }
}

fn cut(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// `2026-12-05 星期六 · 休息日`.
async fn day_line(s: &AdminState, day: u32) -> String {
    const WEEK: [&str; 7] = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"];
    // 1970-01-01 was a Thursday.
    let week = WEEK[((u64::from(day) + 3) % 7) as usize];
    let kind = match s.reads.calendar_for(s.me).await {
        Ok(cal) => match cal.day_kind(u64::from(day)) {
            DayKind::Weekday => "工作日".to_string(),
            DayKind::Weekend => "休息日".to_string(),
            DayKind::Holiday(name) => format!("{name}假期"),
            DayKind::AdjustedWorkday => "调休上班".to_string(),
        },
        Err(_) => String::new(),
    };
    if kind.is_empty() { format!("{} {week}", day_str(day)) } else { format!("{} {week} · {kind}", day_str(day)) }
}

/// The day picker: the date, the days before and after, today.
fn day_picker(day: u32, today: u32, line: &str, keep: &[(&str, String)]) -> Markup {
    let link = |d: u32| {
        let mut q = vec![format!("date={}", day_str(d))];
        q.extend(keep.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", urlencode(v))));
        format!("/ledger?{}", q.join("&"))
    };
    html! {
        div.daybar {
            a.button.plain href=(link(day.saturating_sub(1))) { "‹ 前一天" }
            form.inline method="get" action="/ledger" {
                @for (k, v) in keep { @if !v.is_empty() { input type="hidden" name=(k) value=(v); } }
                input type="date" name="date" value=(day_str(day)) max=(day_str(today));
                button.plain type="submit" { "查看" }
            }
            @if day < today { a.button.plain href=(link(day + 1)) { "后一天 ›" } }
            @if day != today { a href=(link(today)) { "回到今天" } }
            strong.dayname { (line) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One school's day

/// What the tables need from the school's registry.
struct Names {
    staff: BTreeMap<String, (String, &'static str, bool)>,
    canteens: BTreeMap<String, String>,
    suppliers: BTreeMap<String, String>,
}

impl Names {
    fn of(registry: &BTreeMap<EntityRef, Entity>) -> Names {
        let mut n = Names { staff: BTreeMap::new(), canteens: BTreeMap::new(), suppliers: BTreeMap::new() };
        for e in registry.values() {
            match &e.data {
                EntityData::Staff(x) => {
                    n.staff.insert(e.entity.id.clone(), (x.name.clone(), x.role.zh(), x.on_duty));
                }
                EntityData::Canteen(x) => {
                    n.canteens.insert(e.entity.id.clone(), x.name.clone());
                }
                EntityData::Supplier(x) => {
                    n.suppliers.insert(e.entity.id.clone(), x.name.clone());
                }
                _ => {}
            }
        }
        n
    }

    fn canteen(&self, id: &str) -> String {
        self.canteens.get(id).cloned().unwrap_or_else(|| id.to_string())
    }
}

#[allow(clippy::too_many_arguments)]
async fn school_day(
    s: &AdminState,
    ctx: Ctx,
    school: NodeId,
    day: u32,
    today: u32,
    code: StatusCode,
    sticky: Sticky,
    focus: Option<LedgerKind>,
) -> Response {
    let who = ctx.principal();
    let date = day_str(day);
    let params = LedgerParams {
        school: Some(school.to_string()),
        kind: None,
        from: Some(date.clone()),
        to: Some(date.clone()),
        voided: Some(true),
    };
    let mut views = match list_as(s, &who, &params).await {
        Ok(v) => v,
        Err(e) => return fail(ctx, e.0, &reason(&e)),
    };
    views.sort_by_key(|v| (record_time(v), id_number(&v.id), v.id.clone()));
    let registry = match s.reads.registry_of(school).await {
        Ok(r) => r,
        Err(e) => return fail(ctx, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let names = Names::of(&registry);
    let summary = days_as(s, &who, &DaysParams { under: Some(school.to_string()), day: Some(date.clone()) })
        .await
        .ok()
        .and_then(|d| d.into_iter().find(|d| d.school == school));
    let editable = school == s.me && ctx.may(Action::KeepLedgers);
    let batches = recent_batches(s, &who, school, day, &names).await;
    let choices = if editable { Some(choices(s, &ctx, &registry, &views, &batches, day, today)) } else { None };
    let batch_names: BTreeMap<String, String> = batches.into_iter().collect();
    let line = day_line(s, day).await;
    let own = school == s.me;
    let school_name = school_name(s, &registry, school);
    // A notice after a form shows beside the records it is about.
    let mut ctx = ctx;
    let section_notice = match (&ctx.0.flash, focus) {
        (Some(Flash::Ok(m)), Some(k)) => {
            let m = m.clone();
            ctx.0.flash = None;
            Some((k, m))
        }
        _ => None,
    };
    let keep: Vec<(&str, String)> = if own { vec![] } else { vec![("school", school.to_string())] };
    let none: Vec<&str> =
        LedgerKind::ALL.into_iter().filter(|k| !views.iter().any(|v| v.kind == *k)).map(LedgerKind::zh).collect();
    let body = html! {
        @if !own {
            nav.crumbs {
                a href={ "/ledger?date=" (date) } { "各校填报情况" } " › "
                strong { (school_name) " " span.muted { (school) } }
                span.muted { "（只读：台账由学校自己填报）" }
            }
        }
        (day_picker(day, today, &line, &keep))
        (day_summary(summary.as_ref(), &views))
        @if !editable && own {
            p.note { "您的角色可以查看台账，填报由校长或食品安全员进行。" }
        }
        @for k in LedgerKind::ALL {
            @let rows: Vec<&LedgerView> = views.iter().filter(|v| v.kind == k).collect();
            @let live = rows.iter().filter(|v| !v.voided).count();
            // Read-only, a kind without records is named once below rather than given a section.
            @if choices.is_some() || !rows.is_empty() { section.ledger id={ "k-" (k.as_str()) } {
                h2 { (k.zh()) span.count-n { (live) " 条" }
                    @if rows.len() > live { span.muted.small { "（另有 " (rows.len() - live) " 条已作废）" } }
                }
                @if let Some((nk, m)) = &section_notice { @if *nk == k { div.flash.ok role="status" { (m) } } }
                @if rows.is_empty() {
                    p.none { (empty_text(k, day == today)) }
                } @else {
                    (table(k, &rows, &names, &batch_names, editable.then_some(&ctx.0.csrf), s.clock.wall_ms()))
                }
                @if let Some(c) = &choices { (ledger_forms::form(k, c, &sticky, &ctx.0.csrf, focus == Some(k))) }
            } }
        }
        @if choices.is_none() && !none.is_empty() {
            p.none #no-records { (if day == today { "今天" } else { "这一天" }) "没有" (none.join("、")) "记录。" }
        }
    };
    let title = if own { "食品安全台账".to_string() } else { format!("食品安全台账 · {school_name}") };
    refused(code, shell(&ctx.0, Nav::Ledger, &title, body))
}

/// The school's name: the topology's, else its registry entry's, else its code.
fn school_name(s: &AdminState, registry: &BTreeMap<EntityRef, Entity>, school: NodeId) -> String {
    let n = crate::api::kit::name_of(s, school);
    if !n.is_empty() {
        return n;
    }
    registry
        .values()
        .find_map(|e| match &e.data {
            EntityData::School(x) if e.entity.node == school => Some(x.name.clone()),
            _ => None,
        })
        .unwrap_or_else(|| school.to_string())
}

fn empty_text(k: LedgerKind, today: bool) -> String {
    let when = if today { "今天" } else { "这一天" };
    match k {
        LedgerKind::MorningCheck => format!("{when}还没有晨检记录。"),
        LedgerKind::FoodSample => format!("{when}还没有留样记录。"),
        LedgerKind::Purchase => format!("{when}没有采购验收记录。"),
        LedgerKind::AccompaniedMeal => format!("{when}还没有陪餐记录。"),
        LedgerKind::HazardCheck => format!("{when}没有隐患排查记录。"),
        LedgerKind::Disinfection => format!("{when}还没有消毒记录。"),
        LedgerKind::PesticideTest => format!("{when}没有农残快检记录。"),
    }
}

/// The record's own time (checked, sampled, received, done), for the order within a day.
fn record_time(v: &LedgerView) -> u64 {
    match &v.record {
        Some(LedgerRecord::MorningCheck(m)) => m.checked_at_ms,
        Some(LedgerRecord::FoodSample(f)) => f.sampled_at_ms,
        Some(LedgerRecord::Purchase(p)) => p.received_at_ms,
        Some(LedgerRecord::Disinfection(d)) => d.done_at_ms,
        _ => 0,
    }
}

/// `mc-20261201-12` → 12 (the order records were made in).
fn id_number(id: &str) -> u64 {
    id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

/// `07:10` of an instant.
fn hm(ms: u64) -> String {
    let m = ChinaTime(ms).minute();
    m.get(11..).unwrap_or(&m).to_string()
}

/// `10:05` on the same China-time day as `base`, else `12-03 10:05`.
fn day_time(ms: u64, base: u64) -> String {
    if china_day(ms) == china_day(base) {
        hm(ms)
    } else {
        ChinaTime(ms).minute().get(5..).unwrap_or_default().to_string()
    }
}

/// The day's four daily items (晨检, 留样, 校领导陪餐, 消毒), judged as the county's table judges
/// them ([`LedgerDay::complete`]); fewer morning checks than staff on duty is shown in amber.
fn day_summary(d: Option<&LedgerDay>, views: &[LedgerView]) -> Markup {
    let live = |k: LedgerKind| views.iter().filter(|v| v.kind == k && !v.voided).count() as u32;
    let leader = views.iter().any(|v| {
        !v.voided && matches!(&v.record, Some(LedgerRecord::AccompaniedMeal(a)) if a.companion == Companion::Leader)
    });
    let on_duty = d.map_or(0, |d| d.on_duty);
    let (checks, samples, disinfections) =
        (live(LedgerKind::MorningCheck), live(LedgerKind::FoodSample), live(LedgerKind::Disinfection));
    let check_class = if checks == 0 {
        "bad"
    } else if checks < on_duty {
        "warn"
    } else {
        "ok"
    };
    let items = [
        ("晨检", check_class, format!("{checks} / 在岗 {on_duty} 人"), LedgerKind::MorningCheck),
        ("留样", if samples > 0 { "ok" } else { "bad" }, format!("{samples} 样"), LedgerKind::FoodSample),
        (
            "校领导陪餐",
            if leader { "ok" } else { "bad" },
            if leader { "已陪餐".into() } else { "未登记".into() },
            LedgerKind::AccompaniedMeal,
        ),
        ("消毒", if disinfections > 0 { "ok" } else { "bad" }, format!("{disinfections} 次"), LedgerKind::Disinfection),
    ];
    let missing: Vec<&str> = items.iter().filter(|i| i.1 == "bad").map(|i| i.0).collect();
    let complete = d.map_or(missing.is_empty(), |d| d.complete);
    html! {
        div.daysum #day-summary {
            div class={ "verdict " (if complete { "ok" } else { "bad" }) } {
                div.l { "当日必填四项" }
                div.n { @if complete { "✓ 已填齐" } @else { "✗ 未填齐" } }
                @if !missing.is_empty() { div.l { "还缺：" (missing.join("、")) } }
            }
            @for (label, class, text, k) in &items {
                a class={ "item " (class) } href={ "#k-" (k.as_str()) } {
                    div.l { (label) }
                    div.n { (match *class { "bad" => "✗ ", "ok" => "✓ ", _ => "" }) (text) }
                    @if *class == "warn" { div.l { "还有 " (on_duty - checks) " 人未晨检" } }
                }
            }
        }
    }
}

/// The kind's own columns and a row's cells.
fn columns(k: LedgerKind) -> &'static [&'static str] {
    match k {
        LedgerKind::MorningCheck => &["时间", "人员", "体温", "症状", "结果", "备注"],
        LedgerKind::FoodSample => &["时间", "食堂", "餐次", "菜品", "重量", "冷藏", "原料批次", "留样人", "处置"],
        LedgerKind::Purchase => &["时间", "供应商", "品名", "批次号", "数量", "检验合格证明", "票据"],
        LedgerKind::AccompaniedMeal => &["食堂", "餐次", "类别", "陪餐人", "评价", "意见"],
        LedgerKind::HazardCheck => &["类别", "检查项", "问题", "发现的问题", "整改措施", "检查人"],
        LedgerKind::Disinfection => &["时间", "食堂", "对象", "方式", "时长", "消毒人"],
        LedgerKind::PesticideTest => &["品名", "采购批次", "抑制率", "结果", "处理措施", "检测人"],
    }
}

fn cells(r: &LedgerRecord, names: &Names, batches: &BTreeMap<String, String>, now: u64) -> Vec<Markup> {
    let missing = || html! { span.tag.bad { "未取得" } };
    let batch = |id: &str| batches.get(id).cloned().unwrap_or_else(|| id.to_string());
    match r {
        LedgerRecord::MorningCheck(m) => {
            let who = match names.staff.get(&m.staff) {
                Some((n, role, _)) => html! { (n) span.muted { "（" (role) "）" } },
                None => html! { (m.staff) },
            };
            let temp = html! {
                span class=@if m.temperature_dc >= protocol::ledger::FEVER_DECI_C { "hot" } {
                    (m.temperature_dc / 10) "." (m.temperature_dc % 10) "℃"
                }
            };
            let result = if m.sent_home {
                html! { span.tag.due { "已劝离岗" } }
            } else if m.abnormal() {
                html! { span.tag.bad { "异常仍在岗" } }
            } else {
                html! { span.tag.ok { "正常" } }
            };
            let symptoms = m.symptoms.iter().map(|s| s.zh()).collect::<Vec<_>>().join("、");
            vec![
                html! { (hm(m.checked_at_ms)) },
                who,
                temp,
                html! { @if symptoms.is_empty() { span.muted { "无" } } @else { (symptoms) } },
                result,
                html! { (m.note) },
            ]
        }
        LedgerRecord::FoodSample(f) => {
            let kept_until = f.sampled_at_ms + 48 * 3_600_000;
            let disposed = match f.disposed_at_ms {
                Some(d) => html! { (day_time(d, f.sampled_at_ms)) " 已处置"
                @if d < kept_until { br; span.tag.bad { "不足 48 小时" } } },
                None if now >= kept_until => html! { "留存中" br; span.tag.ok { "已满 48 小时，可处置" } },
                None => {
                    html! { "留存中" br; span.muted.small { "满 48 小时：" (day_time(kept_until, f.sampled_at_ms)) } }
                }
            };
            vec![
                html! { (hm(f.sampled_at_ms)) },
                html! { (names.canteen(&f.canteen)) },
                html! { (f.meal.zh()) },
                html! { (f.dish) },
                html! { (f.grams) " 克" @if f.grams < 125 { " " span.tag.due { "不足 125 克" } } },
                html! { @if f.refrigerated { "是" } @else { span.tag.bad { "未冷藏" } } },
                html! { @if f.batches.is_empty() { span.muted { "未关联" } } @else { @for (i, b) in f.batches.iter().enumerate() { @if i > 0 { br; } (batch(b)) } } },
                html! { (f.sampled_by) },
                disposed,
            ]
        }
        LedgerRecord::Purchase(p) => vec![
            html! { (hm(p.received_at_ms)) },
            html! { (names.suppliers.get(&p.supplier).cloned().unwrap_or_else(|| p.supplier.clone())) },
            html! { (p.item) },
            html! { (p.batch) },
            html! { (protocol::ledger::quantity(p.quantity_milli)) " " (p.unit) },
            html! { @if p.inspection_cert.trim().is_empty() { (missing()) } @else { (p.inspection_cert) } },
            html! { @if p.invoice.trim().is_empty() { (missing()) } @else { (p.invoice) } },
        ],
        LedgerRecord::AccompaniedMeal(a) => vec![
            html! { (names.canteen(&a.canteen)) },
            html! { (a.meal.zh()) },
            html! { (a.companion.zh()) },
            html! { (a.name) },
            html! { @if a.rating == 0 { span.muted { "未评分" } } @else { span.stars title={ (a.rating) " 分" } { (("★".repeat(a.rating as usize))) (("☆".repeat(5 - a.rating.min(5) as usize))) } } },
            html! { (a.remarks) },
        ],
        LedgerRecord::HazardCheck(h) => vec![
            html! { (h.level.zh()) },
            html! { (h.items_checked) " 项" },
            html! { @if h.problems_found > 0 { span.tag.due { (h.problems_found) " 项" } } @else { span.tag.ok { "无" } } },
            html! { (h.problems) },
            html! { (h.measures) },
            html! { (h.checked_by) },
        ],
        LedgerRecord::Disinfection(d) => vec![
            html! { (hm(d.done_at_ms)) },
            html! { (names.canteen(&d.canteen)) },
            html! { (d.target) },
            html! { (d.method.zh()) },
            html! { (d.minutes) " 分钟" },
            html! { (d.done_by) },
        ],
        LedgerRecord::PesticideTest(p) => vec![
            html! { (p.item) },
            html! { @if p.purchase.is_empty() { span.muted { "—" } } @else { (batch(&p.purchase)) } },
            html! { (p.inhibition_pct) "%" },
            html! { @if p.positive() { span.tag.bad { "阳性" } } @else { span.tag.ok { "阴性" } } },
            html! { (p.handling) },
            html! { (p.tested_by) },
        ],
    }
}

/// A kind's records as a table: its own columns, who recorded each, its state (corrected,
/// voided with the reason) and, for a person who keeps the ledgers, its actions. `batches` names
/// the purchase records a sample or a rapid test refers to.
fn table(
    k: LedgerKind,
    rows: &[&LedgerView],
    names: &Names,
    batches: &BTreeMap<String, String>,
    csrf: Option<&String>,
    now: u64,
) -> Markup {
    let cols = columns(k);
    html! {
        div.scroll { table.rows.ledger id={ "t-" (k.as_str()) } {
            thead { tr {
                @for c in cols { th { (c) } }
                th { "记录人" } th { "状态" }
                @if csrf.is_some() { th.act { "操作" } }
            } }
            tbody { @for v in rows {
                tr class=@if v.voided { "voided" } data-id=(v.id) {
                    @match &v.record {
                        Some(r) => { @for (i, c) in cells(r, names, batches, now).into_iter().enumerate() {
                            @let col = cols.get(i).copied().unwrap_or("");
                            td class={ "rec" @if LONG.contains(&col) { " long" } } data-l=(col) { (c) }
                        } }
                        None => { td.rec colspan=(cols.len()) { (v.summary) } }
                    }
                    td data-l="记录人" {
                        @match &v.person { Some(p) => { (p.name) }, None => { span.muted { "本机操作员" } } }
                        br; span.muted.small { (hm(v.updated_at_ms)) }
                    }
                    td data-l="状态" {
                        @if v.voided {
                            span.tag.bad { "已作废" } br; span.why { "原因：" (v.void_reason) }
                        } @else if corrections(v) > 0 {
                            span.tag.due { "已更正 " (corrections(v)) " 次" }
                        } @else {
                            span.muted { "有效" }
                        }
                    }
                    @if let Some(csrf) = csrf { td.act data-l="操作" { @if !v.voided { (actions(v, csrf, now)) } } }
                }
            } }
        } }
    }
}

/// Columns whose text may be long and wraps; the others stay on one line.
const LONG: [&str; 8] = ["备注", "菜品", "原料批次", "意见", "发现的问题", "整改措施", "处理措施", "品名"];

/// How often a record was corrected: its versions but the first, and but a sample's disposal
/// (written as a new version of the sample, but no correction to a person).
fn corrections(v: &LedgerView) -> u32 {
    let disposal = matches!(&v.record, Some(LedgerRecord::FoodSample(f)) if f.disposed_at_ms.is_some());
    v.versions.saturating_sub(1).saturating_sub(u32::from(disposal))
}

/// 处置 (a sample not disposed of yet) and 作废 (every record in force).
fn actions(v: &LedgerView, csrf: &str, now: u64) -> Markup {
    // A sample kept under 48 hours is disposed of only after a second click: it raises a red
    // warning (留样不足 48 小时即处置).
    let undisposed = match &v.record {
        Some(LedgerRecord::FoodSample(f)) if f.disposed_at_ms.is_none() => Some(now < f.sampled_at_ms + 48 * 3_600_000),
        _ => None,
    };
    let dispose = |button: Markup| {
        html! {
            form.inline method="post" action="/ledger/dispose" {
                (csrf_field(csrf))
                input type="hidden" name="id" value=(v.id);
                input type="hidden" name="date" value=(v.date);
                (button)
            }
        }
    };
    html! {
        @match undisposed {
            Some(false) => { (dispose(html! { button.plain type="submit" title="登记该留样现在已处置" { "处置" } })) }
            Some(true) => {
                details.dispose {
                    summary { "处置" }
                    div.confirm {
                        p.small { "留样还不满 48 小时，现在处置会产生红色预警。" }
                        (dispose(html! { button.danger type="submit" { "仍要处置" } }))
                    }
                }
            }
            None => {}
        }
        details.void {
            summary { "作废" }
            form.stack method="post" action="/ledger/void" {
                (csrf_field(csrf))
                input type="hidden" name="id" value=(v.id);
                input type="hidden" name="kind" value=(v.kind.as_str());
                input type="hidden" name="date" value=(v.date);
                input name="reason" required maxlength="200" placeholder="作废原因（必填），如 人员选错";
                button.danger type="submit" { "确认作废" }
            }
        }
    }
}

/// The purchase records of the [`BATCH_DAYS`] days up to `day`, newest first, each with a label
/// a person recognises: `12-01 大米 批次 B1（放心菜店）`.
async fn recent_batches(
    s: &AdminState,
    who: &crate::api::principal::Principal,
    school: NodeId,
    day: u32,
    names: &Names,
) -> Vec<(String, String)> {
    let recent = LedgerParams {
        school: Some(school.to_string()),
        kind: Some(LedgerKind::Purchase.as_str().into()),
        from: Some(day_str(day.saturating_sub(BATCH_DAYS - 1))),
        to: Some(day_str(day)),
        voided: None,
    };
    list_as(s, who, &recent)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| match v.record {
            Some(LedgerRecord::Purchase(p)) => {
                let supplier = names.suppliers.get(&p.supplier).cloned().unwrap_or(p.supplier);
                let label =
                    format!("{} {} 批次 {}（{supplier}）", v.date.get(5..).unwrap_or_default(), p.item, p.batch);
                Some((v.id, label))
            }
            _ => None,
        })
        .collect()
}

/// The forms' choices: the school's staff (on duty and unchecked first), canteens, suppliers and
/// the recent purchase batches.
fn choices(
    s: &AdminState,
    ctx: &Ctx,
    registry: &BTreeMap<EntityRef, Entity>,
    views: &[LedgerView],
    batches: &[(String, String)],
    day: u32,
    today: u32,
) -> Choices {
    let now = s.clock.wall_ms();
    let checked: Vec<&str> = views
        .iter()
        .filter(|v| !v.voided)
        .filter_map(|v| match &v.record {
            Some(LedgerRecord::MorningCheck(m)) => Some(m.staff.as_str()),
            _ => None,
        })
        .collect();
    let mut certs: BTreeMap<&str, u64> = BTreeMap::new();
    for e in registry.values() {
        if let EntityData::HealthCertificate(c) = &e.data {
            let best = certs.entry(c.staff.as_str()).or_insert(0);
            *best = (*best).max(c.valid_until_ms);
        }
    }
    let mut staff: Vec<StaffChoice> = registry
        .values()
        .filter_map(|e| match &e.data {
            EntityData::Staff(x) if e.entity.kind == EntityKind::Staff => Some(StaffChoice {
                id: e.entity.id.clone(),
                name: x.name.clone(),
                role_zh: x.role.zh(),
                on_duty: x.on_duty,
                checked: checked.contains(&e.entity.id.as_str()),
                cert_valid: certs.get(e.entity.id.as_str()).map(|until| *until >= now),
            }),
            _ => None,
        })
        .collect();
    staff.sort_by_key(|x| (!x.on_duty, x.checked, x.id.clone()));
    let canteens = registry
        .values()
        .filter_map(|e| match &e.data {
            EntityData::Canteen(x) => Some((e.entity.id.clone(), x.name.clone())),
            _ => None,
        })
        .collect();
    let suppliers = registry
        .values()
        .filter_map(|e| match &e.data {
            EntityData::Supplier(x) => Some(SupplierChoice {
                id: e.entity.id.clone(),
                name: x.name.clone(),
                expired: x.licence_valid_until_ms < now,
                until: ChinaTime(x.licence_valid_until_ms).date(),
            }),
            _ => None,
        })
        .collect();
    Choices {
        staff,
        canteens,
        suppliers,
        batches: batches.to_vec(),
        today: day == today,
        now_hhmm: hm(now),
        date: day_str(day),
        me_name: ctx.who().name.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The forms' posts

/// `POST /ledger`: a new record of the kind the form names.
pub async fn add(State(s): State<AdminState>, ctx: Ctx, body: String) -> Response {
    let pairs = form_urlencoded_pairs(&body);
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let date = get("date");
    let q = LedgerQuery { date: Some(date.clone()), ..LedgerQuery::default() };
    let kind = match get("kind").parse::<LedgerKind>() {
        Ok(k) => k,
        Err(_) => {
            return render(&s, ctx.with_error("不认识的台账类别"), &q, StatusCode::BAD_REQUEST, Sticky::default())
                .await;
        }
    };
    let sticky = |error: String| Sticky { kind: Some(kind), pairs: pairs.clone(), error };
    let write = match ledger_forms::parse(kind, &pairs) {
        Ok(w) => w,
        Err(e) => return render(&s, ctx.with_error(e.clone()), &q, StatusCode::BAD_REQUEST, sticky(e)).await,
    };
    match record_as(&s, &ctx.principal(), write).await {
        Ok(v) => back(&v.date, kind, "ledger-saved"),
        Err(e) => {
            let why = reason(&e);
            render(&s, ctx.with_error(why.clone()), &q, e.0, sticky(why)).await
        }
    }
}

/// After a form: the day's page at the kind's section, with the notice there.
fn back(date: &str, kind: LedgerKind, notice: &str) -> Response {
    let k = kind.as_str();
    Redirect::to(&format!("/ledger?date={}&k={k}&ok={notice}#k-{k}", urlencode(date))).into_response()
}

#[derive(Debug, Deserialize)]
pub struct VoidForm {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub reason: String,
}

/// `POST /ledger/void`: a record withdrawn, with its reason.
pub async fn void(State(s): State<AdminState>, ctx: Ctx, axum::Form(f): axum::Form<VoidForm>) -> Response {
    let q = LedgerQuery { date: Some(f.date.clone()), ..LedgerQuery::default() };
    let checked = (|| {
        let kind = f.kind.parse::<LedgerKind>().map_err(|_| "不认识的台账类别".to_string())?;
        let why = field("作废原因", &f.reason, 200)?;
        if why.is_empty() {
            return Err("作废记录须写明原因".to_string());
        }
        Ok((kind, why))
    })();
    let (kind, why) = match checked {
        Ok(x) => x,
        Err(e) => return render(&s, ctx.with_error(e), &q, StatusCode::BAD_REQUEST, Sticky::default()).await,
    };
    let write = LedgerWrite {
        kind,
        date: None,
        id: Some(f.id.trim().to_string()),
        record: None,
        void_reason: Some(why),
        at: None,
    };
    match record_as(&s, &ctx.principal(), write).await {
        Ok(v) => back(&v.date, kind, "ledger-voided"),
        Err(e) => render(&s, ctx.with_error(reason(&e)), &q, e.0, Sticky::default()).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct DisposeForm {
    pub id: String,
    #[serde(default)]
    pub date: String,
}

/// `POST /ledger/dispose`: a sample disposed of now.
pub async fn dispose(State(s): State<AdminState>, ctx: Ctx, axum::Form(f): axum::Form<DisposeForm>) -> Response {
    let q = LedgerQuery { date: Some(f.date.clone()), ..LedgerQuery::default() };
    match dispose_as(&s, &ctx.principal(), Dispose { id: f.id.trim().to_string(), at: None }).await {
        Ok(v) => back(&v.date, LedgerKind::FoodSample, "ledger-disposed"),
        Err(e) => render(&s, ctx.with_error(reason(&e)), &q, e.0, Sticky::default()).await,
    }
}

// ---------------------------------------------------------------------------------------------
// The subtree's completeness

async fn overview(s: &AdminState, ctx: Ctx, under_text: &str, day: u32, today: u32, code: StatusCode) -> Response {
    let who = ctx.principal();
    let date = day_str(day);
    let under = if under_text.is_empty() {
        s.me
    } else {
        match under_text.parse::<NodeId>() {
            Ok(u) if u.in_subtree_of(s.me) => u,
            Ok(u) => {
                return fail(
                    ctx,
                    StatusCode::FORBIDDEN,
                    &format!("{u} 不在本单位（{}）的下辖范围内，无权查看。", s.me),
                );
            }
            Err(_) => {
                return fail(
                    ctx,
                    StatusCode::BAD_REQUEST,
                    &format!("“{}”不是有效的单位编号。编号形如 1301、130102。", cut(under_text)),
                );
            }
        }
    };
    if under.tier() == Tier::School {
        return Redirect::to(&format!("/ledger?school={under}&date={date}")).into_response();
    }
    let mut ctx = ctx;
    let mut code = code;
    let mut rows = match days_as(s, &who, &DaysParams { under: Some(under.to_string()), day: Some(date.clone()) }).await
    {
        Ok(r) => r,
        Err(e) => {
            code = e.0;
            ctx = ctx.with_error(reason(&e));
            Vec::new()
        }
    };
    // Worst first: incomplete, then the most of the four items missing, then the fewest morning
    // checks for the staff on duty; tree order within.
    rows.sort_by_key(|d| (d.complete, 4 - missing(d).len(), coverage_permille(d)));
    let total = rows.len();
    let complete = rows.iter().filter(|d| d.complete).count();
    let (checks, on_duty) = rows
        .iter()
        .fold((0u32, 0u32), |(c, o), d| (c + count(d, LedgerKind::MorningCheck).min(d.on_duty), o + d.on_duty));
    let line = day_line(s, day).await;
    let children: Vec<(NodeId, String)> = if under.tier() < Tier::County {
        s.topology.children(under).map(|e| (e.id, e.name.clone())).collect()
    } else {
        Vec::new()
    };
    let under_name = crate::api::kit::name_of(s, under);
    let keep: Vec<(&str, String)> = vec![("under", under_text.to_string())];
    let body = html! {
        (day_picker(day, today, &line, &keep))
        div.scope {
            span {
                "范围：" strong { (under_name) } " " span.muted { (under) }
                @if under != s.me { " · " a href={ "/ledger?date=" (date) } { "回到本单位全部" } }
            }
            form.inline method="get" action="/ledger" {
                input type="hidden" name="date" value=(date);
                label.inline { "只看单位" input name="under" value=(under_text) placeholder="如 1301、130102"; }
                button.plain type="submit" { "筛选" }
            }
        }
        @if !children.is_empty() {
            p.children { "下级：" @for (i, (id, name)) in children.iter().enumerate() {
                @if i > 0 { " · " }
                a href={ "/ledger?under=" (id) "&date=" (date) } { (name) }
            } }
        }
        @if total > 0 {
            div.daysum #completeness {
                div class={ "verdict " (if complete == total { "ok" } else { "bad" }) } {
                    div.l { "当日必填四项" } div.n { (complete) " / " (total) " 所已填齐" }
                }
                div class={ "item " (if complete == total { "ok" } else { "bad" }) } { div.l { "未填齐" } div.n { (total - complete) " 所" } }
                div class={ "item " (if checks >= on_duty { "ok" } else { "bad" }) } { div.l { "晨检" } div.n { (checks) " / 在岗 " (on_duty) " 人" } }
            }
            p.muted { "当日必填四项：在岗人员晨检、留样、校领导陪餐、消毒。未填齐的学校排在前面；点学校名称查看它当天的台账。" }
            div.scroll { table.rows.days #days {
                thead { tr {
                    th { "学校" } th { "当日四项" } th.num { "晨检 / 在岗" }
                    @for k in [LedgerKind::FoodSample, LedgerKind::AccompaniedMeal, LedgerKind::Disinfection, LedgerKind::Purchase, LedgerKind::HazardCheck, LedgerKind::PesticideTest] {
                        th.num { (short(k)) }
                    }
                } }
                tbody { @for d in rows.iter().take(SCHOOL_ROWS) {
                    @let miss = missing(d);
                    tr class=@if !d.complete { "r-bad" } data-school=(d.school) {
                        td data-l="学校" {
                            a.unit href={ "/ledger?school=" (d.school) "&date=" (date) } { @if d.school_name.is_empty() { (d.school) } @else { (d.school_name) } }
                            br; span.muted.small { (d.school) }
                        }
                        td data-l="当日四项" {
                            @if d.complete { span.tag.ok { "✓ 已填齐" } }
                            @else { span.tag.bad { "✗ 缺 " (miss.join("、")) } }
                        }
                        @let mc = count(d, LedgerKind::MorningCheck);
                        td.num data-l="晨检 / 在岗" { span class=@if mc < d.on_duty || mc == 0 { "short" } { (mc) } " / " (d.on_duty) }
                        @for k in [LedgerKind::FoodSample, LedgerKind::AccompaniedMeal, LedgerKind::Disinfection, LedgerKind::Purchase, LedgerKind::HazardCheck, LedgerKind::PesticideTest] {
                            @let n = count(d, k);
                            td.num data-l=(short(k)) { @if n == 0 { span.zero { "0" } } @else { (n) } }
                        }
                    }
                } }
            } }
            @if total > SCHOOL_ROWS { p.muted { "共 " (total) " 所学校，只列出最需要关注的 " (SCHOOL_ROWS) " 所；请按单位筛选。" } }
        } @else if ctx.0.flash.is_none() {
            (empty("本单位下辖范围内没有学校。"))
        }
    };
    let title = if under == s.me {
        "食品安全台账 · 各校填报情况".to_string()
    } else {
        format!("食品安全台账 · {under_name}")
    };
    refused(code, shell(&ctx.0, Nav::Ledger, &title, body))
}

fn short(k: LedgerKind) -> &'static str {
    match k {
        LedgerKind::Purchase => "采购",
        k => k.zh(),
    }
}

fn count(d: &LedgerDay, k: LedgerKind) -> u32 {
    d.counts.iter().find(|(c, _)| *c == k).map_or(0, |(_, n)| *n)
}

/// Which of the day's four items a school lacks: the API's `complete` needs a morning check, a
/// sample, a leader's accompanied meal and a disinfection, so when the others are there and the
/// day is not complete, the meals recorded were no leader's.
fn missing(d: &LedgerDay) -> Vec<&'static str> {
    let has = |k| count(d, k) > 0;
    let (mc, fs, am, ds) = (
        has(LedgerKind::MorningCheck),
        has(LedgerKind::FoodSample),
        has(LedgerKind::AccompaniedMeal),
        has(LedgerKind::Disinfection),
    );
    let mut out = Vec::new();
    if !mc {
        out.push("晨检");
    }
    if !fs {
        out.push("留样");
    }
    if !am || (!d.complete && mc && fs && ds) {
        out.push("校领导陪餐");
    }
    if !ds {
        out.push("消毒");
    }
    out
}

/// Morning checks per staff member on duty, in thousandths (1000 when none is owed).
fn coverage_permille(d: &LedgerDay) -> u32 {
    if d.on_duty == 0 {
        return 1000;
    }
    count(d, LedgerKind::MorningCheck).min(d.on_duty) * 1000 / d.on_duty
}
