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
    b.put(Space::Index, &key_in(HEAD, id), encode(&head(state)).map_err(|e| corrupt("case head", e))?);
    Ok(())
}

/// Every case held, cut to what a listing shows ([`head`]).
pub fn case_heads(storage: &dyn Storage) -> Result<BTreeMap<CaseId, CaseState>, StorageError> {
    let mut out = BTreeMap::new();
    for item in storage.scan_prefix(Space::Index, &[HEAD]) {
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
