//! Accounts: the people who sign in at this node.
//!
//! - `POST /api/accounts` creates or changes an account of this node (`mingchu user add`): its
//!   directory entry (id, name, role — no secret) is a registry entity of this unit, replicated by
//!   the holds rule so every level shows who did what; its password's argon2id hash goes to this
//!   node's [`Space::Secrets`], which never leaves it.
//! - `GET /api/accounts?unit=` lists the directory entries this node holds.
//! - `POST /api/sign-in` checks an account's password here, at its own node: a disabled or unknown
//!   account and a wrong password get the same answer (401), so it cannot tell which accounts exist.

use std::collections::BTreeMap;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::Body;
use protocol::people::{AccountEntry, Role, check_account_id};
use protocol::registry::{Entity, EntityData, EntityKind, EntityRef, RegistryChange, RegistryOp, check_registry};
use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::api::AdminState;
pub use crate::api::audit::{AuditRecord, audit, put_local};
use crate::api::kit::{ApiFail, ApiResult, api_err, append, bad, internal, parse_under, read_fail};
use crate::api::principal::Principal;
use crate::runtime::store::LocalSpace;
use crate::storage::Space;

/// Shortest password accepted.
pub const PASSWORD_CHARS_MIN: usize = 8;
/// Longest password accepted (argon2 hashes any length; a bound keeps a request cheap).
pub const PASSWORD_BYTES_MAX: usize = 256;

/// An account to create or change (`mingchu user add`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRequest {
    /// The name the person signs in with: `li.na`.
    pub id: String,
    /// The name shown beside their steps: `李娜`.
    pub display_name: String,
    /// `管理员`, `监管员`, … or `admin`, `supervisor`, …
    pub role: String,
    pub password: String,
    #[serde(default)]
    pub disabled: bool,
}

/// An account as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: String,
    pub unit: NodeId,
    pub display_name: String,
    pub role: Role,
    pub role_zh: String,
    pub disabled: bool,
    /// The event that last set the entry.
    pub updated_by: String,
    /// The person who made the change (`None`: the node's operator).
    #[serde(default)]
    pub updated_by_person: Option<protocol::people::Person>,
    pub updated_at_ms: u64,
}

impl AccountView {
    fn of(e: &Entity) -> Option<AccountView> {
        let EntityData::Account(a) = &e.data else { return None };
        Some(AccountView {
            id: e.entity.id.clone(),
            unit: e.entity.node,
            display_name: a.display_name.clone(),
            role: a.role,
            role_zh: a.role.zh().to_string(),
            disabled: a.disabled,
            updated_by: e.updated_by.to_string(),
            updated_by_person: e.updated_by_person.clone(),
            updated_at_ms: e.updated_hlc.wall_ms,
        })
    }
}

/// Checks a new password: long enough, not too long, no control characters.
pub fn check_password(p: &str) -> Result<(), String> {
    if p.chars().count() < PASSWORD_CHARS_MIN || p.len() > PASSWORD_BYTES_MAX || p.chars().any(char::is_control) {
        return Err(format!("密码至少 {PASSWORD_CHARS_MIN} 个字符、最多 {PASSWORD_BYTES_MAX} 字节，不能含控制字符"));
    }
    Ok(())
}

/// The argon2id hash (PHC string) of `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches the stored PHC string.
pub fn password_matches(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

fn secret_key(id: &str) -> String {
    format!("password/{id}")
}

async fn add(State(s): State<AdminState>, who: Principal, Json(req): Json<AccountRequest>) -> ApiResult<AccountView> {
    Ok(Json(set_account(&s, &who, req).await?))
}

/// Creates or changes an account of this node on behalf of `who` (an administrator, a principal,
/// or the local operator creating the first administrator).
pub async fn set_account(s: &AdminState, who: &Principal, req: AccountRequest) -> Result<AccountView, ApiFail> {
    who.require(s, protocol::people::Action::ManageAccounts).await?;
    let id = req.id.trim().to_string();
    check_account_id(&id).map_err(bad)?;
    let role: Role = req.role.parse().map_err(|e: protocol::people::RoleError| bad(e.to_string()))?;
    check_password(&req.password).map_err(bad)?;
    let entry = AccountEntry { display_name: req.display_name.trim().to_string(), role, disabled: req.disabled };
    let entity = EntityRef { kind: EntityKind::Account, node: s.me, id: id.clone() };
    let change = RegistryChange { entity, op: RegistryOp::Upsert(EntityData::Account(entry)) };
    // Everything checked before anything is written.
    check_registry(s.me, s.me, &change).map_err(|e| bad(e.to_string()))?;
    let password = req.password;
    let phc =
        tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(internal)?.map_err(internal)?;
    put_local(s, LocalSpace::Secrets, secret_key(&id).into_bytes(), phc.into_bytes()).await?;
    append(s, who.person(), vec![(s.me, Body::Registry(change))]).await?;
    // A new password or a disabled account ends the person's console sessions.
    s.sessions.end_account(&id, None);
    audit(s, "account-set", &id, &format!("{} by {}", role.as_str(), who.label())).await?;
    let view = s.reads.registry_of(s.me).await.map_err(read_fail)?;
    view.values()
        .filter(|e| e.entity.kind == EntityKind::Account && e.entity.id == id)
        .find_map(AccountView::of)
        .ok_or_else(|| internal("the account was not stored"))
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountParams {
    /// Only accounts of units in this subtree.
    pub under: Option<String>,
}

async fn list(State(s): State<AdminState>, Query(p): Query<AccountParams>) -> ApiResult<Vec<AccountView>> {
    let under = parse_under(p.under.as_deref())?;
    let view = s.reads.registry().await.map_err(read_fail)?;
    Ok(Json(
        view.values()
            .filter(|e| e.entity.kind == EntityKind::Account)
            .filter(|e| under.is_none_or(|u| u.is_ancestor_or_self_of(e.entity.node)))
            .filter_map(AccountView::of)
            .collect(),
    ))
}

/// A sign-in attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub id: String,
    pub password: String,
}

/// Failed sign-ins of one account within [`THROTTLE_WINDOW_MS`] before it is locked for the rest
/// of the window.
pub const THROTTLE_FAILURES_MAX: usize = 5;
/// The throttle's window.
pub const THROTTLE_WINDOW_MS: u64 = 15 * 60_000;

/// Recent failed sign-ins per account (in memory: a restart forgets them, the audit log keeps them).
pub type SignInFailures = std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<u64>>>>;

#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    pub limit: Option<String>,
}

/// `GET /api/audit?limit=`: the newest audit lines first.
async fn audit_log(State(s): State<AdminState>, Query(p): Query<AuditParams>) -> ApiResult<Vec<AuditRecord>> {
    let limit = crate::api::kit::parse_limit(p.limit.as_deref(), crate::runtime::store::LIST_LIMIT_MAX)?;
    let lines = s
        .reads
        .run(move |st| {
            let mut out = Vec::new();
            for item in st.scan_rev(Space::Audit, &[0u8; 12], &[0xffu8; 12]).take(limit) {
                let (_, v) = item?;
                if let Ok(r) = serde_json::from_slice::<AuditRecord>(&v) {
                    out.push(r);
                }
            }
            Ok::<_, crate::storage::StorageError>(out)
        })
        .await
        .map_err(read_fail)?;
    Ok(Json(lines))
}

/// Why a sign-in was refused.
#[derive(Debug)]
pub enum SignInRefusal {
    /// Unknown or disabled account, or a wrong password: the same answer for each.
    Wrong,
    /// Too many recent failures of this account: try again in this many minutes.
    Throttled { wait_min: u64 },
    /// The node could not check (storage).
    Failed(ApiFail),
}

impl From<ApiFail> for SignInRefusal {
    fn from(f: ApiFail) -> Self {
        SignInRefusal::Failed(f)
    }
}

/// A hash to check a password against when the account has none (unknown account), so that the
/// answer takes as long as for a real one and does not tell which accounts exist.
fn stand_in_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::password_hash::rand_core::RngCore;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        hash_password(&secret.iter().map(|b| format!("{b:02x}")).collect::<String>()).unwrap_or_default()
    })
}

/// Checks `password` for account `id` of this node, for the admin API's `POST /api/sign-in` and
/// the console's sign-in and password forms alike: throttled per account (after
/// [`THROTTLE_FAILURES_MAX`] failures in [`THROTTLE_WINDOW_MS`] it is locked for the rest of the
/// window, right password or not), every attempt in the audit log with `via` in its detail
/// (`sign-in-refused`, `sign-in-throttled`, and `sign-in` when `audit_success`).
pub async fn check_sign_in(
    s: &AdminState,
    id: &str,
    password: &str,
    via: &str,
    audit_success: bool,
) -> Result<AccountView, SignInRefusal> {
    let detail = |d: &str| match (via.is_empty(), d.is_empty()) {
        (true, _) => d.to_string(),
        (false, true) => via.to_string(),
        (false, false) => format!("{d}; {via}"),
    };
    let id = id.trim().to_string();
    if check_account_id(&id).is_err() || password.len() > PASSWORD_BYTES_MAX {
        audit(s, "sign-in-refused", &id, &detail("malformed")).await?;
        return Err(SignInRefusal::Wrong);
    }
    let now = s.clock.wall_ms();
    let recent = {
        let mut f = s.sign_in_failures.lock().unwrap_or_else(|e| e.into_inner());
        let times = f.entry(id.clone()).or_default();
        times.retain(|t| now.saturating_sub(*t) < THROTTLE_WINDOW_MS);
        times.clone()
    };
    if recent.len() >= THROTTLE_FAILURES_MAX {
        let wait_min = (recent[0] + THROTTLE_WINDOW_MS).saturating_sub(now).div_ceil(60_000).max(1);
        audit(s, "sign-in-throttled", &id, &detail(&format!("{} failures", recent.len()))).await?;
        return Err(SignInRefusal::Throttled { wait_min });
    }
    let key = secret_key(&id);
    let phc = s.reads.run(move |st| st.get(Space::Secrets, key.as_bytes())).await.map_err(read_fail)?;
    let entries: BTreeMap<EntityRef, Entity> = s.reads.registry_of(s.me).await.map_err(read_fail)?;
    let account = entries
        .values()
        .filter(|e| e.entity.kind == EntityKind::Account && e.entity.id == id)
        .find_map(AccountView::of)
        .filter(|a| !a.disabled);
    let password = password.to_string();
    // The hash is checked even for an unknown account (against a stand-in), so the answer takes
    // as long either way.
    let phc = phc.and_then(|p| String::from_utf8(p).ok()).unwrap_or_else(|| stand_in_hash().to_string());
    let ok = tokio::task::spawn_blocking(move || password_matches(&phc, &password)).await.map_err(internal)?;
    match account {
        Some(a) if ok => {
            if audit_success {
                audit(s, "sign-in", &id, &detail("")).await?;
            }
            Ok(a)
        }
        _ => {
            s.sign_in_failures.lock().unwrap_or_else(|e| e.into_inner()).entry(id.clone()).or_default().push(now);
            audit(s, "sign-in-refused", &id, &detail("wrong account or password")).await?;
            Err(SignInRefusal::Wrong)
        }
    }
}

/// Sets the password of account `id` of this node (already checked by the caller): its new
/// argon2id hash, written through the store actor, replaces the old one.
pub async fn set_password(s: &AdminState, id: &str, password: &str) -> Result<(), ApiFail> {
    check_password(password).map_err(bad)?;
    let password = password.to_string();
    let phc =
        tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(internal)?.map_err(internal)?;
    put_local(s, LocalSpace::Secrets, secret_key(id).into_bytes(), phc.into_bytes()).await
}

/// `POST /api/sign-in`: the account, if the password is right (see [`check_sign_in`]); 401 for a
/// wrong one, 429 while the account is locked.
async fn sign_in(State(s): State<AdminState>, Json(req): Json<SignIn>) -> ApiResult<AccountView> {
    match check_sign_in(&s, &req.id, &req.password, "", true).await {
        Ok(a) => Ok(Json(a)),
        Err(SignInRefusal::Wrong) => Err(api_err(StatusCode::UNAUTHORIZED, "账号或密码不对")),
        Err(SignInRefusal::Throttled { wait_min }) => {
            Err(api_err(StatusCode::TOO_MANY_REQUESTS, format!("登录失败次数过多，请 {wait_min} 分钟后再试")))
        }
        Err(SignInRefusal::Failed(f)) => Err(f),
    }
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/accounts", get(list).post(add))
        .route("/api/sign-in", post(sign_in))
        .route("/api/audit", get(audit_log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_checked() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(password_matches(&phc, "correct horse"));
        assert!(!password_matches(&phc, "correct hors"));
        assert!(!password_matches("", "anything"));
        assert_ne!(hash_password("correct horse").unwrap(), phc, "a fresh salt each time");
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password("with\u{1b}escape").is_err());
    }
}
