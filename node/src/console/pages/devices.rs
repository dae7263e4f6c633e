//! 设备 (a school's console only): the school's cameras with their online state, its devices (AI
//! boxes and video recorders: kind, cameras, who added them, their last request), and the forms
//! to add one, revoke one and give one a new token. A new token is shown once, on the page that
//! answers the form, never again.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use protocol::people::Action;
use serde::Deserialize;
use topology::Tier;

use crate::api::AdminState;
use crate::api::devices::{
    AddDevice, CamerasView, DeviceKind, DeviceToken, DeviceView, add_device_as, camera_views, device_views,
    revoke_device_as, rotate_device_as,
};
use crate::console::layout::{Nav, csrf_field, empty, page as shell, when};
use crate::console::pages::health::ago;
use crate::console::pages::spot::form_urlencoded_pairs;
use crate::console::pages::{Ctx, done, forbidden, reason, refused};

pub async fn page(State(s): State<AdminState>, ctx: Ctx) -> Response {
    render(&s, ctx, StatusCode::OK, None).await
}

/// The page; `kept`: a device whose token was just issued (shown on top, this once).
async fn render(s: &AdminState, ctx: Ctx, code: StatusCode, kept: Option<&DeviceToken>) -> Response {
    if s.me.tier() != Tier::School {
        return forbidden(ctx, Nav::Devices, "设备（AI 分析盒、硬盘录像机）由学校节点管理，本单位不是学校。");
    }
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Devices, "您的角色不能查看设备");
    }
    let who = ctx.principal();
    let mut ctx = ctx;
    let devices = match device_views(s, &who).await {
        Ok(d) => d,
        Err(e) => {
            ctx = ctx.with_error(reason(&e));
            Vec::new()
        }
    };
    let cameras = match camera_views(s, &who).await {
        Ok(c) => Some(c),
        Err(e) => {
            ctx = ctx.with_error(reason(&e));
            None
        }
    };
    let manage = ctx.may(Action::ManageDevices);
    let body = html! {
        @if let Some(t) = kept { (token_box(s, t)) }
        @if let Some(c) = &cameras { (camera_table(c)) }
        h2 { "设备" }
        @if devices.is_empty() { (empty("还没有登记设备。")) } @else { (device_table(&ctx, &devices, manage)) }
        @if manage {
            @if let Some(c) = &cameras { (add_form(&ctx, c)) }
        } @else {
            p.muted { "登记、吊销设备和更换令牌需要校长或食品安全员。" }
        }
    };
    refused(code, shell(&ctx.0, Nav::Devices, "设备", body))
}

/// The token just issued, with what to do with it.
fn token_box(s: &AdminState, t: &DeviceToken) -> Markup {
    html! {
        section.box.token #token-box {
            h2 { "设备 " (t.device.id) " 的令牌" }
            p.note { strong { "请立即复制：" } "令牌只显示这一次，本节点只保存它的摘要，离开本页后无法再查看；遗失只能为设备更换新令牌。" }
            code #token { (t.token) }
            dl.kv {
                dt { "设备" } dd { (t.device.name) "（" (t.device.kind_zh) "）" }
                dt { "接入地址" } dd {
                    @match &s.intake_url { Some(u) => { code.inline { (u) "/device/v1/" } }, None => { span.muted { "本节点未配置 [devices] listen，设备暂无法接入" } } }
                }
                dt { "请求头" } dd { code.inline { "Authorization: Bearer <令牌>" } }
            }
        }
    }
}

fn camera_table(c: &CamerasView) -> Markup {
    html! {
        h2 { "摄像头" }
        p #camera-summary {
            "在线 " strong { (c.online) } " / 登记 " (c.registered)
            span.muted { "（超过 " (c.offline_after_s) " 秒没有心跳即视为离线）" }
        }
        @if c.cameras.is_empty() { (empty("本校还没有登记摄像头。")) } @else {
            div.scroll { table.rows #cameras {
                thead { tr { th { "摄像头" } th { "名称" } th { "区域" } th { "状态" } th { "最后心跳" } th.num { "录像天数" } th { "负责设备" } } }
                tbody { @for cam in &c.cameras {
                    tr data-camera=(cam.camera) {
                        td data-l="摄像头" { (cam.camera) }
                        td data-l="名称" { (cam.name) }
                        td data-l="区域" { (cam.zone_zh) }
                        td data-l="状态" {
                            @if cam.online { span.tag.ok { "在线" } }
                            @else if cam.last_heartbeat_ms.is_none() { span.tag { "从未上报" } }
                            @else if cam.reported_online == Some(false) { span.tag.bad { "离线（设备报告）" } }
                            @else { span.tag.bad { "离线（心跳超时）" } }
                        }
                        td data-l="最后心跳" {
                            @match cam.last_heartbeat_ms {
                                Some(t) => { (ago(c.now_ms, t)) br; span.muted { (when(t)) } }
                                None => { span.muted { "—" } }
                            }
                        }
                        td.num data-l="录像天数" { @match cam.recording_days { Some(d) => { (d) " 天" }, None => { span.muted { "—" } } } }
                        td data-l="负责设备" { @if cam.devices.is_empty() { span.muted { "无" } } @else { (cam.devices.join("、")) } }
                    }
                } }
            } }
        }
    }
}

fn who(p: Option<&protocol::people::Person>) -> String {
    p.map_or_else(|| "本机操作员".to_string(), |p| p.label())
}

fn device_table(ctx: &Ctx, devices: &[DeviceView], manage: bool) -> Markup {
    html! {
        div.scroll { table.rows #devices {
            thead { tr {
                th { "编号" } th { "类型" } th { "名称" } th { "摄像头" } th { "登记" } th { "最近请求" } th { "状态" }
                @if manage { th { "操作" } }
            } }
            tbody { @for d in devices {
                tr data-device=(d.id) {
                    td data-l="编号" { (d.id) }
                    td data-l="类型" { (d.kind_zh) }
                    td data-l="名称" { (d.name) }
                    td data-l="摄像头" { (d.cameras.join("、")) }
                    td data-l="登记" { (when(d.added_at_ms)) br; span.muted { (who(d.added_by.as_ref())) } }
                    td data-l="最近请求" { @match d.last_request_ms { Some(t) => { (when(t)) }, None => { span.muted { "从未" } } } }
                    td data-l="状态" {
                        @if d.revoked {
                            span.tag.bad { "已吊销" } br;
                            span.muted { (when(d.revoked_at_ms.unwrap_or_default())) " " (who(d.revoked_by.as_ref())) }
                        } @else {
                            span.tag.ok { "正常" }
                            @if d.token_at_ms != d.added_at_ms { br; span.muted { "令牌更换于 " (when(d.token_at_ms)) } }
                        }
                    }
                    @if manage {
                        td data-l="操作" {
                            @if !d.revoked {
                                form.inline method="post" action="/devices/rotate" {
                                    (csrf_field(&ctx.0.csrf))
                                    input type="hidden" name="id" value=(d.id);
                                    button.plain type="submit" { "更换令牌" }
                                }
                                form.inline method="post" action="/devices/revoke" {
                                    (csrf_field(&ctx.0.csrf))
                                    input type="hidden" name="id" value=(d.id);
                                    button.danger type="submit" { "吊销" }
                                }
                            }
                        }
                    }
                }
            } }
        } }
    }
}

fn add_form(ctx: &Ctx, c: &CamerasView) -> Markup {
    html! {
        h2 { "登记设备" }
        form.stack.box method="post" action="/devices" #add-device {
            (csrf_field(&ctx.0.csrf))
            label { "编号（本校内唯一，用过的编号不再使用）" input name="id" required maxlength="64" pattern="[A-Za-z0-9._-]{1,64}" placeholder="如 box-1、nvr-1"; }
            label { "类型" select name="kind" { @for k in DeviceKind::ALL { option value=(k.as_str()) { (k.zh()) } } } }
            label { "名称" input name="name" required maxlength="64" placeholder="如 后厨 AI 分析盒"; }
            fieldset { legend { "它负责的摄像头" }
                @if c.cameras.is_empty() { p.muted { "请先在“单位与学校”中登记摄像头（mingchu registry camera add）。" } }
                @for cam in &c.cameras { label.inline { input type="checkbox" name="cameras" value=(cam.camera); " " (cam.camera) " " span.muted { (cam.name) } } }
            }
            button type="submit" { "登记并生成令牌" }
        }
    }
}

/// The add form's fields; `cameras` repeats, so the body is parsed from its pairs.
fn parse_add(body: &str) -> AddDevice {
    let mut req = AddDevice::default();
    for (k, v) in form_urlencoded_pairs(body) {
        match k.as_str() {
            "id" => req.id = v,
            "kind" => req.kind = v,
            "name" => req.name = v,
            "cameras" => req.cameras.push(v),
            _ => {}
        }
    }
    req
}

pub async fn add(State(s): State<AdminState>, ctx: Ctx, body: String) -> Response {
    match add_device_as(&s, &ctx.principal(), parse_add(&body)).await {
        // Not a redirect: the token is on this answer only.
        Ok(t) => render(&s, ctx.with_notice(format!("设备 {} 已登记。", t.device.id)), StatusCode::OK, Some(&t)).await,
        Err(e) => render(&s, ctx.with_error(reason(&e)), e.0, None).await,
    }
}

#[derive(Deserialize)]
pub struct DeviceForm {
    pub id: String,
}

pub async fn revoke(State(s): State<AdminState>, ctx: Ctx, Form(f): Form<DeviceForm>) -> Response {
    match revoke_device_as(&s, &ctx.principal(), &f.id).await {
        Ok(_) => done("/devices", "device-revoked"),
        Err(e) => render(&s, ctx.with_error(reason(&e)), e.0, None).await,
    }
}

pub async fn rotate(State(s): State<AdminState>, ctx: Ctx, Form(f): Form<DeviceForm>) -> Response {
    match rotate_device_as(&s, &ctx.principal(), &f.id).await {
        Ok(t) => {
            let ctx = ctx.with_notice(format!("设备 {} 已换用新令牌，旧令牌已失效。", t.device.id));
            render(&s, ctx, StatusCode::OK, Some(&t)).await
        }
        Err(e) => render(&s, ctx.with_error(reason(&e)), e.0, None).await,
    }
}
