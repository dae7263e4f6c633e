//! The store actor: the only writer of a node's storage. It assigns seqs to local events, applies
//! received batches by the holds rule, group-commits (one flush covers every write made before it
//! started) and answers only after the flush: an acknowledged event is durable.
//!
//! After each flush it tells the link actors how far the node's cursors got, so they send only
//! flushed events (an origin never sends a seq it could lose and reuse after a crash).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use protocol::alert::{AlertAction, AlertUpdate};
use protocol::apply::apply_batch;
use protocol::case::{CaseAction, CaseId, ledger_year, pending_case};
use protocol::holds::{relevant_origin, sends_origin};
use protocol::session::{FRESH_AGE_MS, FRESH_EVENTS_MAX};
use protocol::wire::{decode, encode};
use protocol::{Body, Cursors, Event, EventId, EventKind, HlcClock, SeqRange, SeqRanges};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use topology::NodeId;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::runtime::invariant;
use crate::storage::{Space, Storage, StorageError, WriteBatch};

mod append;
pub mod case_summaries;
mod chain;
pub mod compact;
pub mod open_alerts;
pub mod read;
pub mod rollup;
use append::HeldAppend;
pub use append::RegistryWritten;
pub use chain::{KeyBook, SealKeys, seal_fetch};
pub use read::{
    EventQuery, LIST_LIMIT_MAX, OLDEST_SCAN_ORIGINS_MAX, all_cursors, all_events, ledger_events, list_events,
    list_events_where, oldest_waiting_ms, read_event, read_fetch, read_range, related, related_to_origin,
};

/// Storage schema written by this build.
/// 2: settings carry escalation thresholds and a case's `Open` its ledger number (both change
/// the records' encoding): a data dir of version 1 is refused with this version named.
/// 3: every event records the person who acted (`Event::by`).
pub const SCHEMA_VERSION: u32 = 3;

const META_SCHEMA: &[u8] = b"schema";
const META_NODE: &[u8] = b"node";
const META_HLC: &[u8] = b"hlc";
/// `revoked/<fingerprint>` → the node: the certificates revoked by events this node holds, read
/// at start so the transport refuses them before any event is looked at.
const META_REVOKED: &[u8] = b"revoked/";
/// Present while a fresh store waits to learn (and recover) this node's own past events from an
/// ancestor: until then it must not write, or it could reuse seqs it issued before a wipe.
const META_RESTORING: &[u8] = b"restoring";
/// Set once every run has its [`Space::Recent`] entry (data dirs from before that index get
/// theirs when first opened).
const META_RECENT_INDEX: &[u8] = b"recent-index";

/// An event as this node keeps it: with when it arrived here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Unix microseconds when this node persisted it (for the origin: when it was written).
    pub received_at_us: u64,
    pub event: Event,
}

fn event_key(origin: NodeId, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&origin.to_key());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// A run's [`Space::Recent`] key: its newest event's HLC (so keys sort by time), then the run's
/// own key. Every event of the run is at or before that HLC.
fn recent_key(run: &[&Event]) -> Option<[u8; 28]> {
    let newest = run.iter().map(|e| e.hlc).max()?;
    let last = run.last()?;
    let mut k = [0u8; 28];
    k[..8].copy_from_slice(&newest.wall_ms.to_be_bytes());
    k[8..12].copy_from_slice(&newest.logical.to_be_bytes());
    k[12..].copy_from_slice(&event_key(last.origin, last.seq));
    Some(k)
}

/// Puts a run and its [`Space::Recent`] entry.
fn put_run(b: &mut WriteBatch, received_at_us: u64, run: &[&Event]) -> Result<(), StorageError> {
    let (Some(last), Some(recent)) = (run.last(), recent_key(run)) else { return Ok(()) };
    b.put(Space::Events, &event_key(last.origin, last.seq), encode_run(received_at_us, run)?);
    b.put(Space::Recent, &recent, Vec::new());
    Ok(())
}

/// Gives every run its [`Space::Recent`] entry, once per data dir (in batches of 10,000).
fn build_recent_index(storage: &dyn Storage) -> Result<(), StorageError> {
    if storage.get(Space::Meta, META_RECENT_INDEX)?.is_some() {
        return Ok(());
    }
    let mut b = WriteBatch::default();
    for item in storage.scan_prefix(Space::Events, b"") {
        let (_, v) = item?;
        let (_, events) = decode_run(&v)?;
        let refs: Vec<&Event> = events.iter().collect();
        if let Some(k) = recent_key(&refs) {
            b.put(Space::Recent, &k, Vec::new());
        }
        if b.len() >= 10_000 {
            storage.write(std::mem::take(&mut b))?;
        }
    }
    b.put(Space::Meta, META_RECENT_INDEX, vec![1]);
    storage.write(b)
}

/// Set once every event of a [`TIME_INDEXED_KINDS`] kind has its [`kind_key`].
const META_KIND_INDEX: &[u8] = b"kind-index";

/// Gives every directive and spot check its time-index key, once per data dir (runs written
/// before the index existed). The open-alert index and the case summaries came with schema 3 (the
/// summaries are also built once, by [`case_summaries::build`]).
fn build_kind_index(storage: &dyn Storage) -> Result<(), StorageError> {
    if storage.get(Space::Meta, META_KIND_INDEX)?.is_some() {
        return Ok(());
    }
    let mut b = WriteBatch::default();
    for item in storage.scan_prefix(Space::Events, b"") {
        let (_, v) = item?;
        let (received_at_us, events) = decode_run(&v)?;
        for e in &events {
            if let Some(k) = kind_key(e) {
                b.put(Space::Index, &k, encode_run(received_at_us, &[e])?);
            }
        }
        if b.len() >= 10_000 {
            storage.write(std::mem::take(&mut b))?;
        }
    }
    b.put(Space::Meta, META_KIND_INDEX, vec![1]);
    storage.write(b)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {e}"))
}

/// The index key of an event about a subject (a case's steps by case, alert updates by alert):
/// `(kind, subject origin, subject seq, origin, seq)`. Other events are not indexed.
fn index_key(e: &Event) -> Option<Vec<u8>> {
    let (kind, subject) = match &e.body {
        Body::Case(c) => (EventKind::Case, c.case.event_id()),
        Body::AlertUpdate(u) => (EventKind::AlertUpdate, u.alert),
        // Registry changes by the unit they are about (its scope).
        Body::Registry(_) => (EventKind::Registry, EventId { origin: e.scope, seq: 0 }),
        // Ledger records by school and China-time day (a day's records are one prefix, a window
        // of days one range).
        Body::Ledger(l) => (EventKind::Ledger, EventId { origin: e.scope, seq: u64::from(l.day) }),
        // Warnings by their school.
        Body::Warning(w) => (EventKind::Warning, EventId { origin: w.key.school, seq: 0 }),
        _ => return None,
    };
    let mut k = Vec::with_capacity(33);
    k.push(kind.code());
    k.extend_from_slice(&event_key(subject.origin, subject.seq));
    k.extend_from_slice(&event_key(e.origin, e.seq));
    Some(k)
}

/// The kinds rare enough among a month of events that a listing of one of them reads its own
/// time index ([`kind_key`]) instead of every run: directives and spot checks.
pub const TIME_INDEXED_KINDS: [EventKind; 2] = [EventKind::Directive, EventKind::SpotCheck];

/// First byte of a [`kind_key`] for `kind`: `0xE0 + kind code` (no subject index starts so high).
pub fn kind_prefix(kind: EventKind) -> u8 {
    0xE0 + kind.code()
}

/// The time-index key of an event of a [`TIME_INDEXED_KINDS`] kind: `(prefix, hlc, origin, seq)`,
/// so keys sort in event order. Its value is the event itself (a run of one): these kinds are
/// small and rare, and a listing then reads no run.
fn kind_key(e: &Event) -> Option<Vec<u8>> {
    TIME_INDEXED_KINDS.contains(&e.kind()).then(|| time_key(kind_prefix(e.kind()), e.hlc, e.id()))
}

/// An index key `(prefix, hlc, origin, seq)`: within its prefix, keys sort in event order (the
/// time indexes of the rare kinds, the open alerts, the schools' own dismissals).
fn time_key(prefix: u8, hlc: protocol::Hlc, id: EventId) -> Vec<u8> {
    let mut k = Vec::with_capacity(29);
    k.push(prefix);
    k.extend_from_slice(&hlc.wall_ms.to_be_bytes());
    k.extend_from_slice(&hlc.logical.to_be_bytes());
    k.extend_from_slice(&event_key(id.origin, id.seq));
    k
}

/// The event id at the end of a [`time_key`]; `None` for a key of another length.
fn time_key_id(k: &[u8]) -> Option<EventId> {
    if k.len() != 29 {
        return None;
    }
    let origin = NodeId::from_key(&k[13..21]).ok()?;
    let seq = u64::from_be_bytes(k[21..29].try_into().ok()?);
    Some(EventId { origin, seq })
}

/// Puts an event's index entries into the batch that stores it (a local write and an applied
/// batch alike): the open-alert index, the time index of its kind, its subject index.
/// The certificate a registry event revokes: its fingerprint and node.
fn revocation(e: &Event) -> Option<(&str, NodeId)> {
    match &e.body {
        Body::Registry(protocol::registry::RegistryChange {
            entity,
            op: protocol::registry::RegistryOp::Upsert(protocol::registry::EntityData::Revocation(r)),
        }) => Some((entity.id.as_str(), r.node)),
        _ => None,
    }
}

/// The certificates revoked by the events this node holds (fingerprints), as kept at write time.
pub fn revoked_certificates(storage: &dyn Storage) -> Result<Vec<String>, StorageError> {
    let mut out = Vec::new();
    for kv in storage.scan_prefix(Space::Meta, META_REVOKED) {
        let (k, _) = kv?;
        if let Some(fp) = k.strip_prefix(META_REVOKED) {
            out.push(String::from_utf8_lossy(fp).into_owned());
        }
    }
    Ok(out)
}

/// Called with the fingerprints of certificates that events just written revoked.
pub type RevokedFn = Arc<dyn Fn(&[String]) + Send + Sync>;

fn put_indexes(
    b: &mut WriteBatch,
    open: &mut open_alerts::OpenAlerts<'_>,
    received_at_us: u64,
    e: &Event,
) -> Result<(), StorageError> {
    open.note(b, e)?;
    if let Some((fingerprint, node)) = revocation(e) {
        let mut key = META_REVOKED.to_vec();
        key.extend_from_slice(fingerprint.as_bytes());
        b.put(Space::Meta, &key, node.to_string().into_bytes());
    }
    if let Some(k) = kind_key(e) {
        b.put(Space::Index, &k, encode_run(received_at_us, &[e])?);
    }
    if let Some(k) = index_key(e) {
        b.put(Space::Index, &k, Vec::new());
    }
    Ok(())
}

/// Gives an `Open` the id of its own event, and pending references the last case opened in the
/// same request.
fn resolve_case_ids(body: &mut Body, me: NodeId, seq: u64, opened: &mut Option<CaseId>) -> Result<(), String> {
    let pending = pending_case(me);
    let resolve = |case: &mut CaseId, opened: &Option<CaseId>| -> Result<(), String> {
        if *case == pending {
            *case = opened.ok_or("a step refers to a case opened in the same request, but none was")?;
        }
        Ok(())
    };
    match body {
        Body::Case(c) if matches!(c.action, CaseAction::Open { .. }) => {
            c.case = CaseId { opened_by: me, seq };
            *opened = Some(c.case);
        }
        Body::Case(c) => resolve(&mut c.case, opened)?,
        Body::AlertUpdate(AlertUpdate { action: AlertAction::Confirm { case: Some(case), .. }, .. }) => {
            resolve(case, opened)?
        }
        _ => {}
    }
    Ok(())
}

/// The highest ledger number per China-time year among the cases `me` opened (read from its own
/// `Open` events: the steps of its own cases only, by the index), so the next case it opens gets
/// the next number — after a restart or a restore.
fn ledger_counters(me: NodeId, storage: &dyn Storage) -> Result<BTreeMap<u32, u32>, StorageError> {
    let mut out: BTreeMap<u32, u32> = BTreeMap::new();
    for s in related_to_origin(storage, EventKind::Case, me)? {
        if s.event.origin == me
            && let Body::Case(c) = &s.event.body
            && let CaseAction::Open { number, .. } = &c.action
        {
            let last = out.entry(ledger_year(s.event.hlc.wall_ms)).or_default();
            *last = (*last).max(*number);
        }
    }
    Ok(out)
}

/// Events are stored in runs: one key per run of one origin's events, `(origin, last seq)`, the
/// value holding the run's events (and when they arrived). A received batch or a local request
/// becomes one run per origin, so a write costs one storage insert per origin, not per event.
/// Runs of an origin never interleave: a run never spans a seq already held when it was written.
pub(crate) fn decode_run(v: &[u8]) -> Result<(u64, Vec<Event>), StorageError> {
    decode(v).map_err(|e| corrupt("event run", e))
}

fn encode_run(received_at_us: u64, events: &[&Event]) -> Result<Vec<u8>, StorageError> {
    encode(&(received_at_us, events)).map_err(|e| corrupt("encode event run", e))
}

/// Most events in one stored run: large runs make writes cheap, but a fetch that takes a few events
/// of an origin decodes the whole run (a relay serving 16 origins takes ~32 of each per batch).
const RUN_EVENTS_MAX: usize = 64;

/// Splits events sorted by `(origin, seq)` into runs to store: a new run at each new origin, when
/// `before` (the holdings before these events) holds a seq between two neighbours, and at the size cap.
fn runs<'a>(events: &[&'a Event], before: &Cursors) -> Vec<Vec<&'a Event>> {
    let mut out: Vec<Vec<&Event>> = Vec::new();
    for &e in events {
        let split = match out.last().and_then(|r| r.last()) {
            None => true,
            Some(prev) => {
                prev.origin != e.origin
                    || out.last().is_some_and(|r| r.len() >= RUN_EVENTS_MAX)
                    || before.get(e.origin).is_some_and(|r| r.holds_any_between(prev.seq, e.seq))
            }
        };
        if split {
            out.push(vec![e]);
        } else if let Some(r) = out.last_mut() {
            r.push(e);
        }
    }
    out
}

/// Seq density of a local write: the new `seqs` continue `me`'s contiguous cursor (`before`, its
/// holdings of its own origin) one by one, none was held already (no seq is reused), and the
/// holdings after the write (`after`) are contiguous exactly up to the last new seq.
fn check_append(before: Option<&SeqRanges>, seqs: &[u64], after: &SeqRanges) -> Result<(), String> {
    let c = before.map_or(0, SeqRanges::contiguous);
    let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else { return Ok(()) };
    if first != c + 1 || seqs.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(format!("own seqs not dense: wrote {first}..={last} ({} seqs) after cursor {c}", seqs.len()));
    }
    if before.is_some_and(|r| r.holds_any_between(c, last + 1)) {
        return Err(format!("own seqs {first}..={last} reused: already held {:?}", before.map(SeqRanges::ranges)));
    }
    if after.contiguous() != last {
        return Err(format!(
            "own cursor {} after writing up to {last} (holdings {:?})",
            after.contiguous(),
            after.ranges()
        ));
    }
    Ok(())
}

/// Cursor monotonicity: an origin's contiguous cursor (held, or flushed) never goes back.
fn check_grows(what: &str, origin: NodeId, before: u64, after: u64) -> Result<(), String> {
    if after < before {
        return Err(format!("{what} cursor of {origin} went back from {before} to {after}"));
    }
    Ok(())
}

/// What a flush made durable never exceeds what is held.
fn check_flushed(origin: NodeId, flushed: u64, held: u64) -> Result<(), String> {
    if flushed > held {
        return Err(format!("flushed cursor of {origin} at {flushed}, above the held {held}"));
    }
    Ok(())
}

/// The keyspaces that hold this node's own records, never replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalSpace {
    Secrets,
    Audit,
    Devices,
    Files,
    Draws,
}

impl LocalSpace {
    pub fn space(self) -> Space {
        match self {
            LocalSpace::Secrets => Space::Secrets,
            LocalSpace::Audit => Space::Audit,
            LocalSpace::Devices => Space::Devices,
            LocalSpace::Files => Space::Files,
            LocalSpace::Draws => Space::Draws,
        }
    }
}

/// One write of a local record: `value` `None` deletes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOp {
    pub space: LocalSpace,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// What [`StoreMsg::AppendMarked`] writes under each mark: the first written event's seq and the
/// wall ms of the write, 8 bytes each, big-endian.
pub fn mark_value(seq: u64, wall_ms: u64) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.extend_from_slice(&wall_ms.to_be_bytes());
    v
}

/// Reads a [`mark_value`] back: `(seq, wall ms)`.
pub fn read_mark(v: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let at = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    Some((seq, at))
}

/// Why a local write was not made. Nothing of a refused write is stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The writer has no authority for it (one owner, only writer; who may take a case step).
    #[error("{0}")]
    Forbidden(String),
    /// The data is malformed (a blank title, a bad reference within the write).
    #[error("{0}")]
    Invalid(String),
    /// The node's data dir is fresh and it is still restoring its own past events.
    #[error("{0}")]
    Restoring(String),
    /// Storage failed; the node stops.
    #[error("{0}")]
    Storage(StorageError),
    /// The store did not answer (stopped, or too slow).
    #[error("本节点的存储没有应答：{0}")]
    Unavailable(String),
}

impl WriteError {
    /// An event breaking an authority rule is forbidden; one breaking a shape rule is invalid.
    pub fn from_violation(v: protocol::Violation) -> WriteError {
        use protocol::Violation as V;
        use protocol::case::Refusal as R;
        match &v {
            V::ScopeOutsideOrigin { .. } | V::NotHeld { .. } | V::KindAuthority { .. } | V::ForeignOrigin { .. } => {
                WriteError::Forbidden(v.to_string())
            }
            V::Case(R::Unrelated { .. } | R::SupervisorOnly { .. } | R::SchoolOnly { .. }) => {
                WriteError::Forbidden(v.to_string())
            }
            V::Registry(why) if why.is_forbidden() => WriteError::Forbidden(v.to_string()),
            _ => WriteError::Invalid(v.to_string()),
        }
    }
}

impl From<StorageError> for WriteError {
    fn from(e: StorageError) -> WriteError {
        WriteError::Storage(e)
    }
}

/// Opens a node's storage: checks the schema and the owner, loads cursors and the HLC.
/// What [`open`] found.
struct Opened {
    cursors: Cursors,
    hlc: HlcClock,
    restoring: bool,
}

fn open(me: NodeId, storage: &dyn Storage) -> Result<Opened, StorageError> {
    match storage.get(Space::Meta, META_NODE)? {
        Some(owner) if owner != me.to_string().as_bytes() => {
            return Err(StorageError::WrongNode {
                expected: me.to_string(),
                found: String::from_utf8_lossy(&owner).into(),
            });
        }
        Some(_) => {}
        None => {
            // A fresh data dir: a new node, or one whose disk was wiped. Either way it learns its
            // own history from an ancestor before writing (a new node learns there is none).
            let mut b = WriteBatch::default();
            b.put(Space::Meta, META_NODE, me.to_string().into_bytes());
            b.put(Space::Meta, META_SCHEMA, SCHEMA_VERSION.to_be_bytes().to_vec());
            if me.parent().is_some() {
                b.put(Space::Meta, META_RESTORING, vec![1]);
            }
            storage.write(b)?;
        }
    }
    if let Some(v) = storage.get(Space::Meta, META_SCHEMA)? {
        let found = u32::from_be_bytes(v.as_slice().try_into().map_err(|_| corrupt("schema", "not 4 bytes"))?);
        if found != SCHEMA_VERSION {
            return Err(StorageError::Schema { expected: SCHEMA_VERSION, found });
        }
    }
    build_recent_index(storage)?;
    build_kind_index(storage)?;
    case_summaries::build(storage)?;
    rollup::build(storage, me)?;
    let cursors = all_cursors(storage)?;
    let hlc = match storage.get(Space::Meta, META_HLC)? {
        Some(v) => HlcClock::new(decode(&v).map_err(|e| corrupt("hlc", e))?),
        None => HlcClock::default(),
    };
    let restoring = storage.get(Space::Meta, META_RESTORING)?.is_some();
    Ok(Opened { cursors, hlc, restoring })
}

/// Counters for the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    pub events_held: u64,
    pub events_written_local: u64,
    pub events_applied: u64,
    /// Of `events_applied`, the alerts (AI detections and warnings raised at schools).
    #[serde(default)]
    pub alerts_applied: u64,
    pub duplicates_ignored: u64,
    pub flushes: u64,
    /// Total time spent in flushes (µs): with `flushes`, the mean cost of making writes durable.
    pub flush_us_total: u64,
    pub origins: u64,
    pub own_seq: u64,
    /// True while a fresh store recovers this node's own past events (local writes wait).
    pub restoring: bool,
    /// Case steps and alert verdicts refused at this node's admin API (no authority, or not
    /// allowed in the case's state).
    #[serde(default)]
    pub refused_steps: u64,
    /// Events retention dropped since the node started ([`compact`]), and this node's own seq at
    /// or below which it may lack its own events (0: it holds them all).
    #[serde(default)]
    pub events_dropped: u64,
    #[serde(default)]
    pub own_floor: u64,
    /// Storage writes of this node's own new events: appends that arrive together share one
    /// (with `events_written_local`, how many events a write carried).
    #[serde(default)]
    pub append_writes: u64,
    /// Ranges from below checked against their origin's signed chain, and those refused (forged,
    /// altered, left out, or signed with a key not the origin's): nothing of a refused one is kept.
    #[serde(default)]
    pub seal_checks: u64,
    #[serde(default)]
    pub seals_refused: u64,
}

/// How far the node's holdings got, as told to a link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// `(origin, contiguous cursor)` pairs.
    pub contiguous: Vec<(NodeId, u64)>,
    /// Ranges of fresh events just come to be held (for the priority lane).
    pub fresh: Vec<SeqRange>,
    /// Retention dropped this node's own events up to here: never offer them ([`compact`]).
    pub floor: Option<u64>,
}

/// Called with the progress relevant to one link.
pub type ProgressFn = Box<dyn Fn(Progress) + Send + Sync>;

/// A link's interest in cursor progress: which peer it serves and how to tell it.
pub struct Subscriber {
    pub peer: NodeId,
    pub notify: ProgressFn,
}

pub enum StoreMsg {
    /// Writes new local events (one seq each, in order, in one storage batch); answers after
    /// they are flushed. All or none: a body that fails its checks refuses the whole request.
    Append {
        items: Vec<(NodeId, Body)>,
        /// The person on whose behalf they are written (recorded in every one of them).
        by: Option<protocol::people::Person>,
        reply: RpcReplyPort<Result<Vec<StoredEvent>, WriteError>>,
    },
    /// Applies a checked batch received from a peer; answers with the contiguous cursors of its
    /// origins after the flush.
    Apply {
        ranges: Vec<SeqRange>,
        events: Vec<Event>,
        /// From a descendant: the seals ending its ranges and certificate chains, checked before
        /// anything is written (a refusal is the answer, and the link is closed).
        attached: protocol::session::Attached,
        reply: RpcReplyPort<Result<Vec<(NodeId, u64)>, String>>,
    },
    /// Registers a link for progress notifications and answers, in the same step (so no progress
    /// falls between the two), the cursors of the origins its peer can hold: as written for
    /// relayed origins, as flushed for the node's own.
    Subscribe {
        id: u64,
        subscriber: Subscriber,
        reply: RpcReplyPort<Cursors>,
    },
    Unsubscribe {
        id: u64,
    },
    List {
        query: EventQuery,
        reply: RpcReplyPort<Result<Vec<StoredEvent>, String>>,
    },
    Stats(RpcReplyPort<StoreStats>),
    /// The indexed events of `kind` (case steps, alert updates), all or about one `subject`, in
    /// event order.
    Related {
        kind: EventKind,
        subject: Option<EventId>,
        reply: RpcReplyPort<Result<Vec<StoredEvent>, String>>,
    },
    /// Contiguous cursors of every origin in `root`'s subtree that this node holds.
    CursorsUnder {
        root: NodeId,
        reply: RpcReplyPort<Vec<(NodeId, u64)>>,
    },
    /// An ancestor's hello (or, now and then, its acks) said it holds this node's own events up to
    /// `own_seq`.
    AncestorHolds {
        own_seq: u64,
    },
    /// Retention ([`compact`]): drops the event groups wholly older than `cutoff_ms` (of them,
    /// this node's own only up to what an ancestor holds); answers after the flush with how many
    /// events were dropped.
    Compact {
        cutoff_ms: u64,
        reply: RpcReplyPort<Result<u64, WriteError>>,
    },
    FlushDone(Result<(), StorageError>),
    /// Something waits in the [`PriorityInbox`].
    Wake,
    /// Write the appends held so far ([`StoreMsg::Append`] and [`StoreMsg::AppendMarked`] are
    /// held and written together when this, sent after the first of them, or any other message
    /// comes).
    WriteHeld,
    /// A case step or verdict was refused at the admin API.
    CountRefused,
    /// Health rows to keep across a restart (last-value state, written without waiting for a
    /// flush; never replicated, never in the event log).
    PutHealth(crate::storage::WriteBatch),
    /// Stores a local record — an account's password hash in [`Space::Secrets`], an audit line in
    /// [`Space::Audit`] — answered after the flush. Never replicated.
    PutLocal {
        space: LocalSpace,
        key: Vec<u8>,
        value: Vec<u8>,
        reply: RpcReplyPort<Result<(), WriteError>>,
    },
    /// Writes and deletes local records in one atomic batch (never replicated). With `reply`,
    /// answered after the flush; without, last-value state written without waiting for one (a
    /// camera's heartbeat: the next one replaces it).
    WriteLocal {
        ops: Vec<LocalOp>,
        reply: Option<RpcReplyPort<Result<(), WriteError>>>,
    },
    /// Like [`StoreMsg::Append`], and in the same atomic batch sets each of `marks` to
    /// [`mark_value`] of the first written event: a device's detection id is kept exactly when
    /// what it raised is, so a crash between the two cannot raise it twice.
    AppendMarked {
        items: Vec<(NodeId, Body)>,
        by: Option<protocol::people::Person>,
        marks: Vec<(LocalSpace, Vec<u8>)>,
        reply: RpcReplyPort<Result<Vec<StoredEvent>, WriteError>>,
    },
}

enum Waiter {
    Secret(RpcReplyPort<Result<(), WriteError>>),
    /// A compaction: how many events it dropped.
    Compacted(RpcReplyPort<Result<u64, WriteError>>, u64),
    Append(RpcReplyPort<Result<Vec<StoredEvent>, WriteError>>, Vec<StoredEvent>),
    Apply(RpcReplyPort<Result<Vec<(NodeId, u64)>, String>>, Vec<(NodeId, u64)>),
}

pub struct StoreState {
    me: NodeId,
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    on_revoked: Option<RevokedFn>,
    registry_written: RegistryWritten,
    cursors: Cursors,
    /// Cursors as of the last completed flush.
    flushed: Cursors,
    hlc: HlcClock,
    /// Waiting for the flush in progress.
    in_flush: Vec<Waiter>,
    /// Cursors of the origins the flush in progress makes durable, as of its start.
    in_flush_changed: BTreeMap<NodeId, SeqRanges>,
    /// Waiting for the next flush.
    pending: Vec<Waiter>,
    /// Appends received and not yet written ([`StoreActor`] writes them together).
    held: Vec<HeldAppend>,
    pending_changed: BTreeSet<NodeId>,
    flushing: bool,
    /// When the flush in progress began (for the stats).
    flush_started: Option<tokio::time::Instant>,
    subscribers: BTreeMap<u64, Subscriber>,
    priority: PriorityInbox,
    /// `Some` while restoring: `Some(None)` until an ancestor said how far it holds this node's
    /// own events, then `Some(Some(seq))` until the store holds them all.
    restore_target: Option<Option<u64>>,
    /// The most an ancestor said it holds of this node's own events (since the node started).
    ancestor_holds: u64,
    stats: StoreStats,
    /// The highest case ledger number this node gave per China-time year ([`ledger_counters`]).
    ledger: BTreeMap<u32, u32>,
    /// The signed history: chains' heads held, the keys ([`chain`]).
    chains: chain::Chains,
}

pub struct StoreArgs {
    pub me: NodeId,
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
    pub priority: PriorityInbox,
    /// Told of every certificate revoked by an event written here (local or received), so the
    /// transport refuses it and closes its links at once.
    pub on_revoked: Option<RevokedFn>,
    /// Moved after each write holding registry events (readers keep registry views until then).
    pub registry_written: RegistryWritten,
    /// This node's signer and the book of its descendants' keys (the signed history).
    pub seal_keys: SealKeys,
    /// This node's certificate chain (its own first), sent up so ancestors learn its key.
    pub own_cert: Option<Vec<Vec<u8>>>,
}

/// Messages the store handles ahead of its mailbox: a link puts a priority-lane batch here and
/// casts [`StoreMsg::Wake`], so the fresh batch is applied before bulk batches queued earlier.
#[derive(Clone, Default)]
pub struct PriorityInbox(Arc<std::sync::Mutex<std::collections::VecDeque<StoreMsg>>>);

impl PriorityInbox {
    /// Queues `msg` ahead of the mailbox and wakes the store.
    pub fn send(&self, store: &ActorRef<StoreMsg>, msg: StoreMsg) -> Result<(), String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push_back(msg);
        store.cast(StoreMsg::Wake).map_err(|_| "store actor is gone".to_string())
    }

    fn take(&self) -> Option<StoreMsg> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

pub struct StoreActor;

impl StoreState {
    /// Debug builds: a broken store invariant stops the process (see [`invariant`]).
    fn assert_ok(&self, step: &str, checked: Result<(), String>) {
        if let Err(e) = checked {
            invariant::broken(format_args!("node {}, store, in {step}: {e}", self.me));
        }
    }

    fn start_flush(&mut self, myself: &ActorRef<StoreMsg>) {
        if self.flushing || self.pending.is_empty() {
            return;
        }
        self.flushing = true;
        self.in_flush = std::mem::take(&mut self.pending);
        self.in_flush_changed = std::mem::take(&mut self.pending_changed)
            .into_iter()
            .filter_map(|o| self.cursors.get(o).map(|r| (o, r.clone())))
            .collect();
        let flush = self.storage.flush();
        let me = myself.clone();
        // tokio's clock (paused in simulation), for the stats only.
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            let r = flush.await;
            let _ = me.cast(StoreMsg::FlushDone(r));
        });
        self.flush_started = Some(started);
    }

    /// Tells the node of certificates that `written` revoked.
    /// After events were written (and are visible to readers): tells of the certificates they
    /// revoke, and moves the registry count when any is a registry entry.
    fn written<'a>(&self, written: impl Iterator<Item = &'a Event>) {
        let mut registry = false;
        let mut found: Vec<String> = Vec::new();
        for e in written {
            registry |= e.kind() == EventKind::Registry;
            found.extend(revocation(e).map(|(fp, _)| fp.to_string()));
        }
        if registry {
            self.registry_written.moved();
        }
        if let Some(tell) = &self.on_revoked
            && !found.is_empty()
        {
            tell(&found);
        }
    }

    fn write_hlc(&self, batch: &mut WriteBatch) -> Result<(), StorageError> {
        batch.put(Space::Meta, META_HLC, encode(&self.hlc.last()).map_err(|e| corrupt("hlc", e))?);
        Ok(())
    }

    /// Ends the restore once an ancestor reported and this node holds its own events up to there.
    fn check_restored(&mut self) -> Result<(), StorageError> {
        let Some(Some(target)) = self.restore_target else { return Ok(()) };
        let have = self.cursors.contiguous(self.me);
        if have >= target {
            self.restore_target = None;
            self.storage.delete(Space::Meta, META_RESTORING)?;
            // The cases it opened before the wipe are back: their numbers are taken.
            self.ledger = ledger_counters(self.me, self.storage.as_ref())?;
            info!(node = %self.me, own_seq = have, "restore complete: local writes resume");
        }
        Ok(())
    }

    /// Tells the links how far `progress` got. Used right after a write for relayed origins (a
    /// relay may forward before its own flush: if it crashes first, the sender was not acked and
    /// sends again) and after the flush for the node's own origin (never send a seq that a crash
    /// could take back and reuse).
    fn publish(&self, progress: &[(NodeId, u64)], fresh: &[SeqRange]) {
        if progress.is_empty() && fresh.is_empty() {
            return;
        }
        let me = self.me;
        for sub in self.subscribers.values() {
            let contiguous: Vec<(NodeId, u64)> = progress
                .iter()
                .filter(|(o, _)| sends_origin(me, sub.peer, *o) || sends_origin(sub.peer, me, *o))
                .copied()
                .collect();
            let fresh: Vec<SeqRange> = fresh.iter().filter(|r| sends_origin(me, sub.peer, r.origin)).copied().collect();
            if !contiguous.is_empty() || !fresh.is_empty() {
                (sub.notify)(Progress { contiguous, fresh, floor: None });
            }
        }
    }

    /// Applies a received batch: the cursors of its origins after it, or (inner `Err`) why its
    /// seals were refused, with nothing written.
    fn apply(
        &mut self,
        ranges: &[SeqRange],
        events: &[Event],
        attached: &protocol::session::Attached,
    ) -> Result<Result<Vec<(NodeId, u64)>, String>, StorageError> {
        let checked = if attached.seals.is_empty() && attached.certs.is_empty() {
            None
        } else {
            self.stats.seal_checks += ranges.len() as u64;
            match self.chains.check(&self.cursors, ranges, events, attached) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.stats.seals_refused += 1;
                    warn!(node = %self.me, error = %e, "refused a batch whose signed history does not hold");
                    return Ok(Err(e.to_string()));
                }
            }
        };
        let mut next = self.cursors.clone_for(ranges.iter().map(|r| r.origin));
        let (fresh, changed) = apply_batch(&mut next, ranges, events);
        let now_us = self.clock.wall_us();
        let wall = self.clock.wall_ms();
        let mut b = WriteBatch::default();
        for e in &fresh {
            self.hlc.observe(e.hlc, wall);
        }
        let mut open = open_alerts::OpenAlerts::new(self.storage.as_ref());
        for e in &fresh {
            put_indexes(&mut b, &mut open, now_us, e)?;
        }
        case_summaries::note(self.storage.as_ref(), &mut b, &fresh)?;
        rollup::note(self.storage.as_ref(), &mut b, self.me, &fresh)?;
        for run in runs(&fresh, &self.cursors) {
            put_run(&mut b, now_us, &run)?;
        }
        for o in &changed {
            let r = next.get(*o).cloned().unwrap_or_default();
            b.put(Space::Cursors, &o.to_key(), encode(&r).map_err(|e| corrupt("cursor", e))?);
        }
        if !fresh.is_empty() {
            self.write_hlc(&mut b)?;
        }
        let heads = match &checked {
            Some(c) => self.chains.record(c, &next, &mut b)?,
            None => Vec::new(),
        };
        if !b.is_empty() {
            self.storage.write(b)?;
        }
        for (o, h) in heads {
            self.chains.set(o, h);
        }
        self.written(fresh.iter().copied());
        self.stats.events_applied += fresh.len() as u64;
        self.stats.alerts_applied += fresh.iter().filter(|e| e.kind() == EventKind::Alert).count() as u64;
        self.stats.duplicates_ignored += (events.len() - fresh.len()) as u64;
        let fresh_ranges = fresh_in_batch(ranges, events, &changed, wall);
        let mut relayed = Vec::with_capacity(changed.len());
        for o in changed {
            if let Some(r) = next.get(o) {
                if cfg!(debug_assertions) {
                    self.assert_ok("apply", check_grows("cursor", o, self.cursors.contiguous(o), r.contiguous()));
                }
                self.cursors.set(o, r.clone());
                if o != self.me && r.contiguous() > 0 {
                    relayed.push((o, r.contiguous()));
                }
            }
            self.pending_changed.insert(o);
        }
        // Sent on up, a fresh range must be one seal's span (the ancestor may hold nothing of
        // the chain below it): widened down to the start of the seal that ends it, when held.
        let mut fresh_ranges = fresh_ranges;
        for fr in &mut fresh_ranges {
            if let Some(seal) = attached.seals.iter().find(|s| s.origin == fr.origin && s.upto == fr.upto)
                && seal.after < fr.after
                && self.cursors.get(fr.origin).is_some_and(|h| h.covers(seal.after, fr.upto))
            {
                fr.after = seal.after;
            }
        }
        self.publish(&relayed, &fresh_ranges);
        self.check_restored()?;
        Ok(Ok(ranges.iter().map(|r| (r.origin, self.cursors.contiguous(r.origin))).collect()))
    }

    fn list(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StorageError> {
        list_events(self.storage.as_ref(), q)
    }
}

/// The fresh part of a received batch, per range whose origin's holdings grew: from its first
/// event written less than [`FRESH_AGE_MS`] ago (by its HLC) to the range's end, when that is at
/// most [`FRESH_EVENTS_MAX`] events. The whole range is held once applied, so any tail is too.
fn fresh_in_batch(ranges: &[SeqRange], events: &[Event], changed: &[NodeId], wall_ms: u64) -> Vec<SeqRange> {
    let mut out = Vec::new();
    for r in ranges {
        if !changed.contains(&r.origin) {
            continue;
        }
        // A checked batch's events are sorted by (origin, seq): find this origin's by bisection
        // rather than scanning the whole batch once per range.
        let from = events.partition_point(|e| e.origin < r.origin);
        let to = events.partition_point(|e| e.origin <= r.origin);
        let mine = events.get(from..to).unwrap_or_default().iter().filter(|e| e.seq > r.after && e.seq <= r.upto);
        let mut first_fresh = None;
        let mut count = 0u64;
        for e in mine {
            if first_fresh.is_some() {
                count += 1;
            } else if e.hlc.wall_ms.saturating_add(FRESH_AGE_MS) >= wall_ms {
                first_fresh = Some(e.seq);
                count = 1;
            }
        }
        if let Some(first) = first_fresh
            && count <= FRESH_EVENTS_MAX
        {
            out.push(SeqRange { origin: r.origin, after: first - 1, upto: r.upto });
        }
    }
    out
}

trait CloneFor {
    fn clone_for(&self, origins: impl Iterator<Item = NodeId>) -> Cursors;
}

impl CloneFor for Cursors {
    /// A copy holding only the named origins (applying a batch touches few of many origins).
    fn clone_for(&self, origins: impl Iterator<Item = NodeId>) -> Cursors {
        let mut c = Cursors::default();
        for o in origins {
            if let Some(r) = self.get(o) {
                c.set(o, r.clone());
            }
        }
        c
    }
}

impl Actor for StoreActor {
    type Msg = StoreMsg;
    type State = StoreState;
    type Arguments = StoreArgs;

    async fn pre_start(&self, _myself: ActorRef<StoreMsg>, args: StoreArgs) -> Result<StoreState, ActorProcessingErr> {
        let Opened { cursors, hlc, restoring } = open(args.me, args.storage.as_ref())?;
        let ledger = ledger_counters(args.me, args.storage.as_ref())?;
        args.storage.flush().await?;
        if restoring {
            info!(node = %args.me, "fresh store: local writes wait until an ancestor says what this node wrote before");
        }
        info!(node = %args.me, origins = cursors.len(), own_seq = cursors.contiguous(args.me), "store opened");
        let stats = StoreStats { own_floor: compact::own_floor(args.storage.as_ref())?, ..StoreStats::default() };
        if let Some(chain) = &args.own_cert {
            let mut b = WriteBatch::default();
            chain::Chains::own_cert(args.me, chain, &mut b)?;
            args.storage.write(b)?;
        }
        let chains = chain::Chains::load(args.storage.as_ref(), args.seal_keys)?;
        Ok(StoreState {
            me: args.me,
            storage: args.storage,
            clock: args.clock,
            on_revoked: args.on_revoked,
            registry_written: args.registry_written,
            flushed: cursors.clone(),
            cursors,
            hlc,
            in_flush: Vec::new(),
            held: Vec::new(),
            in_flush_changed: BTreeMap::new(),
            pending: Vec::new(),
            pending_changed: BTreeSet::new(),
            flushing: false,
            flush_started: None,
            subscribers: BTreeMap::new(),
            priority: args.priority,
            restore_target: if restoring { Some(None) } else { None },
            ancestor_holds: 0,
            stats,
            ledger,
            chains,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<StoreMsg>,
        msg: StoreMsg,
        st: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        // Appends are held and written together; anything else sees them written first, so the
        // order of the mailbox is kept.
        if !matches!(msg, StoreMsg::Append { .. } | StoreMsg::AppendMarked { .. }) {
            st.write_held();
        }
        while let Some(first) = st.priority.take() {
            self.handle_one(&myself, first, st)?;
        }
        self.handle_one(&myself, msg, st)
    }
}

impl StoreActor {
    fn handle_one(
        &self,
        myself: &ActorRef<StoreMsg>,
        msg: StoreMsg,
        st: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StoreMsg::Wake => {}
            StoreMsg::CountRefused => st.stats.refused_steps += 1,
            StoreMsg::PutHealth(batch) => {
                // Last-value state: a failed write loses a report that the next one replaces.
                if let Err(e) = st.storage.write(batch) {
                    warn!(node = %st.me, error = %e, "could not keep health rows");
                }
            }
            StoreMsg::PutLocal { space, key, value, reply } => {
                let mut b = WriteBatch::default();
                b.put(space.space(), &key, value);
                match st.storage.write(b) {
                    Ok(()) => st.pending.push(Waiter::Secret(reply)),
                    Err(e) => drop(reply.send(Err(WriteError::Storage(e)))),
                }
            }
            StoreMsg::WriteLocal { ops, reply } => {
                let mut b = WriteBatch::default();
                for op in ops {
                    match op.value {
                        Some(v) => b.put(op.space.space(), &op.key, v),
                        None => b.delete(op.space.space(), &op.key),
                    }
                }
                match (st.storage.write(b), reply) {
                    (Ok(()), Some(reply)) => st.pending.push(Waiter::Secret(reply)),
                    (Err(e), Some(reply)) => drop(reply.send(Err(WriteError::Storage(e)))),
                    (Ok(()), None) => {}
                    // Last-value state: a failed write loses a value that the next one replaces.
                    (Err(e), None) => warn!(node = %st.me, error = %e, "could not keep local records"),
                }
            }
            StoreMsg::AppendMarked { items, by, marks, reply } => {
                st.hold(myself, HeldAppend { items, by, marks, reply })
            }
            StoreMsg::Append { items, by, reply } => {
                st.hold(myself, HeldAppend { items, by, marks: Vec::new(), reply })
            }
            StoreMsg::WriteHeld => st.write_held(),
            StoreMsg::Apply { ranges, events, attached, reply } => {
                // A storage error here stops the node (the supervisor sees the failure).
                match st.apply(&ranges, &events, &attached)? {
                    Ok(cursors) => st.pending.push(Waiter::Apply(reply, cursors)),
                    Err(refused) => drop(reply.send(Err(refused))),
                }
            }
            StoreMsg::Subscribe { id, subscriber, reply } => {
                // Relayed origins as written (they are published at write time too), the node's
                // own origin only as flushed.
                let peer = subscriber.peer;
                let mut c = Cursors::default();
                for (o, r) in st.cursors.iter() {
                    if relevant_origin(peer, o) && o != st.me {
                        c.set(o, r.clone());
                    }
                }
                if let Some(own) = st.flushed.get(st.me) {
                    c.set(st.me, own.clone());
                }
                st.subscribers.insert(id, subscriber);
                let _ = reply.send(c);
            }
            StoreMsg::Unsubscribe { id } => {
                st.subscribers.remove(&id);
            }
            StoreMsg::List { query, reply } => {
                let _ = reply.send(st.list(&query).map_err(|e| e.to_string()));
            }
            StoreMsg::Related { kind, subject, reply } => {
                let _ = reply.send(related(st.storage.as_ref(), kind, subject).map_err(|e| e.to_string()));
            }
            StoreMsg::CursorsUnder { root, reply } => {
                let _ = reply.send(st.cursors.contiguous_vector(|o| root.is_ancestor_or_self_of(o)));
            }
            StoreMsg::AncestorHolds { own_seq } => {
                st.ancestor_holds = st.ancestor_holds.max(own_seq);
                if let Some(target) = st.restore_target {
                    let t = target.unwrap_or(0).max(own_seq);
                    st.restore_target = Some(Some(t));
                    info!(node = %st.me, own_seq = t, have = st.cursors.contiguous(st.me), "an ancestor holds this node's history");
                    st.check_restored()?;
                }
            }
            StoreMsg::Compact { cutoff_ms, reply } => {
                // While restoring, the store does not yet hold what it would judge.
                let holds = if st.restore_target.is_some() { 0 } else { st.ancestor_holds };
                match compact::plan(st.storage.as_ref(), st.me, cutoff_ms, holds) {
                    Ok(plan) if plan.dropped == 0 => drop(reply.send(Ok(0))),
                    Ok(plan) => {
                        let (dropped, floor) = (plan.dropped, plan.floor);
                        match st.storage.write(plan.batch) {
                            Ok(()) => {
                                st.stats.events_dropped += dropped;
                                st.stats.own_floor = floor;
                                info!(node = %st.me, dropped, floor, "retention: old events dropped");
                                for sub in st.subscribers.values() {
                                    (sub.notify)(Progress { floor: Some(floor), ..Progress::default() });
                                }
                                st.pending.push(Waiter::Compacted(reply, dropped));
                            }
                            Err(e) => drop(reply.send(Err(WriteError::Storage(e)))),
                        }
                    }
                    Err(e) => drop(reply.send(Err(WriteError::Storage(e)))),
                }
            }
            StoreMsg::Stats(reply) => {
                let mut s = st.stats.clone();
                s.origins = st.cursors.len() as u64;
                s.own_seq = st.cursors.contiguous(st.me);
                s.events_held = st.cursors.iter().map(|(_, r)| r.contiguous()).sum();
                s.restoring = st.restore_target.is_some();
                let _ = reply.send(s);
            }
            StoreMsg::FlushDone(result) => {
                st.flushing = false;
                let waiters = std::mem::take(&mut st.in_flush);
                let changed = std::mem::take(&mut st.in_flush_changed);
                if let Err(e) = result {
                    error!(node = %st.me, error = %e, "flush failed: stopping the node");
                    for w in waiters {
                        match w {
                            Waiter::Append(r, _) => drop(r.send(Err(WriteError::Storage(e.clone())))),
                            Waiter::Secret(r) => drop(r.send(Err(WriteError::Storage(e.clone())))),
                            Waiter::Compacted(r, _) => drop(r.send(Err(WriteError::Storage(e.clone())))),
                            Waiter::Apply(r, _) => drop(r.send(Err(format!("storage failed: {e}")))),
                        }
                    }
                    return Err(Box::new(e));
                }
                st.stats.flushes += 1;
                if let Some(started) = st.flush_started.take() {
                    st.stats.flush_us_total += started.elapsed().as_micros() as u64;
                }
                // Every write made before this flush began is durable: answer, then publish.
                for w in waiters {
                    match w {
                        Waiter::Append(r, stored) => drop(r.send(Ok(stored))),
                        Waiter::Secret(r) => drop(r.send(Ok(()))),
                        Waiter::Compacted(r, n) => drop(r.send(Ok(n))),
                        Waiter::Apply(r, cursors) => drop(r.send(Ok(cursors))),
                    }
                }
                let mut own = Vec::new();
                let mut fresh = Vec::new();
                for (o, ranges) in changed {
                    let c = ranges.contiguous();
                    let before = st.flushed.contiguous(o);
                    if cfg!(debug_assertions) {
                        let held = st.cursors.contiguous(o);
                        st.assert_ok(
                            "flush",
                            check_grows("flushed", o, before, c).and_then(|()| check_flushed(o, c, held)),
                        );
                    }
                    st.flushed.set(o, ranges);
                    if o == st.me && c > 0 {
                        own.push((o, c));
                        // The node's own new events are fresh by definition (a bulk import is not).
                        if c > before && c - before <= FRESH_EVENTS_MAX {
                            fresh.push(SeqRange { origin: o, after: before, upto: c });
                        }
                    }
                }
                st.publish(&own, &fresh);
                st.start_flush(myself);
            }
        }
        st.start_flush(myself);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;
    use protocol::{Directive, Hlc};

    fn ev(origin: NodeId, seq: u64) -> Event {
        let body = Body::Directive(Directive { title: format!("t{seq}"), text: String::new() });
        Event { by: None, origin, seq, hlc: Hlc { wall_ms: seq, logical: 0 }, scope: origin, body }
    }

    /// A store's arguments on `storage`, with the system clock and nothing listening.
    fn args_on(me: NodeId, storage: Arc<MemStorage>) -> StoreArgs {
        StoreArgs {
            me,
            storage,
            clock: Arc::new(crate::clock::SystemClock::new()),
            priority: PriorityInbox::default(),
            on_revoked: None,
            seal_keys: crate::runtime::store::SealKeys::simulated(1, me),
            own_cert: None,
            registry_written: Default::default(),
        }
    }

    /// A marked append keeps its marks in the same batch as its events, each naming the first
    /// event written; a refused append keeps neither; local writes and deletes go through too.
    #[tokio::test]
    async fn marks_are_written_with_the_events_they_name() {
        let me: NodeId = "13".parse().unwrap();
        let storage = Arc::new(MemStorage::new());
        let (store, task) = Actor::spawn(None, StoreActor, args_on(me, storage.clone())).await.unwrap();
        let directive = |t: &str| Body::Directive(Directive { title: t.into(), text: String::new() });
        let key = b"det/box-1\0d-1".to_vec();
        let marks = vec![(LocalSpace::Devices, key.clone())];
        let items = vec![(me, directive("a")), (me, directive("b"))];
        let m = marks.clone();
        let stored =
            ractor::call!(store, |reply| StoreMsg::AppendMarked { items, by: None, marks: m, reply }).unwrap().unwrap();
        let (seq, at) = read_mark(&storage.get(Space::Devices, &key).unwrap().unwrap()).unwrap();
        assert_eq!(seq, stored[0].event.seq, "the mark names the first event written");
        assert_eq!(at, stored[0].event.hlc.wall_ms);

        let blank = vec![(me, directive(" "))];
        let other = b"det/box-1\0d-2".to_vec();
        let m = vec![(LocalSpace::Devices, other.clone())];
        let refused = ractor::call!(store, |reply| StoreMsg::AppendMarked { items: blank, by: None, marks: m, reply });
        assert!(refused.unwrap().is_err(), "a blank directive is refused");
        assert_eq!(storage.get(Space::Devices, &other).unwrap(), None, "and its mark is not kept");

        let ops = vec![
            LocalOp { space: LocalSpace::Devices, key: key.clone(), value: None },
            LocalOp { space: LocalSpace::Devices, key: b"cam/cam-01".to_vec(), value: Some(b"{}".to_vec()) },
        ];
        ractor::call!(store, |reply| StoreMsg::WriteLocal { ops, reply: Some(reply) }).unwrap().unwrap();
        assert_eq!(storage.get(Space::Devices, &key).unwrap(), None);
        assert!(storage.get(Space::Devices, b"cam/cam-01").unwrap().is_some());
        store.stop(None);
        task.await.unwrap();
    }

    /// Appends that arrive together are written in one storage batch (one run of events), each
    /// request still all or none: a refused one takes no seq and keeps no mark, the others get
    /// consecutive seqs in arrival order and their marks name their own first event. Any other
    /// message sees the appends before it written first.
    #[tokio::test]
    async fn appends_arriving_together_are_written_together_each_all_or_none() {
        let me: NodeId = "13".parse().unwrap();
        let storage = Arc::new(MemStorage::new());
        let (store, task) = Actor::spawn(None, StoreActor, args_on(me, storage.clone())).await.unwrap();
        let directive = |t: &str| Body::Directive(Directive { title: t.into(), text: String::new() });
        let mark = |name: &str| vec![(LocalSpace::Devices, format!("det/box-1\0{name}").into_bytes())];
        let send = |items: Vec<(NodeId, Body)>, marks: Vec<(LocalSpace, Vec<u8>)>| {
            let (tx, rx) = ractor::concurrency::oneshot();
            store.cast(StoreMsg::AppendMarked { items, by: None, marks, reply: tx.into() }).unwrap();
            rx
        };
        let runs = |s: &MemStorage| s.scan_prefix(Space::Events, b"").count();
        // Sent before the store runs: all four wait in its mailbox together.
        let a = send(vec![(me, directive("a1")), (me, directive("a2"))], mark("a"));
        let b = send(vec![(me, directive("b1")), (me, directive(" "))], mark("b"));
        let c = send(vec![(me, directive("c1"))], mark("c"));
        let d = send(vec![(me, directive("d1"))], Vec::new());
        let seqs =
            |r: Result<Vec<StoredEvent>, WriteError>| -> Vec<u64> { r.unwrap().iter().map(|s| s.event.seq).collect() };
        assert_eq!(seqs(a.await.unwrap()), vec![1, 2]);
        assert!(b.await.unwrap().is_err(), "a blank directive refuses its whole request");
        assert_eq!(seqs(c.await.unwrap()), vec![3]);
        assert_eq!(seqs(d.await.unwrap()), vec![4]);
        let marked =
            |name: &str| storage.get(Space::Devices, &mark(name)[0].1).unwrap().map(|v| read_mark(&v).unwrap().0);
        assert_eq!((marked("a"), marked("b"), marked("c")), (Some(1), None, Some(3)));
        assert_eq!(runs(&storage), 1, "one storage batch for the three accepted requests");
        let held = read_range(storage.as_ref(), me, 0, u64::MAX, usize::MAX).unwrap().0;
        let titles: Vec<String> = held
            .iter()
            .map(|s| match &s.event.body {
                Body::Directive(d) => d.title.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(titles, ["a1", "a2", "c1", "d1"], "in arrival order, nothing of the refused one");

        // Another message between two appends: the first is written before it, the second after.
        let e = send(vec![(me, directive("e1"))], mark("e"));
        let (tx, stats) = ractor::concurrency::oneshot();
        store.cast(StoreMsg::Stats(tx.into())).unwrap();
        let f = send(vec![(me, directive("f1"))], mark("f"));
        assert_eq!(stats.await.unwrap().events_held, 5, "the append before Stats is written when it answers");
        assert_eq!((seqs(e.await.unwrap()), seqs(f.await.unwrap())), (vec![5], vec![6]));
        assert_eq!(runs(&storage), 3);
        store.stop(None);
        task.await.unwrap();
    }

    /// A node's ledger counter comes from the cases it opened itself, found by the index alone:
    /// a school's step on its case counts as that case's, another opener's cases do not count.
    #[test]
    fn ledger_counters_read_only_the_node_s_own_cases() {
        use protocol::case::{CaseEvent, CaseSource};
        let (me, other): (NodeId, NodeId) = ("130102".parse().unwrap(), "130103".parse().unwrap());
        let (school, other_school) = (NodeId::school(me, 1).unwrap(), NodeId::school(other, 1).unwrap());
        // 2026-12-05 in China time.
        let at = 1_796_400_000_000;
        let open = |by: NodeId, seq: u64, school: NodeId, number: u32| Event {
            by: None,
            origin: by,
            seq,
            hlc: Hlc { wall_ms: at, logical: 0 },
            scope: school,
            body: Body::Case(CaseEvent {
                case: CaseId { opened_by: by, seq },
                action: CaseAction::Open {
                    school,
                    severity: protocol::Severity::General,
                    source: CaseSource::SpotCheck,
                    title: "t".into(),
                    detail: String::new(),
                    number,
                },
            }),
        };
        let ack = Event {
            by: None,
            origin: school,
            seq: 1,
            hlc: Hlc { wall_ms: at + 1, logical: 0 },
            scope: school,
            body: Body::Case(CaseEvent { case: CaseId { opened_by: me, seq: 2 }, action: CaseAction::Acknowledge }),
        };
        let events = [open(me, 1, school, 6), open(me, 2, school, 7), ack, open(other, 1, other_school, 99)];
        let storage = MemStorage::new();
        let mut b = WriteBatch::default();
        for e in &events {
            put_run(&mut b, 1, &[e]).unwrap();
            b.put(Space::Index, &index_key(e).unwrap(), Vec::new());
        }
        storage.write(b).unwrap();
        let mine: Vec<EventId> =
            related_to_origin(&storage, EventKind::Case, me).unwrap().iter().map(|s| s.event.id()).collect();
        assert_eq!(mine, vec![events[0].id(), events[1].id(), events[2].id()]);
        assert_eq!(ledger_counters(me, &storage).unwrap(), BTreeMap::from([(2026, 7)]));
        assert_eq!(ledger_counters(other, &storage).unwrap(), BTreeMap::from([(2026, 99)]));
    }

    /// Runs written around held seqs never interleave, and ranged reads return exactly the
    /// stored events in order, with `exhausted` telling whether more remain.
    #[test]
    fn runs_and_ranged_reads() {
        let o: NodeId = "130102".parse().unwrap();
        let storage = MemStorage::new();
        // Seq 7 is held (an island written earlier) when 3, 5, 9, 11 arrive.
        let mut before = Cursors::default();
        before.insert(o, 6, 7);
        let island = ev(o, 7);
        let mut b = WriteBatch::default();
        b.put(Space::Events, &event_key(o, 7), encode_run(1, &[&island]).unwrap());
        let evs: Vec<Event> = [3, 5, 9, 11].into_iter().map(|s| ev(o, s)).collect();
        let refs: Vec<&Event> = evs.iter().collect();
        let rs = runs(&refs, &before);
        assert_eq!(
            rs.iter().map(|r| r.iter().map(|e| e.seq).collect::<Vec<_>>()).collect::<Vec<_>>(),
            vec![vec![3, 5], vec![9, 11]]
        );
        for r in &rs {
            let last = r.last().unwrap();
            b.put(Space::Events, &event_key(o, last.seq), encode_run(2, r).unwrap());
        }
        storage.write(b).unwrap();
        let all = [3u64, 5, 7, 9, 11];
        for after in 0..12 {
            for upto in after..13 {
                for max in [1usize, 2, 100] {
                    let (got, exhausted) = read_range(&storage, o, after, upto, max).unwrap();
                    let want: Vec<u64> = all.iter().copied().filter(|s| *s > after && *s <= upto).collect();
                    let seqs: Vec<u64> = got.iter().map(|s| s.event.seq).collect();
                    assert_eq!(seqs, want.iter().copied().take(max).collect::<Vec<_>>(), "({after},{upto}] max {max}");
                    assert_eq!(exhausted, want.len() <= max, "({after},{upto}] max {max}");
                }
            }
        }
    }
    /// The store's debug checks pass dense writes and growing cursors, and fail the rest.
    #[test]
    fn store_checks_catch_gaps_reuse_and_going_back() {
        let o: NodeId = "130102".parse().unwrap();
        let held = SeqRanges::up_to(4);
        let write = |first: u64, last: u64| {
            let mut r = held.clone();
            r.insert(first - 1, last);
            r
        };
        check_append(Some(&held), &[5, 6, 7], &write(5, 7)).unwrap();
        check_append(None, &[1], &SeqRanges::up_to(1)).unwrap();
        assert!(check_append(Some(&held), &[6, 7], &write(6, 7)).unwrap_err().contains("not dense"));
        assert!(check_append(Some(&held), &[5, 7], &write(5, 7)).unwrap_err().contains("not dense"));
        // An own island above the cursor: the new seqs reuse a held one, or end right below one.
        for (island_at, want) in [(6, "reused"), (7, "own cursor 7 after writing up to 6")] {
            let mut island = held.clone();
            island.insert(island_at - 1, island_at);
            let mut after = island.clone();
            after.insert(4, 6);
            let e = check_append(Some(&island), &[5, 6], &after).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        check_grows("cursor", o, 3, 3).unwrap();
        assert!(check_grows("cursor", o, 3, 2).unwrap_err().contains("went back from 3 to 2"));
        check_flushed(o, 3, 4).unwrap();
        assert!(check_flushed(o, 5, 4).is_err());
    }

    /// Listings are the newest matching events, whatever their runs; index reads find every
    /// related event across runs and origins, each once.
    #[test]
    fn listings_and_index_reads_across_runs() {
        use protocol::alert::{AlertAction, AlertUpdate};
        let storage = MemStorage::new();
        let (county, other): (NodeId, NodeId) = ("130102".parse().unwrap(), "130104".parse().unwrap());
        let school: NodeId = "130102-S0001".parse().unwrap();
        let alert = EventId { origin: school, seq: 1 };
        // Directives of two counties, interleaved in time, in runs of three; every third of the
        // county's events is a verdict on the same alert.
        let mut events: Vec<Event> = Vec::new();
        for seq in 1..=12u64 {
            let mut e = ev(county, seq);
            e.hlc.wall_ms = seq * 10;
            if seq % 3 == 0 {
                e.scope = school;
                e.body = Body::AlertUpdate(AlertUpdate {
                    alert,
                    action: AlertAction::Dismiss { reason: format!("r{seq}") },
                });
            }
            events.push(e);
            let mut o = ev(other, seq);
            o.hlc.wall_ms = seq * 10 + 5;
            events.push(o);
        }
        // The county's runs as this build writes them; the other's as written before the recent
        // index existed, which opening the store adds.
        let mut b = WriteBatch::default();
        for origin in [county, other] {
            let mine: Vec<&Event> = events.iter().filter(|e| e.origin == origin).collect();
            for run in mine.chunks(3) {
                if origin == county {
                    put_run(&mut b, 1, run).unwrap();
                } else {
                    b.put(Space::Events, &event_key(origin, run[run.len() - 1].seq), encode_run(1, run).unwrap());
                }
            }
        }
        for e in &events {
            if let Some(k) = index_key(e) {
                b.put(Space::Index, &k, Vec::new());
            }
        }
        storage.write(b).unwrap();
        let recent = |s: &MemStorage| s.scan_prefix(Space::Recent, b"").count();
        assert_eq!(recent(&storage), 4, "only the county's runs are in the index yet");
        open(county, &storage).unwrap();
        assert_eq!(recent(&storage), 8, "opening the store indexed the older runs");

        let q = |kind, under, limit| EventQuery { kind, under, limit };
        let seqs = |v: Vec<StoredEvent>| v.iter().map(|s| (s.event.origin, s.event.seq)).collect::<Vec<_>>();
        // Newest first across both origins.
        let newest = seqs(list_events(&storage, &q(None, None, 3)).unwrap());
        assert_eq!(newest, [(other, 12), (county, 12), (other, 11)]);
        let mine = seqs(list_events(&storage, &q(Some(EventKind::Directive), Some(county), 2)).unwrap());
        assert_eq!(mine, [(county, 11), (county, 10)]);
        let odd = list_events_where(&storage, &q(None, Some(other), 2), |s| Some(s.event.seq % 2 == 1)).unwrap();
        assert_eq!(seqs(odd), [(other, 11), (other, 9)]);
        // The four verdicts, oldest first, found through the index by subject and by kind.
        let want: Vec<(NodeId, u64)> = [3, 6, 9, 12].into_iter().map(|s| (county, s)).collect();
        assert_eq!(seqs(related(&storage, EventKind::AlertUpdate, Some(alert)).unwrap()), want);
        assert_eq!(seqs(related(&storage, EventKind::AlertUpdate, None).unwrap()), want);
        assert!(
            related(&storage, EventKind::AlertUpdate, Some(EventId { origin: school, seq: 2 })).unwrap().is_empty()
        );
    }
}
