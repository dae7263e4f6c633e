//! The shared kit of the admin API: typed error answers, the local write, reads beside the store
//! actor, and the parsing of what a person types (ids, filters, limits, dates).
//!
//! Every refusal is answered before anything is written. The status says what kind it is: 400 a
//! bad request, 403 no authority, 404 not held here, 409 a conflict with the current state, 503
//! the node is restoring (try again later), 500 a storage failure.

use axum::Json;
use axum::http::StatusCode;
use protocol::Body;
use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::api::AdminState;
use crate::runtime::store::{StoreMsg, StoredEvent, WriteError};
use crate::storage::{Storage, StorageError};

/// How long an admin request waits for the node's actors (a local write waits for a flush).
pub const ADMIN_CALL_TIMEOUT_MS: u64 = 10_000;

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// An error answer: the status and `{"error": "…"}`.
pub type ApiFail = (StatusCode, Json<ApiError>);

pub type ApiResult<T> = Result<Json<T>, ApiFail>;

/// An error answer with this status.
pub fn api_err(code: StatusCode, msg: impl Into<String>) -> ApiFail {
    (code, Json(ApiError { error: msg.into() }))
}

/// 400: the request is malformed.
pub fn bad(msg: impl Into<String>) -> ApiFail {
    api_err(StatusCode::BAD_REQUEST, msg)
}

/// 500: something failed inside the node.
pub fn internal(msg: impl std::fmt::Display) -> ApiFail {
    api_err(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

/// The answer to a refused or failed write.
pub fn write_fail(e: WriteError) -> ApiFail {
    let code = match &e {
        WriteError::Forbidden(_) => StatusCode::FORBIDDEN,
        WriteError::Invalid(_) => StatusCode::BAD_REQUEST,
        WriteError::Restoring(_) | WriteError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        WriteError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    api_err(code, e.to_string())
}

/// The answer to a failed read.
pub fn read_fail(e: StorageError) -> ApiFail {
    internal(e)
}

/// Writes local events at this node on behalf of the person `by` (recorded in each), all or none, answered
/// after the flush.
pub async fn append(
    s: &AdminState,
    by: Option<protocol::people::Person>,
    items: Vec<(NodeId, Body)>,
) -> Result<Vec<StoredEvent>, ApiFail> {
    let r = ractor::call_t!(s.store, |reply| StoreMsg::Append { items, by, reply }, ADMIN_CALL_TIMEOUT_MS)
        .map_err(|e| write_fail(WriteError::Unavailable(e.to_string())))?;
    r.map_err(write_fail)
}

/// Like [`append`], and in the same atomic batch sets each of `marks` to the first written
/// event (see [`StoreMsg::AppendMarked`]).
pub async fn append_marked(
    s: &AdminState,
    by: Option<protocol::people::Person>,
    items: Vec<(NodeId, Body)>,
    marks: Vec<(crate::runtime::store::LocalSpace, Vec<u8>)>,
) -> Result<Vec<StoredEvent>, ApiFail> {
    if marks.is_empty() {
        return append(s, by, items).await;
    }
    let r = ractor::call_t!(s.store, |reply| StoreMsg::AppendMarked { items, by, marks, reply }, ADMIN_CALL_TIMEOUT_MS)
        .map_err(|e| write_fail(WriteError::Unavailable(e.to_string())))?;
    r.map_err(write_fail)
}

/// Runs a read of this node's storage beside the store actor (which stays the only writer): a
/// listing over a month of a province's events never delays replication.
pub async fn read_storage<T: Send + 'static>(
    s: &AdminState,
    read: impl FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, ApiFail> {
    s.reads.run(read).await.map_err(read_fail)
}

/// A node id a person typed, or a 400 naming the field.
pub fn parse_node(field: &str, s: &str) -> Result<NodeId, ApiFail> {
    s.trim().parse::<NodeId>().map_err(|e| bad(format!("{field}: {e}")))
}

/// An optional `under` filter.
pub fn parse_under(under: Option<&str>) -> Result<Option<NodeId>, ApiFail> {
    match under.map(str::trim) {
        None | Some("") => Ok(None),
        Some(u) => parse_node("under", u).map(Some),
    }
}

/// Default rows of a listing.
pub const LIMIT_DEFAULT: usize = 100;

/// A listing's `limit`: absent → [`LIMIT_DEFAULT`]; 0 is refused (ask for `all` to mean all, up to
/// `max`); above `max` is refused with the maximum.
pub fn parse_limit(limit: Option<&str>, max: usize) -> Result<usize, ApiFail> {
    match limit.map(str::trim) {
        None | Some("") => Ok(LIMIT_DEFAULT.min(max)),
        Some("all") => Ok(max),
        Some(l) => match l.parse::<usize>() {
            Ok(0) => Err(bad(format!("条数为 0 什么也不列出；请给 1 到 {max}，或 all"))),
            Ok(n) if n > max => Err(bad(format!("条数 {n} 超过上限 {max}；请给 1 到 {max}，或 all"))),
            Ok(n) => Ok(n),
            Err(_) => Err(bad(format!("条数“{l}”不是数字；请给 1 到 {max}，或 all"))),
        },
    }
}

/// A filter value that must be one of `valid`; refused with the valid ones.
pub fn one_of<'a>(field: &str, value: &str, valid: &[&'a str]) -> Result<&'a str, ApiFail> {
    valid
        .iter()
        .find(|v| **v == value)
        .copied()
        .ok_or_else(|| bad(format!("{field} 没有“{value}”这一项，可选：{}", valid.join(", "))))
}

/// Refuses a step or verdict: counted in the store's `refused_steps`, nothing written.
pub async fn refuse(s: &AdminState, code: StatusCode, why: String) -> ApiFail {
    tracing::warn!(node = %s.me, reason = %why, "step refused");
    let _ = s.store.cast(StoreMsg::CountRefused);
    api_err(code, why)
}

/// The name of a unit as the topology knows it (`路南区第1学校食堂`), or empty.
pub fn name_of(s: &AdminState, id: NodeId) -> String {
    s.topology.get(id).map(|e| e.name.clone()).unwrap_or_default()
}
