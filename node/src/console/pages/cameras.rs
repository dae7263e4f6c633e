//! 摄像头与直播: the cameras of this subtree and a camera's live picture.
//!
//! The picture never passes through the node: the page hands the browser the camera's HLS
//! playlist (its own `camera-stream` address, or the node's `[video] hls_base` joined with the
//! stream's path) and the embedded hls.js (`/assets/hls.min.js`, driven by `/assets/live.js`)
//! plays it from the media server. The page's Content-Security-Policy adds that server's origin
//! to `connect-src` and `media-src` (and `blob:` for the media source), nothing else.
//!
//! Who may watch: a person who may view the subtree, any camera of a school in it; a parent
//! (signed in at the school), only the school's cameras opened to parents — another school, a
//! camera not opened to parents or one that does not exist is refused alike (403, audited), so a
//! parent cannot probe which cameras exist.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use protocol::people::Action;
use protocol::registry::{Camera, CameraStream, EntityData, EntityKind, EntityRef};
use serde::Deserialize;
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::registry::entity_views;
use crate::console::layout::{Nav, empty, page as shell};
use crate::console::pages::{Ctx, forbidden, reason, refused};

/// Most cameras listed on one page (narrow with `school`).
pub const LIST_ROWS: usize = 300;

#[derive(Debug, Default, Deserialize)]
pub struct CamerasQuery {
    /// Only this unit's cameras (a county, a school).
    pub school: Option<String>,
}

/// `GET /cameras?school=`: the cameras of the subtree (or of one unit in it), each with its
/// stream and a link to its live picture.
pub async fn list(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<CamerasQuery>) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Cameras, "您的角色不能查看摄像头");
    }
    let text = q.school.as_deref().map(str::trim).unwrap_or("").to_string();
    let mut ctx = ctx;
    let mut code = StatusCode::OK;
    let under = if text.is_empty() {
        None
    } else {
        match text.parse::<NodeId>() {
            Ok(u) if s.me.is_ancestor_or_self_of(u) => Some(u),
            Ok(u) => return denied(&s, ctx, Nav::Cameras, format!("{u} 不在本单位（{}）的管辖范围内", s.me)).await,
            Err(e) => {
                ctx = ctx.with_error(format!("单位编码“{text}”不对：{e}"));
                code = StatusCode::BAD_REQUEST;
                None
            }
        }
    };
    let (cameras, streams) = match (
        entity_views(&s, Some(EntityKind::Camera), under).await,
        entity_views(&s, Some(EntityKind::CameraStream), under).await,
    ) {
        (Ok(c), Ok(st)) => (c, st),
        (Err(e), _) | (_, Err(e)) => {
            ctx = ctx.with_error(reason(&e));
            code = e.0;
            (Vec::new(), Vec::new())
        }
    };
    let streams: BTreeMap<(NodeId, String), CameraStream> = streams
        .into_iter()
        .filter_map(|v| match v.data {
            EntityData::CameraStream(st) => Some(((v.node, v.id), st)),
            _ => None,
        })
        .collect();
    let total = cameras.len();
    let rows: Vec<(NodeId, String, Camera)> = cameras
        .into_iter()
        .filter_map(|v| match v.data {
            EntityData::Camera(c) => Some((v.node, v.id, c)),
            _ => None,
        })
        .take(LIST_ROWS)
        .collect();
    let body = html! {
        form.box method="get" action="/cameras" {
            label { "学校或区县编码 " input name="school" value=(text) placeholder="如 130102-S0001"; }
            " " button type="submit" { "查看" }
        }
        @if s.hls_base.is_none() {
            p.muted { "本节点未配置媒体服务器（[video] hls_base），只有登记了自身 HLS 地址的摄像头可以观看。" }
        }
        @if rows.is_empty() { (empty("没有登记的摄像头。")) } @else {
            @if total > rows.len() { p.muted { "共 " (total) " 个摄像头，只列出前 " (rows.len()) " 个；请按学校或区县查看。" } }
            div.scroll { table.rows #cameras {
                thead { tr { th { "学校" } th { "摄像头" } th { "区域" } th { "家长可见" } th { "视频流" } th { "" } } }
                tbody { @for (school, id, c) in &rows {
                    @let stream = streams.get(&(*school, id.clone()));
                    @let playable = stream.and_then(|st| st.playlist(s.hls_base.as_deref())).is_some();
                    tr data-camera=(id) {
                        td data-l="学校" { (crate::api::kit::name_of(&s, *school)) " " span.muted { (school) } }
                        td data-l="摄像头" { (c.name) " " span.muted { "（" (id) "）" } }
                        td data-l="区域" { (c.zone.zh()) }
                        td data-l="家长可见" { @if c.parent_visible { "是" } @else { "否" } }
                        td data-l="视频流" { @match stream {
                            Some(st) => { (stream_label(st)) }
                            None => span.muted { "未登记" },
                        } }
                        td { @if playable {
                            a.live href=(live_href(*school, id)) { "看直播" }
                        } }
                    }
                } }
            } }
        }
    };
    refused(code, shell(&ctx.0, Nav::Cameras, "摄像头", body))
}

/// The address of a camera's live page.
pub fn live_href(school: NodeId, camera: &str) -> String {
    format!("/cameras/live?school={school}&camera={camera}")
}

fn stream_label(st: &CameraStream) -> Markup {
    html! {
        @if !st.hls_url.is_empty() { "HLS " (st.hls_url) } @else { "流 " (st.stream) }
        @if !st.gb_channel.is_empty() { br; span.muted { "国标通道 " (st.gb_channel) } }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LiveQuery {
    pub school: Option<String>,
    pub camera: Option<String>,
}

/// `GET /cameras/live?school=&camera=`: one camera's live picture.
pub async fn live(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<LiveQuery>) -> Response {
    let parent = ctx.may(Action::ViewParentPage);
    let nav = if parent { Nav::Parent } else { Nav::Cameras };
    if !parent && !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, nav, "您的角色不能观看摄像头");
    }
    let school_text = q.school.as_deref().map(str::trim).unwrap_or("");
    let camera = q.camera.as_deref().map(str::trim).unwrap_or("").to_string();
    // A parent's page names no school: it is the node's own.
    let school_text =
        if school_text.is_empty() && s.me.tier() == Tier::School { s.me.to_string() } else { school_text.into() };
    let school = match school_text.parse::<NodeId>() {
        Ok(u) if u.tier() == Tier::School => u,
        Ok(u) => return bad(ctx, nav, &format!("{u} 不是学校，请给出学校编码，如 130102-S0001")),
        Err(e) => return bad(ctx, nav, &format!("学校编码“{school_text}”不对：{e}")),
    };
    if protocol::registry::local_id("camera", &camera).is_err() {
        return bad(ctx, nav, &format!("摄像头编号“{camera}”不对：只能由字母、数字、-、_、. 组成"));
    }
    if parent && school != s.me {
        return denied(&s, ctx, nav, format!("家长只能观看本校（{}）开放给家长的摄像头", s.me)).await;
    }
    if !parent && !s.me.is_ancestor_or_self_of(school) {
        return denied(&s, ctx, nav, format!("{school} 不在本单位（{}）的管辖范围内", s.me)).await;
    }
    let registry = match s.reads.registry_of(school).await {
        Ok(r) => r,
        Err(e) => {
            let c = ctx.with_error(format!("读取登记信息失败：{e}"));
            return refused(StatusCode::INTERNAL_SERVER_ERROR, shell(&c.0, nav, "直播", html! {}));
        }
    };
    let key = |kind| EntityRef { kind, node: school, id: camera.clone() };
    let cam = match registry.get(&key(EntityKind::Camera)).map(|e| &e.data) {
        Some(EntityData::Camera(c)) => Some(c.clone()),
        _ => None,
    };
    let cam = match cam {
        Some(c) if !parent || c.parent_visible => c,
        _ if parent => return denied(&s, ctx, nav, "该摄像头没有向家长开放".to_string()).await,
        _ => {
            let c = ctx.with_error(format!("{school} 没有登记摄像头 {camera}"));
            return refused(StatusCode::NOT_FOUND, shell(&c.0, nav, "直播", html! {}));
        }
    };
    let stream = match registry.get(&key(EntityKind::CameraStream)).map(|e| &e.data) {
        Some(EntityData::CameraStream(st)) => Some(st.clone()),
        _ => None,
    };
    let playlist = stream.as_ref().and_then(|st| st.playlist(s.hls_base.as_deref()));
    let school_name = crate::api::kit::name_of(&s, school);
    let title = format!("{} · {}", cam.name, cam.zone.zh());
    let body = html! {
        p { strong { (school_name) } " " span.muted { (school) } " · " (cam.name) " " span.muted { "（" (camera) "）" } }
        @match &playlist {
            Some(url) => {
                div.live {
                    video #live muted autoplay playsinline controls data-src=(url) {}
                }
                p #live-state role="status" { "正在连接视频……" }
                p.muted { "画面由媒体服务器直接提供，可能比现场晚几秒。" }
                script src="/assets/hls.min.js" {}
                script src="/assets/live.js" {}
            }
            None => {
                @if stream.is_some() {
                    (empty("该摄像头只登记了流路径，本节点未配置媒体服务器（[video] hls_base），暂时无法观看。"))
                } @else {
                    (empty("该摄像头尚未登记视频流地址，暂时无法观看。"))
                }
            }
        }
        p { a href=(if parent { "/parent" } else { "/cameras" }) { "返回" } }
    };
    let mut resp = refused(StatusCode::OK, shell(&ctx.0, nav, &title, body));
    if let Some(origin) = playlist.as_deref().and_then(protocol::registry::http_origin)
        && let Ok(v) = HeaderValue::from_str(&live_csp(origin))
    {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp.into_response()
}

/// The console's policy plus the media server's origin for the playlist and segments, and `blob:`
/// for the media source hls.js feeds the `<video>`.
pub fn live_csp(origin: &str) -> String {
    format!(
        "{}; connect-src 'self' {origin}; media-src 'self' blob: {origin}; worker-src 'self' blob:",
        crate::console::CSP
    )
}

/// 403 with the reason, written to the audit log and counted like every refusal of scope.
async fn denied(s: &AdminState, ctx: Ctx, nav: Nav, why: String) -> Response {
    let _ = crate::api::principal::deny(s, &ctx.principal(), &why).await;
    forbidden(ctx, nav, &why)
}

fn bad(ctx: Ctx, nav: Nav, why: &str) -> Response {
    let c = ctx.with_error(why.to_string());
    refused(StatusCode::BAD_REQUEST, shell(&c.0, nav, "直播", html! {}))
}
