//! 首页: what needs this person today — new alerts, notices to answer or review, overdue cases,
//! the 督办 list, and (for a supervisor) the severe alerts schools dismissed by themselves.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use protocol::case::CaseStatus;
use protocol::people::Action;
use topology::Tier;

use crate::api::AdminState;
use crate::console::layout::{Nav, empty, page as shell, when};
use crate::console::pages::alerts::{alerts_with, urlencode, who};
use crate::console::pages::cases::{case_table, cases_in};
use crate::console::pages::{Ctx, refused};

/// Rows of each list on the home page (the whole list is a click away).
pub const HOME_ROWS: usize = 20;

/// Days before a deadline from which a notice counts as due soon.
pub const DUE_SOON_DAYS: u64 = 3;

pub async fn page(State(s): State<AdminState>, ctx: Ctx) -> Response {
    if ctx.may(Action::ViewParentPage) {
        return Redirect::to("/parent").into_response();
    }
    if !ctx.may(Action::ViewSubtree) {
        return refused(
            axum::http::StatusCode::FORBIDDEN,
            shell(&ctx.0, Nav::Home, "首页", empty("您的角色没有可看的内容。")),
        );
    }
    let mut ctx = ctx;
    let fail = |e: String, ctx: &mut Ctx| {
        ctx.0.flash = Some(crate::console::layout::Flash::Error(e));
    };
    let new_alerts = alerts_with(&s, "new").await.unwrap_or_else(|e| {
        fail(e, &mut ctx);
        Vec::new()
    });
    let dismissed = crate::api::kit::read_storage(&s, |st| crate::api::alerts::self_dismissed_views(st, 200))
        .await
        .map(|v| v.into_iter().map(|a| a.named(&s)).collect::<Vec<_>>())
        .unwrap_or_default();
    let open = cases_in(&s, "open", usize::MAX).await.map(|(_, rows)| rows).unwrap_or_else(|e| {
        fail(e, &mut ctx);
        Vec::new()
    });
    let now = s.clock.wall_ms();
    let school = s.me.tier() == Tier::School;
    let overdue: Vec<_> = open.iter().filter(|c| c.overdue).cloned().collect();
    let soon = |c: &&crate::api::cases::CaseView| {
        c.deadline_ms.is_some_and(|d| d > now && d - now <= DUE_SOON_DAYS * 86_400_000)
    };
    let to_answer: Vec<_> = open
        .iter()
        .filter(|c| matches!(c.status, CaseStatus::NoticeIssued | CaseStatus::Rectifying))
        .cloned()
        .collect();
    let to_review: Vec<_> =
        open.iter().filter(|c| matches!(c.status, CaseStatus::Submitted | CaseStatus::Reviewed)).cloned().collect();
    let supervised: Vec<_> =
        open.iter().filter(|c| c.supervisor == s.me && c.supervisor.tier() < Tier::County).cloned().collect();
    let due_soon = open.iter().filter(soon).count();
    let severe_dismissed: Vec<_> = dismissed
        .iter()
        .filter(|a| a.severity == "severe" && a.verdict_by == Some(a.school) && a.overturned.is_none())
        .collect();
    let card = |n: usize, label: &str, href: &str, warn: bool| {
        html! {
            a.card class=@if warn && n > 0 { "warn" } href=(href) { div.n { (n) } div.l { (label) } }
        }
    };
    let body = html! {
        div.cards #cards {
            (card(new_alerts.len(), "待处理预警", "/alerts?status=new", true))
            @if school {
                (card(to_answer.len(), "待签收或整改的通知", "/cases?view=open", true))
            } @else {
                (card(to_review.len(), "待复核或销号", "/cases?view=open", true))
            }
            (card(due_soon, &format!("{DUE_SOON_DAYS} 天内到期"), "/cases?view=open", true))
            (card(overdue.len(), "逾期未整改", "/cases?view=overdue", true))
            @if !school { (card(supervised.len(), "本级督办", "/cases?view=supervised", true)) }
        }
        @if school {
            h2 { "需要本校处理的通知" }
            @if to_answer.is_empty() { (empty("没有待处理的整改通知。")) } @else { (case_table(&to_answer, to_answer.len(), HOME_ROWS)) }
        } @else {
            h2 { "待复核、待销号的案件" }
            @if to_review.is_empty() { (empty("没有待复核的案件。")) } @else { (case_table(&to_review, to_review.len(), HOME_ROWS)) }
            @if !supervised.is_empty() { h2 { "本级督办" } (case_table(&supervised, supervised.len(), HOME_ROWS)) }
            h2 { "学校自行判定误报的严重预警" }
            @if severe_dismissed.is_empty() { (empty("没有。")) } @else {
                ul #severe-dismissed { @for a in severe_dismissed.iter().take(20) {
                    li { (when(a.detected_at_ms)) " " (a.school_name) " " strong { (a.type_zh) } " — "
                        (who(a.school, a.verdict_person.as_ref())) "：“" (a.verdict_text) "” "
                        a href="/alerts?status=dismissed" { "查看并处理" } }
                } }
            }
        }
        @if !overdue.is_empty() { h2 { "逾期未整改" } (case_table(&overdue, overdue.len(), HOME_ROWS)) }
        h2 { "最新预警" }
        @if new_alerts.is_empty() { (empty("没有待处理的预警。")) } @else {
            ul #new-alerts { @for a in new_alerts.iter().take(10) {
                li { (when(a.detected_at_ms)) " " (a.school_name) " " strong { (a.type_zh) } " " (a.severity_zh) " "
                    a href={ "/alerts?status=new#" (urlencode(&a.id)) } { "处理" } }
            } }
        }
    };
    refused(axum::http::StatusCode::OK, shell(&ctx.0, Nav::Home, "首页", body))
}
