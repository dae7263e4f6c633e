//! The Storage seam: a small ordered key-value interface (get, scan, atomic batch, flush).
//!
//! Production uses sled ([`sled_store::SledStorage`]); tests and the simulator use
//! [`mem::MemStorage`], whose crash drops every write not flushed. Keys live in keyspaces
//! ([`Space`]) that share one ordered map, so one batch is atomic across them (an event and the
//! cursor that covers it land together or not at all).

pub mod mem;
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
}

impl Space {
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
