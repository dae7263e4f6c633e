//! The node's scheduler. The supervising node's case scheduler: every `case_scan_ms` (and at once when the clock moves),
//! it folds every case the node holds — read beside the store actor ([`Reads`]) — and writes the
//! `MarkOverdue` and `Escalate` steps that [`protocol::case::due`] says are owed, with the rules of
//! the settings in force at this node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use protocol::Body;
use protocol::case::{CaseEvent, CaseRules, due};
use protocol::registry::Settings;
use ractor::ActorRef;
use topology::{NodeId, Tier};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::runtime::reads::Reads;
use crate::runtime::store::{StoreMsg, WriteError};
use crate::runtime::warnings::Engine;

/// How long the scheduler waits for the store's flush.
const CALL_TIMEOUT_MS: u64 = 10_000;

/// The supervising node's scheduler step: marks overdue and escalates what is due at `now_ms`,
/// one storage write for all of it. Returns how many steps it wrote.
pub async fn scan(
    me: NodeId,
    store: &ActorRef<StoreMsg>,
    reads: &Reads,
    clock: &Arc<dyn Clock>,
) -> Result<usize, WriteError> {
    if me.tier() == Tier::School {
        return Ok(0);
    }
    let now = clock.wall_ms();
    let cases = reads.all_cases().await?;
    if cases.is_empty() {
        return Ok(0);
    }
    // The settings in force for a case's school are its county's or the province's: only those
    // units' own registry entries are read (not a province's whole registry), once per county.
    let calendar = reads.calendar_for(me).await?;
    let mut settings: BTreeMap<Option<NodeId>, Settings> = BTreeMap::new();
    let mut items = Vec::new();
    for (id, state) in cases {
        let county = state.school.ancestor_at(Tier::County);
        let in_force = match settings.get(&county) {
            Some(s) => s,
            None => settings.entry(county).or_insert(reads.settings_for(state.school).await?.0),
        };
        let rules = CaseRules { calendar: calendar.clone(), ..CaseRules::from_settings(in_force) };
        for action in due(&state, now, me, &rules) {
            items.push((state.school, Body::Case(CaseEvent { case: id, action })));
        }
    }
    let n = items.len();
    if n > 0 {
        ractor::call_t!(store, |reply| StoreMsg::Append { items, by: None, reply }, CALL_TIMEOUT_MS)
            .map_err(|e| WriteError::Unavailable(e.to_string()))??;
        info!(node = %me, steps = n, "case scheduler: overdue and escalation steps written");
    }
    Ok(n)
}

/// How often a supervising node looks for overdue cases by default.
pub const CASE_SCAN_MS_DEFAULT: u64 = 60_000;

/// Runs [`scan`] and the early-warning engine's pass ([`Engine::pass`]) every `every_ms` of tokio
/// time, and at once when `now` is notified (the clock moved, or a write changed what the rules
/// read). Ends when the store is gone.
/// With `retention_days` (a school), it also drops the events past their retention, at most once
/// an hour ([`compact`]).
pub fn spawn_scheduler(
    engine: Engine,
    every_ms: u64,
    now: Arc<tokio::sync::Notify>,
    retention_days: Option<u32>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let me = engine.me;
        let mut compacted_at: Option<u64> = None;
        loop {
            tokio::select! {
                biased;
                _ = tokio::time::sleep(Duration::from_millis(every_ms.max(10))) => {}
                _ = now.notified() => {}
            }
            let cases = scan(me, &engine.store, &engine.reads, &engine.clock).await;
            let warnings = match &cases {
                Ok(_) => match engine.pass().await {
                    Ok(_) => engine.retain_files().await.map(|_| ()),
                    Err(e) => Err(e),
                },
                Err(_) => Ok(()),
            };
            let warnings = match (warnings, retention_days) {
                (Ok(()), Some(days)) => compact(&engine, days, &mut compacted_at).await.map(|_| ()),
                (w, _) => w,
            };
            if let Err(e) = cases.map(|_| ()).and(warnings) {
                if engine.store.get_status() != ractor::ActorStatus::Running {
                    break;
                }
                warn!(node = %me, error = %e, "scheduler: a pass failed");
            }
        }
    })
}

/// How often a school looks for events past their retention (ms of its clock).
const COMPACT_EVERY_MS: u64 = 3_600_000;

/// Drops the school's events past `days` of retention (those an ancestor holds: see
/// [`crate::runtime::store::compact`]), at most every [`COMPACT_EVERY_MS`] (and again at once
/// when the clock went back); returns how many.
pub async fn compact(engine: &Engine, days: u32, last_at: &mut Option<u64>) -> Result<u64, WriteError> {
    let now = engine.clock.wall_ms();
    if last_at.is_some_and(|at| at <= now && now - at < COMPACT_EVERY_MS) {
        return Ok(0);
    }
    *last_at = Some(now);
    let cutoff_ms = now.saturating_sub(u64::from(days) * 86_400_000);
    ractor::call_t!(engine.store, |reply| StoreMsg::Compact { cutoff_ms, reply }, CALL_TIMEOUT_MS)
        .map_err(|e| WriteError::Unavailable(e.to_string()))?
}
