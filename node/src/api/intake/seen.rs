//! The detection ids a school's devices already raised: `(device, detection id)` → what the
//! detection wrote (the first event of its write: a new alert, or a repeat merged into one), so a
//! device that sends a detection again — it did not get the answer, or it retries by design — gets
//! the same alert and nothing is written twice.
//!
//! Kept in [`Space::Devices`], written by the store in the same atomic batch as the alert itself
//! ([`crate::runtime::store::StoreMsg::AppendMarked`]), so it survives a restart and a crash can
//! never keep one without the other. Each id is kept [`SEEN_KEEP_MS`] (7 days) after it was
//! recorded and then pruned; a detection older than that is refused by the intake, so a pruned id
//! cannot come back as a new alert.
//!
//! Keys: `det/<device>\0<detection id>` (the lookup) and `det-at/<recorded ms, 8 bytes
//! big-endian><device>\0<detection id>` (the pruning order). Device ids and detection ids never
//! hold a NUL byte.

use crate::runtime::store::{LocalOp, LocalSpace, read_mark};
use crate::storage::{Space, Storage, StorageError};

/// How long a detection id is remembered after it was recorded.
pub const SEEN_KEEP_MS: u64 = protocol::intake::DETECTION_KEEP_MS;
pub use protocol::intake::{DETECTION_ID_BYTES_MAX, check_detection_id};

const ID_PREFIX: &[u8] = b"det/";
const TIME_PREFIX: &[u8] = b"det-at/";

fn tail(device: &str, detection: &str) -> Vec<u8> {
    [device.as_bytes(), &[0], detection.as_bytes()].concat()
}

/// The lookup key of `(device, detection)`.
pub fn id_key(device: &str, detection: &str) -> Vec<u8> {
    [ID_PREFIX, &tail(device, detection)].concat()
}

/// The pruning key of `(device, detection)` recorded at `at_ms`.
pub fn time_key(at_ms: u64, device: &str, detection: &str) -> Vec<u8> {
    [TIME_PREFIX, &at_ms.to_be_bytes(), &tail(device, detection)].concat()
}

/// The marks the store sets with the alert a new detection raises (see the module's doc).
pub fn marks(device: &str, detection: &str, now_ms: u64) -> Vec<(LocalSpace, Vec<u8>)> {
    vec![(LocalSpace::Devices, id_key(device, detection)), (LocalSpace::Devices, time_key(now_ms, device, detection))]
}

/// What `(device, detection)` wrote, if it was seen: `(seq of this node's event, recorded at ms)`.
pub fn seen(storage: &dyn Storage, device: &str, detection: &str) -> Result<Option<(u64, u64)>, StorageError> {
    Ok(storage.get(Space::Devices, &id_key(device, detection))?.as_deref().and_then(read_mark))
}

/// The deletions that forget the ids recorded before `before_ms`, at most `max` of them (the
/// oldest first).
pub fn expired(storage: &dyn Storage, before_ms: u64, max: usize) -> Result<Vec<LocalOp>, StorageError> {
    let from = TIME_PREFIX.to_vec();
    let to = [TIME_PREFIX, &before_ms.saturating_sub(1).to_be_bytes(), &[0xff]].concat();
    let mut ops = Vec::new();
    for item in storage.scan(Space::Devices, &from, &to).take(max) {
        let (k, _) = item?;
        let Some(rest) = k.get(TIME_PREFIX.len() + 8..) else { continue };
        let id = [ID_PREFIX, rest].concat();
        ops.push(LocalOp { space: LocalSpace::Devices, key: k, value: None });
        ops.push(LocalOp { space: LocalSpace::Devices, key: id, value: None });
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::store::mark_value;
    use crate::storage::WriteBatch;
    use crate::storage::mem::MemStorage;

    /// What the store does with the marks of an append: each set to the first event's seq.
    fn record(st: &MemStorage, device: &str, detection: &str, at_ms: u64, seq: u64) {
        let mut b = WriteBatch::default();
        for (space, key) in marks(device, detection, at_ms) {
            b.put(space.space(), &key, mark_value(seq, at_ms));
        }
        st.write(b).unwrap();
    }

    fn delete(st: &MemStorage, ops: Vec<LocalOp>) {
        let mut b = WriteBatch::default();
        for op in ops {
            b.delete(op.space.space(), &op.key);
        }
        st.write(b).unwrap();
    }

    #[test]
    fn a_detection_id_is_found_again_per_device_until_it_is_pruned() {
        let st = MemStorage::new();
        const DAY: u64 = 86_400_000;
        record(&st, "box-1", "d-1", DAY, 7);
        record(&st, "box-1", "d-2", 3 * DAY, 9);
        assert_eq!(seen(&st, "box-1", "d-1").unwrap(), Some((7, DAY)));
        assert_eq!(seen(&st, "box-1", "d-2").unwrap(), Some((9, 3 * DAY)));
        // Per device: the same id from another box is another detection; a prefix is not a match.
        assert_eq!(seen(&st, "box-2", "d-1").unwrap(), None);
        assert_eq!(seen(&st, "box-1", "d-").unwrap(), None);
        assert_eq!(seen(&st, "box", "-1\0d-1").unwrap(), None);

        // Pruning what was recorded before day 2 takes d-1 and leaves d-2.
        assert!(expired(&st, DAY, 100).unwrap().is_empty(), "nothing recorded before day 1");
        let ops = expired(&st, 2 * DAY, 100).unwrap();
        assert_eq!(ops.len(), 2, "both keys of d-1: {ops:?}");
        delete(&st, ops);
        assert_eq!(seen(&st, "box-1", "d-1").unwrap(), None);
        assert_eq!(seen(&st, "box-1", "d-2").unwrap(), Some((9, 3 * DAY)));
        // Bounded: at most `max` ids per pass, the oldest first.
        for i in 0..5 {
            record(&st, "nvr-1", &format!("n-{i}"), 4 * DAY + i, i);
        }
        let ops = expired(&st, 10 * DAY, 2).unwrap();
        assert_eq!(ops.len(), 4);
        delete(&st, ops);
        assert_eq!(seen(&st, "box-1", "d-2").unwrap(), None, "the oldest went first");
        assert_eq!(seen(&st, "nvr-1", "n-0").unwrap(), None);
        assert!(seen(&st, "nvr-1", "n-1").unwrap().is_some());
    }

    #[test]
    fn detection_ids_are_printable_ascii() {
        assert!(check_detection_id("7f1c2a9e-0b3d-4c5e-8f6a-1b2c3d4e5f60").is_ok());
        assert!(check_detection_id("cam-01/1764400000123").is_ok());
        for bad in ["", "a b", "编号", "a\0b", &"x".repeat(129)] {
            assert!(check_detection_id(bad).is_err(), "{bad:?}");
        }
    }
}
