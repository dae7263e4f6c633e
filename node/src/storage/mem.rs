//! In-memory storage with crash semantics: `crash()` forgets every write not yet flushed.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{ScanIter, Space, Storage, StorageError, WriteBatch};
use crate::transport::BoxFuture;

#[derive(Default)]
struct Inner {
    /// What survives a crash: everything flushed.
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Writes since the last flush, by key: the value, or `None` for a delete. Readers see them
    /// over `durable`; a flush moves them into it; a crash drops them. (One copy of the data:
    /// a node's group commit flushes after every write, so this stays small.)
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Changes to what readers see: writes, crashes, wipes ([`Storage::version`]).
    version: u64,
}

/// A cloneable handle; clones share the same data (a "disk" that outlives a crashed node).
#[derive(Clone, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<Inner>>,
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-test; the maps are still whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulates a power cut: unflushed writes are lost.
    pub fn crash(&self) {
        let mut g = self.lock();
        g.pending.clear();
        g.version += 1;
    }

    /// Simulates a wiped disk.
    pub fn wipe(&self) {
        let mut g = self.lock();
        let version = g.version + 1;
        *g = Inner { version, ..Inner::default() };
    }

    /// Keys held durably and their bytes (keys and values, as stored: the in-memory store's size,
    /// before any on-disk store's own overhead).
    pub fn durable_size(&self) -> (u64, u64) {
        let g = self.lock();
        (g.durable.len() as u64, g.durable.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum())
    }

    /// Keys written (or deleted) since the last flush.
    pub fn unflushed_len(&self) -> usize {
        self.lock().pending.len()
    }
}

/// A lazy scan: each step takes the lock and reads the next few items after the last one
/// returned ([`SCAN_STEP`]), so a reader that stops early (a point read, a limited fetch) pays
/// for little more than it read, and a short scan takes the lock once.
struct MemScan<'a> {
    storage: &'a MemStorage,
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
    prefix: Option<Vec<u8>>,
    /// Descending: each step reads the items before the previous one.
    rev: bool,
    /// Items read and not yet returned, in scan order.
    ahead: std::collections::VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

/// Items a scan reads per step.
const SCAN_STEP: usize = 16;

type Items<'a, V> = Box<dyn Iterator<Item = (&'a Vec<u8>, V)> + 'a>;

impl MemScan<'_> {
    fn fill(&mut self) {
        let g = self.storage.lock();
        let bounds = (self.from.clone(), self.to.clone());
        let (durable, pending) = (g.durable.range::<Vec<u8>, _>(bounds.clone()), g.pending.range::<Vec<u8>, _>(bounds));
        let (mut durable, mut pending): (Items<'_, &Vec<u8>>, Items<'_, &Option<Vec<u8>>>) = if self.rev {
            (Box::new(durable.rev()), Box::new(pending.rev()))
        } else {
            (Box::new(durable), Box::new(pending))
        };
        let (mut d, mut p) = (durable.next(), pending.next());
        // Merges the two in scan order; a pending write shadows the durable value of its key.
        let before = |a: &Vec<u8>, b: &Vec<u8>| if self.rev { a > b } else { a < b };
        while self.ahead.len() < SCAN_STEP {
            let (k, v) = match (d, p) {
                (None, None) => break,
                (Some((dk, dv)), Some((pk, _))) if before(dk, pk) => {
                    d = durable.next();
                    (dk, Some(dv))
                }
                (Some((dk, _)), Some((pk, pv))) => {
                    if dk == pk {
                        d = durable.next();
                    }
                    p = pending.next();
                    (pk, pv.as_ref())
                }
                (Some((dk, dv)), None) => {
                    d = durable.next();
                    (dk, Some(dv))
                }
                (None, Some((pk, pv))) => {
                    p = pending.next();
                    (pk, pv.as_ref())
                }
            };
            if self.prefix.as_ref().is_some_and(|pre| !k.starts_with(pre)) {
                self.done = true;
                return;
            }
            if self.rev {
                self.to = Bound::Excluded(k.clone());
            } else {
                self.from = Bound::Excluded(k.clone());
            }
            if let Some(v) = v {
                self.ahead.push_back((k[1..].to_vec(), v.clone()));
            }
        }
        if d.is_none() && p.is_none() {
            self.done = true;
        }
    }
}

impl Iterator for MemScan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.ahead.is_empty() && !self.done {
            self.fill();
        }
        self.ahead.pop_front().map(Ok)
    }
}

impl MemStorage {
    /// A lazy scan of `space` from `from` to `to` (both included), descending if `rev`.
    fn range(&self, space: Space, from: &[u8], to: &[u8], rev: bool) -> MemScan<'_> {
        MemScan {
            storage: self,
            from: Bound::Included(space.key(from)),
            to: Bound::Included(space.key(to)),
            prefix: None,
            rev,
            ahead: Default::default(),
            done: false,
        }
    }
}

impl Storage for MemStorage {
    fn version(&self) -> u64 {
        self.lock().version
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let g = self.lock();
        let key = space.key(key);
        Ok(match g.pending.get(&key) {
            Some(v) => v.clone(),
            None => g.durable.get(&key).cloned(),
        })
    }

    fn scan(&self, space: Space, from: &[u8], to: &[u8]) -> ScanIter<'_> {
        Box::new(self.range(space, from, to, false))
    }

    fn scan_rev(&self, space: Space, from: &[u8], to: &[u8]) -> ScanIter<'_> {
        Box::new(self.range(space, from, to, true))
    }

    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> ScanIter<'_> {
        let start = space.key(prefix);
        Box::new(MemScan {
            storage: self,
            from: Bound::Included(start.clone()),
            to: Bound::Unbounded,
            prefix: Some(start),
            rev: false,
            ahead: Default::default(),
            done: false,
        })
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut g = self.lock();
        for (k, v) in batch.ops {
            g.pending.insert(k, v);
        }
        g.version += 1;
        Ok(())
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), StorageError>> {
        let mut g = self.lock();
        for (k, v) in std::mem::take(&mut g.pending) {
            match v {
                Some(v) => g.durable.insert(k, v),
                None => g.durable.remove(&k),
            };
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loses_only_unflushed_writes() {
        let s = MemStorage::new();
        s.put(Space::Events, b"a", b"1".to_vec()).unwrap();
        drop(s.flush());
        s.put(Space::Events, b"b", b"2".to_vec()).unwrap();
        assert_eq!(s.scan_prefix(Space::Events, b"").count(), 2);
        s.crash();
        let keys: Vec<_> = s.scan_prefix(Space::Events, b"").map(|r| r.unwrap().0).collect();
        assert_eq!(keys, vec![b"a".to_vec()]);
        assert_eq!(s.get(Space::Meta, b"a").unwrap(), None, "spaces are separate");
    }

    /// Reads see unflushed writes and deletes over the flushed data, in both scan directions and
    /// across scan steps; a crash brings back exactly the flushed data.
    #[test]
    fn unflushed_writes_shadow_flushed_ones_in_every_read() {
        let s = MemStorage::new();
        let key = |i: u32| format!("k{i:03}").into_bytes();
        for i in 0..40 {
            s.put(Space::Events, &key(i), vec![1]).unwrap();
        }
        drop(s.flush());
        let mut b = WriteBatch::default();
        for i in (0..40).step_by(3) {
            b.delete(Space::Events, &key(i));
        }
        for i in (1..45).step_by(4) {
            b.put(Space::Events, &key(i), vec![2]);
        }
        s.write(b).unwrap();
        let expect: Vec<(Vec<u8>, Vec<u8>)> = (0..45)
            .filter_map(|i| match (i % 4 == 1, i % 3 == 0 || i >= 40) {
                (true, _) => Some((key(i), vec![2])),
                (false, false) => Some((key(i), vec![1])),
                (false, true) => None,
            })
            .collect();
        let all = |st: &MemStorage| st.scan_prefix(Space::Events, b"").map(|r| r.unwrap()).collect::<Vec<_>>();
        assert_eq!(all(&s), expect);
        let mut rev: Vec<_> = s.scan_rev(Space::Events, &key(0), &key(99)).map(|r| r.unwrap()).collect();
        rev.reverse();
        assert_eq!(rev, expect);
        let some: Vec<_> = s.scan(Space::Events, &key(10), &key(20)).map(|r| r.unwrap().0).collect();
        assert_eq!(
            some,
            expect.iter().map(|(k, _)| k.clone()).filter(|k| *k >= key(10) && *k <= key(20)).collect::<Vec<_>>()
        );
        assert_eq!(s.get(Space::Events, &key(3)).unwrap(), None);
        assert_eq!(s.get(Space::Events, &key(5)).unwrap(), Some(vec![2]));
        assert_eq!(s.get(Space::Events, &key(4)).unwrap(), Some(vec![1]));
        assert!(s.unflushed_len() > 0);
        s.crash();
        assert_eq!(all(&s).len(), 40);
        assert!(all(&s).iter().all(|(_, v)| *v == vec![1]));
    }
}
