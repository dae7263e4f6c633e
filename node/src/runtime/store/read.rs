//! The store's read paths: ranged reads, index lookups and newest-first listings. Reads only: the
//! admin API and the links call them beside the store actor, which stays the only writer.

use std::collections::BTreeMap;

use protocol::apply::fill_fetch;
use protocol::wire::decode;
use protocol::{Cursors, Event, EventId, EventKind, FetchRequest, Hlc, SeqRange, SeqRanges};
use serde::{Deserialize, Serialize};
use topology::NodeId;

use super::*;
use crate::storage::{Space, Storage, StorageError};

/// Most events one listing returns.
pub const LIST_LIMIT_MAX: usize = 100_000;

/// Reads up to `max` stored events of `origin` with `after < seq <= upto`, in seq order, and
/// whether that exhausted the range.
/// The event `id`, if this storage holds it (the run that holds it is read and decoded).
pub fn read_event(storage: &dyn Storage, id: EventId) -> Result<Option<StoredEvent>, StorageError> {
    let (found, _) = read_range(storage, id.origin, id.seq.saturating_sub(1), id.seq, 1)?;
    Ok(found.into_iter().find(|s| s.event.seq == id.seq))
}

pub fn read_range(
    storage: &dyn Storage,
    origin: NodeId,
    after: u64,
    upto: u64,
    max: usize,
) -> Result<(Vec<StoredEvent>, bool), StorageError> {
    let mut out = Vec::new();
    if upto <= after {
        return Ok((out, true));
    }
    let from = event_key(origin, after.saturating_add(1));
    let to = event_key(origin, u64::MAX);
    for item in storage.scan(Space::Events, &from, &to) {
        let (_, v) = item?;
        let (received_at_us, events) = decode_run(&v)?;
        if events.first().is_none_or(|e| e.seq > upto) {
            break;
        }
        for event in events {
            if event.seq <= after || event.seq > upto {
                continue;
            }
            if out.len() == max {
                return Ok((out, false));
            }
            out.push(StoredEvent { received_at_us, event });
        }
    }
    Ok((out, true))
}

/// Every event in `storage`, in `(origin, seq)` order (the simulator's checker and digest).
pub fn all_events(storage: &dyn Storage) -> Result<Vec<StoredEvent>, StorageError> {
    let mut out = Vec::new();
    for item in storage.scan_prefix(Space::Events, b"") {
        let (_, v) = item?;
        let (received_at_us, events) = decode_run(&v)?;
        out.extend(events.into_iter().map(|event| StoredEvent { received_at_us, event }));
    }
    Ok(out)
}

/// Every origin's held seq ranges in `storage`.
pub fn all_cursors(storage: &dyn Storage) -> Result<Cursors, StorageError> {
    let mut cursors = Cursors::default();
    for item in storage.scan_prefix(Space::Cursors, b"") {
        let (k, v) = item?;
        let origin = NodeId::from_key(&k).map_err(|e| corrupt("cursor key", e))?;
        let ranges: SeqRanges = decode(&v).map_err(|e| corrupt("cursor", e))?;
        cursors.set(origin, ranges);
    }
    Ok(cursors)
}

/// Most origins read to find the oldest event still waiting for a peer.
pub const OLDEST_SCAN_ORIGINS_MAX: usize = 8;

/// How long (ms) the oldest of the events waiting for a peer has been held here, reading the first
/// waiting event after `after` of each `(origin, after)` given (the most behind first; at most
/// [`OLDEST_SCAN_ORIGINS_MAX`] are read). 0 when none is found.
pub fn oldest_waiting_ms(storage: &dyn Storage, now_us: u64, heads: impl IntoIterator<Item = (NodeId, u64)>) -> u64 {
    let mut oldest = now_us;
    for (origin, after) in heads.into_iter().take(OLDEST_SCAN_ORIGINS_MAX) {
        if let Ok((found, _)) = read_range(storage, origin, after, u64::MAX, 1)
            && let Some(first) = found.first()
        {
            oldest = oldest.min(first.received_at_us);
        }
    }
    now_us.saturating_sub(oldest) / 1000
}

/// The indexed events of `kind`, all or about `subject`, sorted in event order.
pub fn related(
    storage: &dyn Storage,
    kind: EventKind,
    subject: Option<EventId>,
) -> Result<Vec<StoredEvent>, StorageError> {
    let mut prefix = vec![kind.code()];
    if let Some(s) = subject {
        prefix.extend_from_slice(&event_key(s.origin, s.seq));
    }
    related_by_prefix(storage, &prefix)
}

/// The indexed events of `kind` about subjects written by `origin` (for cases: every step of the
/// cases `origin` opened), sorted in event order.
pub fn related_to_origin(
    storage: &dyn Storage,
    kind: EventKind,
    origin: NodeId,
) -> Result<Vec<StoredEvent>, StorageError> {
    let mut prefix = vec![kind.code()];
    prefix.extend_from_slice(&origin.to_key());
    related_by_prefix(storage, &prefix)
}

/// The kinds of the events held under `now` and not under `before` (cursors read earlier), by
/// origin; `None` when an origin is gone (a wiped store: anything may have changed). A cursor that
/// moved over no event held here (a parent's claim past events for other nodes) brings nothing.
/// Events are only added, never changed, and the cursors move in the same storage write as the
/// events: what a reader derived from the events under `before` holds under `now` unless events
/// of the kinds it reads arrived.
pub fn arrived(
    storage: &dyn Storage,
    before: &Cursors,
    now: &Cursors,
) -> Result<Option<BTreeMap<NodeId, std::collections::BTreeSet<EventKind>>>, StorageError> {
    let mut out: BTreeMap<NodeId, std::collections::BTreeSet<EventKind>> = BTreeMap::new();
    if before == now {
        return Ok(Some(out));
    }
    if before.iter().any(|(o, _)| now.get(o).is_none()) {
        return Ok(None);
    }
    for (origin, ranges) in now.iter() {
        let held = before.get(origin).cloned().unwrap_or_default();
        if &held == ranges {
            continue;
        }
        for e in read_range(storage, origin, held.contiguous(), u64::MAX, usize::MAX)?.0 {
            if !held.contains(e.event.seq) {
                out.entry(origin).or_default().insert(e.event.kind());
            }
        }
    }
    Ok(Some(out))
}

/// The registry events `unit` wrote about itself and about the units under it that share its code
/// (a county's schools, registered at run time or not), in event order: an index range whose
/// other writers' entries are skipped unread.
pub fn registry_written_under(storage: &dyn Storage, unit: NodeId) -> Result<Vec<StoredEvent>, StorageError> {
    let mut prefix = vec![EventKind::Registry.code()];
    prefix.extend_from_slice(&unit.to_key()[..4]);
    let writer = unit.to_key();
    let keys = storage.scan_prefix(Space::Index, &prefix).filter(move |item| match item {
        Ok((k, _)) => k.len() >= 16 && k[k.len() - 16..k.len() - 8] == writer,
        Err(_) => true,
    });
    related_in(storage, Box::new(keys))
}

/// A school's ledger events of the China-time days `from_day..=to_day`, in event order (an index
/// range: no other school's or day's records are read).
pub fn ledger_events(
    storage: &dyn Storage,
    school: NodeId,
    from_day: u32,
    to_day: u32,
) -> Result<Vec<StoredEvent>, StorageError> {
    let key = |day: u64| {
        let mut k = vec![EventKind::Ledger.code()];
        k.extend_from_slice(&event_key(school, day));
        k
    };
    related_in(storage, storage.scan(Space::Index, &key(u64::from(from_day)), &key(u64::from(to_day) + 1)))
}

/// The indexed events whose index key starts with `prefix`, sorted in event order.
fn related_by_prefix(storage: &dyn Storage, prefix: &[u8]) -> Result<Vec<StoredEvent>, StorageError> {
    related_in(storage, storage.scan_prefix(Space::Index, prefix))
}

/// The events named by the index keys of `keys`, sorted in event order.
fn related_in(storage: &dyn Storage, keys: crate::storage::ScanIter<'_>) -> Result<Vec<StoredEvent>, StorageError> {
    // The indexed events, per origin; then each origin's runs that hold them, each run read once
    // (not one read per event: a province's month of verdicts is a million of them).
    let mut wanted: BTreeMap<NodeId, Vec<u64>> = BTreeMap::new();
    for item in keys {
        let (k, _) = item?;
        let k = k.get(k.len().saturating_sub(16)..).unwrap_or_default();
        let origin = NodeId::from_key(k.get(..8).unwrap_or_default()).map_err(|e| corrupt("index key", e))?;
        let seq = u64::from_be_bytes(k.get(8..16).and_then(|b| b.try_into().ok()).unwrap_or_default());
        wanted.entry(origin).or_default().push(seq);
    }
    let mut out = Vec::new();
    for (origin, mut seqs) in wanted {
        seqs.sort_unstable();
        seqs.dedup();
        let mut run: Option<(u64, Vec<Event>)> = None;
        for seq in seqs {
            let in_run = run.as_ref().is_some_and(|(_, evs)| {
                evs.first().is_some_and(|f| f.seq <= seq) && evs.last().is_some_and(|l| l.seq >= seq)
            });
            if !in_run {
                // The run holding `seq`: the first whose key (its last seq) is at or above it.
                run = match storage.scan(Space::Events, &event_key(origin, seq), &event_key(origin, u64::MAX)).next() {
                    Some(item) => Some(decode_run(&item?.1)?),
                    None => None,
                };
            }
            let found = run.as_ref().and_then(|(at, evs)| {
                let i = evs.binary_search_by_key(&seq, |e| e.seq).ok()?;
                Some(StoredEvent { received_at_us: *at, event: evs[i].clone() })
            });
            match found {
                Some(s) => out.push(s),
                None => return Err(corrupt("index", format!("{origin}#{seq} is indexed but not stored"))),
            }
        }
    }
    out.sort_by_key(|s| s.event.order_key());
    Ok(out)
}

/// Answers a session's fetch from storage (reads only; safe beside the store actor's writes, and
/// only ever asked for ranges the store already published).
pub fn read_fetch(
    storage: &dyn Storage,
    peer: NodeId,
    req: &FetchRequest,
) -> Result<(Vec<SeqRange>, Vec<Event>), StorageError> {
    fill_fetch(peer, req, |r, max| {
        read_range(storage, r.origin, r.after, r.upto, max)
            .map(|(found, exhausted)| (found.into_iter().map(|s| s.event).collect(), exhausted))
    })
}

/// What a listing asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    pub kind: Option<EventKind>,
    /// Only events whose origin lies in this subtree.
    pub under: Option<NodeId>,
    /// Newest first, at most this many.
    pub limit: usize,
}

/// The newest events matching `q`, read from storage (reads only: the admin API calls it beside
/// the store actor, so a long listing never holds up replication). Runs of origins outside
/// `q.under` are skipped by their key, undecoded; the newest `limit` are kept in a bounded heap.
pub fn list_events(storage: &dyn Storage, q: &EventQuery) -> Result<Vec<StoredEvent>, StorageError> {
    list_events_where(storage, q, |_| Some(true))
}

/// [`list_events`] keeping only the events `keep` accepts (the newest `limit` of those); `keep`
/// answering `None` ends the listing there, with what it kept so far.
pub fn list_events_where(
    storage: &dyn Storage,
    q: &EventQuery,
    mut keep: impl FnMut(&StoredEvent) -> Option<bool>,
) -> Result<Vec<StoredEvent>, StorageError> {
    /// Ordered by the event's order key alone.
    struct ByKey(StoredEvent);
    impl PartialEq for ByKey {
        fn eq(&self, o: &Self) -> bool {
            self.0.event.order_key() == o.0.event.order_key()
        }
    }
    impl Eq for ByKey {}
    impl PartialOrd for ByKey {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for ByKey {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.event.order_key().cmp(&o.0.event.order_key())
        }
    }
    let limit = if q.limit == 0 { 100 } else { q.limit.min(LIST_LIMIT_MAX) };
    if let Some(kind) = q.kind.filter(|k| super::TIME_INDEXED_KINDS.contains(k)) {
        return list_by_time_index(storage, kind, q.under, limit, keep);
    }
    // A min-heap of the newest `limit` seen so far.
    let mut newest: std::collections::BinaryHeap<std::cmp::Reverse<ByKey>> = Default::default();
    // Runs newest first, by their newest event; once the heap is full and holds only events
    // after a run's newest, nothing older can enter it.
    'runs: for item in storage.scan_rev(Space::Recent, &[0u8; 28], &[0xffu8; 28]) {
        let (k, _) = item?;
        let (Some(wall), Some(logical), Some(run_key)) = (k.get(..8), k.get(8..12), k.get(12..28)) else {
            return Err(corrupt("recent key", format!("{} bytes", k.len())));
        };
        let run_newest = Hlc {
            wall_ms: u64::from_be_bytes(wall.try_into().unwrap_or_default()),
            logical: u32::from_be_bytes(logical.try_into().unwrap_or_default()),
        };
        if newest.len() == limit && newest.peek().is_some_and(|m| m.0.0.event.hlc > run_newest) {
            break;
        }
        if let Some(under) = q.under {
            let origin = NodeId::from_key(&run_key[..8]).map_err(|e| corrupt("recent key", e))?;
            if !under.is_ancestor_or_self_of(origin) {
                continue;
            }
        }
        let Some(v) = storage.get(Space::Events, run_key)? else {
            return Err(corrupt("recent index", "names a run that is not stored"));
        };
        let (received_at_us, events) = decode_run(&v)?;
        for event in events {
            if q.kind.is_some_and(|k| k != event.kind()) {
                continue;
            }
            if newest.len() == limit && newest.peek().is_some_and(|m| m.0.0.event.order_key() >= event.order_key()) {
                continue;
            }
            let stored = StoredEvent { received_at_us, event };
            match keep(&stored) {
                Some(true) => {}
                Some(false) => continue,
                // The caller stops the listing: what was kept so far.
                None => break 'runs,
            }
            newest.push(std::cmp::Reverse(ByKey(stored)));
            if newest.len() > limit {
                newest.pop();
            }
        }
    }
    // Newest first.
    Ok(newest.into_sorted_vec().into_iter().map(|r| r.0.0).collect())
}

/// A listing of a rare kind from its time index, newest first: one point read per event listed.
fn list_by_time_index(
    storage: &dyn Storage,
    kind: EventKind,
    under: Option<NodeId>,
    limit: usize,
    mut keep: impl FnMut(&StoredEvent) -> Option<bool>,
) -> Result<Vec<StoredEvent>, StorageError> {
    let prefix = super::kind_prefix(kind);
    let mut to = vec![prefix];
    to.extend_from_slice(&[0xff; 28]);
    let mut out = Vec::new();
    for item in storage.scan_rev(Space::Index, &[prefix], &to) {
        if out.len() >= limit {
            break;
        }
        let (k, item_value) = item?;
        let Some(EventId { origin, seq }) = super::time_key_id(&k) else {
            return Err(corrupt("time index key", format!("{} bytes", k.len())));
        };
        if under.is_some_and(|u| !u.is_ancestor_or_self_of(origin)) {
            continue;
        }
        let (received_at_us, mut events) = super::decode_run(&item_value)?;
        let Some(event) = events.pop().filter(|e| e.origin == origin && e.seq == seq) else {
            return Err(corrupt("time index", format!("the entry of {origin}#{seq} holds another event")));
        };
        let stored = StoredEvent { received_at_us, event };
        match keep(&stored) {
            Some(true) => out.push(stored),
            Some(false) => {}
            None => break,
        }
    }
    Ok(out)
}

/// The case inputs of stored events (others are skipped).
pub fn case_inputs(events: &[StoredEvent]) -> Vec<protocol::case::CaseInput> {
    events
        .iter()
        .filter_map(|s| match &s.event.body {
            protocol::Body::Case(c) => Some(protocol::case::CaseInput {
                id: s.event.id(),
                hlc: s.event.hlc,
                scope: s.event.scope,
                case: c.case,
                action: c.action.clone(),
                person: s.event.by.clone(),
            }),
            _ => None,
        })
        .collect()
}
