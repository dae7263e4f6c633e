//! 家长: what a parent of the school sees — the school, the kitchen cameras the school opened to
//! parents (each with its live picture, [`crate::console::pages::cameras::live`]), the public part
//! of its ledgers (the food samples kept and the accompanied meals of the last
//! [`LEDGER_DAYS`] days: what, when, kept how — not who on the staff did it), and its public
//! record (online spot checks and how problems were put right). Nothing else: no alerts, no
//! comments between school and supervisors, no staff or health records, no other school. The page
//! is laid out for a phone first.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use protocol::case::CaseStatus;
use protocol::ledger::LedgerRecord;
use protocol::people::Action;
use protocol::registry::{EntityData, EntityKind};
use topology::Tier;

use crate::api::AdminState;
use crate::api::cases::{CaseListParams, case_views};
use crate::api::spot::{SpotCheckView, SpotParams, held_checks};
use crate::console::layout::{Nav, empty, page as shell, when};
use crate::console::pages::{Ctx, forbidden, reason, refused};

/// The days of ledger records the page shows (today and the days before).
pub const LEDGER_DAYS: u32 = 7;

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
    let today = protocol::ledger::china_day(s.clock.wall_ms());
    let (mut samples, mut meals) = (Vec::new(), Vec::new());
    match s.reads.ledger(school, today.saturating_sub(LEDGER_DAYS - 1), today).await {
        Ok(items) => {
            for item in items.values() {
                match item.live() {
                    Some(LedgerRecord::FoodSample(f)) => samples.push((item.entry.day, f.clone())),
                    Some(LedgerRecord::AccompaniedMeal(a)) => meals.push((item.entry.day, a.clone())),
                    _ => {}
                }
            }
        }
        Err(e) => ctx = ctx.with_error(format!("读取台账失败：{e}")),
    }
    samples.sort_by_key(|x| std::cmp::Reverse((x.0, x.1.sampled_at_ms)));
    meals.sort_by_key(|x| std::cmp::Reverse(x.0));
    let school_name = crate::api::kit::name_of(&s, school);
    let body = html! {
        div.box {
            p { strong { (school_name) } }
            p.muted { "本页内容由学校和监管部门公开，每次打开时更新。" }
        }
        h2 { "后厨画面（学校开放给家长的摄像头）" }
        @if cameras.is_empty() { (empty("学校还没有开放给家长观看的摄像头。")) } @else {
            ul #cameras { @for (id, c) in &cameras { li data-camera=(id) {
                a.live href=(format!("/cameras/live?camera={id}")) { (c.name) " · " (c.zone.zh()) " · 看直播" }
            } } }
        }
        h2 { "食品留样（近 " (LEDGER_DAYS) " 天）" }
        @if samples.is_empty() { (empty("近期没有留样记录。")) } @else {
            div.scroll { table.rows #samples {
                thead { tr { th { "日期" } th { "餐次" } th { "菜品" } th { "留样" } } }
                tbody { @for (day, f) in &samples {
                    tr {
                        td data-l="日期" { (protocol::ledger::day_str(*day)) }
                        td data-l="餐次" { (f.meal.zh()) }
                        td data-l="菜品" { (f.dish) }
                        td data-l="留样" { (f.grams) " 克，" @match f.disposed_at_ms {
                            Some(_) => "已到期处置",
                            None if f.refrigerated => "冷藏留存中",
                            None => "未冷藏",
                        } }
                    }
                } }
            } }
        }
        h2 { "陪餐记录（近 " (LEDGER_DAYS) " 天）" }
        @if meals.is_empty() { (empty("近期没有陪餐记录。")) } @else {
            div.scroll { table.rows #meals {
                thead { tr { th { "日期" } th { "餐次" } th { "陪餐人" } th { "评价" } } }
                tbody { @for (day, a) in &meals {
                    tr {
                        td data-l="日期" { (protocol::ledger::day_str(*day)) }
                        td data-l="餐次" { (a.meal.zh()) }
                        td data-l="陪餐人" { (a.companion.zh()) }
                        td data-l="评价" { @if a.rating == 0 { "未评价" } @else { (a.rating) " / 5 分" } }
                    }
                } }
            } }
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
