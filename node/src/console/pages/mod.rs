//! The console's pages, one module each; every one renders from this node's own store and calls
//! the same domain functions as the admin API (the `*_as` functions of [`crate::api`]), so a step
//! taken in a browser is checked, written and attributed exactly like one taken with the CLI.
//!
//! A form that is refused renders its page again with the reason (in Chinese) and writes nothing;
//! one that succeeds redirects (303) to the page with a short notice.

pub mod alerts;
pub mod bulletins;
pub mod cameras;
pub mod cases;
pub mod devices;
pub mod directives;
pub mod draw;
pub mod files;
pub mod health;
pub mod home;
pub mod ledger;
pub mod ledger_forms;
pub mod parent;
pub mod people;
pub mod registry;
pub mod screen;
pub mod spot;
pub mod warnings;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use protocol::people::Action;

use crate::api::AdminState;
use crate::api::kit::ApiFail;
use crate::api::principal::{Principal, SignedIn};
use crate::console::layout::{Flash, PageCtx};
use crate::console::session::Csrf;
use crate::console::{UPLOAD_BODY_LIMIT, UPLOAD_PATH};

/// Every page route; the session layer in front of them has already signed the person in.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(home::page))
        .route("/ledger", get(ledger::page).post(ledger::add))
        .route("/ledger/void", post(ledger::void))
        .route("/ledger/dispose", post(ledger::dispose))
        .route("/warnings", get(warnings::page))
        .route("/alerts", get(alerts::page))
        .route("/alerts/verdict", post(alerts::verdict))
        .route("/cases", get(cases::list))
        .route("/cases/open", post(cases::open))
        .route("/cases/show", get(cases::show))
        .route("/cases/step", post(cases::step))
        .route(UPLOAD_PATH, post(cases::submit).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)))
        .route("/files/{r}", get(files::file))
        .route("/spot-checks", get(spot::page).post(spot::record))
        .route("/spot-checks/worklist", get(draw::page))
        .route(draw::RECORD_PATH, get(draw::form).post(draw::record).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)))
        .route("/directives", get(directives::page).post(directives::send))
        .route("/bulletins", get(bulletins::page))
        .route("/bulletins/generate", post(bulletins::generate))
        .route("/bulletins/drafts/{id}", get(bulletins::draft).post(bulletins::edit))
        .route("/bulletins/drafts/{id}/publish", post(bulletins::publish))
        .route("/bulletins/{id}", get(bulletins::show))
        .route("/registry", get(registry::page))
        .route("/health", get(health::page))
        .route("/health/{node}", get(health::detail))
        .route("/accounts", get(people::page).post(people::add))
        .route("/parent", get(parent::page))
        .route("/cameras", get(cameras::list))
        .route("/cameras/live", get(cameras::live))
        .route("/devices", get(devices::page).post(devices::add))
        .route("/devices/revoke", post(devices::revoke))
        .route("/devices/rotate", post(devices::rotate))
        .route("/screen", get(screen::page))
        .route("/screen/data", get(screen::data))
        .route("/screen/map.json", get(screen::map))
}

/// A page's context, from the request the session layer let through: the signed-in person and
/// the session's CSRF token, plus a notice passed by a redirect (`?ok=`).
pub struct Ctx(pub PageCtx);

impl FromRequestParts<AdminState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AdminState) -> Result<Self, Self::Rejection> {
        let who = match parts.extensions.get::<Principal>() {
            Some(Principal::Person(p)) => p.clone(),
            _ => return Err(Redirect::to("/sign-in").into_response()),
        };
        let csrf = parts.extensions.get::<Csrf>().map(|c| c.0.clone()).unwrap_or_default();
        let flash = parts.uri.query().and_then(notice_of).map(|m| Flash::Ok(m.to_string()));
        Ok(Ctx(PageCtx { me: s.me, unit_name: crate::api::kit::name_of(s, s.me), who, csrf, flash }))
    }
}

impl Ctx {
    pub fn principal(&self) -> Principal {
        Principal::Person(self.0.who.clone())
    }

    pub fn who(&self) -> &SignedIn {
        &self.0.who
    }

    /// Whether the person may take `action` at this node.
    pub fn may(&self, action: Action) -> bool {
        protocol::people::permits(self.0.who.role, self.0.me.tier(), action)
    }

    /// The same page with an error notice.
    pub fn with_error(mut self, why: impl Into<String>) -> Ctx {
        self.0.flash = Some(Flash::Error(why.into()));
        self
    }

    /// The same page with a notice of success (a form answered in place, not redirected).
    pub fn with_notice(mut self, what: impl Into<String>) -> Ctx {
        self.0.flash = Some(Flash::Ok(what.into()));
        self
    }
}

/// The notices a redirect may name (`?ok=confirmed`): fixed texts, so a link cannot put words in
/// the node's mouth.
const NOTICES: [(&str, &str); 21] = [
    ("confirmed", "已确认该预警。"),
    ("dismissed", "已判定为误报，原因已记录。"),
    ("overturned", "已推翻学校的误报判定，该预警改为已确认。"),
    ("case-opened", "已挂账并下发整改通知。"),
    ("ack", "已签收整改通知。"),
    ("submitted", "整改材料已提交，等待复核。"),
    ("reviewed-pass", "复核通过。"),
    ("reviewed-fail", "复核未通过，已退回学校重新整改。"),
    ("closed", "已销号。"),
    ("cancelled", "已撤销。"),
    ("escalated", "已提请上级督办。"),
    ("checked", "巡查记录已保存。"),
    ("sent", "通知已下发。"),
    ("account", "账号已保存。"),
    ("device-revoked", "设备已吊销，它的令牌立即失效。"),
    ("ledger-saved", "台账记录已保存。"),
    ("ledger-voided", "记录已作废，作废原因已留存。"),
    ("ledger-disposed", "已登记留样处置时间。"),
    ("bulletin-drafted", "通报草稿已生成，请审核后发布。"),
    ("bulletin-saved", "通报正文已保存。"),
    ("bulletin-published", "通报已发布，下级单位将收到。"),
];

fn notice_of(query: &str) -> Option<&'static str> {
    let key = query.split('&').find_map(|kv| kv.strip_prefix("ok="))?;
    NOTICES.iter().find(|(k, _)| *k == key).map(|(_, m)| *m)
}

/// A redirect after a successful form, with its notice.
pub fn done(path: &str, notice: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}ok={notice}")).into_response()
}

/// The refusal of an API function as the message a person reads.
pub fn reason(e: &ApiFail) -> String {
    e.1.0.error.clone()
}

/// A page with the status a refusal had (403 stays 403, 400 stays 400), so a test or a proxy sees
/// what happened while the person reads the page.
pub fn refused(code: StatusCode, page: Markup) -> Response {
    (code, page).into_response()
}

/// A refusal page for a person who may not open a page at all.
pub fn forbidden(ctx: Ctx, nav: crate::console::layout::Nav, why: &str) -> Response {
    let c = ctx.with_error(why.to_string());
    refused(StatusCode::FORBIDDEN, crate::console::layout::page(&c.0, nav, nav.zh(), maud::html! {}))
}

/// A form's text field, trimmed, or a Chinese refusal naming it when it is too long.
pub fn field(label: &str, v: &str, max_chars: usize) -> Result<String, String> {
    let v = v.trim();
    if v.chars().count() > max_chars {
        return Err(format!("“{label}”最多 {max_chars} 个字，现在 {} 个", v.chars().count()));
    }
    Ok(v.to_string())
}
