//! Local appends, written together: the admin API's, the scheduler's and the rules engine's
//! requests to write new events at this node ([`StoreMsg::Append`], [`StoreMsg::AppendMarked`])
//! are held as they arrive and written in one storage batch when [`StoreMsg::WriteHeld`] (sent
//! after the first of them) or any other message comes: concurrent raises share one B-tree commit
//! as they already shared one flush. Each request stays all or none.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::case::CaseAction;
use protocol::cursor::SeqRanges;
use protocol::holds::check_event;
use protocol::wire::encode;
use protocol::{Body, Event};
use ractor::{ActorRef, RpcReplyPort};
use topology::NodeId;

use super::{
    LocalSpace, META_HLC, RUN_EVENTS_MAX, StoreMsg, StoreState, StoredEvent, Waiter, WriteError, case_summaries,
    check_append, corrupt, ledger_year, mark_value, open_alerts, put_indexes, put_run, resolve_case_ids, rollup,
};
use crate::storage::{Space, WriteBatch};

/// How many batches with registry events the store has written since the node started: while it
/// does not move, a registry view read before still holds (registry events are never dropped or
/// changed). The store moves it after the write is visible to readers
/// ([`crate::runtime::reads::Reads::registry_of_now`] keeps its answer until then).
#[derive(Clone, Debug, Default)]
pub struct RegistryWritten(Arc<AtomicU64>);

impl RegistryWritten {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Called by the store after a write holding registry events.
    pub fn moved(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// One request's new events at seqs from `first`, checked, moving `hlc` and the case-number
/// `ledger` past them; when a body fails its checks the caller drops what moved.
#[allow(clippy::too_many_arguments)]
fn prepare_append(
    me: NodeId,
    items: Vec<(NodeId, Body)>,
    by: &Option<protocol::people::Person>,
    first: u64,
    now_us: u64,
    wall: u64,
    hlc: &mut protocol::HlcClock,
    ledger: &mut BTreeMap<u32, u32>,
) -> Result<Vec<StoredEvent>, WriteError> {
    let mut opened = None;
    let mut out = Vec::with_capacity(items.len());
    for (i, (scope, mut body)) in items.into_iter().enumerate() {
        let seq = first + i as u64;
        resolve_case_ids(&mut body, me, seq, &mut opened).map_err(WriteError::Invalid)?;
        let at = hlc.tick(wall);
        if let Body::Case(c) = &mut body
            && let CaseAction::Open { number, .. } = &mut c.action
            && *number == 0
        {
            let last = ledger.entry(ledger_year(at.wall_ms)).or_default();
            *last += 1;
            *number = *last;
        }
        let event = Event { origin: me, seq, hlc: at, scope, body, by: by.clone() };
        check_event(&event).map_err(WriteError::from_violation)?;
        out.push(StoredEvent { received_at_us: now_us, event });
    }
    Ok(out)
}

/// A request to append local events, held until the store writes the appends that arrived
/// together ([`StoreMsg::WriteHeld`]).
pub(super) struct HeldAppend {
    pub(super) items: Vec<(NodeId, Body)>,
    pub(super) by: Option<protocol::people::Person>,
    pub(super) marks: Vec<(LocalSpace, Vec<u8>)>,
    pub(super) reply: RpcReplyPort<Result<Vec<StoredEvent>, WriteError>>,
}

impl StoreState {
    /// Why local writes are refused while the node restores its own past events (`None`: they
    /// are not).
    fn restoring_refusal(&self) -> Option<WriteError> {
        match self.restore_target {
            None => None,
            Some(None) => Some(WriteError::Restoring(format!(
                "{} 正在恢复数据：数据目录是新的，还没有联系上任何上级来告知它以前写过什么；\
                 联系上之后才能在本节点写入",
                self.me
            ))),
            Some(Some(target)) => Some(WriteError::Restoring(format!(
                "{} 正在从上级恢复本节点以前的事件（已恢复 {} / 共 {target} 条），恢复完成后才能在本节点写入",
                self.me,
                self.cursors.contiguous(self.me)
            ))),
        }
    }

    /// Writes the appends held since the last write ([`HeldAppend`]) in one storage batch, and
    /// leaves each accepted request waiting for the next flush. Each request stays all or none: one
    /// whose body fails its checks is refused alone and takes no seq; the accepted ones get
    /// consecutive seqs in the order they arrived. One storage write (one B-tree commit) for many
    /// concurrent requests instead of one each: the cost of a raise under load.
    pub(super) fn write_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return;
        }
        if let Some(refusal) = self.restoring_refusal() {
            for h in held {
                let _ = h.reply.send(Err(refusal.clone()));
            }
            return;
        }
        let now_us = self.clock.wall_us();
        let wall = self.clock.wall_ms();
        let first = self.cursors.contiguous(self.me) + 1;
        let mut next = first;
        let mut hlc = self.hlc;
        let mut ledger = self.ledger.clone();
        let mut accepted: Vec<(HeldAppend, Vec<StoredEvent>)> = Vec::with_capacity(held.len());
        for mut h in held {
            let items = std::mem::take(&mut h.items);
            let (mut h_hlc, mut h_ledger) = (hlc, ledger.clone());
            match prepare_append(self.me, items, &h.by, next, now_us, wall, &mut h_hlc, &mut h_ledger) {
                Ok(out) => {
                    next += out.len() as u64;
                    hlc = h_hlc;
                    ledger = h_ledger;
                    accepted.push((h, out));
                }
                Err(e) => drop(h.reply.send(Err(e))),
            }
        }
        if next == first {
            // Nothing to write (requests without items): answered after the next flush, as any.
            for (h, out) in accepted {
                self.pending.push(Waiter::Append(h.reply, out));
            }
            return;
        }
        match self.write_appended(&accepted, first, next - 1, now_us, wall, hlc) {
            Ok((ranges, heads)) => {
                self.chains.set(self.me, heads);
                self.written(accepted.iter().flat_map(|(_, out)| out.iter().map(|s| &s.event)));
                self.hlc = hlc;
                self.ledger = ledger;
                self.cursors.set(self.me, ranges);
                self.stats.events_written_local += next - first;
                self.stats.append_writes += 1;
                self.pending_changed.insert(self.me);
                for (h, out) in accepted {
                    self.pending.push(Waiter::Append(h.reply, out));
                }
            }
            Err(e) => {
                for (h, _) in accepted {
                    let _ = h.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// The storage batch of appended events `first..=last` (each request's in `accepted`, in
    /// order) with their indexes, summaries, runs, the new cursor, the HLC and each request's
    /// marks, and their seals (the signed history); written. The cursor and the chain's head it
    /// wrote, or the failure (nothing written).
    fn write_appended(
        &self,
        accepted: &[(HeldAppend, Vec<StoredEvent>)],
        first: u64,
        last: u64,
        now_us: u64,
        wall: u64,
        hlc: protocol::HlcClock,
    ) -> Result<(SeqRanges, Vec<(u64, protocol::seal::ChainHead)>), WriteError> {
        let mut b = WriteBatch::default();
        let mut open = open_alerts::OpenAlerts::new(self.storage.as_ref());
        let written: Vec<&Event> = accepted.iter().flat_map(|(_, out)| out.iter().map(|s| &s.event)).collect();
        for e in &written {
            put_indexes(&mut b, &mut open, now_us, e)?;
        }
        case_summaries::note(self.storage.as_ref(), &mut b, &written).map_err(WriteError::Storage)?;
        rollup::note(self.storage.as_ref(), &mut b, self.me, &written).map_err(WriteError::Storage)?;
        // New seqs lie above everything held: only the size cap splits them.
        for run in written.chunks(RUN_EVENTS_MAX) {
            put_run(&mut b, now_us, run)?;
        }
        let mut ranges = self.cursors.get(self.me).cloned().unwrap_or_default();
        ranges.insert(first - 1, last);
        if cfg!(debug_assertions) {
            let seqs: Vec<u64> = written.iter().map(|e| e.seq).collect();
            self.assert_ok("append", check_append(self.cursors.get(self.me), &seqs, &ranges));
        }
        b.put(Space::Cursors, &self.me.to_key(), encode(&ranges).map_err(|e| corrupt("cursor", e))?);
        b.put(Space::Meta, META_HLC, encode(&hlc.last()).map_err(|e| corrupt("hlc", e))?);
        for (h, out) in accepted {
            if let Some(at) = out.first() {
                for (space, key) in &h.marks {
                    b.put(space.space(), key, mark_value(at.event.seq, wall));
                }
            }
        }
        let heads = self.chains.seal_own(self.me, first - 1, &written, &mut b)?;
        self.storage.write(b)?;
        Ok((ranges, heads))
    }

    /// Holds an append until the appends that arrived with it are written together; the first
    /// held asks for the write ([`StoreMsg::WriteHeld`], queued behind what is already waiting).
    pub(super) fn hold(&mut self, myself: &ActorRef<StoreMsg>, h: HeldAppend) {
        self.held.push(h);
        if self.held.len() == 1 && myself.cast(StoreMsg::WriteHeld).is_err() {
            self.write_held();
        }
    }
}
