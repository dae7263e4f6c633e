//! Wire types and the frame codec: the only things in the system that are serialized.
//!
//! A frame is bincode 2 (serde, standard config) with a hard size limit on decode, and trailing
//! bytes after a valid frame are refused. Enum variants are encoded by position: **only append**
//! new variants and fields-in-new-variants; never reorder or remove. The protocol version travels
//! in the hello.

use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::event::Event;
use crate::seal::Seal;

/// Version spoken by this build; a hello with another version is refused with a clear reason.
pub const PROTOCOL_VERSION: u16 = 5;

/// Hard upper bound of one encoded frame on any transport.
pub const FRAME_BYTES_MAX: usize = 1 << 20;

/// Most events in one batch.
pub const BATCH_EVENTS_MAX: usize = 512;

/// Most encoded event bytes a sender packs into one batch (leaves headroom under the frame limit).
pub const BATCH_BYTES_MAX: usize = 256 * 1024;

/// Most origin ranges in one batch.
pub const BATCH_RANGES_MAX: usize = 256;

/// Most cursor entries in a hello (Hebei's largest subtree is a few thousand schools).
pub const HELLO_CURSORS_MAX: usize = 40_000;

/// Longest reason text carried in a goodbye.
pub const REASON_BYTES_MAX: usize = 512;

/// Opens a link, both ways: the dialer sends `Hello`, the acceptor answers `HelloAck`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    /// Who the sender says it is; must match the transport-authenticated identity.
    pub node: NodeId,
    /// The sender's contiguous cursors for the origins the receiver sends it: "send me what comes
    /// after these".
    pub cursors: Vec<(NodeId, u64)>,
}

/// "Origin `origin`, seqs `(after, upto]`: the batch holds all of them that you should hold."
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    pub origin: NodeId,
    pub after: u64,
    pub upto: u64,
}

/// A batch of events with the watermark ranges it covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Per-link, per-direction batch number, echoed in the ack.
    pub id: u64,
    pub ranges: Vec<SeqRange>,
    /// Sorted by `(origin, seq)`; each inside one of `ranges`.
    pub events: Vec<Event>,
    /// Upward: for each range, the origin's seal that ends it ([`crate::seal::check_range`]);
    /// downward: none (only ancestors check an origin's history).
    pub seals: Vec<Seal>,
    /// Certificate chains of origins whose seals the receiver may not yet be able to check: sent
    /// once per origin per link, upward only.
    pub certs: Vec<OriginCert>,
}

/// An origin's certificate chain (DER, its own certificate first, then the CAs that issued it,
/// up to but not including the root), from which an ancestor learns the key that signs the
/// origin's seals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginCert {
    pub origin: NodeId,
    pub chain: Vec<Vec<u8>>,
}

/// Most certificate chains in one batch.
pub const BATCH_CERTS_MAX: usize = 64;

/// Most bytes of one certificate chain.
pub const CERT_CHAIN_BYTES_MAX: usize = 8 * 1024;

/// Sent only after the receiver persisted (and flushed) the batch: its contiguous cursors for the
/// batch's origins afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub id: u64,
    pub cursors: Vec<(NodeId, u64)>,
}

/// Everything that crosses a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    Hello(Hello),
    HelloAck(Hello),
    Batch(Batch),
    Ack(Ack),
    /// Keep-alive; carries how many events the sender still has queued for the receiver.
    Ping {
        backlog: u64,
    },
    /// The sender closes the link, saying why.
    Goodbye {
        reason: String,
    },
    /// The priority lane: fresh events sent ahead of a backlog. Its ranges are complete like a
    /// batch's, but they may lie above the sender's contiguous cursor ("islands"), so the
    /// receiver must not read them as the sender's cursor. Acked like a batch.
    Fresh(Batch),
    /// Health rows (last-value status of the sender's subtree), child to parent only; never
    /// events, never in the log (see [`crate::health`]).
    Health(crate::health::HealthDelta),
    /// Parent to child: "I hold every health change of yours up to `upto`" (of this session).
    HealthAck {
        upto: u64,
    },
    /// An ancestor asks for a file (a snapshot, a photo) held at `holder` (a school below it):
    /// answered by `FileData` frames or a `FileFail` with the same `req` (see [`crate::files`]).
    FileGet {
        req: u64,
        holder: topology::NodeId,
        hash: crate::files::FileHash,
    },
    /// Part of a requested file: `bytes` at `offset` of `total` (the meta with the first part).
    FileData {
        req: u64,
        offset: u64,
        total: u64,
        meta: Option<crate::files::FileMeta>,
        bytes: Vec<u8>,
    },
    /// The file cannot be sent: `missing` (the holder has it not, or no longer), else
    /// unavailable (the holder or a node on the way cannot be reached), with why.
    FileFail {
        req: u64,
        missing: bool,
        reason: String,
    },
}

/// Which transport lane a frame travels in. Control frames (and fresh events) go on a stream of
/// their own with a higher priority, so keep-alives, acks and fresh alerts never queue behind
/// bulk batches. Frames of different lanes may overtake each other; the session tolerates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    Control,
    Bulk,
    /// File parts: a stream of their own, so a snapshot never waits behind a backlog of batches
    /// nor holds one up.
    Files,
}

impl Frame {
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::HelloAck(_) => "hello-ack",
            Frame::Batch(_) => "batch",
            Frame::Ack(_) => "ack",
            Frame::Ping { .. } => "ping",
            Frame::Goodbye { .. } => "goodbye",
            Frame::Fresh(_) => "fresh",
            Frame::Health(_) => "health",
            Frame::HealthAck { .. } => "health-ack",
            Frame::FileGet { .. } => "file-get",
            Frame::FileData { .. } => "file-data",
            Frame::FileFail { .. } => "file-fail",
        }
    }

    pub fn lane(&self) -> Lane {
        match self {
            Frame::Batch(_) => Lane::Bulk,
            Frame::FileData { .. } => Lane::Files,
            _ => Lane::Control,
        }
    }
}

/// Why bytes are not a frame (or a frame is not sendable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("{trailing} trailing bytes after a valid {what} ({len} bytes in all)")]
    Trailing { what: &'static str, trailing: usize, len: usize },
    #[error("could not encode: {0}")]
    Encode(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<FRAME_BYTES_MAX>()
}

fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let bytes = bincode::serde::encode_to_vec(value, config()).map_err(|e| WireError::Encode(e.to_string()))?;
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(WireError::TooLarge { len: bytes.len(), max: FRAME_BYTES_MAX });
    }
    Ok(bytes)
}

fn decode_value<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T, WireError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(WireError::TooLarge { len: bytes.len(), max: FRAME_BYTES_MAX });
    }
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| WireError::Malformed(format!("{what}: {e}")))?;
    if used != bytes.len() {
        return Err(WireError::Trailing { what, trailing: bytes.len() - used, len: bytes.len() });
    }
    Ok(value)
}

/// The first byte of every encoded [`Frame::Fresh`] (its variant's index): a receiver can put a
/// priority-lane batch ahead of the frames queued before it without decoding it first.
pub const FRESH_TAG: u8 = 6;

/// Encodes a frame, refusing one above [`FRAME_BYTES_MAX`] (encoding itself ignores the limit).
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, WireError> {
    encode_value(frame)
}

/// Decodes exactly one frame from `bytes`; never panics, whatever the bytes.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, WireError> {
    decode_value(bytes, "frame")
}

/// Encodes one event for storage (the same codec as the wire).
pub fn encode_event(event: &Event) -> Result<Vec<u8>, WireError> {
    encode_value(event)
}

pub fn decode_event(bytes: &[u8]) -> Result<Event, WireError> {
    decode_value(bytes, "event")
}

/// Encodes one seal for storage (the same codec as the wire).
pub fn encode_seal(seal: &crate::seal::Seal) -> Result<Vec<u8>, WireError> {
    encode_value(seal)
}

pub fn decode_seal(bytes: &[u8]) -> Result<crate::seal::Seal, WireError> {
    decode_value(bytes, "seal")
}

/// Events as one byte string, for a file: each a little-endian `u32` length, then
/// [`encode_event`]'s bytes, in the order given.
pub fn encode_event_log(events: &[Event]) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    for e in events {
        let bytes = encode_event(e)?;
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// The events of [`encode_event_log`]'s bytes; never panics, whatever the bytes.
pub fn decode_event_log(bytes: &[u8]) -> Result<Vec<Event>, WireError> {
    let mut events = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let len = bytes
            .get(at..at + 4)
            .ok_or_else(|| WireError::Malformed(format!("event log: a truncated length at byte {at}")))?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let body = at
            .checked_add(4 + len)
            .and_then(|end| bytes.get(at + 4..end))
            .ok_or_else(|| WireError::Malformed(format!("event log: a truncated event at byte {at}")))?;
        events.push(decode_event(body)?);
        at += 4 + len;
    }
    Ok(events)
}

/// Encoded size of an event, for packing batches under [`BATCH_BYTES_MAX`].
pub fn event_size(event: &Event) -> usize {
    bincode::serde::encode_to_vec(event, config()).map_or(usize::MAX, |b| b.len())
}

/// Generic helpers for other serialized values (cursors in storage).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    encode_value(value)
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    decode_value(bytes, "value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertRaised, AlertType, Severity, Zone};
    use crate::event::{Body, Hlc};
    use proptest::prelude::*;

    #[test]
    fn a_fresh_frame_and_only_a_fresh_frame_starts_with_the_fresh_tag() {
        let batch = Batch { id: 1, ..Batch::default() };
        assert_eq!(encode_frame(&Frame::Fresh(batch.clone())).unwrap()[0], FRESH_TAG);
        assert_ne!(encode_frame(&Frame::Batch(batch)).unwrap()[0], FRESH_TAG);
        assert_ne!(encode_frame(&Frame::Ping { backlog: 0 }).unwrap()[0], FRESH_TAG);
    }

    #[test]
    fn an_event_log_round_trips_and_a_truncated_one_is_refused() {
        let events: Vec<Event> = (1..=3)
            .map(|seq| Event {
                origin: "130102-S0001".parse().unwrap(),
                seq,
                hlc: Hlc { wall_ms: 1_000 + seq, logical: 0 },
                scope: "130102-S0001".parse().unwrap(),
                body: Body::Alert(AlertRaised {
                    camera: "cam-01".into(),
                    canteen: "main".into(),
                    zone: Zone::Cooking,
                    alert_type: AlertType::NoMask,
                    severity: Severity::General,
                    detected_at_ms: 1_000,
                    confidence_permille: 900,
                    snapshot: String::new(),
                    repeat_count: 1,
                }),
                by: None,
            })
            .collect();
        let bytes = encode_event_log(&events).unwrap();
        assert_eq!(decode_event_log(&bytes).unwrap(), events);
        assert_eq!(decode_event_log(&[]).unwrap(), Vec::<Event>::new());
        for cut in [1, 4, 5, bytes.len() - 1] {
            assert!(decode_event_log(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    pub(crate) fn sample_event() -> Event {
        let school: NodeId = "130102-S0042".parse().unwrap();
        Event {
            by: None,
            origin: school,
            seq: 7,
            hlc: Hlc { wall_ms: 1_700_000_000_000, logical: 3 },
            scope: school,
            body: Body::Alert(AlertRaised {
                camera: "cam-03".into(),
                canteen: "main".into(),
                zone: Zone::Cooking,
                alert_type: AlertType::NoChefHat,
                severity: Severity::General,
                detected_at_ms: 1_700_000_000_000,
                confidence_permille: 913,
                snapshot: "snap/1.jpg".into(),
                repeat_count: 1,
            }),
        }
    }

    #[test]
    fn frames_round_trip() {
        let e = sample_event();
        let frames = [
            Frame::Hello(Hello { version: PROTOCOL_VERSION, node: e.origin, cursors: vec![(e.origin, 9)] }),
            Frame::Batch(Batch {
                id: 1,
                ranges: vec![SeqRange { origin: e.origin, after: 6, upto: 7 }],
                events: vec![e.clone()],
                ..Batch::default()
            }),
            Frame::Ack(Ack { id: 1, cursors: vec![(e.origin, 7)] }),
            Frame::Ping { backlog: 3 },
            Frame::Goodbye { reason: "bye".into() },
            Frame::Fresh(Batch {
                id: 2,
                ranges: vec![SeqRange { origin: e.origin, after: 6, upto: 7 }],
                events: vec![e.clone()],
                ..Batch::default()
            }),
        ];
        for f in frames {
            let bytes = encode_frame(&f).unwrap();
            assert_eq!(decode_frame(&bytes).unwrap(), f);
        }
        assert_eq!(decode_event(&encode_event(&e).unwrap()).unwrap(), e);
    }

    #[test]
    fn only_batches_travel_in_the_bulk_lane() {
        let e = sample_event();
        let batch = Batch { id: 1, events: vec![e.clone()], ..Batch::default() };
        assert_eq!(Frame::Batch(batch.clone()).lane(), Lane::Bulk);
        for f in [
            Frame::Hello(Hello { version: PROTOCOL_VERSION, node: e.origin, cursors: vec![] }),
            Frame::HelloAck(Hello { version: PROTOCOL_VERSION, node: e.origin, cursors: vec![] }),
            Frame::Ack(Ack { id: 1, cursors: vec![] }),
            Frame::Ping { backlog: 0 },
            Frame::Goodbye { reason: String::new() },
            Frame::Fresh(batch),
        ] {
            assert_eq!(f.lane(), Lane::Control, "{}", f.name());
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode_frame(&Frame::Ping { backlog: 1 }).unwrap();
        bytes.push(0);
        assert!(matches!(decode_frame(&bytes), Err(WireError::Trailing { trailing: 1, .. })));
    }

    #[test]
    fn truncated_and_oversized_frames_are_refused() {
        let bytes =
            encode_frame(&Frame::Batch(Batch { id: 9, events: vec![sample_event()], ..Batch::default() })).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_frame(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
        let huge = vec![0u8; FRAME_BYTES_MAX + 1];
        assert!(matches!(decode_frame(&huge), Err(WireError::TooLarge { .. })));
        // A string length claim far above the limit (Goodbye is variant 5) fails before allocating.
        let mut claim = vec![5u8, 0xfd];
        claim.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_frame(&claim).is_err());
    }

    #[test]
    fn node_ids_on_the_wire_are_validated() {
        // The same shape as `Frame::Hello` (variant 0), but with an impossible node (0, 0).
        let raw = (0u32, PROTOCOL_VERSION, (0u32, 0u32), Vec::<((u32, u32), u64)>::new());
        let bytes = bincode::serde::encode_to_vec(raw, config()).unwrap();
        let err = decode_frame(&bytes).unwrap_err().to_string();
        assert!(err.contains("not a node id"), "{err}");
        // And the valid province decodes through the same path.
        let ok = (0u32, PROTOCOL_VERSION, (130000u32, 0u32), Vec::<((u32, u32), u64)>::new());
        let bytes = bincode::serde::encode_to_vec(ok, config()).unwrap();
        assert!(matches!(decode_frame(&bytes), Ok(Frame::Hello(_))));
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame(&bytes);
        }

        /// Flipping any byte of a valid frame never panics.
        #[test]
        fn corrupted_frames_never_panic(pos in 0usize..200, val in any::<u8>()) {
            let mut bytes = encode_frame(&Frame::Batch(Batch { id: 1, events: vec![sample_event()], ..Batch::default() })).unwrap();
            let p = pos % bytes.len();
            bytes[p] = val;
            let _ = decode_frame(&bytes);
        }
    }
}
