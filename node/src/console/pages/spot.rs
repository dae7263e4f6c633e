//! 网络巡查: record an online spot check of a school's canteen (each failed focus area opens a
//! case with its notice), today's checks, and pass rates by unit for a day or a month.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use protocol::Severity;
use protocol::calendar::ChinaTime;
use protocol::people::Action;
use protocol::spot::FocusArea;
use serde::Deserialize;
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::spot::{RecordSpotCheck, SpotCheckView, SpotParams, held_checks, rate_views, record_as};
use crate::console::layout::{Nav, csrf_field, empty, page as shell, when};
use crate::console::pages::alerts::who;
use crate::console::pages::cases::school_choices;
use crate::console::pages::{Ctx, done, field, forbidden, reason, refused};

#[derive(Debug, Default, Deserialize)]
pub struct SpotQuery {
    /// `2026-11` (a month) or `2026-11-30` (a day); default: today.
    pub period: Option<String>,
}

pub async fn page(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<SpotQuery>) -> Response {
    render(&s, ctx, q.period.as_deref(), StatusCode::OK).await
}

async fn render(s: &AdminState, ctx: Ctx, period: Option<&str>, code: StatusCode) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Spot, "您的角色不能查看网络巡查");
    }
    let today = ChinaTime(s.clock.wall_ms()).date();
    let period = period.map(str::trim).filter(|p| !p.is_empty()).unwrap_or(&today).to_string();
    let (day, month) = if period.len() == 7 { (None, Some(period.clone())) } else { (Some(period.clone()), None) };
    let params = || SpotParams { under: None, day: day.clone(), month: month.clone(), limit: None };
    let mut ctx = ctx;
    let checks = match held_checks(s, &params(), 200).await {
        Ok(evs) => evs.iter().filter_map(SpotCheckView::from_stored).collect::<Vec<_>>(),
        Err(e) => {
            ctx = ctx.with_error(reason(&e));
            Vec::new()
        }
    };
    let rates = match rate_views(s, params()).await {
        Ok(r) => r,
        Err(e) => {
            ctx = ctx.with_error(reason(&e));
            Vec::new()
        }
    };
    let names = |n: NodeId| crate::api::kit::name_of(s, n);
    let body = html! {
        @if s.me.tier() == Tier::Province {
            p { a.button href="/spot-checks/worklist" { "今日抽查名单" } " " span.muted { "每个工作日按各县区食堂数抽取，分给本单位的巡查员" } }
        }
        form.inline method="get" action="/spot-checks" {
            label { "日期或月份" input name="period" value=(period) placeholder="2026-11 或 2026-11-30"; }
            button.plain type="submit" { "查看" }
        }
        h2 { "合格率（" (period) "）" }
        @if rates.is_empty() { (empty("这一时段没有巡查记录。")) } @else {
            div.scroll { table.rows #rates {
                thead { tr { th { "单位" } th { "巡查次数" } th { "合格" } th { "合格率" } } }
                tbody { @for r in &rates { @if r.tier != Tier::School || rates.len() <= 30 {
                    tr { td data-l="单位" { (names(r.unit)) " " span.muted { (r.unit) } } td data-l="巡查次数" { (r.checked) } td data-l="合格" { (r.passed) } td data-l="合格率" { (format!("{:.1}%", r.percent)) } }
                } } }
            } }
        }
        h2 { "巡查记录" }
        @if checks.is_empty() { (empty("没有巡查记录。")) } @else {
            div.scroll { table.rows #checks {
                thead { tr { th { "时间" } th { "学校" } th { "食堂" } th { "结果" } th { "巡查人" } th { "说明" } } }
                tbody { @for c in &checks {
                    tr {
                        td data-l="时间" { (when(c.at_ms)) }
                        td data-l="学校" { (names(c.school)) " " span.muted { (c.school) } }
                        td data-l="食堂" { (c.canteen) }
                        td data-l="结果" { @if c.passed { span.tag.ok { "合格" } } @else { span.tag.bad { "不合格：" (c.failed.iter().map(|a| a.zh()).collect::<Vec<_>>().join("、")) } } }
                        td data-l="巡查人" { (who(c.by, c.person.as_ref())) }
                        td data-l="说明" { (c.note) }
                    }
                } }
            } }
        }
        @if ctx.may(Action::RecordSpotCheck) {
            h2 { "记录一次网络巡查" }
            form.stack.box method="post" action="/spot-checks" {
                (csrf_field(&ctx.0.csrf))
                label { "学校编码" input name="school" list="schools" required placeholder="如 130102-S0001"; }
                datalist #schools { @for (id, name) in school_choices(s) { option value=(id) { (name) } } }
                label { "食堂" input name="canteen" value="main" maxlength="64"; }
                fieldset { legend { "不合格的方面（不勾选即全部合格）" }
                    @for a in FocusArea::ALL { label.inline { input type="checkbox" name="failed" value=(a.key()); " " (a.zh()) } }
                }
                label { "问题严重程度（不合格时）" select name="severity" { option value="general" { "一般" } option value="serious" { "较重" } option value="severe" { "严重" } } }
                label { "说明" textarea name="note" maxlength="500" {} }
                button type="submit" { "保存巡查记录" }
            }
        }
    };
    refused(code, shell(&ctx.0, Nav::Spot, "网络巡查", body))
}

/// The form's fields; `failed` repeats, so the body is parsed by hand from its pairs.
fn parse_form(body: &str) -> Result<RecordSpotCheck, String> {
    let mut school = None;
    let mut canteen = "main".to_string();
    let mut failed = Vec::new();
    let mut note = String::new();
    let mut severity = None;
    for (k, v) in form_urlencoded_pairs(body) {
        match k.as_str() {
            "school" => {
                school = Some(v.trim().parse::<NodeId>().map_err(|e| format!("学校编码“{}”不对：{e}", v.trim()))?)
            }
            "canteen" => canteen = field("食堂", &v, 64)?,
            "failed" => {
                let a =
                    FocusArea::ALL.into_iter().find(|a| a.key() == v).ok_or_else(|| format!("没有“{v}”这一方面"))?;
                if !failed.contains(&a) {
                    failed.push(a);
                }
            }
            "note" => note = field("说明", &v, 500)?,
            "severity" => severity = Some(v.parse::<Severity>().map_err(|e| e.to_string())?.as_str().to_string()),
            _ => {}
        }
    }
    let school = school.ok_or("请填写学校编码")?;
    if school.tier() != Tier::School {
        return Err(format!("{school} 不是学校"));
    }
    if canteen.is_empty() {
        canteen = "main".into();
    }
    Ok(RecordSpotCheck { school, canteen, failed, note, severity, snapshots: Vec::new() })
}

/// The `k=v&k=v` pairs of a form body, decoded (a repeated key stays repeated).
pub fn form_urlencoded_pairs(body: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body).unwrap_or_default()
}

pub async fn record(State(s): State<AdminState>, ctx: Ctx, body: String) -> Response {
    let req = match parse_form(&body) {
        Ok(r) => r,
        Err(e) => return render(&s, ctx.with_error(e), None, StatusCode::BAD_REQUEST).await,
    };
    match record_as(&s, &ctx.principal(), req).await {
        Ok(_) => done("/spot-checks", "checked"),
        Err(e) => render(&s, ctx.with_error(reason(&e)), None, e.0).await,
    }
}
