//! The node's side of the health plane (see `protocol::health`): the table it shares with the
//! admin API, how it is persisted, and how a link's status becomes the view a parent reports.
//!
//! The root actor owns the plane: it re-reports itself every `refresh_ms` and whenever an uplink
//! changes, turns each change of a child link into that child's link view, merges what its
//! children send, persists what changed, and sends its uplinks what they have not seen — all
//! at most once per `flush_ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::health::{HealthRow, HealthTable, HealthTiming, LinkView, Phase};
use protocol::wire::{decode, encode};
use topology::NodeId;

use crate::runtime::link::{LinkState, LinkStatus};
use crate::storage::{Space, Storage, StorageError, WriteBatch};

/// Key prefix of persisted health rows in [`Space::Meta`].
const PREFIX: &[u8] = b"health\0";

/// The table, shared by the root actor (which writes it) and the admin API (which reads it),
/// with the timing the states are derived by.
#[derive(Clone, Default)]
pub struct SharedHealth {
    table: Arc<Mutex<HealthTable>>,
    pub timing: HealthTiming,
}

impl SharedHealth {
    pub fn new(table: HealthTable, timing: HealthTiming) -> SharedHealth {
        SharedHealth { table: Arc::new(Mutex::new(table)), timing }
    }

    pub fn lock(&self) -> MutexGuard<'_, HealthTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(row: &HealthRow) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&row.node.to_key());
    k.push(match row.part {
        protocol::health::Part::Report(_) => 0,
        protocol::health::Part::Link(_) => 1,
    });
    k
}

/// Reads the persisted rows back (a row that does not decode is skipped: it is last-value
/// state, and the next report replaces it).
pub fn load(storage: &dyn Storage) -> Result<HealthTable, StorageError> {
    let mut t = HealthTable::new();
    for item in storage.scan_prefix(Space::Meta, PREFIX) {
        let (_, value) = item?;
        if let Ok(row) = decode::<HealthRow>(&value) {
            t.put(row);
        }
    }
    Ok(t)
}

/// The rows changed after change number `after`, as a write for the store actor (the only
/// writer of storage); and the new mark.
pub fn persist(table: &HealthTable, after: u64) -> (WriteBatch, u64) {
    let (rows, upto) = table.delta_since(after, usize::MAX);
    let mut batch = WriteBatch::default();
    for row in &rows {
        if let Ok(v) = encode(row) {
            batch.put(Space::Meta, &key(row), v);
        }
    }
    (batch, upto)
}

/// How a parent reports the link to one child, from the link's status.
pub fn link_view(s: &LinkStatus) -> LinkView {
    let phase = match s.state {
        LinkState::Up => Phase::Up,
        LinkState::Down => Phase::Down,
        LinkState::Connecting if s.ever_up => Phase::Down,
        LinkState::Connecting => Phase::Connecting,
        LinkState::Never if s.ever_up => Phase::Down,
        LinkState::Never => Phase::Never,
    };
    LinkView {
        phase,
        since_ms: s.since_ms,
        heard_ms: s.last_seen_ms,
        reconnects: s.reconnects,
        disconnects: s.disconnects.clone(),
    }
}

/// Whether two views differ in more than when the child was last heard (a keep-alive is not a
/// change worth sending up).
pub fn view_changed(old: &LinkView, new: &LinkView) -> bool {
    old.phase != new.phase
        || old.since_ms != new.since_ms
        || old.reconnects != new.reconnects
        || old.disconnects != new.disconnects
}

/// The plane's bookkeeping in the root actor.
pub struct Plane {
    pub shared: SharedHealth,
    pub timing: HealthTiming,
    pub started_ms: u64,
    /// Unix ms the node's certificate (or the CA's, whichever is sooner) expires.
    pub cert_not_after_ms: Option<u64>,
    /// The own report needs remaking at the next flush.
    pub own_dirty: bool,
    /// Child links whose view may have changed.
    pub children_dirty: BTreeSet<NodeId>,
    pub flush_pending: bool,
    /// Uplinks that are up, with the change number sent to each so far.
    pub uplinks: BTreeMap<NodeId, u64>,
    pub persisted_upto: u64,
    /// Until then, children that were connected before a restart keep their persisted view
    /// (they are expected back within moments).
    pub grace_until_ms: u64,
    pub were_connected: BTreeSet<NodeId>,
}

impl Plane {
    pub fn new(shared: SharedHealth, started_ms: u64, cert_not_after_ms: Option<u64>) -> Plane {
        Plane {
            timing: shared.timing,
            shared,
            started_ms,
            cert_not_after_ms,
            own_dirty: true,
            children_dirty: BTreeSet::new(),
            flush_pending: false,
            uplinks: BTreeMap::new(),
            persisted_upto: 0,
            grace_until_ms: 0,
            were_connected: BTreeSet::new(),
        }
    }

    /// Days left on the certificate at `now_ms`.
    pub fn cert_days_left(&self, now_ms: u64) -> Option<i32> {
        self.cert_not_after_ms.map(|t| ((t as i64 - now_ms as i64).div_euclid(86_400_000)) as i32)
    }
}
