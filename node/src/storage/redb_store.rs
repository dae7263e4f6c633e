//! redb behind the Storage seam: one table of byte keys and values in one file (`store.redb` in
//! the data directory), keyspaces as key prefixes so a batch is atomic across them.
//!
//! Each [`Storage::write`] is a redb transaction committed without durability (visible to readers
//! at once, lost in a crash); [`Storage::flush`] commits an empty transaction with immediate
//! durability, which makes every earlier commit durable (redb's documented contract for
//! `Durability::None`). A large store's durable commits also save the allocator's state, so a
//! restart after a crash is immediate ([`QUICK_REPAIR_FROM_BYTES`]). redb has no background
//! threads; its page cache is bounded by [`REDB_CACHE_BYTES`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Durability, ReadableDatabase, TableDefinition};

use super::{OpenTry, ScanIter, Space, Storage, StorageError, WriteBatch, open_retrying_while_held};
use crate::transport::BoxFuture;

/// The one table: stored key (space tag + key) → value.
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// The file in the data directory.
pub const REDB_FILE: &str = "store.redb";

/// redb's page cache per node (its default is 1 GiB).
pub const REDB_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// From this file size on, each durable commit also saves redb's allocator state ("quick
/// repair"), so a store opened after its process was killed loads it instead of walking the whole
/// file to rebuild it. Measured (docs/BENCHMARKS.md): the walk takes 13–26 s per GiB, and saving
/// the state adds 0.3 ms to a flush at 1.5 GiB, ~2 ms at 4–16 GiB, 5–6 ms at 32 GiB; below this
/// size the walk takes a few seconds at most and flushes stay as cheap as they can be.
pub const QUICK_REPAIR_FROM_BYTES: u64 = 256 * 1024 * 1024;

fn err(e: impl Into<redb::Error>) -> StorageError {
    match e.into() {
        redb::Error::Corrupted(m) => StorageError::Corrupt(m),
        other => StorageError::Io(other.to_string()),
    }
}

#[derive(Clone)]
pub struct RedbStorage {
    db: Arc<redb::Database>,
    dir: PathBuf,
    /// Writes taken since opened ([`Storage::version`]).
    version: Arc<AtomicU64>,
}

impl RedbStorage {
    /// Opens (or creates) the store in `dir`. A directory held by another process (a node still
    /// running, or one still exiting) is retried for up to [`super::LOCKED_WAIT_MS`], then reported.
    pub fn open(dir: &Path) -> Result<RedbStorage, StorageError> {
        let path = dir.join(REDB_FILE);
        let db = open_retrying_while_held(dir, || {
            match redb::Builder::new().set_cache_size(REDB_CACHE_BYTES).create(&path) {
                Ok(db) => OpenTry::Opened(db),
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => OpenTry::Held(String::new()),
                Err(e) => OpenTry::Failed(StorageError::Io(format!("{}: {e}", path.display()))),
            }
        })?;
        // The table exists from the first open on, so reads never meet a missing table.
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TABLE).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(RedbStorage { db: Arc::new(db), dir: dir.to_path_buf(), version: Default::default() })
    }

    fn range(&self, from: Vec<u8>, to: Vec<u8>, rev: bool) -> ScanIter<'_> {
        let table = match self.db.begin_read().map_err(err).and_then(|t| t.open_table(TABLE).map_err(err)) {
            Ok(t) => t,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let range = match table.range::<&[u8]>(from.as_slice()..=to.as_slice()) {
            Ok(r) => r,
            Err(e) => return Box::new(std::iter::once(Err(err(e)))),
        };
        let pairs = range.map(|r| r.map(|(k, v)| (k.value()[1..].to_vec(), v.value().to_vec())).map_err(err));
        if rev { Box::new(pairs.rev()) } else { Box::new(pairs) }
    }
}

impl Storage for RedbStorage {
    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn disk_bytes(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(self.dir.join(REDB_FILE)).ok().map(|m| m.blocks() * 512)
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let table = self.db.begin_read().map_err(err)?.open_table(TABLE).map_err(err)?;
        Ok(table.get(space.key(key).as_slice()).map_err(err)?.map(|v| v.value().to_vec()))
    }

    fn scan(&self, space: Space, from: &[u8], to: &[u8]) -> ScanIter<'_> {
        self.range(space.key(from), space.key(to), false)
    }

    fn scan_rev(&self, space: Space, from: &[u8], to: &[u8]) -> ScanIter<'_> {
        self.range(space.key(from), space.key(to), true)
    }

    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> ScanIter<'_> {
        let from = space.key(prefix);
        let table = match self.db.begin_read().map_err(err).and_then(|t| t.open_table(TABLE).map_err(err)) {
            Ok(t) => t,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let range = match table.range::<&[u8]>(from.as_slice()..) {
            Ok(r) => r,
            Err(e) => return Box::new(std::iter::once(Err(err(e)))),
        };
        // From the prefix on, while keys still start with it (an error ends the scan after it).
        let pairs = range
            .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.value().starts_with(&from)))
            .map(|r| r.map(|(k, v)| (k.value()[1..].to_vec(), v.value().to_vec())).map_err(err));
        Box::new(pairs)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(Durability::None).map_err(|e| StorageError::Io(e.to_string()))?;
        {
            let mut table = txn.open_table(TABLE).map_err(err)?;
            for (k, v) in &batch.ops {
                match v {
                    Some(v) => {
                        table.insert(k.as_slice(), v.as_slice()).map_err(err)?;
                    }
                    None => {
                        table.remove(k.as_slice()).map_err(err)?;
                    }
                }
            }
        }
        txn.commit().map_err(err)?;
        // After the commit is visible: a reader that saw this number read at least this much.
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), StorageError>> {
        let db = self.db.clone();
        let quick = self.disk_bytes().unwrap_or(0) >= QUICK_REPAIR_FROM_BYTES;
        Box::pin(async move {
            let durable = move || -> Result<(), StorageError> {
                let mut txn = db.begin_write().map_err(err)?;
                txn.set_durability(Durability::Immediate).map_err(|e| StorageError::Io(e.to_string()))?;
                txn.set_quick_repair(quick);
                txn.commit().map_err(err)
            };
            match tokio::task::spawn_blocking(durable).await {
                Ok(r) => r,
                Err(e) => Err(StorageError::Io(format!("flush task failed: {e}"))),
            }
        })
    }
}
