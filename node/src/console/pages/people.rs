//! 账号: this unit's accounts (create, change the role or name, reset the password, disable),
//! and the directory of the accounts of its subtree — who is who wherever their steps are shown.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use protocol::people::{Action, Role};
use protocol::registry::{EntityData, EntityKind};
use serde::Deserialize;

use crate::api::AdminState;
use crate::api::accounts::{AccountRequest, set_account};
use crate::console::layout::{Nav, csrf_field, empty, page as shell, when};
use crate::console::pages::{Ctx, done, forbidden, reason, refused};

pub async fn page(State(s): State<AdminState>, ctx: Ctx) -> Response {
    render(&s, ctx, StatusCode::OK).await
}

async fn render(s: &AdminState, ctx: Ctx, code: StatusCode) -> Response {
    if !ctx.may(Action::ManageAccounts) {
        return forbidden(ctx, Nav::Accounts, "您的角色不能管理账号");
    }
    let (ctx, entries) = match s.reads.registry().await {
        Ok(r) => (ctx, r),
        Err(e) => (ctx.with_error(e.to_string()), Default::default()),
    };
    let accounts: Vec<_> = entries
        .values()
        .filter(|e| e.entity.kind == EntityKind::Account)
        .filter_map(|e| match &e.data {
            EntityData::Account(a) => Some((e, a)),
            _ => None,
        })
        .collect();
    let (mine, below): (Vec<_>, Vec<_>) = accounts.into_iter().partition(|(e, _)| e.entity.node == s.me);
    let roles: Vec<Role> = Role::ALL.into_iter().filter(|r| r.exists_at(s.me.tier())).collect();
    let name = |n| crate::api::kit::name_of(s, n);
    let body = html! {
        h2 { "本单位账号" }
        @if mine.is_empty() { (empty("还没有账号。")) } @else {
            div.scroll { table.rows #accounts {
                thead { tr { th { "账号" } th { "姓名" } th { "角色" } th { "状态" } th { "最后修改" } } }
                tbody { @for (e, a) in &mine {
                    tr {
                        td data-l="账号" { (e.entity.id) }
                        td data-l="姓名" { (a.display_name) }
                        td data-l="角色" { (a.role.zh()) }
                        td data-l="状态" { @if a.disabled { span.tag.bad { "已停用" } } @else { span.tag.ok { "正常" } } }
                        td data-l="最后修改" { (when(e.updated_hlc.wall_ms)) " " span.muted { (e.updated_by_person.as_ref().map(|p| p.name.as_str()).unwrap_or("本机操作员")) } }
                    }
                } }
            } }
        }
        h2 { "新建或修改账号" }
        form.stack.box method="post" action="/accounts" {
            (csrf_field(&ctx.0.csrf))
            label { "账号（登录名）" input name="id" required maxlength="32" pattern="[a-z0-9][a-z0-9._-]{1,31}" placeholder="小写字母、数字或 . _ -"; }
            label { "姓名" input name="display_name" required maxlength="32"; }
            label { "角色" select name="role" { @for r in &roles { option value=(r.as_str()) { (r.zh()) } } } }
            label { "密码（至少 8 位；修改已有账号时即为重置密码）" input type="password" name="password" required minlength="8" autocomplete="new-password"; }
            label.inline { input type="checkbox" name="disabled" value="1"; " 停用该账号" }
            button type="submit" { "保存" }
        }
        @if !below.is_empty() {
            h2 { "下级单位的账号（只读）" }
            div.scroll { table.rows #directory {
                thead { tr { th { "单位" } th { "账号" } th { "姓名" } th { "角色" } } }
                tbody { @for (e, a) in below.iter().take(500) {
                    tr { td data-l="单位" { (name(e.entity.node)) " " span.muted { (e.entity.node) } } td data-l="账号" { (e.entity.id) } td data-l="姓名" { (a.display_name) } td data-l="角色" { (a.role.zh()) } }
                } }
            } }
        }
    };
    refused(code, shell(&ctx.0, Nav::Accounts, "账号", body))
}

#[derive(Deserialize)]
pub struct AccountForm {
    pub id: String,
    pub display_name: String,
    pub role: String,
    pub password: String,
    #[serde(default)]
    pub disabled: Option<String>,
}

pub async fn add(State(s): State<AdminState>, ctx: Ctx, Form(f): Form<AccountForm>) -> Response {
    let req = AccountRequest {
        id: f.id.trim().to_string(),
        display_name: f.display_name,
        role: f.role,
        password: f.password,
        disabled: f.disabled.is_some(),
    };
    match set_account(&s, &ctx.principal(), req).await {
        Ok(_) => done("/accounts", "account"),
        Err(e) => render(&s, ctx.with_error(reason(&e)), e.0).await,
    }
}
