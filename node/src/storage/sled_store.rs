//! sled behind the Storage seam: one `Tree`, keyspaces as key prefixes so a batch is atomic
//! across them; a small cache and no background flusher — the store actor flushes before acking.

use std::path::Path;
use std::sync::Arc;

use super::{OpenTry, ScanIter, Space, Storage, StorageError, WriteBatch, open_retrying_while_held};
use crate::transport::BoxFuture;

/// sled's page cache per node (its default is 1 GiB per Db).
pub const SLED_CACHE_BYTES: u64 = 16 * 1024 * 1024;

fn io(e: sled::Error) -> StorageError {
    match e {
        sled::Error::Corruption { .. } => StorageError::Corrupt(e.to_string()),
        other => StorageError::Io(other.to_string()),
    }
}

#[derive(Clone)]
pub struct SledStorage {
    db: sled::Db,
    dir: std::path::PathBuf,
    /// Writes taken since opened ([`Storage::version`]).
    version: Arc<std::sync::atomic::AtomicU64>,
}

/// Bytes the files under `dir` take on disk (allocated blocks, so sparse files count as stored).
fn disk_usage(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { disk_usage(&entry.path())? } else { meta.blocks() * 512 };
    }
    Ok(total)
}

impl SledStorage {
    /// Opens (or creates) the database in `dir`.
    ///
    /// sled locks the directory while a `Db` on it is open, and a closed `Db`'s background threads
    /// may hold the lock a moment longer (as may a previous process of this node that is still
    /// exiting): a locked directory is retried for up to [`super::LOCKED_WAIT_MS`], then reported.
    pub fn open(dir: &Path) -> Result<SledStorage, StorageError> {
        open_retrying_while_held(dir, || {
            let opened = sled::Config::new()
                .path(dir)
                .cache_capacity(SLED_CACHE_BYTES)
                .flush_every_ms(None)
                .mode(sled::Mode::HighThroughput)
                .open();
            match opened {
                Ok(db) => OpenTry::Opened(SledStorage { db, dir: dir.to_path_buf(), version: Default::default() }),
                // sled words it "could not acquire lock on …" (its own io::Error, kind Other).
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    OpenTry::Held(format!(": {e}"))
                }
                Err(e) => OpenTry::Failed(StorageError::Io(format!("{}: {e}", dir.display()))),
            }
        })
    }
}

impl Storage for SledStorage {
    fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    fn disk_bytes(&self) -> Option<u64> {
        disk_usage(&self.dir).ok()
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get(space.key(key)).map_err(io)?.map(|v| v.to_vec()))
    }

    fn scan(&self, space: Space, from: &[u8], to: &[u8]) -> ScanIter<'_> {
        Box::new(
            self.db
                .range(space.key(from)..=space.key(to))
                .map(|r| r.map(|(k, v)| (k[1..].to_vec(), v.to_vec())).map_err(io)),
        )
    }

    fn scan_rev(&self, space: Space, from: &[u8], to: &[u8]) -> ScanIter<'_> {
        Box::new(
            self.db
                .range(space.key(from)..=space.key(to))
                .rev()
                .map(|r| r.map(|(k, v)| (k[1..].to_vec(), v.to_vec())).map_err(io)),
        )
    }

    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> ScanIter<'_> {
        Box::new(
            self.db.scan_prefix(space.key(prefix)).map(|r| r.map(|(k, v)| (k[1..].to_vec(), v.to_vec())).map_err(io)),
        )
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.db.apply_batch(b).map_err(io)?;
        // After the batch is visible: a reader that saw this number read at least this much.
        self.version.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), StorageError>> {
        let db = self.db.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || db.flush()).await {
                Ok(r) => r.map(|_| ()).map_err(io),
                Err(e) => Err(StorageError::Io(format!("flush task failed: {e}"))),
            }
        })
    }
}
