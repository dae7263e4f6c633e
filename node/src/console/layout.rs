//! The page shell every console page shares: the header (unit, person, sign-out), the navigation
//! (only the pages the person's role opens), a flash message, and the footer. Everything goes
//! through maud, which escapes every value: a school named `<script>` shows as text.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use protocol::people::{Action, Role};
use topology::NodeId;

use crate::api::principal::SignedIn;

/// The pages of the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    Home,
    Ledger,
    Warnings,
    Alerts,
    Cases,
    Spot,
    Directives,
    Bulletins,
    Registry,
    Cameras,
    Health,
    Screen,
    Accounts,
    Devices,
    Parent,
    Password,
}

impl Nav {
    pub fn href(self) -> &'static str {
        match self {
            Nav::Home => "/",
            Nav::Ledger => "/ledger",
            Nav::Warnings => "/warnings",
            Nav::Alerts => "/alerts",
            Nav::Cases => "/cases",
            Nav::Spot => "/spot-checks",
            Nav::Directives => "/directives",
            Nav::Bulletins => "/bulletins",
            Nav::Registry => "/registry",
            Nav::Cameras => "/cameras",
            Nav::Health => "/health",
            Nav::Screen => "/screen",
            Nav::Accounts => "/accounts",
            Nav::Devices => "/devices",
            Nav::Parent => "/parent",
            Nav::Password => "/password",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Nav::Home => "首页",
            Nav::Ledger => "台账",
            Nav::Warnings => "预警",
            // The AI detections of the cameras; 预警 is the rules' early warnings.
            Nav::Alerts => "AI 预警",
            Nav::Cases => "问题台账",
            Nav::Spot => "网络巡查",
            Nav::Directives => "通知",
            Nav::Bulletins => "通报",
            Nav::Registry => "单位与学校",
            Nav::Cameras => "摄像头",
            Nav::Health => "运行状态",
            Nav::Screen => "监管大屏",
            Nav::Accounts => "账号",
            Nav::Devices => "设备",
            Nav::Parent => "家长",
            Nav::Password => "修改密码",
        }
    }

    /// The pages a person of `role` at a node of `me`'s tier sees in the navigation.
    pub fn for_person(me: NodeId, role: Role) -> Vec<Nav> {
        let tier = me.tier();
        let may = |a| protocol::people::permits(role, tier, a);
        if may(Action::ViewParentPage) {
            return vec![Nav::Parent];
        }
        let mut out = Vec::new();
        if may(Action::ViewSubtree) {
            out.extend([
                Nav::Home,
                Nav::Ledger,
                Nav::Warnings,
                Nav::Alerts,
                Nav::Cases,
                Nav::Spot,
                Nav::Directives,
                Nav::Bulletins,
                Nav::Registry,
                Nav::Cameras,
                Nav::Health,
            ]);
            // A school's own devices (AI boxes, video recorders) and its cameras' online state.
            if tier == topology::Tier::School {
                out.push(Nav::Devices);
            }
        }
        // The big screen of a supervising unit (a page of its own, dark, for a wall display).
        if may(Action::ViewScreen) {
            out.push(Nav::Screen);
        }
        if may(Action::ManageAccounts) {
            out.push(Nav::Accounts);
        }
        out
    }
}

/// A message shown once at the top of a page (after a form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flash {
    Ok(String),
    Error(String),
}

/// What every page of a signed-in person needs.
#[derive(Clone, Debug)]
pub struct PageCtx {
    pub me: NodeId,
    /// `路南区` (the unit's name in the topology).
    pub unit_name: String,
    pub who: SignedIn,
    pub csrf: String,
    pub flash: Option<Flash>,
}

/// The CSRF field every state-changing form carries.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// The head of every page (also the sign-in page's).
pub fn head(title: &str) -> Markup {
    head_refreshing(title, None)
}

/// A head that makes the browser reload the page every `refresh` seconds (`<meta http-equiv=
/// "refresh">`: no script, so the CSP has nothing to allow).
pub fn head_refreshing(title: &str, refresh: Option<u32>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            @if let Some(secs) = refresh { meta http-equiv="refresh" content=(secs); }
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · 明厨亮灶" }
            link rel="stylesheet" href="/assets/console.css";
        }
    }
}

/// A flash message, if any.
pub fn flash(f: &Option<Flash>) -> Markup {
    html! {
        @match f {
            Some(Flash::Ok(m)) => div.flash.ok role="status" { (m) },
            Some(Flash::Error(m)) => div.flash.error role="alert" { (m) },
            None => {},
        }
    }
}

/// A whole page for a signed-in person.
pub fn page(ctx: &PageCtx, active: Nav, title: &str, body: Markup) -> Markup {
    page_refreshing(ctx, active, title, None, body)
}

/// A whole page that the browser reloads every `refresh` seconds.
pub fn page_refreshing(ctx: &PageCtx, active: Nav, title: &str, refresh: Option<u32>, body: Markup) -> Markup {
    let navs = Nav::for_person(ctx.me, ctx.who.role);
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head_refreshing(title, refresh))
            body {
                header.top {
                    span.brand { "互联网+明厨亮灶" }
                    span.unit { (ctx.unit_name) " · " (ctx.me) }
                    span.who {
                        span #who { (ctx.who.name) "（" (ctx.who.role.zh()) "）" }
                        a href=(Nav::Password.href()) { (Nav::Password.zh()) }
                        form method="post" action="/sign-out" {
                            (csrf_field(&ctx.csrf))
                            button.link type="submit" { "退出" }
                        }
                    }
                }
                nav.main {
                    @for n in &navs {
                        a class=@if *n == active { "on" } href=(n.href()) { (n.zh()) }
                    }
                }
                main {
                    h1 { (title) }
                    (flash(&ctx.flash))
                    (body)
                }
                footer { "本页由本单位节点直接提供，上级节点离线时照常可用。" }
            }
        }
    }
}

/// A China-time stamp for a page: `2026-11-30 14:05`.
pub fn when(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    protocol::calendar::ChinaTime(ms).minute()
}

/// A severity tag.
pub fn severity_tag(s: protocol::Severity) -> Markup {
    let class = match s {
        protocol::Severity::Severe => "tag severe",
        protocol::Severity::Serious => "tag serious",
        protocol::Severity::General => "tag general",
    };
    html! { span class=(class) { (s.zh()) } }
}

/// Nothing to show.
pub fn empty(what: &str) -> Markup {
    html! { p.muted { (what) } }
}

/// Marks a string as already safe HTML (only for constant markup).
pub fn raw(s: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(s)
}
