//! 通知: notices, directives and bulletins — the ones this unit received from above and the ones
//! it sent down, and the form to send one to a unit of its subtree.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use protocol::people::Action;
use serde::Deserialize;
use topology::Tier;

use crate::api::AdminState;
use crate::api::alerts::ListParams;
use crate::api::directives::{SendDirective, directive_views, send_directive_as};
use crate::console::layout::{Nav, csrf_field, empty, page as shell, when};
use crate::console::pages::alerts::who;
use crate::console::pages::{Ctx, done, field, forbidden, reason, refused};

pub async fn page(State(s): State<AdminState>, ctx: Ctx) -> Response {
    render(&s, ctx, StatusCode::OK).await
}

async fn render(s: &AdminState, ctx: Ctx, code: StatusCode) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Directives, "您的角色不能查看通知");
    }
    let p = ListParams { limit: Some("100".into()), ..ListParams::default() };
    let (ctx, rows) = match directive_views(s, p).await {
        Ok(r) => (ctx, r),
        Err(e) => (ctx.with_error(reason(&e)), Vec::new()),
    };
    let me = s.me;
    let (received, sent): (Vec<_>, Vec<_>) = rows.into_iter().partition(|d| d.from != me);
    let name = |n| crate::api::kit::name_of(s, n);
    let units: Vec<_> =
        s.topology.subtree(me).filter(|e| e.id.tier() != Tier::School).map(|e| (e.id, e.name.clone())).collect();
    // Delivery of what this unit sent: how far each child link has confirmed holding this node's
    // own events (a child that holds a directive's seq has it).
    let links = match ractor::call_t!(s.node, crate::runtime::root::NodeMsg::Status, 5_000) {
        Ok(st) => st.children,
        Err(_) => Vec::new(),
    };
    let delivery = |d: &crate::api::directives::DirectiveView| -> String {
        let Ok(id) = d.id.parse::<protocol::EventId>() else { return String::new() };
        let towards: Vec<_> = links
            .iter()
            .filter(|l| d.to.is_ancestor_or_self_of(l.peer) || l.peer.is_ancestor_or_self_of(d.to))
            .collect();
        if towards.is_empty() {
            return "本单位".into();
        }
        let done = towards.iter().filter(|l| l.holds_mine >= id.seq).count();
        match (done == towards.len(), towards.len()) {
            (true, 1) => "已送达".into(),
            (true, n) => format!("已送达全部 {n} 个下级"),
            (false, n) => format!("已送达 {done}/{n} 个下级，其余待送达"),
        }
    };
    let list = |rows: &[crate::api::directives::DirectiveView], id: &str, sent: bool| {
        html! {
            @if rows.is_empty() { (empty("没有通知。")) } @else {
                div.scroll { table.rows id=(id) {
                    thead { tr { th { "时间" } th { "发文" } th { "收文单位" } th { "标题" } th { "内容" } @if sent { th { "送达" } } } }
                    tbody { @for d in rows {
                        tr {
                            td data-l="时间" { (when(d.sent_at_ms)) }
                            td data-l="发文" { (name(d.from)) br; span.muted { (who(d.from, d.person.as_ref())) } }
                            td data-l="收文单位" { (name(d.to)) " " span.muted { (d.to) } }
                            td data-l="标题" { strong { (d.title) } }
                            td.say data-l="内容" { (crate::api::bulletins::readable_text(&d.text)) }
                            @if sent { td.delivery data-l="送达" { (delivery(d)) } }
                        }
                    } }
                } }
            }
        }
    };
    let body = html! {
        h2 { "收到的通知" }
        (list(&received, "received", false))
        h2 { "本单位发出的通知" }
        (list(&sent, "sent", true))
        @if ctx.may(Action::SendDirective) {
            h2 { "下发通知" }
            form.stack.box method="post" action="/directives" {
                (csrf_field(&ctx.0.csrf))
                label { "收文单位（含其下级全部单位）"
                    input name="to" list="units" required value=(me) placeholder="单位或学校编码";
                }
                datalist #units { @for (id, n) in &units { option value=(id) { (n) } } }
                label { "标题" input name="title" required maxlength="100"; }
                label { "内容" textarea name="text" maxlength="4000" {} }
                button type="submit" { "下发" }
            }
        }
    };
    refused(code, shell(&ctx.0, Nav::Directives, "通知", body))
}

#[derive(Debug, Deserialize)]
pub struct SendForm {
    pub to: String,
    pub title: String,
    #[serde(default)]
    pub text: String,
}

pub async fn send(State(s): State<AdminState>, ctx: Ctx, Form(f): Form<SendForm>) -> Response {
    let checked = field("标题", &f.title, 100).and_then(|title| Ok((title, field("内容", &f.text, 4000)?)));
    let (title, text) = match checked {
        Ok(t) if !t.0.is_empty() => t,
        Ok(_) => return render(&s, ctx.with_error("请填写标题"), StatusCode::BAD_REQUEST).await,
        Err(e) => return render(&s, ctx.with_error(e), StatusCode::BAD_REQUEST).await,
    };
    let req = SendDirective { to: f.to.trim().to_string(), title, text };
    match send_directive_as(&s, &ctx.principal(), req).await {
        Ok(_) => done("/directives", "sent"),
        Err(e) => render(&s, ctx.with_error(reason(&e)), e.0).await,
    }
}
