//! AI 预警: the alert queue of this node's subtree, with confirm / dismiss (误报) and, for a
//! supervisor, opening a case from the alert or overturning a school's own dismissal.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use protocol::Severity;
use protocol::files::{FileKind, parse_ref};
use protocol::people::Action;
use serde::Deserialize;
use topology::Tier;

use crate::api::AdminState;
use crate::api::alerts::{AlertVerdict, AlertView, ListParams, VerdictKind, alert_views, verdict as give_verdict};
use crate::api::kit::read_storage;
use crate::console::layout::{Nav, csrf_field, empty, page as shell, severity_tag, when};
use crate::console::pages::files::thumb;
use crate::console::pages::{Ctx, done, field, forbidden, reason, refused};

#[derive(Debug, Default, Deserialize)]
pub struct AlertsQuery {
    /// new (default), confirmed, dismissed, all.
    pub status: Option<String>,
}

const TABS: [(&str, &str); 4] = [("new", "待处理"), ("confirmed", "已确认"), ("dismissed", "误报"), ("all", "全部")];

/// Most alerts on one page.
pub const PAGE_ROWS: usize = 100;

/// The newest alerts of the subtree with `status` (`all`: any).
pub async fn alerts_with(s: &AdminState, status: &str) -> Result<Vec<AlertView>, String> {
    let p = ListParams {
        limit: Some(PAGE_ROWS.to_string()),
        status: (status != "all").then(|| status.to_string()),
        ..ListParams::default()
    };
    let now = s.clock.wall_ms();
    let views = read_storage(s, move |st| alert_views(st, &p, now)).await.map_err(|e| reason(&e))??;
    Ok(views.into_iter().map(|v| v.named(s)).collect())
}

pub async fn page(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<AlertsQuery>) -> Response {
    render(&s, ctx, q.status.as_deref().unwrap_or("new"), StatusCode::OK).await
}

async fn render(s: &AdminState, ctx: Ctx, status: &str, code: StatusCode) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Alerts, "您的角色不能查看预警");
    }
    let status = TABS.iter().find(|(k, _)| *k == status).map_or("new", |(k, _)| k);
    let (ctx, rows) = match alerts_with(s, status).await {
        Ok(r) => (ctx, r),
        Err(e) => (ctx.with_error(e), Vec::new()),
    };
    let body = html! {
        nav.tabs {
            @for (k, zh) in TABS {
                a class=@if k == status { "tag ok" } @else { "tag" } href={ "/alerts?status=" (k) } { (zh) }
                " "
            }
        }
        p.muted { "本单位及下级的预警，最新的在前（最多 " (PAGE_ROWS) " 条）。" }
        @if rows.is_empty() { (empty("没有这一类预警。")) } @else { (table(&ctx, &rows)) }
    };
    refused(code, shell(&ctx.0, Nav::Alerts, "AI 预警", body))
}

fn status_zh(a: &AlertView) -> &'static str {
    match a.status.as_str() {
        "new" if a.escalated_to.is_some() => "待处理（超 24 小时已上交区县）",
        "new" => "待处理",
        "confirmed" => "已确认",
        "dismissed" => "误报",
        _ => "",
    }
}

fn table(ctx: &Ctx, rows: &[AlertView]) -> Markup {
    html! {
        div.scroll { table.rows #alerts {
            thead { tr { th { "发现时间" } th { "学校" } th { "类型" } th { "严重程度" } th { "摄像头" } th { "次数" } th { "状态" } th { "处理" } } }
            tbody {
                @for a in rows {
                    tr data-alert=(a.id) {
                        td data-l="发现时间" { (when(a.detected_at_ms)) }
                        td data-l="学校" { (a.school_name) br; span.muted { (a.school) } }
                        td data-l="类型" { (a.type_zh) }
                        td data-l="严重程度" { (severity_tag(a.severity.parse::<Severity>().unwrap_or(Severity::General))) }
                        td data-l="摄像头" { (a.camera) " · " (a.zone_zh)
                            @if let Some(hash) = parse_ref(&a.snapshot) { br; (thumb(&hash, a.school, FileKind::Snapshot, "抓拍截图")) }
                            @else if !a.snapshot.is_empty() { br; span.muted { "抓拍：" (a.snapshot) } } }
                        td data-l="次数" { (a.detections) }
                        td data-l="状态" { (status_zh(a))
                            @if let Some(by) = a.verdict_by {
                                br; span.muted { (who(by, a.verdict_person.as_ref())) }
                                @if !a.verdict_text.is_empty() { br; span { "“" (a.verdict_text) "”" } }
                            }
                            @if let Some(o) = &a.overturned {
                                br; span.tag.due { "学校曾判误报：" (who(o.dismissed_by, o.dismissed_by_person.as_ref())) "“" (o.dismissal_reason) "”" }
                            }
                            @if let Some(c) = &a.case { br; a href={ "/cases/show?id=" (urlencode(c)) } { "案件 " (c) } }
                        }
                        td data-l="处理" { (actions(ctx, a)) }
                    }
                }
            }
        } }
    }
}

/// `130102 李娜（li.na）`, or the node alone.
pub fn who(node: topology::NodeId, person: Option<&protocol::people::Person>) -> String {
    match person {
        Some(p) => format!("{node} {}（{}）", p.name, p.account),
        None => format!("{node} 本机操作员"),
    }
}

/// A value as it goes into a link's query (`130102#12` → `130102%2312`).
pub fn urlencode(s: &str) -> String {
    let pair = serde_urlencoded::to_string([("v", s)]).unwrap_or_default();
    pair.strip_prefix("v=").unwrap_or_default().to_string()
}

fn actions(ctx: &Ctx, a: &AlertView) -> Markup {
    let judge = ctx.may(Action::JudgeAlert);
    let supervise = ctx.may(Action::SuperviseCase);
    let dismissed_by_school = a.status == "dismissed" && a.verdict_by == Some(a.school);
    // One verdict form: the session's token, the alert, the kind, then its own fields and button.
    let form = |kind: &str, fields: Markup| {
        html! {
            form.inline method="post" action="/alerts/verdict" {
                (csrf_field(&ctx.0.csrf))
                input type="hidden" name="id" value=(a.id);
                input type="hidden" name="kind" value=(kind);
                (fields)
            }
        }
    };
    html! {
        @if judge && a.status == "new" {
            (form("confirm", html! {
                input name="note" placeholder="确认说明（可空）" maxlength="200";
                @if supervise { label.inline { input type="checkbox" name="open_case" value="1"; " 挂账并下发整改通知" } }
                button type="submit" { "确认" }
            }))
            (form("dismiss", html! {
                input name="reason" placeholder="误报原因（必填）" maxlength="200";
                button.plain type="submit" { "判为误报" }
            }))
        }
        @if judge && supervise && a.status == "confirmed" && a.case.is_none() {
            (form("confirm", html! {
                input type="hidden" name="open_case" value="1";
                button.plain type="submit" { "挂账" }
            }))
        }
        @if judge && supervise && dismissed_by_school && ctx.0.me.tier() != Tier::School {
            (form("overturn", html! {
                input name="reason" placeholder="推翻理由（必填）" maxlength="200";
                button.danger type="submit" { "推翻误报判定" }
            }))
        }
    }
}

/// A verdict form.
#[derive(Debug, Deserialize)]
pub struct VerdictForm {
    pub id: String,
    /// confirm, dismiss or overturn.
    pub kind: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub open_case: Option<String>,
}

pub async fn verdict_post(s: &AdminState, ctx: Ctx, f: VerdictForm) -> Response {
    let kind = match f.kind.as_str() {
        "confirm" => VerdictKind::Confirm,
        "dismiss" => VerdictKind::Dismiss,
        "overturn" => VerdictKind::Overturn,
        _ => return render(s, ctx.with_error("不认识的处理方式"), "new", StatusCode::BAD_REQUEST).await,
    };
    let texts = field("说明", &f.note, 200).and_then(|note| Ok((note, field("原因", &f.reason, 200)?)));
    let (note, why) = match texts {
        Ok(t) => t,
        Err(e) => return render(s, ctx.with_error(e), "new", StatusCode::BAD_REQUEST).await,
    };
    if kind != VerdictKind::Confirm && why.is_empty() {
        let e = if kind == VerdictKind::Dismiss {
            "判为误报要写明原因"
        } else {
            "推翻误报判定要写明理由"
        };
        return render(s, ctx.with_error(e), "new", StatusCode::BAD_REQUEST).await;
    }
    let open_case = f.open_case.is_some();
    let req = AlertVerdict { note, open_case, reason: why };
    match give_verdict(s, &ctx.principal(), &f.id, kind, req).await {
        Ok(v) if kind == VerdictKind::Confirm && open_case && v.0.state.case.is_some() => {
            let case = v.0.state.case.map(|c| c.to_string()).unwrap_or_default();
            done(&format!("/cases/show?id={}", urlencode(&case)), "case-opened")
        }
        Ok(_) => {
            let notice = match kind {
                VerdictKind::Confirm if open_case => "case-opened",
                VerdictKind::Confirm => "confirmed",
                VerdictKind::Dismiss => "dismissed",
                VerdictKind::Overturn => "overturned",
            };
            done("/alerts", notice)
        }
        Err(e) => {
            let code = e.0;
            render(s, ctx.with_error(reason(&e)), "new", code).await
        }
    }
}

pub async fn verdict(State(s): State<AdminState>, ctx: Ctx, Form(f): Form<VerdictForm>) -> Response {
    verdict_post(&s, ctx, f).await.into_response()
}
