//! Signing in and out, changing one's password, and the session layer in front of every other
//! console page.
//!
//! - [`require_session`]: every request but `/sign-in` and `/assets/…` needs a live session
//!   (otherwise 303 to `/sign-in`, with "登录已过期" when it had one); the account is read afresh
//!   from the registry on each request, so a disabled account loses its session at once; the
//!   person and the session's CSRF token go into the request's extensions as
//!   [`Principal::Person`] and [`Csrf`]. Every request that is not GET or HEAD must carry the
//!   token in its form field `csrf` (in a `multipart/form-data` body, as its first part), or it is
//!   refused with 403 before any handler runs.
//! - `GET/POST /sign-in`: the form (a double-submit token guards it before there is a session),
//!   the per-account throttle of [`accounts::check_sign_in`] plus a per-address one; success
//!   starts a new session (a new id, whatever cookie came in) and goes to the person's first page.
//! - `POST /sign-out`, `GET/POST /password` (the other sessions of the account end).
//!
//! Every attempt is in the node's audit log: `sign-in`, `sign-in-refused`, `sign-in-throttled`,
//! `sign-out`, `password-changed`.

use axum::body::Body;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::api::AdminState;
use crate::api::accounts::{self, SignInRefusal};
use crate::api::principal::{self, Principal, SignedIn};
use crate::console::layout::{self, Flash, Nav, PageCtx, csrf_field, head};
use crate::console::serve::Peer;
use crate::console::session::{self, Csrf, Lookup, SESSION_COOKIE, SIGN_IN_COOKIE};

/// The session id of the request (for sign-out and the password page).
#[derive(Clone, Debug)]
pub struct SessionId(pub String);

/// The refusal of a POST without the session's token.
pub const CSRF_REFUSED: &str = "请求缺少有效的安全令牌（CSRF），请刷新页面后重试";
/// The sign-in page's notice after a session ended by itself.
pub const EXPIRED: &str = "登录已过期，请重新登录";
/// The sign-in refusal for a wrong account or password (the same for both).
pub const WRONG: &str = "账号或密码不对";

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/password", get(password_form).post(change_password))
}

fn peer(ext: &axum::http::Extensions) -> Peer {
    ext.get::<Peer>().copied().unwrap_or(Peer::UNKNOWN)
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn with_cookie(mut resp: Response, cookie: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn clear_session_cookie(resp: Response, https: bool) -> Response {
    with_cookie(resp, session::set_cookie(SESSION_COOKIE, "", "/", https, Some(0)))
}

/// The first page of a person: the parents' page for a parent, the home page for everyone else.
pub fn landing(who: &SignedIn) -> &'static str {
    match Nav::for_person(who.unit, who.role).as_slice() {
        [Nav::Parent] => Nav::Parent.href(),
        _ => Nav::Home.href(),
    }
}

fn unit_name(s: &AdminState) -> String {
    s.topology.get(s.me).map(|e| e.name.clone()).unwrap_or_else(|| s.me.to_string())
}

/// The page context of a signed-in request.
pub fn page_ctx(s: &AdminState, who: SignedIn, csrf: &Csrf, flash: Option<Flash>) -> PageCtx {
    PageCtx { me: s.me, unit_name: unit_name(s), who, csrf: csrf.0.clone(), flash }
}

/// A page with one message and a way on (403, 404, 413 and the like).
pub fn message_page(status: StatusCode, title: &str, message: &str, back: &str) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head(title))
            body {
                main.signin {
                    div.box {
                        h1 { (title) }
                        div.flash.error role="alert" { (message) }
                        p { a href=(back) { "返回" } }
                    }
                }
            }
        }
    };
    (status, body).into_response()
}

fn csrf_refused() -> Response {
    message_page(StatusCode::FORBIDDEN, "请求被拒绝", CSRF_REFUSED, "/")
}

/// 404 for a path the console does not have.
pub async fn not_found() -> Response {
    message_page(StatusCode::NOT_FOUND, "没有这个页面", "您要找的页面不存在。", "/")
}

/// Whether a request may change something (and so must carry the CSRF token).
fn changes_state(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The `csrf` field of a form body: url-encoded, or `multipart/form-data` (a form with files),
/// where it must be the first part — the console's forms put it first, so the token is checked
/// from the body's first bytes, before anything reads a file part.
async fn form_csrf(headers: &HeaderMap, body: &axum::body::Bytes) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let kind = ct.trim().to_ascii_lowercase();
    if kind.starts_with("application/x-www-form-urlencoded") {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
        return fields.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    }
    if !kind.starts_with("multipart/form-data") {
        return None;
    }
    let req = Request::builder().header(header::CONTENT_TYPE, ct).body(Body::from(body.clone())).ok()?;
    let mut parts = axum::extract::Multipart::from_request(req, &()).await.ok()?;
    let first = parts.next_field().await.ok()??;
    if first.name() != Some("csrf") || first.file_name().is_some() {
        return None;
    }
    let token = first.bytes().await.ok()?;
    (token.len() <= 128).then(|| String::from_utf8(token.to_vec()).ok()).flatten()
}

/// The session layer (see the module's doc).
pub async fn require_session(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/sign-in" || path.starts_with("/assets/") {
        return next.run(req).await;
    }
    let https = peer(req.extensions()).https;
    let presented = session::cookie(req.headers(), SESSION_COOKIE).filter(|c| !c.is_empty());
    let now = s.clock.wall_ms();
    let id = presented.clone().filter(|c| session::is_token(c));
    let lookup = id.as_deref().map_or(Lookup::Unknown, |id| s.sessions.touch(id, now));
    let (id, live) = match (id, lookup) {
        (Some(id), Lookup::Live(live)) => (id, live),
        // A cookie that names no live session: it expired, was ended, or the node restarted.
        _ if presented.is_some() => {
            return clear_session_cookie(see_other("/sign-in?notice=expired"), https);
        }
        _ => return see_other("/sign-in"),
    };
    let who = match principal::local_account(&s, &live.account).await {
        Ok(who) => who,
        Err((status, _)) if status == StatusCode::UNAUTHORIZED => {
            // Disabled or removed since sign-in: the session ends now.
            s.sessions.end(&id);
            return clear_session_cookie(see_other("/sign-in?notice=account"), https);
        }
        Err((status, e)) => return message_page(status, "暂时无法打开", &e.0.error, "/"),
    };
    let (mut parts, body) = req.into_parts();
    let body = if changes_state(&parts.method) {
        // The body limit already read it into memory; this only takes it back.
        let Ok(bytes) = axum::body::to_bytes(body, super::UPLOAD_BODY_LIMIT).await else {
            return csrf_refused();
        };
        let given = form_csrf(&parts.headers, &bytes).await;
        if !given.is_some_and(|g| session::same_token(&g, &live.csrf)) {
            tracing::warn!(node = %s.me, account = %live.account, path = %parts.uri.path(), "console: POST without its CSRF token refused");
            return csrf_refused();
        }
        Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert(Principal::Person(who));
    parts.extensions.insert(Csrf(live.csrf));
    parts.extensions.insert(SessionId(id));
    next.run(Request::from_parts(parts, body)).await
}

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    #[serde(default)]
    pub notice: Option<String>,
}

/// The notices the sign-in page shows (by code, so no text comes from the address bar).
fn notice(code: Option<&str>) -> Option<Flash> {
    match code? {
        "expired" => Some(Flash::Error(EXPIRED.into())),
        "account" => Some(Flash::Error("此账号已停用或不存在，请联系本单位管理员".into())),
        "signed-out" => Some(Flash::Ok("您已退出登录".into())),
        _ => None,
    }
}

fn sign_in_page(s: &AdminState, token: &str, account: &str, flash: Option<Flash>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head("登录"))
            body {
                main.signin {
                    div.box {
                        h1 { "互联网+明厨亮灶 · 登录" }
                        p.muted { (unit_name(s)) " · " (s.me) }
                        (layout::flash(&flash))
                        form.stack method="post" action="/sign-in" {
                            (csrf_field(token))
                            label { "账号"
                                input type="text" name="account" value=(account) autocomplete="username" required autofocus;
                            }
                            label { "密码"
                                input type="password" name="password" autocomplete="current-password" required;
                            }
                            button type="submit" { "登录" }
                        }
                    }
                }
            }
        }
    }
}

/// The sign-in form's double-submit token: the one already in the browser's cookie, or a new one.
fn sign_in_token(headers: &HeaderMap) -> (String, bool) {
    match session::cookie(headers, SIGN_IN_COOKIE).filter(|t| session::is_token(t)) {
        Some(t) => (t, false),
        None => (session::random_token(), true),
    }
}

fn sign_in_answer(
    s: &AdminState,
    status: StatusCode,
    headers: &HeaderMap,
    https: bool,
    account: &str,
    flash: Option<Flash>,
) -> Response {
    let (token, fresh) = sign_in_token(headers);
    let resp = (status, sign_in_page(s, &token, account, flash)).into_response();
    if fresh { with_cookie(resp, session::set_cookie(SIGN_IN_COOKIE, &token, "/sign-in", https, None)) } else { resp }
}

/// `GET /sign-in`: the form (or, with a live session, straight to the person's first page).
async fn sign_in_form(State(s): State<AdminState>, Query(q): Query<NoticeQuery>, req: Request) -> Response {
    let https = peer(req.extensions()).https;
    let now = s.clock.wall_ms();
    if let Some(id) = session::cookie(req.headers(), SESSION_COOKIE).filter(|c| session::is_token(c))
        && let Lookup::Live(live) = s.sessions.touch(&id, now)
        && let Ok(who) = principal::local_account(&s, &live.account).await
    {
        return see_other(landing(&who));
    }
    sign_in_answer(&s, StatusCode::OK, req.headers(), https, "", notice(q.notice.as_deref()))
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub password: String,
}

/// `POST /sign-in`.
async fn sign_in(
    State(s): State<AdminState>,
    p: Peer,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let https = p.https;
    let Ok(Form(f)) = form else { return csrf_refused() };
    let cookie = session::cookie(&headers, SIGN_IN_COOKIE).filter(|t| session::is_token(t));
    if !cookie.is_some_and(|c| session::same_token(&c, &f.csrf)) {
        return csrf_refused();
    }
    let account = f.account.trim().to_string();
    let via = format!("console {}", p.addr.ip());
    let now = s.clock.wall_ms();
    let refuse = |status: StatusCode, msg: String| {
        sign_in_answer(&s, status, &headers, https, &account, Some(Flash::Error(msg)))
    };
    if let Some(wait_min) = s.sessions.address_throttled(p.addr.ip(), now) {
        let detail = format!("too many failed sign-ins from {}", p.addr.ip());
        let _ = accounts::audit(&s, "sign-in-throttled", &account, &detail).await;
        return refuse(StatusCode::TOO_MANY_REQUESTS, format!("登录失败次数过多，请 {wait_min} 分钟后再试"));
    }
    let view = match accounts::check_sign_in(&s, &account, &f.password, &via, true).await {
        Ok(view) => view,
        Err(SignInRefusal::Wrong) => {
            s.sessions.record_address_failure(p.addr.ip(), now);
            return refuse(StatusCode::UNAUTHORIZED, WRONG.into());
        }
        Err(SignInRefusal::Throttled { wait_min }) => {
            return refuse(StatusCode::TOO_MANY_REQUESTS, format!("登录失败次数过多，请 {wait_min} 分钟后再试"));
        }
        Err(SignInRefusal::Failed((status, e))) => {
            return refuse(status, format!("暂时无法登录：{}", e.0.error));
        }
    };
    let who = SignedIn { account: view.id.clone(), name: view.display_name, role: view.role, unit: view.unit };
    // A new id whatever came in: a session id planted before sign-in is worth nothing after it.
    if let Some(old) = session::cookie(&headers, SESSION_COOKIE) {
        s.sessions.end(&old);
    }
    let (id, _) = s.sessions.create(&who.account, now);
    let resp = with_cookie(see_other(landing(&who)), session::set_cookie(SESSION_COOKIE, &id, "/", https, None));
    with_cookie(resp, session::set_cookie(SIGN_IN_COOKIE, "", "/sign-in", https, Some(0)))
}

fn signed_in(who: Principal) -> Option<SignedIn> {
    match who {
        Principal::Person(p) => Some(p),
        Principal::Operator => None,
    }
}

/// `POST /sign-out` (the session layer checked its token).
async fn sign_out(
    State(s): State<AdminState>,
    p: Peer,
    Extension(SessionId(id)): Extension<SessionId>,
    who: Principal,
) -> Response {
    s.sessions.end(&id);
    let _ = accounts::audit(&s, "sign-out", who.account(), &format!("console {}", p.addr.ip())).await;
    clear_session_cookie(see_other("/sign-in?notice=signed-out"), p.https)
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: Option<String>,
}

fn password_page(s: &AdminState, who: SignedIn, csrf: &Csrf, flash: Option<Flash>) -> Markup {
    let ctx = page_ctx(s, who, csrf, flash);
    layout::page(
        &ctx,
        Nav::Password,
        "修改密码",
        html! {
            div.box {
                form.stack method="post" action="/password" {
                    (csrf_field(&csrf.0))
                    label { "旧密码" input type="password" name="old" autocomplete="current-password" required; }
                    label { "新密码" input type="password" name="new" autocomplete="new-password" required; }
                    label { "再输一次新密码" input type="password" name="again" autocomplete="new-password" required; }
                    button type="submit" { "修改密码" }
                }
                p.muted {
                    "新密码至少 " (accounts::PASSWORD_CHARS_MIN) " 个字符。修改后，此账号在其他地方的登录会全部退出。"
                }
            }
        },
    )
}

/// `GET /password`.
async fn password_form(
    State(s): State<AdminState>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<DoneQuery>,
    who: Principal,
) -> Response {
    let Some(who) = signed_in(who) else { return see_other("/sign-in") };
    let flash = q.done.is_some().then(|| Flash::Ok("密码已修改。此账号在其他地方的登录已全部退出。".into()));
    password_page(&s, who, &csrf, flash).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub old: String,
    #[serde(default)]
    pub new: String,
    #[serde(default)]
    pub again: String,
}

/// `POST /password` (the session layer checked its token).
async fn change_password(
    State(s): State<AdminState>,
    p: Peer,
    Extension(csrf): Extension<Csrf>,
    Extension(SessionId(id)): Extension<SessionId>,
    who: Principal,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let Some(who) = signed_in(who) else { return see_other("/sign-in") };
    let Ok(Form(f)) = form else { return csrf_refused() };
    let refuse = |status: StatusCode, msg: String| {
        (status, password_page(&s, who.clone(), &csrf, Some(Flash::Error(msg)))).into_response()
    };
    if f.new != f.again {
        return refuse(StatusCode::BAD_REQUEST, "两次输入的新密码不一致".into());
    }
    if accounts::check_password(&f.new).is_err() {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "新密码至少 {} 个字符、最多 {} 字节，不能含控制字符",
                accounts::PASSWORD_CHARS_MIN,
                accounts::PASSWORD_BYTES_MAX
            ),
        );
    }
    if f.new == f.old {
        return refuse(StatusCode::BAD_REQUEST, "新密码不能与旧密码相同".into());
    }
    let via = format!("console {}, password change", p.addr.ip());
    match accounts::check_sign_in(&s, &who.account, &f.old, &via, false).await {
        Ok(_) => {}
        Err(SignInRefusal::Wrong) => return refuse(StatusCode::UNAUTHORIZED, "旧密码不对".into()),
        Err(SignInRefusal::Throttled { wait_min }) => {
            return refuse(StatusCode::TOO_MANY_REQUESTS, format!("失败次数过多，请 {wait_min} 分钟后再试"));
        }
        Err(SignInRefusal::Failed((status, e))) => return refuse(status, format!("暂时无法修改密码：{}", e.0.error)),
    }
    if let Err((status, e)) = accounts::set_password(&s, &who.account, &f.new).await {
        return refuse(status, format!("暂时无法修改密码：{}", e.0.error));
    }
    let ended = s.sessions.end_account(&who.account, Some(&id));
    let detail = format!("console {}; {ended} other session(s) ended", p.addr.ip());
    let _ = accounts::audit(&s, "password-changed", &who.account, &detail).await;
    see_other("/password?done=1")
}
