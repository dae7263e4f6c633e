//! The node's local audit log (sign-ins, refusals, permission denials, account changes) and local
//! records written through the store actor. Neither ever leaves the node.

use serde::{Deserialize, Serialize};

use crate::api::AdminState;
use crate::api::kit::{ADMIN_CALL_TIMEOUT_MS, ApiFail, internal, write_fail};
use crate::runtime::store::{LocalOp, LocalSpace, StoreMsg, WriteError};

/// Writes a local record through the store actor (the only writer), answered after the flush.
pub async fn put_local(s: &AdminState, space: LocalSpace, key: Vec<u8>, value: Vec<u8>) -> Result<(), ApiFail> {
    ractor::call_t!(s.store, |reply| StoreMsg::PutLocal { space, key, value, reply }, ADMIN_CALL_TIMEOUT_MS)
        .map_err(|e| write_fail(WriteError::Unavailable(e.to_string())))?
        .map_err(write_fail)
}

/// Writes and deletes local records in one atomic batch through the store actor, answered after
/// the flush.
pub async fn write_local(s: &AdminState, ops: Vec<LocalOp>) -> Result<(), ApiFail> {
    ractor::call_t!(s.store, |reply| StoreMsg::WriteLocal { ops, reply: Some(reply) }, ADMIN_CALL_TIMEOUT_MS)
        .map_err(|e| write_fail(WriteError::Unavailable(e.to_string())))?
        .map_err(write_fail)
}

/// Keeps last-value local records (a heartbeat), without waiting for a flush: the next value
/// replaces a lost one.
pub fn keep_local(s: &AdminState, ops: Vec<LocalOp>) {
    if !ops.is_empty() {
        let _ = s.store.cast(StoreMsg::WriteLocal { ops, reply: None });
    }
}

/// One line of the local audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at_ms: u64,
    pub at: String,
    /// `sign-in`, `sign-in-refused`, `sign-in-throttled`, `sign-out`, `password-changed`,
    /// `account-set`, `denied`, `device-added`, `device-revoked`, `device-rotated`.
    pub what: String,
    pub account: String,
    #[serde(default)]
    pub detail: String,
}

static AUDIT_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Appends to the audit log (key: time, then a counter, so it lists in order).
pub async fn audit(s: &AdminState, what: &str, account: &str, detail: &str) -> Result<(), ApiFail> {
    let at_ms = s.clock.wall_ms();
    let record = AuditRecord {
        at_ms,
        at: protocol::calendar::rfc3339(at_ms),
        what: what.into(),
        account: account.into(),
        detail: detail.into(),
    };
    let mut key = at_ms.to_be_bytes().to_vec();
    key.extend_from_slice(&AUDIT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_be_bytes());
    put_local(s, LocalSpace::Audit, key, serde_json::to_vec(&record).map_err(internal)?).await
}
