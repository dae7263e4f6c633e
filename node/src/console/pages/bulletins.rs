//! 通报: the published bulletins this unit holds (its own and those from above), each readable and
//! printable; at a province or city, a 管理员 generates a draft, reviews and edits it, publishes it.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use protocol::bulletin::{MEASURES, pct};
use protocol::people::Action;
use serde::Deserialize;
use topology::Tier;

use crate::api::AdminState;
use crate::api::bulletins::{
    BulletinView, EditBulletin, GenerateBulletin, draft_as, drafts_as, edit_as, generate_as, one_as, publish_as,
    published_as,
};
use crate::console::layout::{Nav, csrf_field, empty, page as shell, when};
use crate::console::pages::alerts::who;
use crate::console::pages::{Ctx, done, forbidden, reason, refused};

fn issuing(s: &AdminState) -> bool {
    matches!(s.me.tier(), Tier::Province | Tier::City)
}

pub async fn page(State(s): State<AdminState>, ctx: Ctx) -> Response {
    list(&s, ctx, StatusCode::OK).await
}

async fn list(s: &AdminState, ctx: Ctx, code: StatusCode) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Bulletins, "您的角色不能查看通报");
    }
    let p = ctx.principal();
    let (ctx, rows) = match published_as(s, &p).await {
        Ok(r) => (ctx, r),
        Err(e) => (ctx.with_error(reason(&e)), Vec::new()),
    };
    let admin = ctx.may(Action::PublishBulletin) && issuing(s);
    let drafts = if admin { drafts_as(s, &p).await.unwrap_or_default() } else { Vec::new() };
    let drafts: Vec<_> = drafts.into_iter().filter(|d| d.directive.is_none()).collect();
    let body = html! {
        h2 { "已发布的通报" }
        @if rows.is_empty() { (empty("本单位还没有收到或发布通报。")) } @else {
            div.scroll { table.rows #bulletins {
                thead { tr { th { "发布时间" } th { "发文单位" } th { "标题" } th { "周期" } } }
                tbody { @for b in &rows {
                    tr {
                        td data-l="发布时间" { (when(b.published_at_ms.unwrap_or(0))) }
                        td data-l="发文单位" { (b.doc.issuer_name) br; span.muted { (who(b.doc.issuer, b.person.as_ref())) } }
                        td data-l="标题" { a href=(format!("/bulletins/{}", b.id.replace('#', "%23"))) { strong { (b.title) } } }
                        td data-l="周期" { (b.doc.period.kind.zh()) }
                    }
                } }
            } }
        }
        @if admin {
            h2 { "待审核的草稿" }
            @if drafts.is_empty() { (empty("没有待审核的草稿。")) } @else {
                ul #drafts { @for d in &drafts {
                    li { a href=(format!("/bulletins/drafts/{}", d.id)) { (d.title) } " " span.muted { "生成于 " (when(d.doc.generated_at_ms)) } }
                } }
            }
            h2 { "生成通报" }
            form.stack.box method="post" action="/bulletins/generate" {
                (csrf_field(&ctx.0.csrf))
                label { "类型"
                    select name="kind" { option value="weekly" { "周通报" } option value="monthly" { "月通报" } }
                }
                label { "周期（周通报填该周任一天，如 2026-11-23；月通报填月份，如 2026-11；留空为上一个完整周期）"
                    input name="period" placeholder="留空：上周或上月";
                }
                button type="submit" { "生成草稿" }
            }
        }
    };
    refused(code, shell(&ctx.0, Nav::Bulletins, "通报", body))
}

#[derive(Debug, Deserialize)]
pub struct GenerateForm {
    pub kind: String,
    #[serde(default)]
    pub period: String,
}

pub async fn generate(State(s): State<AdminState>, ctx: Ctx, Form(f): Form<GenerateForm>) -> Response {
    let req = GenerateBulletin { kind: f.kind, period: Some(f.period) };
    match generate_as(&s, &ctx.principal(), req).await {
        Ok(v) => done(&format!("/bulletins/drafts/{}", v.id), "bulletin-drafted"),
        Err(e) => list(&s, ctx.with_error(reason(&e)), e.0).await,
    }
}

pub async fn draft(State(s): State<AdminState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    review(&s, ctx, &id, StatusCode::OK).await
}

async fn review(s: &AdminState, ctx: Ctx, id: &str, code: StatusCode) -> Response {
    if !ctx.may(Action::PublishBulletin) {
        return forbidden(ctx, Nav::Bulletins, "只有管理员可以审核和发布通报");
    }
    let v = match draft_as(s, &ctx.principal(), id).await {
        Ok(v) => v,
        Err(e) => return list(s, ctx.with_error(reason(&e)), e.0).await,
    };
    let body = html! {
        p.noprint { a href="/bulletins" { "← 返回通报列表" } }
        @if let Some(d) = &v.directive {
            p.noprint { "本草稿已发布：" a href=(format!("/bulletins/{}", d.replace('#', "%23"))) { "查看已发布的通报" } }
        } @else {
            div.box.noprint {
                p { strong { "草稿（仅保存在本单位，未下发）" } "：请核对下列数据，修改正文后发布。发布后下级各单位均可查阅。" }
                form.stack method="post" action=(format!("/bulletins/drafts/{}", v.id)) {
                    (csrf_field(&ctx.0.csrf))
                    label { "通报正文（审核意见与工作要求）"
                        textarea name="summary" rows="8" maxlength="2000" { (v.doc.summary) }
                    }
                    button type="submit" { "保存正文" }
                }
                form method="post" action=(format!("/bulletins/drafts/{}/publish", v.id)) {
                    (csrf_field(&ctx.0.csrf))
                    button type="submit" { "审核通过并发布" }
                }
            }
        }
        (document(&v))
    };
    refused(code, shell(&ctx.0, Nav::Bulletins, "审核通报", body))
}

#[derive(Debug, Deserialize)]
pub struct EditForm {
    #[serde(default)]
    pub summary: String,
}

pub async fn edit(State(s): State<AdminState>, ctx: Ctx, Path(id): Path<String>, Form(f): Form<EditForm>) -> Response {
    match edit_as(&s, &ctx.principal(), &id, EditBulletin { summary: f.summary }).await {
        Ok(_) => done(&format!("/bulletins/drafts/{id}"), "bulletin-saved"),
        Err(e) => review(&s, ctx.with_error(reason(&e)), &id, e.0).await,
    }
}

pub async fn publish(State(s): State<AdminState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    match publish_as(&s, &ctx.principal(), &id).await {
        Ok(v) => done(&format!("/bulletins/{}", v.id.replace('#', "%23")), "bulletin-published"),
        Err(e) => review(&s, ctx.with_error(reason(&e)), &id, e.0).await,
    }
}

pub async fn show(State(s): State<AdminState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Bulletins, "您的角色不能查看通报");
    }
    let v = match one_as(&s, &ctx.principal(), &id).await {
        Ok(v) => v,
        Err(e) => return list(&s, ctx.with_error(reason(&e)), e.0).await,
    };
    let body = html! {
        p.noprint { a href="/bulletins" { "← 返回通报列表" } " · 打印：使用浏览器的“打印”（Ctrl+P），导航等内容不会打印。" }
        (document(&v))
    };
    refused(StatusCode::OK, shell(&ctx.0, Nav::Bulletins, "通报", body))
}

const NUMERALS: [&str; 8] = ["一", "二", "三", "四", "五", "六", "七", "八"];

/// The bulletin itself, as it reads and prints.
pub fn document(v: &BulletinView) -> Markup {
    let d = &v.doc;
    let mut n = 0usize;
    let mut next = || {
        n += 1;
        NUMERALS.get(n - 1).copied().unwrap_or("")
    };
    let s_summary = next();
    let s_rank = next();
    let s_good = next();
    let s_bad = next();
    let s_notes = next();
    html! {
        article.bulletin #bulletin {
            header.bhead {
                p.issuer { (d.issuer_name) }
                h2.btitle { (v.title) }
                p.meta {
                    "统计周期：" (d.period.label())
                    " · 数据生成：" (when(d.generated_at_ms))
                    @if let Some(at) = v.published_at_ms { " · 发布：" (when(at)) }
                    @if !v.published { " · " strong { "草稿" } }
                }
            }
            section.bsec {
                h3 { (s_summary) "、总体情况" }
                @for para in d.summary.split('\n').filter(|p| !p.trim().is_empty()) { p.para { (para) } }
            }
            section.bsec {
                h3 { (s_rank) "、综合排名" }
                @for t in &v.tables {
                    h4 { (t.title) }
                    @if t.rows.is_empty() { (empty("没有可排名的单位。")) } @else {
                        table.rank {
                            thead { tr {
                                th { "名次" } th { "单位" } th { "综合得分" }
                                @for m in MEASURES { th { (m) } }
                            } }
                            tbody { @for r in &t.rows {
                                tr {
                                    td.num { @if let Some(k) = r.rank { (k) } @else { "—" } }
                                    td { (r.figures.name) }
                                    td.num { strong { (r.score.map(pct).unwrap_or_else(|| "无数据".into())) } }
                                    @for m in r.figures.measures() {
                                        td.num { (m.percent()) @if m.whole > 0 { br; span.muted.small { (m.part) "/" (m.whole) } } }
                                    }
                                }
                            } }
                        }
                    }
                }
            }
            section.bsec {
                h3 { (s_good) "、好的典型" }
                @let good: Vec<_> = v.tables.iter().flat_map(|t| t.good.iter()).collect();
                @if good.is_empty() { p.para { "本期无。" } } @else {
                    ol { @for e in good { li { strong { (e.name) } "：" (e.evidence) "。" } } }
                }
            }
            section.bsec {
                h3 { (s_bad) "、问题与不足" }
                @let bad: Vec<_> = v.tables.iter().flat_map(|t| t.bad.iter()).collect();
                @if bad.is_empty() && d.bad_cases.is_empty() { p.para { "本期无。" } }
                @if !bad.is_empty() {
                    ol { @for e in bad { li { strong { (e.name) } "：" (e.evidence) "。" } } }
                }
                @if !d.bad_cases.is_empty() {
                    h4 { "逾期或督办的问题" }
                    table.rank #bad-cases {
                        thead { tr { th { "问题编号" } th { "学校" } th { "问题" } th { "状态" } th { "情况" } } }
                        tbody { @for c in &d.bad_cases {
                            tr { td { (c.number) } td { (c.school_name) br; span.muted.small { (c.school) } } td { (c.title) } td { (c.status) } td { (c.why) } }
                        } }
                    }
                }
            }
            section.bsec.notes {
                h3 { (s_notes) "、指标说明" }
                ol.small {
                    li { "网络巡查合格率：统计周期内网络巡查合格次数 ÷ 巡查次数（四项重点全部合格为合格）。" }
                    li { "摄像头在线率：生成通报时在线的摄像头数 ÷ 登记的摄像头数（状态上报过期的学校按不在线计）。" }
                    li { "按期整改率：整改期限落在统计周期内（且已到期）的问题中，在期限前提交整改且从未逾期的件数 ÷ 到期件数；已撤销的不计。" }
                    li { "晨检台账完整率：辖区学校在统计周期内的工作日中填报了晨检记录的“校·日”数 ÷ 学校数 × 工作日数。" }
                    li { "预警处置率：统计周期内解除的预警数 ÷ 发出的预警数（升级预警计为再次发出）。" }
                    li { "综合得分为有数据的各项指标的平均值；得分相同者名次并列，按单位编码排列；无任何数据的单位不排名。" }
                }
            }
        }
    }
}
