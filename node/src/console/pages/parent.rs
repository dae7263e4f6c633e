//! 家长: what a parent of the school sees — the school, the kitchen cameras the school opened to
//! parents, and the school's public record (online spot checks and how problems were put right).
//! Nothing else: no alerts, no comments between school and supervisors, no other school.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use protocol::case::CaseStatus;
use protocol::people::Action;
use protocol::registry::{EntityData, EntityKind};
use topology::Tier;

use crate::api::AdminState;
use crate::api::cases::{CaseListParams, case_views};
use crate::api::spot::{SpotCheckView, SpotParams, held_checks};
use crate::console::layout::{Nav, empty, page as shell, when};
use crate::console::pages::{Ctx, forbidden, reason, refused};

pub async fn page(State(s): State<AdminState>, ctx: Ctx) -> Response {
    if !ctx.may(Action::ViewParentPage) || s.me.tier() != Tier::School {
        return forbidden(ctx, Nav::Parent, "家长页面只对本校家长开放");
    }
    let school = s.me;
    let mut ctx = ctx;
    let cameras: Vec<_> = match s.reads.registry_of(school).await {
        Ok(r) => r
            .into_values()
            .filter(|e| e.entity.kind == EntityKind::Camera)
            .filter_map(|e| match e.data {
                EntityData::Camera(c) if c.parent_visible => Some((e.entity.id, c)),
                _ => None,
            })
            .collect(),
        Err(e) => {
            ctx = ctx.with_error(e.to_string());
            Vec::new()
        }
    };
    let p = SpotParams { under: Some(school), day: None, month: None, limit: None };
    let checks: Vec<SpotCheckView> = match held_checks(&s, &p, 30).await {
        Ok(evs) => evs.iter().filter_map(SpotCheckView::from_stored).collect(),
        Err(e) => {
            ctx = ctx.with_error(reason(&e));
            Vec::new()
        }
    };
    let cases =
        match case_views(&s, CaseListParams { under: Some(school.to_string()), ..CaseListParams::default() }).await {
            Ok(c) => c,
            Err(e) => {
                ctx = ctx.with_error(reason(&e));
                Vec::new()
            }
        };
    let school_name = crate::api::kit::name_of(&s, school);
    let body = html! {
        div.box {
            p { strong { (school_name) } }
            p.muted { "本页内容由学校和监管部门公开，每次打开时更新。" }
        }
        h2 { "后厨画面（学校开放给家长的摄像头）" }
        @if cameras.is_empty() { (empty("学校还没有开放给家长观看的摄像头。")) } @else {
            ul #cameras { @for (id, c) in &cameras { li { (c.name) " · " (c.zone.zh()) " " span.muted { "（" (id) "）" } } } }
        }
        h2 { "监管部门的网络巡查" }
        @if checks.is_empty() { (empty("最近没有巡查记录。")) } @else {
            div.scroll { table.rows #checks {
                thead { tr { th { "日期" } th { "结果" } } }
                tbody { @for c in &checks {
                    tr { td data-l="日期" { (c.day) } td data-l="结果" {
                        @if c.passed { span.tag.ok { "合格" } } @else { span.tag.bad { "发现问题：" (c.failed.iter().map(|a| a.zh()).collect::<Vec<_>>().join("、")) } }
                    } }
                } }
            } }
        }
        h2 { "问题整改情况" }
        @if cases.is_empty() { (empty("没有需要整改的问题。")) } @else {
            div.scroll { table.rows #public-cases {
                thead { tr { th { "发现日期" } th { "问题" } th { "整改情况" } } }
                tbody { @for c in &cases {
                    tr {
                        td data-l="发现日期" { (when(c.opened_at_ms)) }
                        td data-l="问题" { (c.title) }
                        td data-l="整改情况" { @match c.status {
                            CaseStatus::Closed => span.tag.ok { "已整改完毕" },
                            CaseStatus::Cancelled => span.tag { "经核实不属问题" },
                            _ => span.tag.due { "整改中" },
                        } }
                    }
                } }
            } }
        }
    };
    refused(StatusCode::OK, shell(&ctx.0, Nav::Parent, "家长", body))
}
