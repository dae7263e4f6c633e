//! The local admin API (HTTP + JSON on loopback) that the `mingchu` CLI talks to: one module per
//! feature (alerts, cases, devices, directives, registry, spot checks, status) and the shared kit;
//! and beside it the device intake (`intake`), a school's listener for its devices.
//! Errors are JSON `{"error": "..."}` with a 4xx/5xx status; bad input never reaches the store.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod bulletins;
pub mod cases;
pub mod devices;
pub mod directives;
pub mod draw;
pub mod files;
pub mod health;
pub mod intake;
pub mod kit;
pub mod ledgers;
pub mod metrics;
pub mod principal;
pub mod registry;
pub mod spot;
pub mod status;
pub mod warnings;

use axum::Router;
use ractor::ActorRef;
use topology::NodeId;

use crate::runtime::reads::Reads;
use crate::runtime::root::NodeMsg;
use crate::runtime::store::StoreMsg;

/// What every route may use: one shared [`AdminShared`] (axum clones the state for every request
/// and every middleware: one reference count, not one per field).
#[derive(Clone)]
pub struct AdminState(std::sync::Arc<AdminShared>);

impl AdminState {
    pub fn new(shared: AdminShared) -> AdminState {
        AdminState(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for AdminState {
    type Target = AdminShared;
    fn deref(&self) -> &AdminShared {
        &self.0
    }
}

/// The node's state behind [`AdminState`].
pub struct AdminShared {
    pub me: NodeId,
    pub node: ActorRef<NodeMsg>,
    pub store: ActorRef<StoreMsg>,
    /// Reads beside the store actor (which stays the only writer).
    pub reads: Reads,
    /// Names of the units (shown beside their codes).
    pub topology: std::sync::Arc<topology::Topology>,
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// `POST /api/clock/advance` allowed (tests only).
    pub clock_control: bool,
    /// Wakes the case scheduler (after the clock moved).
    pub scan_now: std::sync::Arc<tokio::sync::Notify>,
    pub recent_alerts: alerts::RecentAlerts,
    /// The token every admin request must carry (`Authorization: Bearer …`): the CLI reads it from
    /// the file only root and the node's user can read.
    pub token: std::sync::Arc<String>,
    /// Recent failed sign-ins per account (the throttle).
    pub sign_in_failures: accounts::SignInFailures,
    /// The web console's sign-in sessions (in memory: a restart signs everyone out).
    pub sessions: std::sync::Arc<crate::console::session::Sessions>,
    /// Requests refused for want of permission or scope (403), since the node started.
    pub denied: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// When the node's process started serving (`mingchu_uptime_seconds`).
    pub started: std::time::Instant,
    /// The early-warning engine (shared with the scheduler: one pass at a time).
    pub engine: crate::runtime::warnings::Engine,
    /// A school's devices (AI boxes, video recorders): records and token hashes, local only.
    pub devices: devices::Devices,
    /// A school's cameras' last heartbeats (shared with the root actor's health report).
    pub cameras: crate::runtime::cameras::SharedCameras,
    /// Where the school's devices reach its intake (`https://192.168.10.5:8444`), when it has one.
    pub intake_url: Option<String>,
    /// The big screen's refresh and map (`[console] screen_refresh_s`, `screen_map`).
    pub screen: crate::config::ScreenSetup,
    /// The media server's HLS base address (`[video] hls_base`), for cameras' live pictures.
    pub hls_base: Option<String>,
}

/// The response header in which every answer names the node that gave it.
pub const NODE_HEADER: &str = "x-mingchu-node";

/// The admin API: every feature's routes over the node's state, each behind the token; and
/// [`metrics::routes`] (`/metrics`, `/healthz`, `/readyz`) without it. Every answer carries the
/// node's id in [`NODE_HEADER`], so a client can check it reached the node it meant.
pub fn router(state: AdminState) -> Router {
    let me = axum::http::HeaderValue::from_str(&state.me.to_string()).ok();
    let name_me = axum::middleware::map_response(move |mut resp: axum::response::Response| {
        let me = me.clone();
        async move {
            if let Some(me) = me {
                resp.headers_mut().insert(NODE_HEADER, me);
            }
            resp
        }
    });
    let token = state.token.clone();
    let need_token = axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
        let token = token.clone();
        async move {
            let given = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            if given.and_then(|v| v.strip_prefix("Bearer ")) == Some(token.as_str()) {
                next.run(req).await
            } else {
                use axum::response::IntoResponse;
                kit::api_err(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "本机管理接口需要令牌：请以节点的用户或 root 运行 mingchu（令牌文件只有它们能读） / the admin API \
                     needs the node's token: run mingchu as the node's user or root",
                )
                .into_response()
            }
        }
    });
    Router::new()
        .merge(accounts::routes())
        .merge(alerts::routes())
        .merge(cases::routes())
        .merge(devices::routes())
        .merge(directives::routes())
        .merge(bulletins::routes())
        .merge(draw::routes())
        .merge(health::routes())
        .merge(registry::routes())
        .merge(spot::routes())
        .merge(ledgers::routes())
        .merge(files::routes())
        .merge(warnings::routes())
        .merge(status::routes())
        .with_state(state.clone())
        .layer(need_token)
        // Merged after the token layer, so it does not cover them.
        .merge(metrics::routes().with_state(state))
        .layer(name_me)
}
