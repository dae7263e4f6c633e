//! Every case's folded state, kept in [`Space::Index`] as its steps are stored: a listing of a
//! province's month of cases decodes one value per case instead of folding every step again.
//!
//! The store recomputes a case's summary in the same batch as the steps that change it, from the
//! steps it held before and those of the batch (the fold sorts and deduplicates them), so a summary
//! is never behind its steps, whatever order they arrive in. A step whose case has not been opened
//! here yet writes no summary; the `Open`, when it comes, folds them all.

use std::collections::BTreeMap;

use protocol::case::{CaseId, CaseInput, CaseState, fold, fold_all};
use protocol::wire::{decode, encode};
use protocol::{Body, Event, EventKind};

use super::read::{case_inputs, related};
use super::{StoredEvent, corrupt, event_key};
use crate::storage::{Space, Storage, StorageError, WriteBatch};

const SUMMARY: u8 = 0xD0;
/// The same, cut to what a listing shows (see [`head`]).
const HEAD: u8 = 0xD1;
/// The heads of the cases not closed or cancelled only (what a supervisor's lists start from).
const OPEN_HEAD: u8 = 0xD2;
/// Set once every case of the data dir has a summary.
pub(super) const META_CASE_SUMMARIES: &[u8] = b"case-summaries";

fn key(id: CaseId) -> Vec<u8> {
    key_in(SUMMARY, id)
}

fn key_in(prefix: u8, id: CaseId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(prefix);
    k.extend_from_slice(&event_key(id.opened_by, id.seq));
    k
}

/// Puts into `b` the summary of every case a step of `fresh` belongs to.
pub(super) fn note(storage: &dyn Storage, b: &mut WriteBatch, fresh: &[&Event]) -> Result<(), StorageError> {
    let mut touched: BTreeMap<CaseId, Vec<CaseInput>> = BTreeMap::new();
    for e in fresh {
        if let Body::Case(c) = &e.body {
            let stored = StoredEvent { received_at_us: 0, event: (*e).clone() };
            touched.entry(c.case).or_default().extend(case_inputs(std::slice::from_ref(&stored)));
        }
    }
    for (id, mut inputs) in touched {
        inputs.extend(case_inputs(&related(storage, EventKind::Case, Some(id.event_id()))?));
        if let Some(state) = fold(id, &inputs) {
            put(b, id, &state)?;
        }
    }
    Ok(())
}

/// A case cut to what a listing shows: no detail, no evidence, and of its history only the
/// refused steps (counted in listings), without their text.
pub fn head(state: &CaseState) -> CaseState {
    let mut h = state.clone();
    h.detail.clear();
    h.evidence.clear();
    h.history.retain(|s| matches!(s.outcome, protocol::case::StepOutcome::Refused(_)));
    for s in &mut h.history {
        s.text.clear();
    }
    h
}

fn put(b: &mut WriteBatch, id: CaseId, state: &CaseState) -> Result<(), StorageError> {
    b.put(Space::Index, &key(id), encode(state).map_err(|e| corrupt("case summary", e))?);
    let h = encode(&head(state)).map_err(|e| corrupt("case head", e))?;
    if state.status.is_terminal() {
        b.delete(Space::Index, &key_in(OPEN_HEAD, id));
    } else {
        b.put(Space::Index, &key_in(OPEN_HEAD, id), h.clone());
    }
    b.put(Space::Index, &key_in(HEAD, id), h);
    Ok(())
}

/// Every case held — or only those not closed or cancelled — cut to what a listing shows
/// ([`head`]).
pub fn case_heads(storage: &dyn Storage, open_only: bool) -> Result<BTreeMap<CaseId, CaseState>, StorageError> {
    let mut out = BTreeMap::new();
    for item in storage.scan_prefix(Space::Index, &[if open_only { OPEN_HEAD } else { HEAD }]) {
        let (_, v) = item?;
        let state: CaseState = decode(&v).map_err(|e| corrupt("case head", e))?;
        out.insert(state.id, state);
    }
    Ok(out)
}

/// Every case held, from the summaries.
pub fn all_cases(storage: &dyn Storage) -> Result<BTreeMap<CaseId, CaseState>, StorageError> {
    let mut out = BTreeMap::new();
    for item in storage.scan_prefix(Space::Index, &[SUMMARY]) {
        let (_, v) = item?;
        let state: CaseState = decode(&v).map_err(|e| corrupt("case summary", e))?;
        out.insert(state.id, state);
    }
    Ok(out)
}

/// One case, from its summary.
pub fn case(storage: &dyn Storage, id: CaseId) -> Result<Option<CaseState>, StorageError> {
    match storage.get(Space::Index, &key(id))? {
        Some(v) => Ok(Some(decode(&v).map_err(|e| corrupt("case summary", e))?)),
        None => Ok(None),
    }
}

/// Gives every case its summary, once per data dir (a data dir written before summaries existed).
pub(super) fn build(storage: &dyn Storage) -> Result<(), StorageError> {
    if storage.get(Space::Meta, META_CASE_SUMMARIES)?.is_some() {
        return Ok(());
    }
    let mut b = WriteBatch::default();
    let all = fold_all(&case_inputs(&related(storage, EventKind::Case, None)?));
    for (id, state) in all {
        put(&mut b, id, &state)?;
        if b.len() >= 10_000 {
            storage.write(std::mem::take(&mut b))?;
        }
    }
    b.put(Space::Meta, META_CASE_SUMMARIES, vec![1]);
    storage.write(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;
    use protocol::case::{CaseAction, CaseEvent, CaseSource, CaseStatus};
    use protocol::{Hlc, Severity};
    use topology::NodeId;

    fn step(origin: NodeId, seq: u64, at: u64, school: NodeId, case: CaseId, action: CaseAction) -> Event {
        let body = Body::Case(CaseEvent { case, action });
        Event { by: None, origin, seq, hlc: Hlc { wall_ms: at, logical: 0 }, scope: school, body }
    }

    /// Stores one batch as the store does: the summaries noted, the events indexed.
    fn store(st: &MemStorage, events: &[Event]) {
        let mut b = WriteBatch::default();
        let refs: Vec<&Event> = events.iter().collect();
        note(st, &mut b, &refs).unwrap();
        for e in events {
            super::super::put_run(&mut b, 1, &[e]).unwrap();
            if let Some(k) = super::super::index_key(e) {
                b.put(Space::Index, &k, Vec::new());
            }
        }
        st.write(b).unwrap();
    }

    #[test]
    fn summaries_follow_the_steps_whatever_order_they_arrive_in() {
        let county: NodeId = "130102".parse().unwrap();
        let school = NodeId::school(county, 1).unwrap();
        let case = CaseId { opened_by: county, seq: 1 };
        let open = CaseAction::Open {
            school,
            severity: Severity::General,
            source: CaseSource::OnSite,
            title: "地面积水".into(),
            detail: "详细情况".into(),
            number: 1,
        };
        let notice = CaseAction::IssueNotice { deadline_ms: 10_000_000, text: "请整改".into() };
        let st = MemStorage::new();
        // The school's acknowledgement comes before the case it answers: no summary yet.
        store(&st, &[step(school, 1, 3_000, school, case, CaseAction::Acknowledge)]);
        assert!(all_cases(&st).unwrap().is_empty());
        // The opening and the notice fold the early step in.
        store(&st, &[step(county, 1, 1_000, school, case, open), step(county, 2, 2_000, school, case, notice)]);
        let full = super::case(&st, case).unwrap().expect("summarised");
        assert_eq!((full.status, full.history.len()), (CaseStatus::Rectifying, 3));
        let heads = case_heads(&st, true).unwrap();
        assert_eq!(heads.len(), 1);
        assert!(heads[&case].history.is_empty() && heads[&case].detail.is_empty(), "a head carries no history");
        // A second case, cancelled before the school answered: out of the open heads, still
        // among all, its summary complete; the first stays open.
        let second = CaseId { opened_by: county, seq: 3 };
        let open2 = CaseAction::Open {
            school,
            severity: Severity::Serious,
            source: CaseSource::Complaint,
            title: "投诉".into(),
            detail: String::new(),
            number: 2,
        };
        let cancel = CaseAction::Cancel { reason: "误判".into() };
        store(&st, &[step(county, 3, 5_000, school, second, open2), step(county, 4, 6_000, school, second, cancel)]);
        assert_eq!(case_heads(&st, true).unwrap().keys().copied().collect::<Vec<_>>(), [case]);
        assert_eq!(case_heads(&st, false).unwrap()[&second].status, CaseStatus::Cancelled);
        assert_eq!(all_cases(&st).unwrap()[&second].history.len(), 2);
        assert_eq!(full_status(&st, second), CaseStatus::Cancelled);
    }

    fn full_status(st: &MemStorage, case: CaseId) -> CaseStatus {
        super::case(st, case).unwrap().map(|c| c.status).unwrap_or(CaseStatus::Open)
    }
}
