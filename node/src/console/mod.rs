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
//! the [`crate::api::principal::ConsoleRequest`] marker, the body limit, and the session layer.

pub mod assets;
pub mod auth;
pub mod layout;
pub mod pages;
pub mod serve;
pub mod session;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;

use crate::api::AdminState;
use crate::api::principal::ConsoleRequest;

/// The largest request body the console reads (its forms are small): larger is refused with 413.
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
        .layer(from_fn(limit_body))
        .layer(from_fn(mark_console))
        .layer(from_fn(security_headers))
        .layer(from_fn(server_timing))
        .with_state(state.clone());
    crate::api::metrics::routes().with_state(state).merge(console)
}

/// Says in every answer how long the node took to make it (`Server-Timing: app;dur=1.84`, in
/// milliseconds): the console benchmark reads it, and so can a browser's developer tools.
async fn server_timing(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
        resp.headers_mut().insert("server-timing", v);
    }
    resp
}

async fn mark_console(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(ConsoleRequest);
    next.run(req).await
}

/// Reads the whole body, up to [`BODY_LIMIT`]: a longer one (declared or sent) is refused with 413
/// before any handler runs. The excess is read and dropped up to [`DRAIN_MAX`] so that the client,
/// still sending, gets the answer rather than a reset connection; the body must arrive within
/// [`BODY_TIMEOUT`].
async fn limit_body(req: Request, next: Next) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_MAX as u64) {
        return too_large();
    }
    let (parts, mut body) = req.into_parts();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            seen += data.len();
            if seen <= BODY_LIMIT {
                kept.extend_from_slice(&data);
            } else if seen > DRAIN_MAX {
                break;
            }
        }
        Ok::<_, axum::Error>(())
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(())) if seen <= BODY_LIMIT => next.run(Request::from_parts(parts, Body::from(kept))).await,
        Ok(Ok(())) => too_large(),
        Ok(Err(_)) | Err(_) => {
            auth::message_page(StatusCode::BAD_REQUEST, "请求不完整", "请求内容没有完整收到，请重试。", "/")
        }
    }
}

/// How much of a too-long body is read and dropped before the answer (see [`limit_body`]).
const DRAIN_MAX: usize = 1024 * 1024;
/// A request body must arrive within this.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn too_large() -> Response {
    auth::message_page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "请求内容过大",
        &format!("提交的内容超过 {} KiB 的上限，未做任何处理。", BODY_LIMIT / 1024),
        "/",
    )
}

/// The headers every console answer carries; a page that set no caching rule is not cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let https = req.extensions().get::<serve::Peer>().is_some_and(|p| p.https);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
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
