//! Directives down the tree, and the event listing.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use protocol::{Body, Directive, EventKind};
use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::api::AdminState;
use crate::api::alerts::ListParams;
use crate::api::kit::ApiFail;
use crate::api::kit::{ApiResult, append, bad, internal, read_storage};
use crate::api::principal::Principal;
use crate::runtime::store::StoredEvent;
use crate::runtime::store::read::list_events;
use protocol::people::Action;

/// A directive to send down the tree (scope = the unit that receives it, with its subtree).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendDirective {
    pub to: String,
    pub title: String,
    #[serde(default)]
    pub text: String,
}

/// A directive as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub id: String,
    pub origin: NodeId,
    pub seq: u64,
    pub scope: NodeId,
    pub kind: String,
    pub summary: String,
    pub hlc_ms: u64,
    pub received_at_us: u64,
    /// The person who wrote it at `origin` (`None`: the node itself or its operator).
    #[serde(default)]
    pub person: Option<protocol::people::Person>,
}

impl EventView {
    pub fn from_stored(s: &StoredEvent) -> EventView {
        let summary = match &s.event.body {
            Body::Alert(a) => format!("{} {} camera {}", a.alert_type.code(), a.alert_type.zh(), a.camera),
            Body::Directive(d) => d.title.clone(),
            Body::Case(c) => format!("case {} {}", c.case, c.action.kind()),
            Body::AlertUpdate(u) => {
                let what = match &u.action {
                    protocol::alert::AlertAction::Confirm { .. } => "confirmed",
                    protocol::alert::AlertAction::Dismiss { .. } => "dismissed",
                    protocol::alert::AlertAction::Repeat { .. } => "repeated",
                    protocol::alert::AlertAction::Overturn { .. } => "overturned",
                    protocol::alert::AlertAction::Escalate { .. } => "moved to the county queue",
                };
                format!("alert {} {what}", u.alert)
            }
            Body::Registry(r) => crate::api::registry::summary(r),
            Body::SpotCheck(c) => {
                format!("spot check of {}: {}", c.canteen, if c.passed() { "passed" } else { "failed" })
            }
            Body::Ledger(l) => match &l.op {
                protocol::ledger::LedgerOp::Record(r) => format!("{} {} {}", l.kind.zh(), l.id, r.summary()),
                protocol::ledger::LedgerOp::Void { reason } => format!("{} {} 作废：{reason}", l.kind.zh(), l.id),
            },
            Body::Warning(w) => match &w.action {
                protocol::warning::WarningAction::Raise { level, text, .. } => format!("{}预警 {text}", level.zh()),
                protocol::warning::WarningAction::Resolve { reason, .. } => {
                    format!("预警解除 {}：{reason}", w.key.rule.zh())
                }
            },
        };
        EventView {
            id: s.event.id().to_string(),
            origin: s.event.origin,
            seq: s.event.seq,
            scope: s.event.scope,
            kind: s.event.kind().as_str().to_string(),
            summary,
            hlc_ms: s.event.hlc.wall_ms,
            received_at_us: s.received_at_us,
            person: s.event.by.clone(),
        }
    }
}

async fn send_directive(
    State(s): State<AdminState>,
    who: Principal,
    Json(req): Json<SendDirective>,
) -> ApiResult<EventView> {
    Ok(Json(send_directive_as(&s, &who, req).await?))
}

/// Sends a directive on behalf of `who`.
pub async fn send_directive_as(s: &AdminState, who: &Principal, req: SendDirective) -> Result<EventView, ApiFail> {
    who.require(s, Action::SendDirective).await?;
    let to: NodeId = req.to.parse().map_err(|e: topology::IdError| bad(e.to_string()))?;
    if !s.me.is_ancestor_or_self_of(to) {
        return Err(bad(format!("{} 只能向本单位及下级单位下发指令；{to} 不在其中", s.me)));
    }
    let body = Body::Directive(Directive { title: req.title, text: req.text });
    let stored = append(s, who.person(), vec![(to, body)]).await?;
    stored.first().map(EventView::from_stored).ok_or_else(|| internal("nothing stored"))
}

async fn list_events_route(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<ListParams>,
) -> ApiResult<Vec<EventView>> {
    who.require(&s, Action::ViewSubtree).await?;
    let query = p.query(None)?;
    let events = read_storage(&s, move |st| list_events(st, &query)).await?;
    Ok(Json(events.iter().map(EventView::from_stored).collect()))
}

/// Directives this node holds, newest first: the filter runs in the listing, before the limit.
async fn list_directives(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<ListParams>,
) -> ApiResult<Vec<DirectiveView>> {
    who.require(&s, Action::ViewSubtree).await?;
    Ok(Json(directive_views(&s, p).await?))
}

/// The directives this node holds matching `p`, newest first.
pub async fn directive_views(s: &AdminState, p: ListParams) -> Result<Vec<DirectiveView>, ApiFail> {
    let query = ListParams { kind: None, ..p }.query(Some(EventKind::Directive))?;
    let events = read_storage(s, move |st| list_events(st, &query)).await?;
    Ok(events.iter().filter_map(DirectiveView::from_stored).collect())
}

/// A directive as listed: who sent it to whom, its title and its whole text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectiveView {
    pub id: String,
    pub from: NodeId,
    pub to: NodeId,
    pub title: String,
    pub text: String,
    pub sent_at_ms: u64,
    pub sent_at: String,
    /// The person who sent it (`None`: the node's operator).
    #[serde(default)]
    pub person: Option<protocol::people::Person>,
}

impl DirectiveView {
    pub fn from_stored(s: &StoredEvent) -> Option<DirectiveView> {
        let Body::Directive(d) = &s.event.body else { return None };
        Some(DirectiveView {
            id: s.event.id().to_string(),
            from: s.event.origin,
            to: s.event.scope,
            title: d.title.clone(),
            text: d.text.clone(),
            sent_at_ms: s.event.hlc.wall_ms,
            sent_at: protocol::calendar::rfc3339(s.event.hlc.wall_ms),
            person: s.event.by.clone(),
        })
    }
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/directives", get(list_directives).post(send_directive))
        .route("/api/events", get(list_events_route))
}
