//! Who is asking: every handler of the admin API and the console takes a [`Principal`] — a person
//! signed in with an account of this node, or the node's local operator (the CLI holding the
//! token file, acting as no account) — never "whoever can reach the port".
//!
//! - The console's session layer puts the signed-in person into the request's extensions.
//! - The admin API (the CLI) names an account in [`ACCOUNT_HEADER`]; the token already proved the
//!   caller may act at this node, the header says as whom. Without it, the local operator.
//!
//! What a person may do is [`protocol::people::permits`] (role × action at this node's tier); the
//! local operator may do everything its node may (it holds the node's token). A refusal is 403,
//! written to the audit log and counted.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use protocol::people::{Action, Person, Role, permits, refusal};
use protocol::registry::{EntityData, EntityKind};
use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::api::AdminState;
use crate::api::kit::{ApiFail, api_err, read_fail};

/// The request header in which the CLI names the account it acts as (`mingchu --as li.na`).
pub const ACCOUNT_HEADER: &str = "x-mingchu-account";

/// Marks a request that came through the console listener: its principal can only be the person
/// its session names, never the local operator.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleRequest;

/// A person signed in at this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub account: String,
    pub name: String,
    pub role: Role,
    /// The account's unit: this node.
    pub unit: NodeId,
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The node's local operator: the CLI with the token file and no account.
    Operator,
    /// A person with an account of this node.
    Person(SignedIn),
}

impl Principal {
    /// The person to record in what they write; `None` for the local operator.
    pub fn person(&self) -> Option<Person> {
        match self {
            Principal::Operator => None,
            Principal::Person(p) => Some(Person { account: p.account.clone(), name: p.name.clone() }),
        }
    }

    /// How the audit log and refusals name them: `李娜（li.na）` or `本机操作员`.
    pub fn label(&self) -> String {
        match self {
            Principal::Operator => "本机操作员".into(),
            Principal::Person(p) => format!("{}（{}）", p.name, p.account),
        }
    }

    /// The account id, or empty for the operator.
    pub fn account(&self) -> &str {
        match self {
            Principal::Operator => "",
            Principal::Person(p) => &p.account,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::Operator => None,
            Principal::Person(p) => Some(p.role),
        }
    }

    /// Whether they may take `action` at node `me`.
    pub fn may(&self, me: NodeId, action: Action) -> bool {
        match self {
            Principal::Operator => true,
            Principal::Person(p) => permits(p.role, me.tier(), action),
        }
    }

    /// `Ok` if they may take `action` here; otherwise 403, audited and counted.
    pub async fn require(&self, s: &AdminState, action: Action) -> Result<(), ApiFail> {
        if self.may(s.me, action) {
            return Ok(());
        }
        let role = self.role().unwrap_or(Role::Viewer);
        let why = refusal(role, s.me.tier(), action);
        Err(deny(s, self, &why).await)
    }

    /// `Ok` if `target` (a school, a unit, an alert's or case's school) is in this node's subtree;
    /// otherwise 403, audited and counted: an id guessed from another county is refused as such,
    /// not answered with "not found".
    pub async fn require_in_scope(&self, s: &AdminState, target: NodeId) -> Result<(), ApiFail> {
        if s.me.is_ancestor_or_self_of(target) {
            return Ok(());
        }
        let why = format!("{target} 不在本单位（{}）的管辖范围内", s.me);
        Err(deny(s, self, &why).await)
    }

    /// `Ok` if `node` is above or below this node (a case's opener, say); otherwise 403, audited
    /// and counted: nothing of a sibling county concerns this one.
    pub async fn require_related(&self, s: &AdminState, node: NodeId) -> Result<(), ApiFail> {
        if node.is_ancestor_or_self_of(s.me) {
            return Ok(());
        }
        self.require_in_scope(s, node).await
    }
}

/// Refuses with 403: the audit log gets a `denied` line naming the person and the reason, and the
/// node counts it (`denied_requests` in its status).
pub async fn deny(s: &AdminState, who: &Principal, why: &str) -> ApiFail {
    tracing::warn!(node = %s.me, who = %who.label(), reason = %why, "permission denied");
    s.denied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = crate::api::audit::audit(s, "denied", who.account(), &format!("{}: {why}", who.label())).await;
    api_err(StatusCode::FORBIDDEN, format!("无权操作：{why}"))
}

/// Looks up an account of this node for acting as it: it must exist and not be disabled.
pub async fn local_account(s: &AdminState, id: &str) -> Result<SignedIn, ApiFail> {
    let entries = s.reads.registry_of(s.me).await.map_err(read_fail)?;
    entries
        .values()
        .filter(|e| e.entity.kind == EntityKind::Account && e.entity.id == id)
        .find_map(|e| match &e.data {
            EntityData::Account(a) if !a.disabled => Some(SignedIn {
                account: e.entity.id.clone(),
                name: a.display_name.clone(),
                role: a.role,
                unit: e.entity.node,
            }),
            _ => None,
        })
        .ok_or_else(|| api_err(StatusCode::UNAUTHORIZED, format!("本节点没有可用的账号“{id}”（不存在或已停用）")))
}

impl FromRequestParts<AdminState> for Principal {
    type Rejection = ApiFail;

    async fn from_request_parts(parts: &mut Parts, s: &AdminState) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        if parts.extensions.get::<ConsoleRequest>().is_some() {
            // A console request without a signed-in person never falls back to the operator.
            return Err(api_err(StatusCode::UNAUTHORIZED, "请先登录"));
        }
        match parts.headers.get(ACCOUNT_HEADER).map(|v| v.to_str()) {
            None => Ok(Principal::Operator),
            Some(Err(_)) => Err(api_err(StatusCode::BAD_REQUEST, "账号名只能由英文字母、数字和符号组成（ASCII）")),
            Some(Ok(id)) => local_account(s, id.trim()).await.map(Principal::Person),
        }
    }
}
