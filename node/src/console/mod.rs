//! The web console: Chinese pages for people, served by the node itself over HTTPS on its LAN
//! address (plain HTTP only on loopback). It renders from the node's own store, so a county's
//! console keeps working while the province is gone.
//!
//! - [`serve`]: the listener (rustls), [`session`]: sign-in sessions and CSRF tokens,
//!   [`auth`]: the sign-in, sign-out and password pages and the layer that turns a session cookie
//!   into a [`crate::api::principal::Principal`].
//! - [`layout`]: the page shell (header, navigation by permission), [`pages`]: one module per
//!   page, each calling the same domain functions as the admin API.
//! - [`assets`]: the stylesheet and scripts, embedded in the binary (nothing is fetched).
//!
//! [`router`] puts them together under the layers every console answer passes: security headers,
//! the [`crate::api::principal::ConsoleRequest`] marker, the body limit (64 KiB; 16 MiB and a bit
//! for the one form with photos, [`UPLOAD_PATH`]), and the session layer.
//!
//! Images (an alert's snapshot, a rectification's photos) are served by the console itself at
//! `/files/{ref}?holder=` ([`pages::files`]), so `img-src 'self'` in the [`CSP`] covers them.

pub mod assets;
pub mod auth;
pub mod layout;
pub mod pages;
pub mod serve;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use protocol::files::FILE_BYTES_MAX;
use tokio::sync::Semaphore;

use crate::api::AdminState;
use crate::api::principal::ConsoleRequest;

/// The largest request body the console reads (its forms are small): larger is refused with 413.
/// The form with photos ([`UPLOAD_PATH`]) has its own, [`UPLOAD_BODY_LIMIT`].
pub const BODY_LIMIT: usize = 64 * 1024;

/// The Content-Security-Policy of every console answer: only this origin's styles and scripts, no
/// plugins, no framing by another site, forms posted only here.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; \
                       base-uri 'none'; form-action 'self'";

/// The console: the sign-in, sign-out and password pages, the assets and the pages, behind the
/// layers every request passes (outermost first): security headers; the `ConsoleRequest` marker
/// (its principal can only be the session's person); the body limit; the session layer with its
/// CSRF check ([`auth::require_session`]). The probes of [`crate::api::metrics::routes`]
/// (`/metrics`, `/healthz`, `/readyz`: aggregates only) are merged outside the session layer and
/// answer without a session.
pub fn router(state: AdminState) -> Router {
    let console = Router::new()
        .merge(auth::routes())
        .route("/assets/{file}", get(assets::asset))
        .merge(pages::routes())
        .fallback(auth::not_found)
        .layer(from_fn_with_state(state.clone(), auth::require_session))
        .layer(from_fn_with_state(
            Limits { state: state.clone(), uploads: Arc::new(Semaphore::new(UPLOADS_AT_ONCE)) },
            limit_body,
        ))
        .layer(from_fn(mark_console))
        .layer(from_fn(security_headers))
        .layer(from_fn(server_timing))
        .with_state(state.clone());
    crate::api::metrics::routes().with_state(state).merge(console)
}

/// Says in every answer how long the node took to make it (`Server-Timing: app;dur=1.84`, in
/// milliseconds): the console benchmark reads it, and so can a browser's developer tools. A
/// handler that times its own parts (the big screen's data) puts them in the same header; they
/// follow `app`.
async fn server_timing(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let parts = resp.headers().get("server-timing").and_then(|v| v.to_str().ok()).map(|p| format!(", {p}"));
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={ms:.2}{}", parts.unwrap_or_default())) {
        resp.headers_mut().insert("server-timing", v);
    }
    resp
}

async fn mark_console(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(ConsoleRequest);
    next.run(req).await
}

/// A route that takes files: the school's rectification with its photos
/// ([`pages::cases::submit`], `multipart/form-data`); the other is the province's record of a
/// worklist check with its snapshots ([`pages::draw::RECORD_PATH`]). Their bodies may be up to
/// [`UPLOAD_BODY_LIMIT`].
pub const UPLOAD_PATH: &str = "/cases/submit";
/// Photos one submission may carry.
pub const PHOTOS_MAX: usize = 4;
/// The largest body of [`UPLOAD_PATH`]: [`PHOTOS_MAX`] photos at their largest
/// ([`FILE_BYTES_MAX`]) plus the form's fields and the multipart framing.
pub const UPLOAD_BODY_LIMIT: usize = PHOTOS_MAX * FILE_BYTES_MAX + BODY_LIMIT;
/// How much of a too-long upload is read and dropped before the answer (see [`limit_body`]).
const UPLOAD_DRAIN_MAX: usize = 2 * UPLOAD_BODY_LIMIT;
/// An upload's body must arrive within this (16 MiB from a phone on the school's Wi-Fi).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Uploads read at once (each is held in memory until its handler is done); more wait their turn.
pub const UPLOADS_AT_ONCE: usize = 4;

/// What [`limit_body`] needs: the sessions (an upload is read in full only for a live session)
/// and the uploads' turns.
#[derive(Clone)]
struct Limits {
    state: AdminState,
    uploads: Arc<Semaphore>,
}

/// Reads the whole body, up to [`BODY_LIMIT`] — [`UPLOAD_BODY_LIMIT`] for a POST to
/// [`UPLOAD_PATH`] by a live session, one of [`UPLOADS_AT_ONCE`] at a time: a longer one
/// (declared or sent) is refused with 413 before any handler runs. The excess is read and dropped
/// up to [`DRAIN_MAX`] ([`UPLOAD_DRAIN_MAX`]) so that the client, still sending, gets the answer
/// rather than a reset connection; the body must arrive within [`BODY_TIMEOUT`]
/// ([`UPLOAD_TIMEOUT`]). An upload without a live session is read and dropped whole, so the
/// session layer's "登录已过期" reaches the browser: nothing of it is kept.
async fn limit_body(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let upload = req.method() == Method::POST
        && (req.uri().path() == UPLOAD_PATH || req.uri().path() == pages::draw::RECORD_PATH);
    let (keep, drain, timeout) = if upload {
        (UPLOAD_BODY_LIMIT, UPLOAD_DRAIN_MAX, UPLOAD_TIMEOUT)
    } else {
        (BODY_LIMIT, DRAIN_MAX, BODY_TIMEOUT)
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain as u64) {
        return too_large(req.headers(), keep);
    }
    let (parts, body) = req.into_parts();
    if !upload {
        return match read_body(body, keep, drain, timeout).await {
            Some((kept, seen)) if seen <= keep => next.run(Request::from_parts(parts, Body::from(kept))).await,
            Some(_) => too_large(&parts.headers, keep),
            None => incomplete(),
        };
    }
    if !live_session(&limits.state, &parts.headers) {
        // The session layer turns it away; read it only so that its answer is seen.
        return match read_body(body, 0, drain, timeout).await {
            Some(_) => next.run(Request::from_parts(parts, Body::empty())).await,
            None => incomplete(),
        };
    }
    let turn_and_body = async {
        let permit = limits.uploads.clone().acquire_owned().await.ok()?;
        Some((permit, read_body(body, keep, drain, timeout).await?))
    };
    match tokio::time::timeout(timeout, turn_and_body).await {
        // The turn is held until the handler has answered: it holds the photos till then.
        Ok(Some((_turn, (kept, seen)))) if seen <= keep => next.run(Request::from_parts(parts, Body::from(kept))).await,
        Ok(Some(_)) => too_large(&parts.headers, keep),
        Ok(None) | Err(_) => incomplete(),
    }
}

/// Reads `body` to its end within `timeout`, keeping its first `keep` bytes and dropping the
/// rest; stops reading after `drain`. The bytes kept and the bytes seen; `None` when the body
/// broke off or took too long.
async fn read_body(mut body: Body, keep: usize, drain: usize, timeout: Duration) -> Option<(Vec<u8>, usize)> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            seen += data.len();
            if seen <= keep {
                kept.extend_from_slice(&data);
            } else if seen > drain {
                break;
            }
        }
        Ok::<_, axum::Error>(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => Some((kept, seen)),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Whether the request's session cookie names a live session (the session layer checks it again).
fn live_session(s: &AdminState, headers: &axum::http::HeaderMap) -> bool {
    session::cookie(headers, session::SESSION_COOKIE)
        .filter(|c| session::is_token(c))
        .is_some_and(|id| matches!(s.sessions.touch(&id, s.clock.wall_ms()), session::Lookup::Live(_)))
}

/// How much of a too-long body is read and dropped before the answer (see [`limit_body`]).
const DRAIN_MAX: usize = 1024 * 1024;
/// A request body must arrive within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

fn incomplete() -> Response {
    auth::message_page(StatusCode::BAD_REQUEST, "请求不完整", "请求内容没有完整收到，请重试。", "/")
}

/// 413 for a body over `limit`. For an upload the page says what the limit is made of and leads
/// back to the case the form was on (the `Referer`, when it is a case page of this console).
fn too_large(headers: &axum::http::HeaderMap, limit: usize) -> Response {
    if limit == UPLOAD_BODY_LIMIT {
        let back = headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
            .and_then(|rest| rest.find('/').map(|at| &rest[at..]))
            .filter(|path| path.starts_with("/cases/show?id=") && path.len() < 200)
            .unwrap_or("/cases");
        return auth::message_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "照片过大",
            &format!(
                "照片合计超过 {} MiB 的上限（最多 {PHOTOS_MAX} 张，每张不超过 {} MiB），这次提交未做任何处理。\
                 请少选几张或换小一些的照片后重新提交。",
                (PHOTOS_MAX * FILE_BYTES_MAX) >> 20,
                FILE_BYTES_MAX >> 20
            ),
            back,
        );
    }
    auth::message_page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "请求内容过大",
        &format!("提交的内容超过 {} KiB 的上限，未做任何处理。", limit / 1024),
        "/",
    )
}

/// The headers every console answer carries; a page that set no caching rule is not cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let https = req.extensions().get::<serve::Peer>().is_some_and(|p| p.https);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // A page that widened the policy for its own content (a live picture's media server:
    // `pages::cameras::live_csp`) keeps its own; every other answer gets the console's.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    resp.into_response()
}
