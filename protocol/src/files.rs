//! Files — a detection's snapshot, a rectification's photos — as content-addressed blobs.
//!
//! A file is stored where it was uploaded, under the SHA-256 of its bytes; events carry only the
//! reference `sha256:<64 hex>` (an alert's `snapshot`, a submission's `evidence`), never the bytes.
//! An ancestor that wants to show one fetches it **on demand** with `Frame::FileGet` over the link
//! toward the holder (the same link events take, so failover applies), hop by hop, each hop keeping
//! a copy in a bounded cache. A holder that cannot be reached makes the file *unavailable*, never
//! *missing*.
//!
//! The hash itself is computed by the node (this crate does no I/O and has no digest); here are the
//! references, the limits, the content types a file may have, and its stored meta.

use serde::{Deserialize, Serialize};

/// A SHA-256 digest.
pub type FileHash = [u8; 32];

/// Largest file accepted (a camera snapshot or a phone photo, compressed).
pub const FILE_BYTES_MAX: usize = 4 << 20;
/// Largest part of a file in one `FileData` frame.
pub const FILE_CHUNK_BYTES: usize = 256 << 10;
/// The prefix of a file reference.
pub const REF_PREFIX: &str = "sha256:";

/// What a file is for: it decides how long it is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A detection's snapshot: kept the configured days (30 by default).
    Snapshot,
    /// Evidence of a case (rectification photos): kept for good.
    Evidence,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Snapshot => "snapshot",
            FileKind::Evidence => "evidence",
        }
    }
}

/// The image types accepted, told by their first bytes (never by a name or a header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentType {
    Jpeg,
    Png,
}

impl ContentType {
    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Jpeg => "image/jpeg",
            ContentType::Png => "image/png",
        }
    }

    /// The type of `bytes` by their magic number, if an accepted one.
    pub fn sniff(bytes: &[u8]) -> Option<ContentType> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ContentType::Jpeg)
        } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(ContentType::Png)
        } else {
            None
        }
    }
}

/// What a node keeps about a stored file beside its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub kind: FileKind,
    pub content: ContentType,
    pub size: u64,
    /// When this node stored it (uploaded here, or cached).
    pub stored_at_ms: u64,
    /// A copy fetched from below (evictable), not the original.
    pub cached: bool,
}

/// `sha256:<hex>`.
pub fn file_ref(hash: &FileHash) -> String {
    let mut s = String::with_capacity(REF_PREFIX.len() + 64);
    s.push_str(REF_PREFIX);
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The hash in a reference `sha256:<64 hex>` (also the bare 64 hex digits); `None` for anything
/// else (a free-text evidence note stays text).
pub fn parse_ref(s: &str) -> Option<FileHash> {
    let hex = s.trim();
    let hex = hex.strip_prefix(REF_PREFIX).unwrap_or(hex);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_junk_is_not_one() {
        let h: FileHash = std::array::from_fn(|i| i as u8 * 7);
        let r = file_ref(&h);
        assert_eq!(r.len(), 7 + 64);
        assert_eq!(parse_ref(&r), Some(h));
        assert_eq!(parse_ref(&r[7..]), Some(h));
        for bad in ["", "sha256:", "sha256:xyz", "照片1", &r[..70]] {
            assert_eq!(parse_ref(bad), None, "{bad}");
        }
    }

    #[test]
    fn images_are_told_by_their_bytes() {
        assert_eq!(ContentType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ContentType::Jpeg));
        assert_eq!(ContentType::sniff(b"\x89PNG\r\n\x1a\n...."), Some(ContentType::Png));
        assert_eq!(ContentType::sniff(b"<html>"), None);
        assert_eq!(ContentType::sniff(b""), None);
    }
}
