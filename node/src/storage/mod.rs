//! The Storage seam: a small ordered key-value interface (get, scan, atomic batch, flush).
//!
//! Production uses redb ([`redb_store::RedbStorage`]) for every new data directory and sled
//! ([`sled_store::SledStorage`]) for directories made before redb ([`Backend::for_data_dir`],
//! [`migrate_sled_to_redb`]); tests and the simulator use [`mem::MemStorage`], whose crash drops
//! every write not flushed. Keys live in keyspaces ([`Space`]) that share one ordered map, so one
//! batch is atomic across them (an event and the cursor that covers it land together or not at
//! all).

pub mod mem;
pub mod redb_store;
pub mod sled_store;

use crate::transport::BoxFuture;

/// A keyspace: the first byte of every stored key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Schema version, node id, HLC.
    Meta,
    /// Events by `(origin, seq)`.
    Events,
    /// Seq ranges held per origin.
    Cursors,
    /// Secondary index: `(kind, subject, origin, seq)` for events about something (a case, an
    /// alert), so a case's events are found without scanning every alert.
    Index,
    /// Local secrets (argon2id password hashes of this node's accounts): never replicated, never
    /// listed, read only to check a sign-in.
    Secrets,
    /// The local audit log (sign-ins, refusals): `(unix ms, counter)` → record; never replicated.
    Audit,
    /// Runs by their newest event: `(hlc wall ms, hlc logical, origin, last seq)`, so listings
    /// read newest first and stop early instead of decoding every event held.
    Recent,
    /// Files (snapshots, evidence photos) by their SHA-256, their meta, and a time index for
    /// retention: uploaded here or cached from below; never replicated as events.
    Files,
    /// A school's devices and what they told it (the device registry, the detection ids already
    /// raised, the cameras' last heartbeats): local records, never replicated.
    Devices,
    /// The province's daily spot-check draws (每日抽查名单: the seed, the inputs, the canteens and
    /// their inspectors) and the draw's settings: local to the province, never replicated, so no
    /// county learns in advance which of its canteens will be looked at.
    Draws,
    /// The signed history: the head of each origin's hash chain held, the seals that end what was
    /// written or received, and origins' certificate chains.
    Chains,
}

impl Space {
    /// Every keyspace.
    pub const ALL: [Space; 11] = [
        Space::Meta,
        Space::Events,
        Space::Cursors,
        Space::Index,
        Space::Secrets,
        Space::Audit,
        Space::Recent,
        Space::Files,
        Space::Devices,
        Space::Draws,
        Space::Chains,
    ];

    /// What the keyspace holds, in Chinese, for people reading a command's output.
    pub fn label(self) -> &'static str {
        match self {
            Space::Meta => "节点信息",
            Space::Events => "事件",
            Space::Cursors => "同步进度",
            Space::Index => "事件索引",
            Space::Secrets => "账号密码",
            Space::Audit => "审计日志",
            Space::Recent => "最近记录索引",
            Space::Files => "文件",
            Space::Devices => "设备",
            Space::Draws => "抽查名单",
            Space::Chains => "签名链",
        }
    }

    pub fn tag(self) -> u8 {
        match self {
            Space::Meta => b'm',
            Space::Events => b'e',
            Space::Cursors => b'c',
            Space::Index => b'i',
            Space::Recent => b'r',
            Space::Secrets => b's',
            Space::Audit => b'a',
            Space::Files => b'f',
            Space::Devices => b'd',
            Space::Draws => b'w',
            Space::Chains => b'h',
        }
    }

    /// The full stored key.
    pub fn key(self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(key.len() + 1);
        k.push(self.tag());
        k.extend_from_slice(key);
        k
    }
}

/// Why storage failed. A node whose storage fails stops: it must not acknowledge what it cannot keep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("storage i/o: {0}")]
    Io(String),
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
    #[error("data directory belongs to node {found}, not {expected}")]
    WrongNode { expected: String, found: String },
    #[error("data directory has schema version {found}; this build reads {expected}")]
    Schema { expected: u32, found: u32 },
}

/// Writes applied atomically by [`Storage::write`].
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, space: Space, key: &[u8], value: Vec<u8>) {
        self.ops.push((space.key(key), Some(value)));
    }

    pub fn delete(&mut self, space: Space, key: &[u8]) {
        self.ops.push((space.key(key), None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// An iterator of stored `(key without the space tag, value)` pairs in key order.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + 'a>;

/// The storage a node runs on.
pub trait Storage: Send + Sync + 'static {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Pairs with `from <= key <= to` inside `space`, in key order.
    fn scan(&self, space: Space, from: &[u8], to: &[u8]) -> ScanIter<'_>;

    /// Applies every op of `batch` atomically (visible at once to readers; durable after a flush).
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;

    /// A number that changes whenever what readers see may have changed (each write; for the
    /// in-memory store also a simulated crash or wipe): a reader that kept what it read at one
    /// version can reuse it while the version is the same. Starts anew when the store is opened.
    fn version(&self) -> u64;

    /// Makes every write made before this call durable.
    fn flush(&self) -> BoxFuture<'static, Result<(), StorageError>>;

    /// Pairs whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> ScanIter<'_>;

    /// Like [`Storage::scan`], from `to` down to `from` (keys in descending order).
    fn scan_rev(&self, space: Space, from: &[u8], to: &[u8]) -> ScanIter<'_>;

    /// Bytes the store takes on disk, when the backend can tell.
    fn disk_bytes(&self) -> Option<u64> {
        None
    }

    fn put(&self, space: Space, key: &[u8], value: Vec<u8>) -> Result<(), StorageError> {
        let mut b = WriteBatch::default();
        b.put(space, key, value);
        self.write(b)
    }

    fn delete(&self, space: Space, key: &[u8]) -> Result<(), StorageError> {
        let mut b = WriteBatch::default();
        b.delete(space, key);
        self.write(b)
    }
}

/// How long opening a data directory that another process holds is retried (a node still
/// running, or one still exiting: a closed store may hold its lock a moment longer).
pub const LOCKED_WAIT_MS: u64 = 3_000;

/// One try at opening a store (see [`open_retrying_while_held`]).
pub(crate) enum OpenTry<T> {
    Opened(T),
    /// Another process holds the directory; the text (may be empty) says how the store put it.
    Held(String),
    Failed(StorageError),
}

/// Creates `dir` and opens a store in it with `attempt`, retrying for up to [`LOCKED_WAIT_MS`]
/// while another process holds it, then reporting that it is in use.
pub(crate) fn open_retrying_while_held<T>(
    dir: &std::path::Path,
    mut attempt: impl FnMut() -> OpenTry<T>,
) -> Result<T, StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::Io(format!("{}: {e}", dir.display())))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCKED_WAIT_MS);
    loop {
        match attempt() {
            OpenTry::Opened(t) => return Ok(t),
            OpenTry::Failed(e) => return Err(e),
            OpenTry::Held(how) => {
                if std::time::Instant::now() >= deadline {
                    return Err(StorageError::Io(format!(
                        "{}: the data directory is in use by another process (is this node already running?){how}",
                        dir.display()
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// Which store a node's data directory is kept in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// sled (the store of the nodes deployed before redb; still opened where its files are).
    Sled,
    /// redb: one file, bounded cache, no background threads.
    Redb,
    /// Everything in this process's memory, lost when it ends (tests, the simulator, benchmarks).
    Memory,
}

impl Backend {
    pub const NAMES: &'static str = "sled, redb, memory";

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Redb => "redb",
            Backend::Memory => "memory",
        }
    }

    /// The store a data directory already holds: redb where its file is, sled where sled's files
    /// are (a directory made before redb), none in a new or empty directory.
    pub fn existing(dir: &std::path::Path) -> Option<Backend> {
        if dir.join(redb_store::REDB_FILE).exists() {
            Some(Backend::Redb)
        } else if dir.join("conf").is_file() && dir.join("db").is_file() {
            Some(Backend::Sled)
        } else {
            None
        }
    }

    /// The store to open in a data directory: the one it holds, else `wanted`, else redb. A
    /// directory holding another store than the one `wanted` is refused (with how to convert it).
    pub fn for_data_dir(dir: &std::path::Path, wanted: Option<Backend>) -> Result<Backend, StorageError> {
        match (Backend::existing(dir), wanted) {
            (Some(found), Some(w)) if found != w => Err(StorageError::Io(format!(
                "数据目录 {} 是 {found} 存储，但配置要求 {w}（sled 可用 mingchu node migrate-store 转为 redb）/ \
                 the data directory holds a {found} store, the config asks for {w}",
                dir.display()
            ))),
            (Some(found), _) => Ok(found),
            (None, w) => Ok(w.unwrap_or(Backend::Redb)),
        }
    }

    /// [`Backend::for_data_dir`] with no store asked for.
    pub fn of_data_dir(dir: &std::path::Path) -> Backend {
        Backend::existing(dir).unwrap_or(Backend::Redb)
    }

    /// Opens a store of this kind in `dir` (the memory store ignores it).
    pub fn open(self, dir: &std::path::Path) -> Result<std::sync::Arc<dyn Storage>, StorageError> {
        Ok(match self {
            Backend::Sled => std::sync::Arc::new(sled_store::SledStorage::open(dir)?),
            Backend::Redb => std::sync::Arc::new(redb_store::RedbStorage::open(dir)?),
            Backend::Memory => std::sync::Arc::new(mem::MemStorage::new()),
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "sled" => Ok(Backend::Sled),
            "redb" => Ok(Backend::Redb),
            "memory" => Ok(Backend::Memory),
            other => Err(format!("未知的存储类型 “{other}”（可选：{}） / unknown storage “{other}”", Backend::NAMES)),
        }
    }
}

impl serde::Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Backend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Backend, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`migrate_sled_to_redb`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Keys copied per keyspace, in [`Space::ALL`] order (only the spaces with keys).
    pub keys: Vec<(Space, u64)>,
    pub bytes: u64,
    /// Where sled's files were moved.
    pub kept: std::path::PathBuf,
}

/// Where [`migrate_sled_to_redb`] moves sled's files (kept until the operator removes them).
pub const SLED_KEPT_DIR: &str = "sled-before-redb";

/// Converts a node's sled data directory to redb, in place, with the node stopped: every key of
/// every keyspace is copied into a new redb store, counted back, made durable, and only then put
/// in the directory's place; sled's files are moved aside into [`SLED_KEPT_DIR`]. Interrupted at
/// any point, the directory opens as before (sled) or as the finished copy (redb), never half.
pub fn migrate_sled_to_redb(dir: &std::path::Path) -> Result<Migrated, StorageError> {
    let fail = |what: &str, e: std::io::Error| StorageError::Io(format!("{what}: {e}"));
    if Backend::existing(dir) != Some(Backend::Sled) {
        return Err(StorageError::Io(format!(
            "{} 不是 sled 数据目录（没有 sled 的 conf 和 db 文件，或已有 {}）/ not a sled data directory",
            dir.display(),
            redb_store::REDB_FILE
        )));
    }
    let sled = sled_store::SledStorage::open(dir)?;
    let work = dir.join("migrating-to-redb");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| fail("removing an earlier unfinished copy", e))?;
    }
    let redb = redb_store::RedbStorage::open(&work)?;
    let mut out = Migrated { kept: dir.join(SLED_KEPT_DIR), ..Default::default() };
    for space in Space::ALL {
        let mut n = 0u64;
        let mut batch = WriteBatch::default();
        for item in sled.scan_prefix(space, b"") {
            let (k, v) = item?;
            out.bytes += (k.len() + v.len()) as u64;
            batch.put(space, &k, v);
            n += 1;
            if batch.len() >= 10_000 {
                redb.write(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            redb.write(batch)?;
        }
        let copied = redb.scan_prefix(space, b"").count() as u64;
        if copied != n {
            return Err(StorageError::Corrupt(format!(
                "copying {space:?}: {n} keys read from sled, {copied} in the copy"
            )));
        }
        if n > 0 {
            out.keys.push((space, n));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| fail("a runtime for the flush", e))?;
    rt.block_on(redb.flush())?;
    drop(redb);
    drop(sled);
    // The finished copy first (from here on the directory opens as redb), then sled's files aside.
    std::fs::rename(work.join(redb_store::REDB_FILE), dir.join(redb_store::REDB_FILE))
        .map_err(|e| fail("putting the copy in place", e))?;
    std::fs::remove_dir_all(&work).map_err(|e| fail("removing the copy's directory", e))?;
    std::fs::create_dir_all(&out.kept).map_err(|e| fail("making the directory for sled's files", e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| fail("listing the data directory", e))? {
        let entry = entry.map_err(|e| fail("listing the data directory", e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "conf" || name == "db" || name == "blobs" || name.starts_with("snap.") {
            std::fs::rename(entry.path(), out.kept.join(&name))
                .map_err(|e| fail(&format!("moving sled's {name}"), e))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both stores on disk keep what was flushed across a reopen, apply a batch across keyspaces,
    /// delete, and scan by range both ways and by prefix in key order.
    #[tokio::test]
    async fn each_disk_store_survives_reopen_after_flush_and_scans_in_order() {
        for backend in [Backend::Redb, Backend::Sled] {
            let dir = tempfile::tempdir().unwrap();
            {
                let s = backend.open(dir.path()).unwrap();
                let mut b = WriteBatch::default();
                b.put(Space::Events, b"k2", b"v2".to_vec());
                b.put(Space::Events, b"k1", b"v1".to_vec());
                b.put(Space::Events, b"l1", b"x".to_vec());
                b.put(Space::Cursors, b"k1", b"c1".to_vec());
                s.write(b).unwrap();
                s.delete(Space::Events, b"l1").unwrap();
                s.flush().await.unwrap();
            }
            assert_eq!(Backend::existing(dir.path()), Some(backend));
            let s = backend.open(dir.path()).unwrap();
            assert_eq!(s.get(Space::Events, b"k1").unwrap(), Some(b"v1".to_vec()), "{backend}");
            assert_eq!(s.get(Space::Cursors, b"k1").unwrap(), Some(b"c1".to_vec()), "{backend}");
            assert_eq!(s.get(Space::Events, b"l1").unwrap(), None, "{backend}");
            let keys = |it: ScanIter<'_>| it.map(|r| r.unwrap().0).collect::<Vec<_>>();
            let (k1, k2) = (b"k1".to_vec(), b"k2".to_vec());
            assert_eq!(keys(s.scan_prefix(Space::Events, b"")), vec![k1.clone(), k2.clone()], "{backend}");
            assert_eq!(keys(s.scan_prefix(Space::Events, b"k")), vec![k1.clone(), k2.clone()], "{backend}");
            assert_eq!(keys(s.scan_rev(Space::Events, b"k", b"k9")), vec![k2.clone(), k1.clone()], "{backend}");
            assert_eq!(keys(s.scan(Space::Events, b"k2", b"k9")), vec![k2.clone()], "{backend}");
            assert!(keys(s.scan(Space::Events, b"k9", b"k1")).is_empty(), "{backend}: a reversed range is empty");
            assert!(keys(s.scan_prefix(Space::Meta, b"")).is_empty(), "{backend}");
        }
    }

    #[test]
    fn a_directory_in_use_is_reported_not_opened_twice() {
        for backend in [Backend::Redb, Backend::Sled] {
            let dir = tempfile::tempdir().unwrap();
            let _held = backend.open(dir.path()).unwrap();
            let err = backend.open(dir.path()).err().expect("a second open of a held directory fails");
            assert!(err.to_string().contains("in use by another process"), "{backend}: {err}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sled_directory_migrates_to_redb_with_every_key() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = sled_store::SledStorage::open(dir.path()).unwrap();
            let mut b = WriteBatch::default();
            for i in 0..25_000u32 {
                b.put(Space::Events, &i.to_be_bytes(), vec![7; 100]);
            }
            b.put(Space::Meta, b"node", b"130102".to_vec());
            b.put(Space::Secrets, b"zhang", b"hash".to_vec());
            s.write(b).unwrap();
            s.flush().await.unwrap();
        }
        assert_eq!(Backend::of_data_dir(dir.path()), Backend::Sled);
        let path = dir.path().to_path_buf();
        let done = tokio::task::spawn_blocking(move || migrate_sled_to_redb(&path)).await.unwrap().unwrap();
        assert_eq!(done.keys, vec![(Space::Meta, 1), (Space::Events, 25_000), (Space::Secrets, 1)]);
        assert_eq!(Backend::of_data_dir(dir.path()), Backend::Redb);
        assert!(done.kept.join("db").is_file() && done.kept.join("conf").is_file());
        let s = redb_store::RedbStorage::open(dir.path()).unwrap();
        assert_eq!(s.get(Space::Meta, b"node").unwrap(), Some(b"130102".to_vec()));
        assert_eq!(s.scan_prefix(Space::Events, b"").count(), 25_000);
        // A second run finds nothing to do and says so.
        drop(s);
        let err = migrate_sled_to_redb(dir.path()).unwrap_err();
        assert!(err.to_string().contains("不是 sled 数据目录"), "{err}");
    }
}
