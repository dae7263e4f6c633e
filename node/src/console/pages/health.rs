//! 运行状态: the health of this node's subtree, problems first — a strip of counts per state, the
//! nodes that are not fine (worst first), then the whole tree with the schools folded into
//! per-county counts — and one node's detail (`/health/{node}`): its own report, its parent's
//! view of the link to it, and, for the node the console runs on, its own links.
//!
//! The page reloads itself every [`REFRESH_SECS`] seconds with `<meta http-equiv="refresh">`:
//! no script. It reads the same [`crate::api::health::view_for`] as `GET /api/health`.

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use protocol::health::{Disconnect, NodeState, Phase, SelfReport, Severity};
use protocol::people::Action;
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::health::{HealthRowView, HealthView, view_for};
use crate::console::layout::{Nav, PageCtx, empty, page_refreshing};
use crate::console::pages::alerts::urlencode;
use crate::console::pages::{Ctx, forbidden, reason, refused};
use crate::runtime::link::{LinkState, LinkStatus};
use crate::runtime::root::NodeMsg;

/// The page reloads itself this often (seconds).
pub const REFRESH_SECS: u32 = 5;
/// Most rows of the problems table (a city down makes its whole subtree a problem).
pub const PROBLEM_ROWS: usize = 200;
/// Most rows of the tree (a county's schools are listed one by one).
pub const TREE_ROWS: usize = 1_000;

/// `GET /health?under=`: the subtree, problems first. At a school: the school itself in detail.
pub async fn page(State(s): State<AdminState>, ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Health, "您的角色不能查看运行状态");
    }
    let fields: Vec<(String, String)> =
        q.as_deref().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    let under_text = fields.iter().find(|(k, _)| k == "under").map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    if under_text.is_empty() && s.me.tier() == Tier::School {
        return detail_of(&s, ctx, s.me).await;
    }
    let under = if under_text.is_empty() {
        s.me
    } else {
        match checked(&s, &under_text) {
            Ok(u) => u,
            Err((code, why)) => return fail(ctx, code, &why),
        }
    };
    let view = match view_for(&s, Some(&under.to_string()), false).await {
        Ok(v) => v,
        Err(e) => return fail(ctx, e.0, &reason(&e)),
    };
    if !view.rows.iter().any(|r| r.node == under) {
        return fail(ctx, StatusCode::NOT_FOUND, &format!("没有编号为 {under} 的单位或学校。"));
    }
    let body = overview(&s, &view, &under_text);
    let title =
        if under == s.me { "运行状态".to_string() } else { format!("运行状态 · {}", label(&view, under)) };
    refused(StatusCode::OK, page_refreshing(&ctx.0, Nav::Health, &title, Some(REFRESH_SECS), body))
}

/// `GET /health/{node}`: one node in detail.
pub async fn detail(State(s): State<AdminState>, ctx: Ctx, node: Result<Path<String>, PathRejection>) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Health, "您的角色不能查看运行状态");
    }
    let text = match node {
        Ok(Path(t)) => t,
        Err(_) => return fail(ctx, StatusCode::BAD_REQUEST, "节点编号无法识别。"),
    };
    match checked(&s, text.trim()) {
        Ok(n) => detail_of(&s, ctx, n).await,
        Err((code, why)) => fail(ctx, code, &why),
    }
}

/// A node code from a person: malformed is 400, outside this node's subtree 403.
fn checked(s: &AdminState, text: &str) -> Result<NodeId, (StatusCode, String)> {
    let n = text.parse::<NodeId>().map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("“{}”不是有效的单位编号（{e}）。编号形如 13、1301、130102 或 130102-S0001。", cut(text, 40)),
        )
    })?;
    if !n.in_subtree_of(s.me) {
        return Err((StatusCode::FORBIDDEN, format!("{n} 不在本单位（{}）的下辖范围内，无权查看。", s.me)));
    }
    Ok(n)
}

fn cut(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// The page with a refusal, and the status it deserves.
fn fail(ctx: Ctx, code: StatusCode, why: &str) -> Response {
    let c = ctx.with_error(why.to_string());
    let body = html! { p { a href="/health" { "返回运行状态" } } };
    refused(code, crate::console::layout::page(&c.0, Nav::Health, "运行状态", body))
}

async fn detail_of(s: &AdminState, ctx: Ctx, n: NodeId) -> Response {
    let view = match view_for(s, Some(&n.to_string()), false).await {
        Ok(v) => v,
        Err(e) => return fail(ctx, e.0, &reason(&e)),
    };
    let Some(row) = view.rows.iter().find(|r| r.node == n) else {
        return fail(ctx, StatusCode::NOT_FOUND, &format!("没有编号为 {n} 的单位或学校。"));
    };
    let own = if n == s.me {
        ractor::call_t!(s.node, NodeMsg::Status, crate::api::kit::ADMIN_CALL_TIMEOUT_MS).ok()
    } else {
        None
    };
    let body = node_detail(s, &ctx.0, &view, row, own.as_ref());
    let title = format!("运行状态 · {}", label(&view, n));
    refused(StatusCode::OK, page_refreshing(&ctx.0, Nav::Health, &title, Some(REFRESH_SECS), body))
}

// ---------------------------------------------------------------------------------------------
// The overview

fn overview(s: &AdminState, view: &HealthView, under_text: &str) -> Markup {
    let now = view.now_ms;
    let mut problems: Vec<&HealthRowView> = view.rows.iter().filter(|r| r.severity != Severity::Ok).collect();
    // Worst first; within a severity, worst state first, then tree order (the sort is stable).
    problems.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.state.cmp(&a.state)));
    let fold = view.under.tier() < Tier::County;
    html! {
        (refresh_line(view))
        (scope_line(s, view, under_text))
        (strip(view))
        h2 { "需要关注" @if !problems.is_empty() { span.count { (problems.len()) } } }
        @if problems.is_empty() {
            p.allgood #problems { "全部 " (view.total) " 个节点运行正常。" }
        } @else {
            div.scroll { table.rows.health #problems {
                thead { tr {
                    th { "单位" } th { "层级" } th { "状态" } th { "起于" } th { "最后上报" } th { "上级最后联系" }
                    th { "原因与提醒" } th.num { "待上报" } th.num { "延迟" }
                } }
                tbody { @for r in problems.iter().take(PROBLEM_ROWS) {
                    tr class=(row_class(r)) {
                        td data-l="单位" { (unit_cell(r)) }
                        td data-l="层级" { (tier_zh(r.tier)) }
                        td data-l="状态" { (state_tag(r.state)) }
                        td data-l="起于" { (at(now, r.since_ms)) }
                        td data-l="最后上报" { (at(now, r.reported_ms)) }
                        td data-l="上级最后联系" { (at(now, r.heard_ms)) }
                        td.why data-l="原因与提醒" { (why_cell(r)) }
                        td.num data-l="待上报" { (backlog(r.report.as_ref())) }
                        td.num data-l="延迟" { (lag(r.report.as_ref())) }
                    }
                } }
            } }
            @if problems.len() > PROBLEM_ROWS {
                p.muted { "共 " (problems.len()) " 个节点有问题，只列出最严重的 " (PROBLEM_ROWS) " 个；请按单位筛选。" }
            }
        }
        h2 { "全部节点" }
        (tree(view, fold))
    }
}

fn refresh_line(view: &HealthView) -> Markup {
    html! {
        p.refresh #refresh {
            span { "每 " (REFRESH_SECS) " 秒自动刷新，上次刷新 " time { (clock(view.now_ms)) } }
        }
    }
}

fn scope_line(s: &AdminState, view: &HealthView, under_text: &str) -> Markup {
    html! {
        div.scope {
            span {
                "范围：" strong { (label(view, view.under)) } "，共 " (view.total) " 个节点"
                @if view.under != s.me { " · " a href="/health" { "回到本单位全部" } }
                " · " a href={ "/health/" (view.under) } { "查看该节点详情" }
            }
            form.inline method="get" action="/health" {
                label.inline { "只看单位" input name="under" value=(under_text) placeholder="如 1301、130102"; }
                button.plain type="submit" { "筛选" }
            }
        }
    }
}

/// The counts per state, colored, and the worst severity.
fn strip(view: &HealthView) -> Markup {
    let (verdict, class) = match view.severity {
        Severity::Ok => ("全部正常", "sev ok"),
        Severity::Warning => ("有警告", "sev warn"),
        Severity::Critical => ("有严重问题", "sev bad"),
    };
    html! {
        div.strip #summary {
            div class=(class) { div.l { "总体" } div.n { (verdict) } }
            @for st in NodeState::ALL {
                @let n = view.counts.get(&st).copied().unwrap_or(0);
                div class={ "st " (state_class(st)) @if n == 0 { " zero" } } {
                    div.l { (st.zh()) } div.n { (n) }
                }
            }
        }
    }
}

/// The tree: every non-school node, each county with its schools folded into counts (or, under
/// a county, every school).
fn tree(view: &HealthView, fold: bool) -> Markup {
    let now = view.now_ms;
    let mut schools: BTreeMap<NodeId, BTreeMap<NodeState, u64>> = BTreeMap::new();
    if fold {
        for r in view.rows.iter().filter(|r| r.tier == Tier::School) {
            if let Some(county) = r.node.parent() {
                *schools.entry(county).or_default().entry(r.state).or_insert(0) += 1;
            }
        }
    }
    let shown: Vec<&HealthRowView> = view.rows.iter().filter(|r| !(fold && r.tier == Tier::School)).collect();
    let base = view.under.tier().depth();
    // The cameras column once some school's devices report (a county's row sums its schools).
    let cams = view.rows.iter().any(|r| r.cameras.is_some());
    html! {
        div.scroll { table.rows.health.tree #tree {
            thead { tr {
                th { "单位" } th { "层级" } th { "状态" } th { "说明" } th { "最后上报" } th { "上级最后联系" }
                @if cams { th.num { "摄像头在线" } }
                @if fold { th { "下辖学校" } }
            } }
            tbody { @for r in shown.iter().take(TREE_ROWS) {
                tr class=(row_class(r)) {
                    td data-l="单位" class={ "d" (r.tier.depth().saturating_sub(base).min(3)) } { (unit_cell(r)) }
                    td data-l="层级" { (tier_zh(r.tier)) }
                    td data-l="状态" { (state_tag(r.state)) }
                    td.why data-l="说明" { (why_cell(r)) }
                    td data-l="最后上报" { (at(now, r.reported_ms)) }
                    td data-l="上级最后联系" { (at(now, r.heard_ms)) }
                    @if cams { td.num.cams data-l="摄像头在线" { (cameras_cell(r.cameras, r.tier)) } }
                    @if fold {
                        td data-l="下辖学校" {
                            @if r.tier == Tier::County {
                                @let counts = schools.get(&r.node).cloned().unwrap_or_default();
                                (school_counts(&counts)) " "
                                @if !counts.is_empty() { a.more href={ "/health?under=" (urlencode(&r.node.to_string())) } { "查看学校" } }
                            }
                        }
                    }
                }
            } }
        } }
        @if shown.len() > TREE_ROWS { p.muted { "只列出前 " (TREE_ROWS) " 个节点；请按单位筛选。" } }
    }
}

/// `学校 120：在线 118，下线 2`.
fn school_counts(counts: &BTreeMap<NodeState, u64>) -> Markup {
    let total: u64 = counts.values().sum();
    html! {
        span.schools {
            "学校 " (total)
            @if total > 0 { "：" }
            @for (i, (st, n)) in counts.iter().enumerate() {
                @if i > 0 { "，" }
                span class={ "c-" (state_class(*st)) } { (st.zh()) " " (n) }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One node

fn node_detail(
    s: &AdminState,
    ctx: &PageCtx,
    view: &HealthView,
    row: &HealthRowView,
    own: Option<&crate::runtime::root::NodeStatus>,
) -> Markup {
    let now = view.now_ms;
    let n = row.node;
    let below: Vec<&HealthRowView> = view.rows.iter().filter(|r| r.node != n).collect();
    let mut below_counts: BTreeMap<NodeState, u64> = BTreeMap::new();
    for r in &below {
        *below_counts.entry(r.state).or_insert(0) += 1;
    }
    let path: Vec<NodeId> = n.path_up().filter(|a| a.in_subtree_of(ctx.me) && *a != n).collect();
    html! {
        (refresh_line(view))
        nav.crumbs {
            @if s.me.tier() != Tier::School || n != s.me { a href="/health" { "运行状态" } " › " }
            @for a in path.iter().rev() {
                a href={ "/health/" (a) } { (crate::api::kit::name_of(s, *a)) } " › "
            }
            strong { (row.name) " " (n) }
        }
        div class={ "box status " (row_class(row)) } #status {
            div.head {
                (state_tag(row.state))
                strong { (row.name) } span.muted { (n) " · " (tier_zh(row.tier)) }
                @if row.since_ms.is_some() { span.muted { "自 " (when_full(now, row.since_ms)) } }
            }
            @if let Some(w) = &row.why { p.why title=(w) { (gloss(w)) } }
            @if let Some(v) = row.via { p { "已转接到备援上级 " a href={ "/health/" (v) } { (v) } } }
            @if !row.warnings.is_empty() { p { @for w in &row.warnings { span.tag.due { (w) } " " } } }
        }
        div.grid2 {
            section.box #report {
                h2 { "节点自报" }
                @match &row.report {
                    None => { (empty("还没有收到它的状态报告。")) }
                    Some(r) => {
                        @if row.state != NodeState::Live && row.node != s.me {
                            p.note { "以下是它最后一次上报（" (ago(now, r.reported_ms)) "）时的情况，此后未再收到。" }
                        }
                        (report(now, r, row.state == NodeState::Live || row.node == s.me))
                        @if row.node == s.me && s.me.tier() == Tier::School {
                            p { a href="/devices" { "设备与摄像头在线情况" } }
                        }
                    }
                }
            }
            section.box #link {
                h2 { "上级对链路的记录" }
                @match (&row.link, n.parent()) {
                    (_, None) => { (empty("根节点，没有上级。")) }
                    (None, Some(p)) if n == s.me => { (empty(&format!("由上级 {p} 记录；本节点的上行链路见下方“本节点的连接”。"))) }
                    (None, Some(p)) => { (empty(&format!("还没有上级 {p} 对这条链路的记录。"))) }
                    (Some(l), Some(p)) => {
                        dl.kv {
                            dt { "上级" } dd { a href={ "/health/" (p) } { (crate::api::kit::name_of(s, p)) " " (p) } }
                            dt { "链路" } dd { (phase_tag(l.phase)) " 自 " (when_full(now, Some(l.since_ms))) }
                            dt { "上级最后联系" } dd { (when_full(now, Some(l.heard_ms).filter(|h| *h > 0))) }
                            dt { "重连次数" } dd { (l.reconnects) }
                        }
                        h3 { "最近断开" }
                        (disconnects(now, &l.disconnects, "link-disconnects"))
                    }
                }
            }
        }
        @if let Some(st) = own { (own_links(s, now, st)) }
        @if !below.is_empty() {
            section.box #below {
                h2 { "下辖节点" }
                p { "共 " (below.len()) " 个：" (school_or_all(&below_counts)) "。 "
                    a href={ "/health?under=" (urlencode(&n.to_string())) } { "查看下辖运行状态" } }
            }
        }
    }
}

fn school_or_all(counts: &BTreeMap<NodeState, u64>) -> Markup {
    html! {
        @for (i, (st, k)) in counts.iter().enumerate() {
            @if i > 0 { "，" }
            span class={ "c-" (state_class(*st)) } { (st.zh()) " " (k) }
        }
    }
}

/// A node's own report; `live`: it is still running as far as anyone knows (so its uptime runs on).
fn report(now: u64, r: &SelfReport, live: bool) -> Markup {
    html! {
        dl.kv {
            dt { "版本" } dd { (r.version) }
            @if live {
                dt { "已运行" } dd { (duration(now.saturating_sub(r.started_ms))) span.muted { "（启动于 " (stamp(now, r.started_ms)) "）" } }
            } @else {
                dt { "上报时已运行" } dd { (duration(r.reported_ms.saturating_sub(r.started_ms))) span.muted { "（启动于 " (stamp(now, r.started_ms)) "）" } }
            }
            dt { "最后上报" } dd { (when_full(now, Some(r.reported_ms))) }
            dt { "上行链路" } dd { (phase_tag(r.uplink)) }
            dt { "备援" } dd { @match r.failover { Some(f) => { "已转接 " a href={ "/health/" (f) } { (f) } }, None => { "未转备援" } } }
            dt { "待上报" } dd { (r.backlog) " 条" @if r.backlog > 0 { "，最早的已等 " (duration(r.oldest_ms)) } }
            dt { "重连次数" } dd { (r.reconnects) }
            dt { "证书" } dd {
                @match r.cert_days_left {
                    None => { span.muted { "未知" } }
                    Some(d) if d < 0 => { span.tag.bad { "已过期 " (-d) " 天" } }
                    Some(d) if d < 30 => { span.tag.due { "剩余 " (d) " 天" } }
                    Some(d) => { "剩余 " (d) " 天" }
                }
            }
            dt { "磁盘占用" } dd { @match r.disk_bytes { Some(b) => { (bytes(b)) }, None => { span.muted { "未知" } } } }
            dt { "数据恢复" } dd { @if r.restoring { span.tag.due { "恢复中：正从上级取回历史事件" } } @else { "否" } }
            @if let Some((registered, online)) = r.cameras {
                dt { "摄像头在线" } dd { (online) " / " (registered) span.muted { "（在线 / 登记）" } }
            }
        }
        h3 { "上行最近断开" }
        (disconnects(now, &r.disconnects, "report-disconnects"))
    }
}

fn disconnects(now: u64, list: &[Disconnect], id: &str) -> Markup {
    html! {
        @if list.is_empty() { p.muted id=(id) { "没有断开记录。" } } @else {
            table.rows.compact id=(id) {
                thead { tr { th { "时间" } th { "原因" } } }
                tbody { @for d in list.iter().rev() {
                    tr {
                        td data-l="时间" { (at(now, Some(d.at_ms))) }
                        td.why data-l="原因" {
                            @let zh = gloss(&d.reason);
                            (zh) @if zh != d.reason { br; span.raw { (d.reason) } }
                        }
                    }
                } }
            }
        }
    }
}

fn own_links(s: &AdminState, now: u64, st: &crate::runtime::root::NodeStatus) -> Markup {
    let mut links: Vec<(&str, &LinkStatus)> = Vec::new();
    if let Some(p) = &st.parent {
        links.push(("上级", p));
    }
    if let Some(f) = &st.failover {
        links.push(("备援上级", f));
    }
    links.extend(st.children.iter().map(|c| ("下级", c)));
    html! {
        section.box #own-links {
            h2 { "本节点的连接" }
            @if links.is_empty() { (empty("没有链路。")) } @else {
                div.scroll { table.rows.health {
                    thead { tr {
                        th { "方向" } th { "对端" } th { "状态" } th { "状态起于" } th { "最后联系" }
                        th.num { "待发" } th.num { "待收" } th.num { "最早待发" } th.num { "重连" } th { "最近断开" }
                    } }
                    tbody { @for (role, l) in &links {
                        tr class=@if l.state == LinkState::Up { "" } @else { "r-bad" } {
                            td data-l="方向" { (role) }
                            td data-l="对端" {
                                @if l.peer.in_subtree_of(s.me) { a href={ "/health/" (l.peer) } { (l.peer) } } @else { (l.peer) }
                                br; span.muted { (crate::api::kit::name_of(s, l.peer)) }
                            }
                            td data-l="状态" { (link_tag(l.state)) }
                            td data-l="状态起于" { (at(now, Some(l.since_ms).filter(|m| *m > 0))) }
                            td data-l="最后联系" { (at(now, Some(l.last_seen_ms).filter(|m| *m > 0))) }
                            td.num data-l="待发" { (l.backlog_out) }
                            td.num data-l="待收" { (l.backlog_in) }
                            td.num data-l="最早待发" { @if l.oldest_unsent_age_ms > 0 { (duration(l.oldest_unsent_age_ms)) } @else { "—" } }
                            td.num data-l="重连" { (l.reconnects) }
                            td.why data-l="最近断开" {
                                @match l.disconnects.last() {
                                    Some(d) => { span title=(d.reason) { (gloss(&d.reason)) } br; span.muted { (stamp(now, d.at_ms)) } }
                                    None => { @match (&l.last_error, l.state) {
                                        (Some(e), s) if s != LinkState::Up => { span title=(e) { (gloss(e)) } }
                                        _ => { span.muted { "—" } }
                                    } }
                                }
                            }
                        }
                    } }
                } }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small pieces

/// A link-layer reason in Chinese where the words are known; anything else as it came.
fn gloss(text: &str) -> String {
    protocol::health::reason_zh(text)
}

fn label(view: &HealthView, n: NodeId) -> String {
    match view.rows.iter().find(|r| r.node == n).map(|r| r.name.as_str()).filter(|s| !s.is_empty()) {
        Some(name) => format!("{name}（{n}）"),
        None => n.to_string(),
    }
}

fn unit_cell(r: &HealthRowView) -> Markup {
    html! {
        a.unit href={ "/health/" (r.node) } {
            @if r.name.is_empty() { (r.node) } @else { (r.name) }
        }
        " " span.code { (r.node) }
    }
}

fn why_cell(r: &HealthRowView) -> Markup {
    html! {
        @if let Some(w) = &r.why { span title=(w) { (gloss(w)) } }
        @if r.context { span.muted { "（下级有问题）" } }
        @for w in &r.warnings { " " span.tag.due { (w) } }
        @if r.why.is_none() && r.warnings.is_empty() && !r.context { span.muted { "—" } }
    }
}

pub fn tier_zh(t: Tier) -> &'static str {
    match t {
        Tier::Province => "省",
        Tier::City => "市",
        Tier::County => "县",
        Tier::School => "学校",
    }
}

/// The color of a state: green, amber or red.
fn state_class(s: NodeState) -> &'static str {
    match s {
        NodeState::Live => "live",
        NodeState::Down => "down",
        _ => "warn",
    }
}

fn row_class(r: &HealthRowView) -> &'static str {
    match r.severity {
        Severity::Ok => "",
        Severity::Warning => "r-warn",
        Severity::Critical => "r-bad",
    }
}

fn state_tag(s: NodeState) -> Markup {
    html! { span class={ "tag s-" (state_class(s)) } { (s.zh()) } }
}

fn phase_tag(p: Phase) -> Markup {
    let (zh, class) = match p {
        Phase::Up => ("在线", "live"),
        Phase::Connecting => ("连接中", "warn"),
        Phase::Never => ("从未连接", "warn"),
        Phase::Down => ("断开", "down"),
    };
    html! { span class={ "tag s-" (class) } { (zh) } }
}

fn link_tag(s: LinkState) -> Markup {
    phase_tag(match s {
        LinkState::Up => Phase::Up,
        LinkState::Connecting => Phase::Connecting,
        LinkState::Never => Phase::Never,
        LinkState::Down => Phase::Down,
    })
}

/// Cameras online of registered: `7/8`, and for a unit above the schools the rate too.
fn cameras_cell(cameras: Option<(u32, u32)>, tier: Tier) -> Markup {
    html! {
        @match cameras {
            None => { span.muted { "—" } }
            Some((registered, online)) => {
                (online) "/" (registered)
                @if tier != Tier::School && registered > 0 {
                    br; span.muted { (format!("{:.0}%", f64::from(online) * 100.0 / f64::from(registered))) }
                }
            }
        }
    }
}

fn backlog(r: Option<&SelfReport>) -> Markup {
    html! { @match r { Some(r) => { (r.backlog) }, None => { span.muted { "—" } } } }
}

fn lag(r: Option<&SelfReport>) -> Markup {
    html! {
        @match r {
            Some(r) if r.backlog > 0 => { (duration(r.oldest_ms)) }
            Some(_) => { "0" }
            None => { span.muted { "—" } }
        }
    }
}

/// "3 分钟前" over the time: a table cell.
fn at(now: u64, ms: Option<u64>) -> Markup {
    html! {
        @match ms {
            Some(ms) => { span.ago { (ago(now, ms)) } br; span.t { (stamp(now, ms)) } }
            None => { span.muted { "—" } }
        }
    }
}

/// "3 分钟前（14:05:12）": inline.
fn when_full(now: u64, ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{}（{}）", ago(now, ms), stamp(now, ms)),
        None => "—".into(),
    }
}

/// How long ago, in words.
pub fn ago(now: u64, then: u64) -> String {
    if then > now {
        return "刚刚".into();
    }
    let d = (now - then) / 1_000;
    match d {
        0..=4 => "刚刚".into(),
        5..=59 => format!("{d} 秒前"),
        60..=3_599 => format!("{} 分钟前", d / 60),
        3_600..=86_399 => format!("{} 小时前", d / 3_600),
        _ => format!("{} 天前", d / 86_400),
    }
}

/// A duration in words: `3 分 12 秒`, `2 小时 5 分`, `4 天 3 小时`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1_000;
    match s {
        0..=59 => format!("{s} 秒"),
        60..=3_599 => format!("{} 分 {} 秒", s / 60, s % 60),
        3_600..=86_399 => format!("{} 小时 {} 分", s / 3_600, s % 3_600 / 60),
        _ => format!("{} 天 {} 小时", s / 86_400, s % 86_400 / 3_600),
    }
}

/// `14:05:12` (China time) today, `2026-11-29 14:05` another day.
fn stamp(now: u64, ms: u64) -> String {
    let t = protocol::calendar::ChinaTime(ms);
    if t.date() == protocol::calendar::ChinaTime(now).date() { clock(ms) } else { t.minute() }
}

/// `14:05:12`, China time.
pub fn clock(ms: u64) -> String {
    let r = protocol::calendar::rfc3339(ms);
    r.get(11..19).unwrap_or_default().to_string()
}

fn bytes(b: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if b >= 1024 * MIB {
        format!("{:.1} GiB", b as f64 / (1024 * MIB) as f64)
    } else if b >= MIB {
        format!("{:.1} MiB", b as f64 / MIB as f64)
    } else {
        format!("{} KiB", b.div_ceil(1024))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_a_person_says_them() {
        assert_eq!(ago(100_000, 99_000), "刚刚");
        assert_eq!(ago(100_000, 70_000), "30 秒前");
        assert_eq!(ago(400_000, 200_000), "3 分钟前");
        assert_eq!(duration(192_000), "3 分 12 秒");
        assert_eq!(duration(7_500_000), "2 小时 5 分");
        let ms = protocol::calendar::parse_instant("2026-11-30 14:05").unwrap() + 12_000;
        assert_eq!(clock(ms), "14:05:12");
        assert_eq!(stamp(ms + 60_000, ms), "14:05:12");
        assert_eq!(stamp(ms + 86_400_000, ms), "2026-11-30 14:05");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(gloss("peer 130104 silent for 3001 ms"), "130104 已 3.0 秒无响应（心跳超时）");
        assert_eq!(gloss("peer gone"), "peer gone");
        assert_eq!(gloss("peer 1 silent for x ms"), "peer 1 silent for x ms");
    }
}
