//! 预警: the early warnings the rules judged about the schools of this node's subtree (from their
//! ledgers, certificates, licences, cameras and cases), red first, with the counts per level at
//! the top; filters for level, rule, unit and resolved ones (`?level=&rule=&under=&all=1`). Each
//! row names its school, what it is about, the day, since when, who judged it (the school itself
//! or its county) and the automatic case it opened. Below: 约谈候选 and 问责记录.
//!
//! It reads through the admin API's own functions ([`list_as`], [`candidates_as`]), so it shows
//! what `mingchu warning list` shows.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use protocol::alert::AlertType;
use protocol::ledger::Meal;
use protocol::people::Action;
use protocol::registry::{Entity, EntityData, EntityRef};
use protocol::warning::{Level, RuleId};
use serde::Deserialize;
use topology::NodeId;

use crate::api::AdminState;
use crate::api::warnings::{
    CandidateView, Candidates, UnderParams, WarningParams, WarningView, candidates_as, list_as,
};
use crate::console::layout::{Nav, page as shell, when};
use crate::console::pages::alerts::urlencode;
use crate::console::pages::{Ctx, forbidden, reason, refused};

#[derive(Debug, Default, Deserialize)]
pub struct WarningsQuery {
    /// red, orange, yellow (or 红色, 橙, …).
    pub level: Option<String>,
    /// A rule (`health-cert-missing` or its Chinese name).
    pub rule: Option<String>,
    /// Only the schools under this unit.
    pub under: Option<String>,
    /// `1`: resolved ones too.
    pub all: Option<String>,
}

/// Most warnings on one page.
pub const PAGE_ROWS: usize = 300;

pub async fn page(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<WarningsQuery>) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Warnings, "您的角色不能查看预警");
    }
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_string();
    let (level_text, rule_text, under_text) = (text(&q.level), text(&q.rule), text(&q.under));
    let all = matches!(q.all.as_deref(), Some("1" | "true" | "on"));
    let level = match level_text.as_str() {
        "" => None,
        t => match t.parse::<Level>() {
            Ok(l) => Some(l),
            Err(_) => {
                return fail(
                    ctx,
                    StatusCode::BAD_REQUEST,
                    &format!("没有“{}”这一预警等级（红色、橙色、黄色）。", cut(t)),
                );
            }
        },
    };
    let rule = match rule_text.as_str() {
        "" => None,
        t => match t.parse::<RuleId>() {
            Ok(r) => Some(r),
            Err(_) => return fail(ctx, StatusCode::BAD_REQUEST, &format!("没有“{}”这条预警规则。", cut(t))),
        },
    };
    let who = ctx.principal();
    let params = WarningParams {
        school: None,
        under: (!under_text.is_empty()).then(|| under_text.clone()),
        active: Some(!all),
        rule: rule.map(|r| r.as_str().to_string()),
        level: None,
        limit: Some("all".into()),
    };
    let listed = match list_as(&s, &who, &params).await {
        Ok(v) => v,
        Err(e) => return fail(ctx, e.0, &reason(&e)),
    };
    let candidates = candidates_as(&s, &who, &UnderParams { under: params.under.clone() }).await;
    let mut counts: BTreeMap<Level, usize> = BTreeMap::new();
    for w in listed.iter().filter(|w| w.active) {
        *counts.entry(w.level.unwrap_or(w.peak)).or_insert(0) += 1;
    }
    let active = listed.iter().filter(|w| w.active).count();
    let shown: Vec<&WarningView> =
        listed.iter().filter(|w| level.is_none_or(|l| w.level.unwrap_or(w.peak) == l)).collect();
    // The names of what the warnings are about (staff, canteens, suppliers, cameras), per school.
    let mut registries: BTreeMap<NodeId, BTreeMap<EntityRef, Entity>> = BTreeMap::new();
    for w in shown.iter().take(PAGE_ROWS) {
        if let std::collections::btree_map::Entry::Vacant(e) = registries.entry(w.school) {
            e.insert(s.reads.registry_of(w.school).await.unwrap_or_default());
        }
    }
    let link = |lv: Option<Level>| {
        let mut q = Vec::new();
        if let Some(l) = lv {
            q.push(format!("level={}", l.as_str()));
        }
        if let Some(r) = rule {
            q.push(format!("rule={}", r.as_str()));
        }
        if !under_text.is_empty() {
            q.push(format!("under={}", urlencode(&under_text)));
        }
        if all {
            q.push("all=1".into());
        }
        if q.is_empty() { "/warnings".to_string() } else { format!("/warnings?{}", q.join("&")) }
    };
    let filtered = level.is_some() || rule.is_some() || !under_text.is_empty() || all;
    let body = html! {
        p.muted.lead { "由规则根据学校的台账、健康证、许可证、摄像头和案件自动判定，红色最严重。摄像头 AI 抓拍的告警见“AI 预警”。" }
        div.lvstrip #levels {
            a class={ "lvc all" @if level.is_none() { " on" } } href=(link(None)) { div.l { "生效预警" } div.n { (active) } }
            @for l in [Level::Red, Level::Orange, Level::Yellow] {
                @let n = counts.get(&l).copied().unwrap_or(0);
                a class={ "lvc lv-" (l.as_str()) @if n == 0 { " zero" } @if level == Some(l) { " on" } } href=(link(Some(l))) {
                    div.l { (l.zh()) } div.n { (n) }
                }
            }
        }
        form.inline.filters method="get" action="/warnings" {
            @if let Some(l) = level { input type="hidden" name="level" value=(l.as_str()); }
            label.inline { "规则"
                select name="rule" {
                    option value="" { "全部规则" }
                    @for r in RuleId::ALL { option value=(r.as_str()) selected[rule == Some(r)] { (r.zh()) } }
                }
            }
            label.inline { "只看单位" input name="under" value=(under_text) placeholder="如 130102 或学校编号"; }
            label.inline { input type="checkbox" name="all" value="1" checked[all]; "含已解除的" }
            button.plain type="submit" { "筛选" }
            @if filtered { a href="/warnings" { "清除筛选" } }
        }
        @if shown.is_empty() {
            p.allgood #no-warnings {
                @if filtered { "没有符合筛选条件的预警。" } @else { "本单位及下级学校目前没有生效的预警。" }
            }
        } @else {
            (table(&s, &shown[..shown.len().min(PAGE_ROWS)], &registries))
            @if shown.len() > PAGE_ROWS { p.muted { "共 " (shown.len()) " 条，只列出最严重、最新的 " (PAGE_ROWS) " 条；请按规则或单位筛选。" } }
        }
        (candidates_section(candidates))
    };
    refused(StatusCode::OK, shell(&ctx.0, Nav::Warnings, "预警", body))
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

fn fail(ctx: Ctx, code: StatusCode, why: &str) -> Response {
    let c = ctx.with_error(why.to_string());
    refused(code, shell(&c.0, Nav::Warnings, "预警", html! { p { a href="/warnings" { "返回预警" } } }))
}

/// A level as a coloured badge (`红色`), or 已解除 with the highest level it reached.
pub fn level_badge(level: Option<Level>, peak: Level) -> Markup {
    html! {
        @match level {
            Some(l) => span class={ "lv lv-" (l.as_str()) } { (l.zh()) },
            None => { span.lv.lv-done { "已解除" } br; span.muted.small { "曾为" (peak.zh()) } },
        }
    }
}

fn table(s: &AdminState, rows: &[&WarningView], registries: &BTreeMap<NodeId, BTreeMap<EntityRef, Entity>>) -> Markup {
    // At a school every row is about the school itself: no column for it.
    let schools = s.me.tier() != topology::Tier::School;
    let now = s.clock.wall_ms();
    html! {
        div.scroll { table.rows.warnings #warnings {
            thead { tr {
                th { "等级" } th { "规则" } @if schools { th { "学校" } } th { "对象" } th { "日期" } th { "情况" }
                th { "起于" } th { "判定单位" } th { "案件" }
            } }
            tbody { @for w in rows {
                tr class={ "w-" (w.level.map_or("done", |l| l.as_str())) } data-key=(w.key) {
                    td data-l="等级" { (level_badge(w.level, w.peak)) }
                    td.rule data-l="规则" { (w.rule_zh) }
                    @if schools {
                        td.school data-l="学校" {
                            a href={ "/ledger?school=" (w.school) } title="查看该校台账" { (if w.school_name.is_empty() { w.school.to_string() } else { w.school_name.clone() }) }
                            br; span.muted.small { (w.school) }
                        }
                    }
                    td.subject data-l="对象" { (subject(w, registries.get(&w.school))) }
                    td.nowrap data-l="日期" { @if w.period.is_empty() { span.muted { "持续" } } @else { (w.period) } }
                    td.text data-l="情况" {
                        (w.text)
                        @if !w.active && !w.resolve_reason.is_empty() {
                            br; span.muted.small { "解除：" (w.resolve_reason) }
                        }
                    }
                    td.nowrap data-l="起于" {
                        (short_when(w.first_raised_ms, now))
                        @if w.raised_ms != w.first_raised_ms { br; span.muted.small { "变更 " (short_when(w.raised_ms, now)) } }
                        @if let Some(r) = w.resolved_ms { @if !w.active { br; span.muted.small { "解除 " (short_when(r, now)) } } }
                    }
                    td.nowrap data-l="判定单位" {
                        @if w.judged_by == w.school { "学校" }
                        @else { (crate::api::kit::name_of(s, w.judged_by)) br; span.muted.small { (w.judged_by) } }
                    }
                    td.nowrap data-l="案件" {
                        @match (&w.case, &w.case_no) {
                            (Some(id), no) => a href={ "/cases/show?id=" (urlencode(id)) } title="自动挂账的案件" { (no.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| id.clone())) },
                            _ => span.muted { "—" },
                        }
                    }
                }
            } }
        } }
    }
}

/// `12-01 02:36` this year, `2025-12-01 02:36` before.
fn short_when(ms: u64, now: u64) -> String {
    let full = when(ms);
    if full.get(..4) == when(now).get(..4) { full.get(5..).unwrap_or_default().to_string() } else { full }
}

/// What a warning is about, in a person's words: a staff member's, canteen's, supplier's or
/// camera's name; `学生食堂 · 午餐`; a ledger record (linked to its day); a case; the school.
fn subject(w: &WarningView, reg: Option<&BTreeMap<EntityRef, Entity>>) -> Markup {
    let name = |id: &str| -> Option<String> {
        reg?.values().find_map(|e| {
            if e.entity.id != id || e.entity.node != w.school {
                return None;
            }
            match &e.data {
                EntityData::Staff(x) => Some(format!("{}（{}）", x.name, x.role.zh())),
                EntityData::Canteen(x) => Some(x.name.clone()),
                EntityData::Supplier(x) => Some(x.name.clone()),
                EntityData::Camera(x) => Some(x.name.clone()),
                _ => None,
            }
        })
    };
    let (head, tail) = w.subject.split_once('/').unwrap_or((&w.subject, ""));
    let tail_zh = if tail.is_empty() {
        String::new()
    } else if let Ok(m) = tail.parse::<Meal>() {
        m.zh().to_string()
    } else if let Ok(t) = tail.parse::<AlertType>() {
        t.zh().to_string()
    } else {
        tail.to_string()
    };
    let record = match w.rule {
        RuleId::SampleUnderweight | RuleId::SampleKeptShort => Some(("留样记录", "food-sample")),
        RuleId::PurchaseCertsIncomplete => Some(("采购记录", "purchase")),
        _ => None,
    };
    let case = matches!(w.rule, RuleId::RectificationOverdue | RuleId::ReviewOverdue);
    html! {
        @if head == w.school.to_string() {
            "全校"
        } @else if let Some((what, anchor)) = record {
            a href={ "/ledger?school=" (w.school) "&date=" (w.period) "#k-" (anchor) } { (what) }
            br; span.muted.small { (head) }
        } @else if case {
            a href={ "/cases/show?id=" (urlencode(head)) } { "案件 " (head) }
        } @else {
            @match name(head) {
                Some(n) => { (n) @if !tail_zh.is_empty() { " · " (tail_zh) } },
                None => { (head) @if !tail_zh.is_empty() { " · " (tail_zh) } },
            }
        }
    }
}

fn candidates_section(c: Result<Candidates, crate::api::kit::ApiFail>) -> Markup {
    let c = match c {
        Ok(c) => c,
        Err(e) => return html! { h2 { "约谈候选与问责记录" } p.note { "无法读取：" (reason(&e)) } },
    };
    let rows = |list: &[CandidateView], subject: &str, case_link: bool| {
        html! {
            div.scroll { table.rows.candidates {
                thead { tr { th { "学校" } th { (subject) } th { "原因" } } }
                tbody { @for x in list {
                    tr {
                        td data-l="学校" { (if x.school_name.is_empty() { x.school.to_string() } else { x.school_name.clone() }) br; span.muted.small { (x.school) } }
                        td.nowrap data-l=(subject) {
                            @if case_link { a href={ "/cases/show?id=" (urlencode(&x.evidence)) } { (x.subject) } } @else { (x.subject) }
                        }
                        td.text data-l="原因" { (x.reason) }
                    }
                } }
            } }
        }
    };
    html! {
        div.grid2 #candidates {
            section.box #interview {
                h2 { "约谈候选" @if !c.interview.is_empty() { span.count { (c.interview.len()) } } }
                p.muted.small { "同一食堂 30 天内同类问题被确认 3 次及以上的学校，建议约谈学校负责人。" }
                @if c.interview.is_empty() { p.none { "目前没有约谈候选。" } } @else { (rows(&c.interview, "食堂", false)) }
            }
            section.box #accountability {
                h2 { "问责记录" @if !c.accountability.is_empty() { span.count { (c.accountability.len()) } } }
                p.muted.small { "拒收整改通知，或整改 3 次复核未通过的案件。" }
                @if c.accountability.is_empty() { p.none { "目前没有需要问责的案件。" } } @else { (rows(&c.accountability, "案件", true)) }
            }
        }
    }
}
