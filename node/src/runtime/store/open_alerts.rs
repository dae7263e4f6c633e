//! The index of alerts still waiting for a verdict (待处理), kept in [`Space::Index`] as events are
//! stored, so the console's queue and home page list them without folding a month of alerts.
//!
//! Three kinds of key (prefixes no event-kind code uses):
//! - `OPEN_BY_TIME + hlc + alert id`: the open alerts in time order (listing newest first);
//! - `OPEN_BY_ID + alert id → hlc`: to find the first key from a verdict, which names only the id;
//! - `DECIDED + alert id`: a verdict that arrived before its alert (events of different origins
//!   come in any order), so the alert is not indexed as open when it does arrive.
//!
//! A repeat does not close an alert; a confirmation, a dismissal or an overturn does.

use std::collections::HashMap;

use protocol::alert::{AlertAction, AlertUpdate};
use protocol::{Body, Event, EventId, Hlc};
use topology::NodeId;

use super::{event_key, time_key, time_key_id};
use crate::storage::{Space, Storage, StorageError, WriteBatch};

const OPEN_BY_TIME: u8 = 0xF0;
const OPEN_BY_ID: u8 = 0xF1;
const DECIDED: u8 = 0xF2;
/// A school's dismissal of its own alert, by the dismissal's time (what its county reviews).
const SELF_DISMISSED_BY_TIME: u8 = 0xF3;
/// The same, by alert id → the dismissal's HLC (to remove it when a supervisor overturns it).
const SELF_DISMISSED_BY_ID: u8 = 0xF4;

fn by_time(hlc: Hlc, id: EventId) -> Vec<u8> {
    time_key(OPEN_BY_TIME, hlc, id)
}

fn by_id(prefix: u8, id: EventId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(prefix);
    k.extend_from_slice(&event_key(id.origin, id.seq));
    k
}

fn encode_hlc(h: Hlc) -> Vec<u8> {
    let mut v = h.wall_ms.to_be_bytes().to_vec();
    v.extend_from_slice(&h.logical.to_be_bytes());
    v
}

fn decode_hlc(v: &[u8]) -> Option<Hlc> {
    Some(Hlc {
        wall_ms: u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
        logical: u32::from_be_bytes(v.get(8..12)?.try_into().ok()?),
    })
}

/// Keeps the index while one batch is written: reads go to storage, except for keys this batch
/// already set or deleted (an alert and its verdict may come in the same batch).
pub(super) struct OpenAlerts<'a> {
    storage: &'a dyn Storage,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> OpenAlerts<'a> {
    pub(super) fn new(storage: &'a dyn Storage) -> Self {
        OpenAlerts { storage, overlay: HashMap::new() }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.storage.get(Space::Index, key),
        }
    }

    fn put(&mut self, b: &mut WriteBatch, key: Vec<u8>, value: Vec<u8>) {
        b.put(Space::Index, &key, value.clone());
        self.overlay.insert(key, Some(value));
    }

    fn delete(&mut self, b: &mut WriteBatch, key: Vec<u8>) {
        b.delete(Space::Index, &key);
        self.overlay.insert(key, None);
    }

    /// Notes a fresh event (in the order the batch stores them).
    pub(super) fn note(&mut self, b: &mut WriteBatch, e: &Event) -> Result<(), StorageError> {
        match &e.body {
            Body::Alert(_) => {
                let id = e.id();
                let decided = by_id(DECIDED, id);
                if self.get(&decided)?.is_some() {
                    self.delete(b, decided);
                } else {
                    self.put(b, by_time(e.hlc, id), Vec::new());
                    self.put(b, by_id(OPEN_BY_ID, id), encode_hlc(e.hlc));
                }
            }
            Body::AlertUpdate(AlertUpdate { alert, action: AlertAction::Dismiss { .. } })
                if e.origin == alert.origin =>
            {
                self.close(b, *alert)?;
                self.put(b, time_key(SELF_DISMISSED_BY_TIME, e.hlc, *alert), Vec::new());
                self.put(b, by_id(SELF_DISMISSED_BY_ID, *alert), encode_hlc(e.hlc));
            }
            Body::AlertUpdate(AlertUpdate { alert, action: AlertAction::Overturn { .. } }) => {
                self.close(b, *alert)?;
                let key = by_id(SELF_DISMISSED_BY_ID, *alert);
                if let Some(hlc) = self.get(&key)?.as_deref().and_then(decode_hlc) {
                    self.delete(b, key);
                    self.delete(b, time_key(SELF_DISMISSED_BY_TIME, hlc, *alert));
                }
            }
            Body::AlertUpdate(AlertUpdate { alert, action })
                if !matches!(action, AlertAction::Repeat { .. } | AlertAction::Escalate { .. }) =>
            {
                self.close(b, *alert)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A verdict on `alert`: it is no longer open (or, not held yet, it arrives decided).
    fn close(&mut self, b: &mut WriteBatch, alert: EventId) -> Result<(), StorageError> {
        let open = by_id(OPEN_BY_ID, alert);
        if let Some(hlc) = self.get(&open)?.as_deref().and_then(decode_hlc) {
            self.delete(b, open);
            self.delete(b, by_time(hlc, alert));
        } else if !alert_held(self.storage, alert)? {
            self.put(b, by_id(DECIDED, alert), Vec::new());
        }
        Ok(())
    }
}

/// Removes every index entry about `alert` (retention dropped it and its updates): open, decided
/// ahead of it, dismissed by its own school.
pub(super) fn forget(storage: &dyn Storage, b: &mut WriteBatch, alert: EventId) -> Result<(), StorageError> {
    for (by, prefix) in [(OPEN_BY_ID, OPEN_BY_TIME), (SELF_DISMISSED_BY_ID, SELF_DISMISSED_BY_TIME)] {
        let key = by_id(by, alert);
        if let Some(hlc) = storage.get(Space::Index, &key)?.as_deref().and_then(decode_hlc) {
            b.delete(Space::Index, &key);
            b.delete(Space::Index, &time_key(prefix, hlc, alert));
        }
    }
    b.delete(Space::Index, &by_id(DECIDED, alert));
    Ok(())
}

/// Whether storage already holds the event `id` (an alert decided before, not one still to come).
fn alert_held(storage: &dyn Storage, id: EventId) -> Result<bool, StorageError> {
    Ok(super::read::read_event(storage, id)?.is_some())
}

/// The alerts under `under` that their own school dismissed (误报) and no supervisor overturned,
/// newest dismissal first, at most `limit`: their ids.
pub fn self_dismissed(
    storage: &dyn Storage,
    under: Option<NodeId>,
    limit: usize,
) -> Result<Vec<EventId>, StorageError> {
    scan_ids(storage, SELF_DISMISSED_BY_TIME, u64::MAX, under, limit)
}

/// The open alerts under `under` (all held, if `None`) raised at or before `raised_before_ms`,
/// newest first, at most `limit`: their ids.
pub fn open_alerts(
    storage: &dyn Storage,
    under: Option<NodeId>,
    raised_before_ms: u64,
    limit: usize,
) -> Result<Vec<EventId>, StorageError> {
    scan_ids(storage, OPEN_BY_TIME, raised_before_ms, under, limit)
}

/// The ids in a by-time index, newest first, at or before `before_ms`, under `under`.
fn scan_ids(
    storage: &dyn Storage,
    prefix: u8,
    before_ms: u64,
    under: Option<NodeId>,
    limit: usize,
) -> Result<Vec<EventId>, StorageError> {
    let mut to = vec![prefix];
    to.extend_from_slice(&before_ms.to_be_bytes());
    to.extend_from_slice(&[0xff; 20]);
    let mut out = Vec::new();
    for item in storage.scan_rev(Space::Index, &[prefix], &to) {
        if out.len() >= limit {
            break;
        }
        let (k, _) = item?;
        let Some(id) = time_key_id(&k) else { continue };
        if under.is_none_or(|u| u.is_ancestor_or_self_of(id.origin)) {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;
    use protocol::{AlertRaised, AlertType, Zone};

    fn alert(school: NodeId, seq: u64, at: u64) -> Event {
        let body = Body::Alert(AlertRaised {
            camera: "cam-01".into(),
            canteen: "main".into(),
            zone: Zone::Cooking,
            alert_type: AlertType::Rodent,
            severity: AlertType::Rodent.default_severity(Zone::Cooking),
            detected_at_ms: at,
            confidence_permille: 900,
            snapshot: String::new(),
            repeat_count: 1,
        });
        Event { by: None, origin: school, seq, hlc: Hlc { wall_ms: at, logical: 0 }, scope: school, body }
    }

    fn update(by: NodeId, seq: u64, school: NodeId, alert_seq: u64, action: AlertAction) -> Event {
        let body = Body::AlertUpdate(AlertUpdate { alert: EventId { origin: school, seq: alert_seq }, action });
        Event { by: None, origin: by, seq, hlc: Hlc { wall_ms: 10_000 + seq, logical: 0 }, scope: school, body }
    }

    /// Stores one batch as the store does: the index noted per event, the events in runs.
    fn store(storage: &MemStorage, events: &[Event]) {
        let mut b = WriteBatch::default();
        let mut open = OpenAlerts::new(storage);
        for e in events {
            open.note(&mut b, e).unwrap();
            super::super::put_run(&mut b, 1, &[e]).unwrap();
        }
        storage.write(b).unwrap();
    }

    #[test]
    fn an_alert_is_open_until_a_verdict_whatever_order_they_come_in() {
        let county: NodeId = "130102".parse().unwrap();
        let school = NodeId::school(county, 1).unwrap();
        let other = NodeId::school("130103".parse().unwrap(), 1).unwrap();
        let dismiss = || AlertAction::Dismiss { reason: "影子".into() };
        let st = MemStorage::new();
        // 1: alert, then its verdict. 2: the verdict first. 3: both in one batch. 4: only a repeat.
        store(&st, &[alert(school, 1, 100)]);
        store(&st, &[update(county, 1, school, 1, dismiss())]);
        store(&st, &[update(county, 2, school, 2, AlertAction::Confirm { note: String::new(), case: None })]);
        store(&st, &[alert(school, 2, 200)]);
        store(&st, &[alert(school, 3, 300), update(county, 3, school, 3, dismiss())]);
        store(&st, &[alert(school, 4, 400), update(school, 5, school, 4, AlertAction::Repeat { detected_at_ms: 450 })]);
        store(&st, &[alert(other, 1, 500)]);
        let ids = |under, before| open_alerts(&st, under, before, 10).unwrap();
        assert_eq!(ids(None, u64::MAX), [EventId { origin: other, seq: 1 }, EventId { origin: school, seq: 4 }]);
        assert_eq!(ids(Some(county), u64::MAX), [EventId { origin: school, seq: 4 }]);
        assert_eq!(ids(None, 450), [EventId { origin: school, seq: 4 }], "raised at or before 450");
        assert!(ids(None, 399).is_empty());
        // The early verdict's marker went when its alert came; a second verdict on a decided
        // alert leaves none behind.
        store(&st, &[update(county, 4, school, 1, dismiss())]);
        let markers = st.scan_prefix(Space::Index, &[DECIDED]).count();
        assert_eq!(markers, 0);
        // An overturn of a closed alert does not reopen it.
        store(&st, &[update(county, 5, school, 3, AlertAction::Overturn { reason: "老鼠".into() })]);
        assert_eq!(ids(Some(county), u64::MAX).len(), 1);
        // The school's own dismissals are listed for its county, until one is overturned.
        store(&st, &[update(school, 6, school, 4, dismiss())]);
        store(&st, &[alert(school, 7, 600), update(school, 8, school, 7, dismiss())]);
        let mine = |st: &MemStorage| self_dismissed(st, Some(county), 10).unwrap();
        let (four, seven) = (EventId { origin: school, seq: 4 }, EventId { origin: school, seq: 7 });
        assert_eq!(mine(&st), [seven, four], "newest dismissal first; the county's own dismissals are not listed");
        assert!(ids(Some(county), u64::MAX).is_empty(), "both are closed");
        store(&st, &[update(county, 6, school, 4, AlertAction::Overturn { reason: "老鼠".into() })]);
        assert_eq!(mine(&st), [seven]);
    }
}
