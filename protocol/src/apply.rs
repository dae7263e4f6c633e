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

/// Answers a [`FetchRequest`] for `peer`. `read(range, max)` returns up to `max` stored events of
/// the range's origin with `after < seq <= upto`, in seq order, and whether that exhausted the range.
/// Keeps the events `peer` should hold, within the request's limits, and returns the covered
/// ranges (an `upto` lowered where a limit stopped the scan) with the events sorted by
/// `(origin, seq)`. A read error aborts the whole fetch: a range is never claimed on a partial read.
pub fn fill_fetch<E>(
    peer: NodeId,
    req: &FetchRequest,
    mut read: impl FnMut(SeqRange, usize) -> Result<(Vec<Event>, bool), E>,
) -> Result<(Vec<SeqRange>, Vec<Event>), E> {
    let mut covered = Vec::with_capacity(req.ranges.len());
    let mut events = Vec::new();
    let mut bytes = 0usize;
    let scan_max = req.total_max.saturating_mul(FETCH_SCAN_FACTOR).max(1);
    let mut scanned = 0usize;
    for range in &req.ranges {
        if events.len() >= req.total_max || bytes >= BATCH_BYTES_MAX || scanned >= scan_max {
            break;
        }
        // Read no more than this range may use: decoding events only to drop them is the main
        // cost of a busy relay. (A sparse origin on a filtered link just takes more fetches.)
        let budget = (scan_max - scanned).min(req.per_range_max.max(1));
        let (found, exhausted) = read(*range, budget)?;
        let mut upto = if exhausted { range.upto } else { found.last().map_or(range.after, |e| e.seq.min(range.upto)) };
        let mut kept = 0usize;
        for e in found {
            if e.seq <= range.after || e.seq > range.upto || e.origin != range.origin {
                continue;
            }
            scanned += 1;
            let seq = e.seq;
            if holds(peer, e.scope) {
                bytes += event_size(&e);
                events.push(e);
                kept += 1;
            }
            let full = kept >= req.per_range_max || events.len() >= req.total_max || bytes >= BATCH_BYTES_MAX;
            if full || scanned >= scan_max {
                upto = seq;
                break;
            }
        }
        if upto > range.after {
            covered.push(SeqRange { origin: range.origin, after: range.after, upto });
        }
    }
    Ok((covered, events))
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
