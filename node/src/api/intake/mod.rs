//! The device intake: the listener on a school's LAN (`[devices] listen`) where its registered
//! devices ([`crate::api::devices`]) post detections and camera heartbeats. JSON in and out;
//! every request carries `Authorization: Bearer <device token>`.
//!
//! - `POST /device/v1/detections` — one detection: `{ "detection_id", "camera", "type" (a
//!   taxonomy code: `NO_MASK`), "detected_at_ms" (optional, default now), "confidence" (a number
//!   from 0 to 1; kept in per mille), "snapshot" (optional reference) }`. The camera must be one
//!   the device speaks for. It raises the alert through [`crate::api::alerts::raise_as`] — the
//!   same merge window as the admin API; no person in the event; the device named in the log.
//!   `201 { "alert", "merged", "duplicate": false }`; the same `(device, detection_id)` again
//!   answers `200` with the same alert and `"duplicate": true` and writes nothing ([`seen`]).
//! - `POST /device/v1/heartbeat` — `{ "cameras": [ { "camera", "online", "recording_days"? } ] }`:
//!   each camera's last heartbeat, kept as last values ([`crate::runtime::cameras`]).
//!   `200 { "cameras": n, "offline_after_s" }`.
//!
//! Checks, in this order, each refusal writing nothing: a declared body over [`BODY_LIMIT`] →
//! 413; an unknown, rotated or revoked token → 401 (`设备令牌无效或已吊销`); the device's token
//! bucket empty → 429 with `Retry-After` ([`bucket`]); the body read in full up to the limit → 413
//! beyond; then the request's fields → 400 with the reason (403 for a registered camera the
//! device does not speak for). Errors are `{ "error": "<中文>", "code": "<kebab-case>" }`.

pub mod bucket;
pub mod seen;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;
use protocol::{Body as EventBody, EventId};
use serde::{Deserialize, Serialize};

use crate::api::AdminState;
use crate::api::alerts::{RaiseAlert, raise_as};
use crate::api::audit::{keep_local, write_local};
use crate::api::devices::{DeviceRecord, school_cameras};
use crate::api::kit::ApiFail;
use crate::runtime::cameras::{Beat, beat_op, offline_after_ms};
use crate::runtime::root::NodeMsg;
use crate::runtime::store::read_event;

/// The largest request body the intake reads.
pub const BODY_LIMIT: usize = 64 * 1024;
/// A body must arrive within this.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
pub use protocol::intake::{
    CameraBeat, Detection, FUTURE_SLACK_MS, Heartbeat, IntakeError, RECORDING_DAYS_MAX, json_error_zh,
};
/// How often old detection ids are pruned (at most; on a detection).
const PRUNE_EVERY_MS: u64 = 3_600_000;
/// Most detection ids pruned in one pass.
const PRUNE_MAX: usize = 10_000;

/// Every error answer: the reason in Chinese (with the English after a slash where it helps a
/// developer), and a stable code a device's firmware can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceError {
    pub error: String,
    pub code: String,
}

/// A refusal: the status and the [`DeviceError`] it answers with.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub body: DeviceError,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

fn fail(status: StatusCode, code: &str, error: impl Into<String>) -> Refusal {
    Refusal { status, body: DeviceError { error: error.into(), code: code.into() } }
}

/// The intake's state: the node's, the devices' rate limits, one detection at a time per device.
#[derive(Clone)]
pub struct IntakeState {
    pub admin: AdminState,
    pub limiter: Arc<bucket::RateLimiter>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    pruned_at_ms: Arc<AtomicU64>,
    /// Requests refused for their token since the node started, and when that was last logged.
    bad_tokens: Arc<AtomicU64>,
    bad_tokens_logged_ms: Arc<AtomicU64>,
}

impl IntakeState {
    fn lock_for(&self, device: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(device.to_string()).or_default().clone()
    }
}

/// The device that a request's token names (put there by [`gate`]).
#[derive(Clone, Debug)]
pub struct Authed(pub DeviceRecord);

/// The intake's router: the two routes behind [`gate`]; anything else is a JSON 404 or 405.
pub fn router(admin: AdminState, rate_per_s: u32, burst: u32) -> Router {
    let state = IntakeState {
        admin,
        limiter: Arc::new(bucket::RateLimiter::new(rate_per_s, burst)),
        locks: Default::default(),
        pruned_at_ms: Default::default(),
        bad_tokens: Default::default(),
        bad_tokens_logged_ms: Default::default(),
    };
    Router::new()
        .route("/device/v1/detections", post(detections).fallback(wrong_method))
        .route("/device/v1/heartbeat", post(heartbeat).fallback(wrong_method))
        .route(SNAPSHOTS_PATH, post(snapshot).fallback(wrong_method))
        .route_layer(from_fn_with_state(state.clone(), gate))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Refusal {
    fail(
        StatusCode::NOT_FOUND,
        "not-found",
        "没有这个接口；设备接入只有 POST /device/v1/snapshots、/device/v1/detections 与 /device/v1/heartbeat / no such route",
    )
}

async fn wrong_method() -> Refusal {
    fail(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "设备接入只接受 POST / only POST is accepted")
}

fn too_large(limit: usize) -> Refusal {
    fail(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!("请求内容超过 {} KiB 的上限，未做任何处理 / the body is above {} KiB", limit / 1024, limit / 1024),
    )
}

/// How much of a declared-too-large body is read (and dropped) before the 413, so the device
/// reads the answer instead of a connection reset while it is still sending.
const DRAIN_MAX: usize = 1 << 20;

/// Token, rate limit and body, before any handler (see the module's doc for the order).
/// The largest body of a request to `path`: a snapshot's image, or [`BODY_LIMIT`] of JSON.
fn limit_for(path: &str) -> usize {
    if path == SNAPSHOTS_PATH { protocol::files::FILE_BYTES_MAX } else { BODY_LIMIT }
}

/// Where a device uploads a detection's snapshot (the image bytes as the body).
pub const SNAPSHOTS_PATH: &str = "/device/v1/snapshots";

async fn gate(State(st): State<IntakeState>, req: Request, next: Next) -> Response {
    let limit = limit_for(req.uri().path());
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        if n <= (limit + DRAIN_MAX) as u64 {
            let read = http_body_util::Limited::new(req.into_body(), limit + DRAIN_MAX).collect();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
        }
        return too_large(limit).into_response();
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let device = if token.is_empty() { None } else { st.admin.devices.lock().by_token(token).cloned() };
    let Some(device) = device else {
        // Logged at most once a minute: a misconfigured device retrying must not flood the log.
        let refused = st.bad_tokens.fetch_add(1, Ordering::Relaxed) + 1;
        let now = st.admin.clock.now_ms();
        let last = st.bad_tokens_logged_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 60_000)
            && st.bad_tokens_logged_ms.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(
                node = %st.admin.me, path = %req.uri().path(), refused_since_start = refused,
                "device request refused: unknown or revoked token"
            );
        }
        return fail(
            StatusCode::UNAUTHORIZED,
            "bad-token",
            "设备令牌无效或已吊销 / the device token is unknown or revoked",
        )
        .into_response();
    };
    if let Err(wait_ms) = st.limiter.check(&device.id, st.admin.clock.now_ms()) {
        let secs = wait_ms.div_ceil(1_000).max(1);
        let mut resp = fail(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!(
                "设备 {} 请求过于频繁（每秒至多 {} 次，连续至多 {} 次），请 {secs} 秒后再试 / too many requests",
                device.id, st.limiter.rate_per_s, st.limiter.burst
            ),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        // The body is read (and dropped) so the device's connection stays open for its retry:
        // a refused request should not cost it a new TLS handshake.
        let read = http_body_util::Limited::new(req.into_body(), limit).collect();
        let _ = tokio::time::timeout(BODY_TIMEOUT, read).await;
        return resp;
    }
    if let Some(op) = st.admin.devices.touch(&device.id, st.admin.clock.wall_ms()) {
        keep_local(&st.admin, vec![op]);
    }
    let (parts, body) = req.into_parts();
    let read = http_body_util::Limited::new(body, limit).collect();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return too_large(limit).into_response();
        }
        Ok(Err(_)) | Err(_) => {
            return fail(StatusCode::BAD_REQUEST, "incomplete", "请求内容没有完整收到，请重试 / incomplete body")
                .into_response();
        }
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(Authed(device));
    next.run(req).await
}

/// A JSON body as `T`, or a 400 saying in Chinese what is wrong with it
/// ([`protocol::intake::parse_json`]).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    protocol::intake::parse_json(body).map_err(refused)
}

/// A body's field refused by [`protocol::intake`]: a 400 with its code and reason.
fn refused(e: IntakeError) -> Refusal {
    fail(StatusCode::BAD_REQUEST, e.code, e.error)
}

/// A camera the device does not speak for: 403 when it is registered here (another device's),
/// 400 when the school has no such camera at all.
async fn not_its_camera(s: &AdminState, device: &DeviceRecord, camera: &str) -> Refusal {
    let registered = match school_cameras(s).await {
        Ok(c) => c.contains_key(camera),
        Err(f) => return from_api(f),
    };
    if registered {
        fail(
            StatusCode::FORBIDDEN,
            "camera-not-assigned",
            format!(
                "摄像头 {camera} 不归设备 {} 负责（它负责：{}） / not this device's camera",
                device.id,
                device.cameras.join("、")
            ),
        )
    } else {
        fail(
            StatusCode::BAD_REQUEST,
            "unknown-camera",
            format!("本校没有登记摄像头“{camera}” / camera `{camera}` is not registered at this school"),
        )
    }
}

/// A refusal of the node's domain functions as the intake answers it.
fn from_api(f: ApiFail) -> Refusal {
    let (status, msg) = (f.0, f.1.0.error);
    match status {
        StatusCode::SERVICE_UNAVAILABLE => fail(
            status,
            "unavailable",
            format!("学校节点暂时不能接收（数据恢复中或繁忙），请稍后重试 / try again later: {msg}"),
        ),
        StatusCode::INTERNAL_SERVER_ERROR => {
            fail(status, "storage", format!("学校节点存储出错，请稍后重试 / the node failed: {msg}"))
        }
        StatusCode::BAD_REQUEST => fail(status, "invalid", format!("检测无效：{msg}")),
        _ => fail(status, "refused", msg),
    }
}

/// The answer to a detection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionAnswer {
    /// The alert it raised or joined (`130102-S0001#7`).
    pub alert: String,
    /// It was a repeat within the merge window: one more detection of `alert`.
    pub merged: bool,
    /// This detection id was seen before: nothing was written now.
    pub duplicate: bool,
}

/// Checks a detection's fields (all but the camera, [`Detection::check`]): the alert to raise, or
/// the refusal.
fn check_detection(d: &Detection, now_ms: u64) -> Result<RaiseAlert, Refusal> {
    let d = d.check(now_ms).map_err(refused)?;
    Ok(RaiseAlert {
        camera: d.camera,
        alert_type: d.alert_type.code().to_string(),
        confidence_permille: Some(d.confidence_permille),
        snapshot: d.snapshot,
        detected_at_ms: Some(d.detected_at_ms),
        ..RaiseAlert::default()
    })
}

/// What an earlier detection wrote, as the alert it raised or joined.
fn earlier(s: &AdminState, seq: u64) -> Result<DetectionAnswer, Refusal> {
    let id = EventId { origin: s.me, seq };
    let event = read_event(s.reads.storage(), id).map_err(|e| from_api(crate::api::kit::read_fail(e)))?;
    match event.map(|e| e.event.body) {
        Some(EventBody::Alert(_)) => Ok(DetectionAnswer { alert: id.to_string(), merged: false, duplicate: true }),
        Some(EventBody::AlertUpdate(u)) => {
            Ok(DetectionAnswer { alert: u.alert.to_string(), merged: true, duplicate: true })
        }
        _ => Err(fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            format!("检测编号记录指向的事件 {id} 不是告警 / the detection's record is inconsistent"),
        )),
    }
}

/// A detection's snapshot (JPEG or PNG, the body): stored at the school under its SHA-256; the
/// answer's `snapshot` is what the detection then names. The same image again is the same file.
async fn snapshot(
    State(st): State<IntakeState>,
    Extension(Authed(device)): Extension<Authed>,
    body: Bytes,
) -> Result<Response, Refusal> {
    match crate::api::files::store_file(&st.admin, protocol::files::FileKind::Snapshot, &body).await {
        Ok((hash, meta)) => {
            tracing::debug!(node = %st.admin.me, device = %device.id, size = meta.size, "snapshot stored");
            Ok((
                StatusCode::CREATED,
                axum::Json(serde_json::json!({
                    "snapshot": protocol::files::file_ref(&hash),
                    "size": meta.size,
                    "content_type": meta.content.mime(),
                })),
            )
                .into_response())
        }
        Err((status, axum::Json(e))) => {
            let code = match status {
                StatusCode::PAYLOAD_TOO_LARGE => "too-large",
                StatusCode::BAD_REQUEST => "bad-image",
                _ => "storage",
            };
            Err(fail(status, code, e.error))
        }
    }
}

async fn detections(
    State(st): State<IntakeState>,
    Extension(Authed(device)): Extension<Authed>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let s = &st.admin;
    let d: Detection = parse(&body)?;
    let now = s.clock.wall_ms();
    let req = check_detection(&d, now)?;
    if !device.cameras.contains(&req.camera) {
        return Err(not_its_camera(s, &device, &req.camera).await);
    }
    // One detection of a device at a time: the check for its id and the write that keeps it.
    let lock = st.lock_for(&device.id);
    let _one = lock.lock().await;
    let seen = seen::seen(s.reads.storage(), &device.id, &d.detection_id);
    if let Some((seq, _)) = seen.map_err(|e| from_api(crate::api::kit::read_fail(e)))? {
        return Ok((StatusCode::OK, axum::Json(earlier(s, seq)?)).into_response());
    }
    let marks = seen::marks(&device.id, &d.detection_id, now);
    let view = raise_as(s, None, &req, marks).await.map_err(from_api)?;
    tracing::info!(
        node = %s.me, device = %device.id, detection = %d.detection_id, alert = %view.id, merged = view.merged,
        camera = %req.camera, r#type = %req.alert_type, "detection from a device"
    );
    prune_now_and_then(&st, now);
    let answer = DetectionAnswer { alert: view.id, merged: view.merged, duplicate: false };
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// Forgets detection ids older than [`seen::SEEN_KEEP_MS`], at most every [`PRUNE_EVERY_MS`], in
/// the background.
fn prune_now_and_then(st: &IntakeState, now_ms: u64) {
    let last = st.pruned_at_ms.load(Ordering::Relaxed);
    if now_ms.saturating_sub(last) < PRUNE_EVERY_MS
        || st.pruned_at_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    let s = st.admin.clone();
    tokio::spawn(async move {
        let before = now_ms.saturating_sub(seen::SEEN_KEEP_MS);
        match s.reads.run(move |storage| seen::expired(storage, before, PRUNE_MAX)).await {
            Ok(ops) if ops.is_empty() => {}
            Ok(ops) => {
                let n = ops.len() / 2;
                match write_local(&s, ops).await {
                    Ok(()) => tracing::info!(node = %s.me, pruned = n, "old detection ids forgotten"),
                    Err(e) => tracing::warn!(node = %s.me, error = %e.1.0.error, "could not prune detection ids"),
                }
            }
            Err(e) => tracing::warn!(node = %s.me, error = %e, "could not read old detection ids"),
        }
    });
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// Cameras taken.
    pub cameras: usize,
    /// A camera counts as offline once its last heartbeat is this old: send one more often.
    pub offline_after_s: u64,
}

async fn heartbeat(
    State(st): State<IntakeState>,
    Extension(Authed(device)): Extension<Authed>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let s = &st.admin;
    let hb: Heartbeat = parse(&body)?;
    hb.check().map_err(refused)?;
    for c in &hb.cameras {
        let camera = c.camera.trim();
        if !device.cameras.iter().any(|m| m == camera) {
            return Err(not_its_camera(s, &device, camera).await);
        }
        c.check().map_err(refused)?;
    }
    let after = offline_after_ms(&s.reads, s.me).await.map_err(|e| from_api(crate::api::kit::read_fail(e)))?;
    let now = s.clock.wall_ms();
    let mut ops = Vec::with_capacity(hb.cameras.len());
    let mut changed = false;
    for c in &hb.cameras {
        let camera = c.camera.trim();
        let kept_days = s.cameras.lock().get(camera).and_then(|b| b.recording_days);
        let beat = Beat {
            at_ms: now,
            online: c.online,
            recording_days: c.recording_days.or(kept_days),
            device: device.id.clone(),
        };
        ops.push(beat_op(camera, &beat));
        changed |= s.cameras.record(camera, beat, after);
    }
    keep_local(s, ops);
    if changed {
        let _ = s.node.cast(NodeMsg::CamerasChanged);
    }
    tracing::debug!(node = %s.me, device = %device.id, cameras = hb.cameras.len(), "heartbeat");
    let answer = HeartbeatAnswer { cameras: hb.cameras.len(), offline_after_s: after / 1_000 };
    Ok((StatusCode::OK, axum::Json(answer)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field rules are `protocol::intake`'s (tested there); here: what a checked detection
    /// becomes, and that a refusal answers 400.
    #[test]
    fn a_checked_detection_becomes_an_alert_and_a_refusal_a_400() {
        let now = 1_764_400_000_000;
        let mut d = Detection {
            detection_id: "d-1".into(),
            camera: " cam-01 ".into(),
            alert_type: "no-mask".into(),
            detected_at_ms: None,
            confidence: 0.8765,
            snapshot: Some("snap/1.jpg".into()),
        };
        let ok = check_detection(&d, now).unwrap();
        assert_eq!(ok.camera, "cam-01");
        assert_eq!(ok.alert_type, "NO_MASK");
        assert_eq!(ok.confidence_permille, Some(877));
        assert_eq!(ok.detected_at_ms, Some(now));
        d.confidence = f64::NAN;
        assert_eq!(check_detection(&d, now).map(|_| ()).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
