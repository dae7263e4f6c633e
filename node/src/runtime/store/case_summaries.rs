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
/// Set once every case of the data dir has a summary.
pub(super) const META_CASE_SUMMARIES: &[u8] = b"case-summaries";

fn key(id: CaseId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(SUMMARY);
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
            b.put(Space::Index, &key(id), encode(&state).map_err(|e| corrupt("case summary", e))?);
        }
    }
    Ok(())
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
        b.put(Space::Index, &key(id), encode(&state).map_err(|e| corrupt("case summary", e))?);
        if b.len() >= 10_000 {
            storage.write(std::mem::take(&mut b))?;
        }
    }
    b.put(Space::Meta, META_CASE_SUMMARIES, vec![1]);
    storage.write(b)
}
