//! Files at a node — a detection's snapshot, a rectification's photos — through the admin API.
//!
//! - `POST /api/files?kind=snapshot|evidence` stores the request body (a JPEG or PNG up to
//!   [`FILE_BYTES_MAX`]) under its SHA-256 and answers its reference `sha256:…`, which an alert's
//!   `snapshot` or a submission's `evidence` then carries. Storing the same bytes again is the
//!   same file. Anything else is refused in Chinese and writes nothing.
//! - `GET /api/files/{ref}?holder=SCHOOL` answers the file: from this node's store or cache, or
//!   fetched on demand through the tree from the school that holds it
//!   ([`crate::runtime::files`]). 404 when the holder has it not (or no longer); 503 when the
//!   holder cannot be reached now — unavailable, not missing.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::files::{ContentType, FILE_BYTES_MAX, FileHash, FileKind, FileMeta, file_ref, parse_ref};
use protocol::people::Action;
use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::api::AdminState;
use crate::api::kit::{ApiFail, api_err, bad, internal, parse_node, read_fail};
use crate::api::principal::Principal;
use crate::runtime::files::{FETCH_TIMEOUT_MS, Fetched, FileError, put_ops, read_meta, sha256};
use crate::runtime::root::NodeMsg;
use crate::runtime::store::StoreMsg;

/// A stored file's reference and what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// `sha256:<64 hex>`.
    pub file: String,
    pub size: u64,
    pub content_type: String,
    pub kind: FileKind,
}

#[derive(Debug, Default, Deserialize)]
pub struct UploadParams {
    pub kind: Option<String>,
}

/// Stores `bytes` as a file of `kind` at this node (flushed before the answer).
pub async fn store_file(s: &AdminState, kind: FileKind, bytes: &[u8]) -> Result<(FileHash, FileMeta), ApiFail> {
    if bytes.is_empty() {
        return Err(bad("文件为空"));
    }
    if bytes.len() > FILE_BYTES_MAX {
        return Err(api_err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("文件 {} 字节，超过 {} MiB 的上限", bytes.len(), FILE_BYTES_MAX >> 20),
        ));
    }
    let content = ContentType::sniff(bytes).ok_or_else(|| bad("只接受 JPEG 或 PNG 图片"))?;
    let hash = sha256(bytes);
    let st = s.reads.clone();
    if let Some(meta) = st.run(move |st| read_meta(st, &hash)).await.map_err(read_fail)?
        && !meta.cached
    {
        return Ok((hash, meta));
    }
    let meta = FileMeta { kind, content, size: bytes.len() as u64, stored_at_ms: s.clock.wall_ms(), cached: false };
    let ops = put_ops(&hash, &meta, bytes.to_vec()).map_err(internal)?;
    ractor::call_t!(s.store, |reply| StoreMsg::WriteLocal { ops, reply: Some(reply) }, 10_000)
        .map_err(|e| internal(format!("the store did not answer: {e}")))?
        .map_err(crate::api::kit::write_fail)?;
    tracing::info!(node = %s.me, file = %file_ref(&hash), size = bytes.len(), kind = kind.as_str(), "file stored");
    Ok((hash, meta))
}

fn stored(hash: &FileHash, meta: &FileMeta) -> Stored {
    Stored { file: file_ref(hash), size: meta.size, content_type: meta.content.mime().to_string(), kind: meta.kind }
}

/// A kind a person typed.
pub fn parse_kind(kind: Option<&str>) -> Result<FileKind, ApiFail> {
    match kind.map(str::trim) {
        None | Some("") | Some("snapshot") => Ok(FileKind::Snapshot),
        Some("evidence") => Ok(FileKind::Evidence),
        Some(k) => Err(bad(format!("文件类别只能是 snapshot（截图）或 evidence（整改佐证），不是“{k}”"))),
    }
}

async fn upload(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<UploadParams>,
    body: Bytes,
) -> Result<Json<Stored>, ApiFail> {
    let me = s.me;
    if ![Action::AnswerCase, Action::KeepLedgers, Action::ManageDevices, Action::JudgeAlert]
        .into_iter()
        .any(|a| who.may(me, a))
    {
        who.require(&s, Action::AnswerCase).await?;
    }
    let kind = parse_kind(p.kind.as_deref())?;
    let (hash, meta) = store_file(&s, kind, &body).await?;
    Ok(Json(stored(&hash, &meta)))
}

/// A file held at `holder` (here or below): from this node, or fetched through the tree.
pub async fn fetch_file(s: &AdminState, holder: NodeId, hash: FileHash) -> Fetched {
    match ractor::call_t!(s.node, |reply| NodeMsg::FileFetch { holder, hash, reply }, FETCH_TIMEOUT_MS + 5_000) {
        Ok(outcome) => outcome,
        Err(e) => Err(FileError::Unavailable(format!("本节点没有及时取回文件：{e}"))),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct FetchParams {
    pub holder: Option<String>,
}

/// The reference in a path (`sha256:…` or the bare hex), or 400.
pub fn parse_path_ref(r: &str) -> Result<FileHash, ApiFail> {
    parse_ref(r).ok_or_else(|| bad(format!("“{r}”不是文件引用（sha256:…）")))
}

async fn fetch(
    State(s): State<AdminState>,
    who: Principal,
    Path(r): Path<String>,
    Query(p): Query<FetchParams>,
) -> Result<Response, ApiFail> {
    who.require(&s, Action::ViewSubtree).await?;
    let hash = parse_path_ref(&r)?;
    let holder = match p.holder.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) => parse_node("holder", h)?,
        None => s.me,
    };
    who.require_related(&s, holder).await?;
    match fetch_file(&s, holder, hash).await {
        Ok((meta, bytes)) => Ok(image(meta, bytes)),
        Err(FileError::Missing(why)) => Err(api_err(StatusCode::NOT_FOUND, why)),
        Err(FileError::Unavailable(why)) => Err(api_err(StatusCode::SERVICE_UNAVAILABLE, why)),
    }
}

/// A file as an HTTP answer: content-addressed, so cacheable for good by whoever may see it.
pub fn image(meta: FileMeta, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, meta.content.mime()),
            (header::CACHE_CONTROL, "private, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response()
}

/// The file routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/files", post(upload).layer(DefaultBodyLimit::max(FILE_BYTES_MAX + 1)))
        .route("/api/files/{r}", get(fetch))
}
