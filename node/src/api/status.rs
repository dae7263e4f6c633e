//! The node's status, its cursors, and the test-only movable clock.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::api::AdminState;
use crate::api::kit::{ADMIN_CALL_TIMEOUT_MS, ApiResult, api_err as err, bad, internal};
use crate::runtime::root::{NodeMsg, NodeStatus};
use crate::runtime::store::StoreMsg;

async fn status(State(s): State<AdminState>) -> ApiResult<NodeStatus> {
    let mut st = ractor::call_t!(s.node, NodeMsg::Status, ADMIN_CALL_TIMEOUT_MS).map_err(internal)?;
    st.denied_requests = s.denied.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Json(st))
}

#[derive(Debug, Default, Deserialize)]
pub struct CursorParams {
    pub under: Option<String>,
}

/// How far this node holds each origin of a subtree (contiguous seq), e.g. "what does the
/// province hold of school X".
async fn cursors(State(s): State<AdminState>, Query(p): Query<CursorParams>) -> ApiResult<Vec<(NodeId, u64)>> {
    let root = match p.under {
        Some(u) => u.parse::<NodeId>().map_err(|e| bad(e.to_string()))?,
        None => s.me,
    };
    ractor::call_t!(s.store, |reply| StoreMsg::CursorsUnder { root, reply }, ADMIN_CALL_TIMEOUT_MS)
        .map(Json)
        .map_err(internal)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdvanceClock {
    pub ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClockView {
    pub wall_ms: u64,
    pub offset_ms: u64,
}

async fn advance_clock(State(s): State<AdminState>, Json(req): Json<AdvanceClock>) -> ApiResult<ClockView> {
    if !s.clock_control {
        return Err(err(StatusCode::FORBIDDEN, "本节点的时钟不可调（仅供测试：在配置中设置 clock_control）"));
    }
    let offset_ms = s.clock.advance_ms(req.ms).map_err(bad)?;
    s.scan_now.notify_one();
    Ok(Json(ClockView { wall_ms: s.clock.wall_ms(), offset_ms }))
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/cursors", get(cursors))
        .route("/api/clock/advance", post(advance_clock))
}
