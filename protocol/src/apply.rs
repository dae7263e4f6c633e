//! The two halves of moving a batch that both ends share: filling a fetch from a store (sender) and
//! applying a received batch to a node's cursors (receiver). Pure functions over whatever storage
//! the caller has, so the node's store, the simulator and the tests apply events the same way.

use topology::NodeId;

use crate::cursor::Cursors;
use crate::event::Event;
use crate::holds::holds;
use crate::session::FetchRequest;
use crate::wire::{BATCH_BYTES_MAX, SeqRange, event_size};

/// How many stored events a fetch may scan per event it returns before it stops early (events the
/// peer must not hold are skipped but still cost a read).
pub const FETCH_SCAN_FACTOR: usize = 4;

/// Answers a [`FetchRequest`] for `peer`: for each range, the events of `scan(range)` (the store's
/// events of that origin with `after < seq <= upto`, in seq order) that `peer` should hold, within
/// the request's limits. Returns the covered ranges (an `upto` lowered where a limit stopped the
/// scan) and the events, sorted by `(origin, seq)`.
pub fn fill_fetch<I>(
    peer: NodeId,
    req: &FetchRequest,
    mut scan: impl FnMut(SeqRange) -> I,
) -> (Vec<SeqRange>, Vec<Event>)
where
    I: Iterator<Item = Event>,
{
    let mut covered = Vec::with_capacity(req.ranges.len());
    let mut events = Vec::new();
    let mut bytes = 0usize;
    let scan_max = req.total_max.saturating_mul(FETCH_SCAN_FACTOR).max(1);
    let mut scanned = 0usize;
    for range in &req.ranges {
        if events.len() >= req.total_max || bytes >= BATCH_BYTES_MAX || scanned >= scan_max {
            break;
        }
        let mut upto = range.upto;
        let mut kept = 0usize;
        for e in scan(*range) {
            if e.seq <= range.after || e.seq > range.upto || e.origin != range.origin {
                continue;
            }
            scanned += 1;
            if holds(peer, e.scope) {
                bytes += event_size(&e);
                events.push(e.clone());
                kept += 1;
            }
            let full = kept >= req.per_range_max || events.len() >= req.total_max || bytes >= BATCH_BYTES_MAX;
            if full || scanned >= scan_max {
                upto = e.seq;
                break;
            }
        }
        if upto > range.after {
            covered.push(SeqRange { origin: range.origin, after: range.after, upto });
        }
    }
    (covered, events)
}

/// Applies a checked batch to `cursors`: returns the events not already held (to persist) and the
/// origins whose holdings grew. Idempotent: applying the same batch again returns nothing new.
pub fn apply_batch<'a>(
    cursors: &mut Cursors,
    ranges: &[SeqRange],
    events: &'a [Event],
) -> (Vec<&'a Event>, Vec<NodeId>) {
    let fresh: Vec<&Event> = events.iter().filter(|e| !cursors.holds_seq(e.origin, e.seq)).collect();
    let mut changed = Vec::new();
    for r in ranges {
        if cursors.insert(r.origin, r.after, r.upto) {
            changed.push(r.origin);
        }
    }
    (fresh, changed)
}
