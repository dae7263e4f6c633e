//! In-memory storage with crash semantics: `crash()` forgets every write not yet flushed.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{ScanIter, Space, Storage, StorageError, WriteBatch};
use crate::transport::BoxFuture;

#[derive(Default)]
struct Inner {
    /// What readers see: durable state plus unflushed writes.
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    /// What survives a crash.
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Writes since the last flush, in order.
    unflushed: Vec<(Vec<u8>, Option<Vec<u8>>)>,
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
        g.unflushed.clear();
        g.live = g.durable.clone();
    }

    /// Simulates a wiped disk.
    pub fn wipe(&self) {
        *self.lock() = Inner::default();
    }

    pub fn unflushed_len(&self) -> usize {
        self.lock().unflushed.len()
    }
}

/// A lazy scan: each step takes the lock and reads one item after the last one returned, so a
/// reader that stops early (a point read, a limited fetch) pays only for what it read.
struct MemScan<'a> {
    storage: &'a MemStorage,
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
    prefix: Option<Vec<u8>>,
    /// Descending: each step reads the last item before the previous one.
    rev: bool,
}

impl Iterator for MemScan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let g = self.storage.lock();
        let mut range = g.live.range::<Vec<u8>, _>((self.from.clone(), self.to.clone()));
        let (k, v) = if self.rev { range.next_back()? } else { range.next()? };
        if self.prefix.as_ref().is_some_and(|p| !k.starts_with(p)) {
            return None;
        }
        if self.rev {
            self.to = Bound::Excluded(k.clone());
        } else {
            self.from = Bound::Excluded(k.clone());
        }
        Some(Ok((k[1..].to_vec(), v.clone())))
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
        }
    }
}

impl Storage for MemStorage {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().live.get(&space.key(key)).cloned())
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
        })
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut g = self.lock();
        for (k, v) in batch.ops {
            match &v {
                Some(v) => g.live.insert(k.clone(), v.clone()),
                None => g.live.remove(&k),
            };
            g.unflushed.push((k, v));
        }
        Ok(())
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), StorageError>> {
        let mut g = self.lock();
        let ops = std::mem::take(&mut g.unflushed);
        for (k, v) in ops {
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
}
