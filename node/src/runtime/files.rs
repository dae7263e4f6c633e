//! Files at a node — snapshots and evidence photos — and their fetch through the tree.
//!
//! **Stored** in [`Space::Files`] (through the store actor, the only writer): `d + hash` → the
//! bytes, `m + hash` → the [`FileMeta`], `t + stored_at_ms + hash` → nothing (the retention index).
//! A file is stored where it was uploaded; an ancestor keeps a **cached** copy of what it fetched.
//!
//! **Fetched on demand** ([`Router`], driven by the root actor): a node that wants a file it does
//! not hold sends `Frame::FileGet` over the link toward the holder — its child on the path, or a
//! deeper descendant failed over to it, the deepest one linked — and waits; the node there answers
//! from its store or cache, or asks on down in turn. A file held **above** (a snapshot the province
//! took in a spot check, shown on the case at the county and the school) is asked for the same way
//! up the uplink: the node above answers a request from below only with a file uploaded there
//! (never a copy it cached from another subtree), or asks on up toward the holder. The whole file comes back in `FileData` parts
//! on the link's files lane, is checked against its hash, cached, and handed to whoever waited
//! (the admin API, a console page, or the ancestor that asked). No path to the holder, or no
//! answer in [`FETCH_TIMEOUT_MS`], makes the file **unavailable** (the holder may be offline);
//! only the holder saying it has it not makes it **missing**.
//!
//! **Retention** ([`retention_ops`]): snapshots uploaded here are kept the configured days (30),
//! evidence for good; cached copies go after [`CACHE_DAYS`] or when the cache is over its bound,
//! oldest first.

use std::collections::{BTreeMap, HashMap};

use protocol::Frame;
use protocol::files::{FILE_BYTES_MAX, FILE_CHUNK_BYTES, FileHash, FileKind, FileMeta, file_ref};
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::runtime::store::{LocalOp, LocalSpace};
use crate::storage::{Space, Storage, StorageError};

/// Retention of files (`[files]` in the node's config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Detection snapshots uploaded here are kept this many days (the seed platform's minimum:
    /// 30). Evidence of cases is kept for good.
    pub snapshot_days: u32,
    /// Files fetched from below are cached up to this many MiB (oldest dropped first).
    pub cache_mb: u32,
}

impl Default for FilesConfig {
    fn default() -> FilesConfig {
        FilesConfig { snapshot_days: 30, cache_mb: 256 }
    }
}

/// How long a fetch waits for the node below before the file counts as unavailable.
pub const FETCH_TIMEOUT_MS: u64 = 20_000;
/// Cached copies are dropped after this many days.
pub const CACHE_DAYS: u64 = 7;

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> FileHash {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn key(tag: u8, hash: &FileHash) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(tag);
    k.extend_from_slice(hash);
    k
}

fn time_key(at_ms: u64, hash: &FileHash) -> Vec<u8> {
    let mut k = Vec::with_capacity(41);
    k.push(b't');
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(hash);
    k
}

/// The writes that store a file with its meta (one atomic batch through the store actor).
pub fn put_ops(hash: &FileHash, meta: &FileMeta, bytes: Vec<u8>) -> Result<Vec<LocalOp>, String> {
    let m = protocol::wire::encode(meta).map_err(|e| e.to_string())?;
    Ok(vec![
        LocalOp { space: LocalSpace::Files, key: key(b'd', hash), value: Some(bytes) },
        LocalOp { space: LocalSpace::Files, key: key(b'm', hash), value: Some(m) },
        LocalOp { space: LocalSpace::Files, key: time_key(meta.stored_at_ms, hash), value: Some(Vec::new()) },
    ])
}

/// The writes that drop a stored file.
pub fn drop_ops(hash: &FileHash, meta: &FileMeta) -> Vec<LocalOp> {
    vec![
        LocalOp { space: LocalSpace::Files, key: key(b'd', hash), value: None },
        LocalOp { space: LocalSpace::Files, key: key(b'm', hash), value: None },
        LocalOp { space: LocalSpace::Files, key: time_key(meta.stored_at_ms, hash), value: None },
    ]
}

/// A file's meta, if stored here.
pub fn read_meta(storage: &dyn Storage, hash: &FileHash) -> Result<Option<FileMeta>, StorageError> {
    match storage.get(Space::Files, &key(b'm', hash))? {
        Some(m) => protocol::wire::decode(&m).map(Some).map_err(|e| StorageError::Corrupt(format!("file meta: {e}"))),
        None => Ok(None),
    }
}

/// A file with its meta, if stored here (uploaded or cached).
pub fn read_file(storage: &dyn Storage, hash: &FileHash) -> Result<Option<(FileMeta, Vec<u8>)>, StorageError> {
    let Some(meta) = read_meta(storage, hash)? else { return Ok(None) };
    Ok(storage.get(Space::Files, &key(b'd', hash))?.map(|bytes| (meta, bytes)))
}

/// What retention drops at `now_ms`: snapshots uploaded here older than `snapshot_days`, cached
/// copies older than [`CACHE_DAYS`], and the oldest cached copies beyond `cache_bytes`. Evidence
/// uploaded here is kept for good. Returns the writes and how many files they drop.
pub fn retention_ops(
    storage: &dyn Storage,
    now_ms: u64,
    snapshot_days: u64,
    cache_bytes: u64,
) -> Result<(Vec<LocalOp>, usize), StorageError> {
    let day = 86_400_000u64;
    let (snap_cut, cache_cut) = (now_ms.saturating_sub(snapshot_days * day), now_ms.saturating_sub(CACHE_DAYS * day));
    let mut cached: Vec<(u64, FileHash, FileMeta)> = Vec::new();
    let mut ops = Vec::new();
    let mut dropped = 0;
    for item in storage.scan_prefix(Space::Files, b"t") {
        let (k, _) = item?;
        let Some(hash) = k.get(9..41).and_then(|h| <FileHash>::try_from(h).ok()) else { continue };
        let Some(meta) = read_meta(storage, &hash)? else { continue };
        let expired = match (meta.cached, meta.kind) {
            (true, _) => meta.stored_at_ms < cache_cut,
            (false, FileKind::Snapshot) => meta.stored_at_ms < snap_cut,
            (false, FileKind::Evidence) => false,
        };
        if expired {
            ops.extend(drop_ops(&hash, &meta));
            dropped += 1;
        } else if meta.cached {
            cached.push((meta.stored_at_ms, hash, meta));
        }
    }
    let mut total: u64 = cached.iter().map(|(_, _, m)| m.size).sum();
    cached.sort_by_key(|(at, h, _)| (*at, *h));
    for (_, hash, meta) in cached {
        if total <= cache_bytes {
            break;
        }
        total -= meta.size;
        ops.extend(drop_ops(&hash, &meta));
        dropped += 1;
    }
    Ok((ops, dropped))
}

/// Why a file could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The holder has it not (never, or no longer: past its retention).
    #[error("{0}")]
    Missing(String),
    /// The holder, or a node on the way, cannot be reached now.
    #[error("{0}")]
    Unavailable(String),
}

/// A file as fetched.
pub type Fetched = Result<(FileMeta, Vec<u8>), FileError>;

/// Who waits for a file.
pub enum Waiter {
    /// The admin API or a console page at this node.
    Local(RpcReplyPort<Fetched>),
    /// A node that asked over a link, with its request id: an ancestor, or a descendant asking
    /// for a file held at or above this node.
    Link { peer: NodeId, req: u64 },
}

/// A fetch in flight downward.
struct Outgoing {
    hash: FileHash,
    via: NodeId,
    buf: Vec<u8>,
    meta: Option<FileMeta>,
}

/// The root actor's side of file fetches: requests in flight downward, and who waits for what.
#[derive(Default)]
pub struct Router {
    next_req: u64,
    out: HashMap<u64, Outgoing>,
    waiting: BTreeMap<FileHash, Vec<Waiter>>,
}

/// What the root actor must do after the router took a step.
pub enum Action {
    /// Send this frame to the link with `peer`.
    Send(NodeId, Frame),
    /// Store this fetched copy (cached).
    Cache(FileHash, FileMeta, Vec<u8>),
    /// Time out request `req` after [`FETCH_TIMEOUT_MS`].
    Timeout(u64),
}

impl Router {
    /// Wants `hash`, held at `holder`, not stored here: ask `via` (the linked node toward the
    /// holder) unless a fetch of it is already in flight; `waiter` waits for it either way.
    pub fn fetch(&mut self, hash: FileHash, holder: NodeId, via: NodeId, waiter: Waiter) -> Vec<Action> {
        let in_flight = self.out.values().any(|o| o.hash == hash);
        self.waiting.entry(hash).or_default().push(waiter);
        if in_flight {
            return Vec::new();
        }
        self.next_req += 1;
        let req = self.next_req;
        self.out.insert(req, Outgoing { hash, via, buf: Vec::new(), meta: None });
        vec![Action::Send(via, Frame::FileGet { req, holder, hash }), Action::Timeout(req)]
    }

    /// A part of a file came up from `peer`.
    pub fn data(
        &mut self,
        peer: NodeId,
        req: u64,
        offset: u64,
        total: u64,
        meta: Option<FileMeta>,
        bytes: Vec<u8>,
    ) -> Vec<Action> {
        let Some(o) = self.out.get_mut(&req) else { return Vec::new() };
        if o.via != peer {
            return Vec::new();
        }
        if meta.is_some() {
            o.meta = meta;
        }
        let bad = offset != o.buf.len() as u64
            || total > FILE_BYTES_MAX as u64
            || o.buf.len() + bytes.len() > total as usize
            || bytes.len() > FILE_CHUNK_BYTES;
        if bad {
            return self.fail(req, FileError::Unavailable(format!("{peer} 发来的文件分段不完整或超出上限")));
        }
        o.buf.extend_from_slice(&bytes);
        if (o.buf.len() as u64) < total {
            return Vec::new();
        }
        let Some(o) = self.out.remove(&req) else { return Vec::new() };
        let Some(mut meta) = o.meta else {
            return self.finish(o.hash, Err(FileError::Unavailable(format!("{peer} 发来的文件缺少说明"))));
        };
        if sha256(&o.buf) != o.hash || meta.size != o.buf.len() as u64 {
            return self.finish(o.hash, Err(FileError::Unavailable(format!("{peer} 发来的文件与其摘要不符，已丢弃"))));
        }
        meta.cached = true;
        let mut actions = vec![Action::Cache(o.hash, meta, o.buf.clone())];
        actions.extend(self.finish(o.hash, Ok((meta, o.buf))));
        actions
    }

    /// The node below could not send the file.
    pub fn failed(&mut self, peer: NodeId, req: u64, missing: bool, reason: String) -> Vec<Action> {
        if self.out.get(&req).is_none_or(|o| o.via != peer) {
            return Vec::new();
        }
        let e = if missing { FileError::Missing(reason) } else { FileError::Unavailable(reason) };
        self.fail(req, e)
    }

    /// Request `req` timed out (if still in flight).
    pub fn timed_out(&mut self, req: u64) -> Vec<Action> {
        match self.out.get(&req) {
            Some(o) => {
                let via = o.via;
                self.fail(req, FileError::Unavailable(format!("{via} 在 {} 秒内没有送来文件", FETCH_TIMEOUT_MS / 1000)))
            }
            None => Vec::new(),
        }
    }

    /// The link with `peer` went down: its fetches fail as unavailable.
    pub fn link_lost(&mut self, peer: NodeId) -> Vec<Action> {
        let reqs: Vec<u64> = self.out.iter().filter(|(_, o)| o.via == peer).map(|(r, _)| *r).collect();
        reqs.into_iter().flat_map(|r| self.fail(r, FileError::Unavailable(format!("与 {peer} 的连接断开了")))).collect()
    }

    fn fail(&mut self, req: u64, e: FileError) -> Vec<Action> {
        match self.out.remove(&req) {
            Some(o) => self.finish(o.hash, Err(e)),
            None => Vec::new(),
        }
    }

    /// Hands the outcome to everyone waiting for `hash`.
    pub fn finish(&mut self, hash: FileHash, outcome: Fetched) -> Vec<Action> {
        let mut actions = Vec::new();
        for w in self.waiting.remove(&hash).unwrap_or_default() {
            match w {
                Waiter::Local(reply) => {
                    let _ = reply.send(outcome.clone());
                }
                Waiter::Link { peer, req } => actions.extend(answer(peer, req, &outcome)),
            }
        }
        actions
    }
}

/// The frames that answer an ancestor's request `req` with `outcome`.
pub fn answer(peer: NodeId, req: u64, outcome: &Fetched) -> Vec<Action> {
    match outcome {
        Ok((meta, bytes)) => {
            let total = bytes.len() as u64;
            let mut out = Vec::new();
            let mut offset = 0usize;
            loop {
                let end = (offset + FILE_CHUNK_BYTES).min(bytes.len());
                out.push(Action::Send(
                    peer,
                    Frame::FileData {
                        req,
                        offset: offset as u64,
                        total,
                        meta: (offset == 0).then_some(*meta),
                        bytes: bytes[offset..end].to_vec(),
                    },
                ));
                offset = end;
                if offset >= bytes.len() {
                    break;
                }
            }
            out
        }
        Err(e) => vec![Action::Send(
            peer,
            Frame::FileFail { req, missing: matches!(e, FileError::Missing(_)), reason: e.to_string() },
        )],
    }
}

/// The linked node toward `holder` from `me`, among `linked` (peers whose links are up). Below
/// `me`: the deepest linked node at or above the holder — its child on the path, or a deeper
/// descendant failed over to it. Above `me`: the deepest linked ancestor at or below the holder —
/// its parent, or the ancestor it failed over to. Elsewhere (another branch): none.
pub fn route(me: NodeId, holder: NodeId, linked: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
    let toward = |p: &NodeId| {
        *p != me
            && ((me.is_ancestor_or_self_of(*p) && p.is_ancestor_or_self_of(holder))
                || (p.is_ancestor_or_self_of(me) && holder.is_ancestor_or_self_of(*p)))
    };
    linked.into_iter().filter(toward).max_by_key(|p| p.ancestors().count())
}

/// `sha256:…` for logs and messages.
pub fn name(hash: &FileHash) -> String {
    file_ref(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::files::ContentType;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    #[test]
    fn retention_drops_old_snapshots_and_old_or_surplus_cached_copies_but_keeps_evidence() {
        use crate::storage::{Storage, WriteBatch, mem::MemStorage};
        let storage = MemStorage::new();
        let day = 86_400_000u64;
        let now = 100 * day;
        let put = |seed: u8, kind, at: u64, cached: bool, size: u64| {
            let hash = [seed; 32];
            let meta = FileMeta { kind, content: ContentType::Png, size, stored_at_ms: at, cached };
            let mut b = WriteBatch::default();
            for op in put_ops(&hash, &meta, vec![seed; size as usize]).unwrap() {
                b.put(op.space.space(), &op.key, op.value.unwrap());
            }
            storage.write(b).unwrap();
            hash
        };
        let old_snap = put(1, FileKind::Snapshot, now - 31 * day, false, 10);
        let new_snap = put(2, FileKind::Snapshot, now - 29 * day, false, 10);
        let old_evidence = put(3, FileKind::Evidence, now - 90 * day, false, 10);
        let old_cache = put(4, FileKind::Evidence, now - 8 * day, true, 10);
        let cache_a = put(5, FileKind::Snapshot, now - 2 * day, true, 60);
        let cache_b = put(6, FileKind::Snapshot, now - day, true, 60);
        let (ops, dropped) = retention_ops(&storage, now, 30, 100).unwrap();
        let mut b = WriteBatch::default();
        for op in ops {
            b.delete(op.space.space(), &op.key);
        }
        storage.write(b).unwrap();
        let held = |h| read_file(&storage, &h).unwrap().is_some();
        assert_eq!(dropped, 3);
        assert!(!held(old_snap) && !held(old_cache) && !held(cache_a), "expired or the oldest beyond the bound");
        assert!(held(new_snap) && held(old_evidence) && held(cache_b));
    }

    #[test]
    fn the_route_is_the_deepest_linked_node_toward_the_holder() {
        let (city, county, school) = (id("1301"), id("130102"), id("130102-S0001"));
        assert_eq!(route(id("13"), school, [city]), Some(city));
        // The county failed: the school is linked to the city directly.
        assert_eq!(route(city, school, [county, school]), Some(school));
        assert_eq!(route(city, school, [id("130104")]), None);
        assert_eq!(route(school, school, [county]), None);
        // Up toward a holder above: the parent, or the ancestor failed over to, never past it.
        assert_eq!(route(school, id("13"), [county]), Some(county));
        assert_eq!(route(school, id("13"), [city]), Some(city));
        assert_eq!(route(school, city, [county, id("13")]), Some(county));
        assert_eq!(route(school, county, [city]), None, "linked past the holder");
        assert_eq!(route(county, id("130104"), [city]), None, "another branch");
    }

    #[test]
    fn a_fetch_assembles_checks_and_hands_the_file_to_every_waiter() {
        let bytes: Vec<u8> = (0..(FILE_CHUNK_BYTES + 100)).map(|i| (i % 251) as u8).collect();
        let hash = sha256(&bytes);
        let meta = FileMeta {
            kind: FileKind::Snapshot,
            content: ContentType::Jpeg,
            size: bytes.len() as u64,
            stored_at_ms: 5,
            cached: false,
        };
        let mut r = Router::default();
        let (child, up) = (id("130102"), id("13"));
        let first = r.fetch(hash, id("130102-S0001"), child, Waiter::Link { peer: up, req: 77 });
        assert!(matches!(first[0], Action::Send(p, Frame::FileGet { .. }) if p == child));
        // A second waiter joins the fetch in flight.
        assert!(r.fetch(hash, id("130102-S0001"), child, Waiter::Link { peer: up, req: 78 }).is_empty());
        let parts = answer(child, 1, &Ok((meta, bytes.clone())));
        assert_eq!(parts.len(), 2);
        let mut done = Vec::new();
        for p in parts {
            let Action::Send(_, Frame::FileData { req, offset, total, meta, bytes }) = p else { panic!() };
            done = r.data(child, req, offset, total, meta, bytes);
        }
        assert!(matches!(&done[0], Action::Cache(h, m, _) if *h == hash && m.cached));
        // Two answers up, two parts each.
        assert_eq!(done.len(), 1 + 4);
        // A wrong hash is never handed on.
        let mut r = Router::default();
        r.fetch([9; 32], id("130102-S0001"), child, Waiter::Link { peer: up, req: 1 });
        let bad = r.data(child, 1, 0, 3, Some(FileMeta { size: 3, ..meta }), vec![1, 2, 3]);
        assert!(matches!(&bad[..], [Action::Send(_, Frame::FileFail { missing: false, .. })]));
    }
}
