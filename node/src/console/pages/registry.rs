//! 单位与学校: what the registry of this subtree holds — schools, canteens, cameras, staff and
//! their health certificates (with the warnings of certificates about to expire).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use protocol::people::Action;
use protocol::registry::{EntityData, EntityKind};
use serde::Deserialize;

use crate::api::AdminState;
use crate::api::registry::{EntityView, entity_views};
use crate::console::layout::{Nav, empty, page as shell, when};
use crate::console::pages::alerts::who;
use crate::console::pages::{Ctx, forbidden, reason, refused};

#[derive(Debug, Default, Deserialize)]
pub struct RegistryQuery {
    /// school (default), canteen, camera, staff, health-certificate.
    pub kind: Option<String>,
    /// Only this unit's subtree (a county, a school).
    pub under: Option<String>,
}

const KINDS: [(EntityKind, &str); 7] = [
    (EntityKind::School, "学校"),
    (EntityKind::Canteen, "食堂"),
    (EntityKind::CanteenLicence, "食堂许可证"),
    (EntityKind::Camera, "摄像头"),
    (EntityKind::Staff, "从业人员"),
    (EntityKind::HealthCertificate, "健康证"),
    (EntityKind::Supplier, "供应商"),
];

/// Most rows on one page (a province holds 134,400 cameras: narrow with `under`).
pub const PAGE_ROWS: usize = 300;

pub async fn page(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<RegistryQuery>) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Registry, "您的角色不能查看单位与学校");
    }
    let kind = q.kind.as_deref().and_then(|k| k.parse::<EntityKind>().ok()).unwrap_or(EntityKind::School);
    let under_text = q.under.as_deref().map(str::trim).unwrap_or("").to_string();
    let mut ctx = ctx;
    let mut code = StatusCode::OK;
    let under = if under_text.is_empty() {
        None
    } else {
        match under_text.parse::<topology::NodeId>() {
            Ok(u) => Some(u),
            Err(e) => {
                ctx = ctx.with_error(format!("单位编码“{under_text}”不对：{e}"));
                code = StatusCode::BAD_REQUEST;
                None
            }
        }
    };
    let rows = match entity_views(&s, Some(kind), under).await {
        Ok(r) => r,
        Err(e) => {
            ctx = ctx.with_error(reason(&e));
            Vec::new()
        }
    };
    let total = rows.len();
    let kind_key = kind.to_string();
    let body = html! {
        nav.tabs {
            @for (k, zh) in KINDS {
                a class=@if k == kind { "tag ok" } @else { "tag" } href={ "/registry?kind=" (k) "&under=" (under_text) } { (zh) } " "
            }
        }
        form.inline method="get" action="/registry" {
            input type="hidden" name="kind" value=(kind_key);
            label { "只看单位" input name="under" value=(under_text) placeholder="如 130102 或 130102-S0001"; }
            button.plain type="submit" { "筛选" }
        }
        p.muted { "共 " (total) " 条" @if total > PAGE_ROWS { "，显示前 " (PAGE_ROWS) " 条（请按单位筛选）" } "。" }
        @if rows.is_empty() { (empty("没有登记。")) } @else { (table(&s, kind, &rows[..total.min(PAGE_ROWS)])) }
    };
    refused(code, shell(&ctx.0, Nav::Registry, "单位与学校", body))
}

fn table(s: &AdminState, kind: EntityKind, rows: &[EntityView]) -> Markup {
    let name = |n| crate::api::kit::name_of(s, n);
    html! {
        div.scroll { table.rows #registry {
            thead { tr {
                th { "单位" } th { "编号" }
                @match kind {
                    EntityKind::School => { th { "名称" } th { "地址" } th { "食堂数" } }
                    EntityKind::Canteen => { th { "名称" } th { "地址" } }
                    EntityKind::Camera => { th { "名称" } th { "食堂" } th { "区域" } th { "AI" } th { "家长可看" } }
                    EntityKind::Staff => { th { "姓名" } th { "岗位" } th { "在岗" } }
                    EntityKind::Supplier => { th { "名称" } th { "许可证" } th { "有效期至" } th { "联系方式" } }
                    EntityKind::CanteenLicence => { th { "许可证" } th { "有效期至" } th { "经营方式" } th { "开工与供餐" } }
                    _ => { th { "人员" } th { "证号" } th { "有效期至" } th { "提醒" } }
                }
                th { "登记人" }
            } }
            tbody { @for e in rows {
                tr {
                    td data-l="单位" { (name(e.node)) " " span.muted { (e.node) } }
                    td data-l="编号" { (e.id) }
                    @match &e.data {
                        EntityData::School(x) => { td data-l="名称" { (x.name) } td data-l="地址" { (x.address) } td data-l="食堂数" { (x.canteens) } }
                        EntityData::Canteen(x) => { td data-l="名称" { (x.name) } td data-l="地址" { (x.address) } }
                        EntityData::Camera(x) => { td data-l="名称" { (x.name) } td data-l="食堂" { (x.canteen) } td data-l="区域" { (x.zone.zh()) }
                            td data-l="AI" { (if x.ai_enabled { "开" } else { "关" }) } td data-l="家长可看" { (if x.parent_visible { "是" } else { "否" }) } }
                        EntityData::Staff(x) => { td data-l="姓名" { (x.name) } td data-l="岗位" { (x.role.zh()) } td data-l="在岗" { (if x.on_duty { "是" } else { "否" }) } }
                        EntityData::HealthCertificate(x) => { td data-l="人员" { (x.staff) } td data-l="证号" { (x.number) } td data-l="有效期至" { (when(x.valid_until_ms)) }
                            td data-l="提醒" { @if let Some(w) = &e.warning { span.tag.bad { (w) } } } }
                        EntityData::Supplier(x) => { td data-l="名称" { (x.name) } td data-l="许可证" { (x.licence_no) }
                            td data-l="有效期至" { (when(x.licence_valid_until_ms)) } td data-l="联系方式" { (x.contact) } }
                        EntityData::CanteenLicence(x) => { td data-l="许可证" { (x.licence_no) } td data-l="有效期至" { (when(x.valid_until_ms)) }
                            td data-l="经营方式" { (x.mode.zh()) }
                            td data-l="开工与供餐" {
                                (format!("开工 {:02}:{:02}", x.prep_start_min / 60, x.prep_start_min % 60))
                                @for m in &x.meals { " · " (format!("{} {:02}:{:02}–{:02}:{:02}", m.meal.zh(), m.start_min / 60, m.start_min % 60, m.end_min / 60, m.end_min % 60)) }
                            } }
                        _ => {}
                    }
                    td data-l="登记人" { span.muted { (who(e.updated_by.split('#').next().and_then(|n| n.parse().ok()).unwrap_or(e.owner), e.updated_by_person.as_ref())) } }
                }
            } }
        } }
    }
}
