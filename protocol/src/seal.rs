//! A signed history: each origin's events form a hash chain, and the origin signs the chain's
//! head over each run of events it writes (a *seal*), so that an ancestor receiving the run
//! through relays can check that nobody forged, altered, reordered or left out any of it.
//!
//! The chain of origin `o`: the head before seq `s0` (the first seq `o` sealed) is
//! [`genesis`]`(o, s0)`, and the head after event `e` is `SHA-256(head before || encode(e))`
//! ([`chain_next`], over the wire codec's bytes of the event). A [`Seal`] says "my events
//! `(after, upto]` take my chain from `head_after` to `head_upto`", signed by the origin's key
//! ([`seal_message`] is what is signed). A range sent upward ends where a seal ends and carries
//! that seal ([`check_range`]): the receiver recomputes the chain from the head it already holds
//! for the origin over the events it got, and checks that it reaches the signed head with the
//! origin's public key ([`SealVerifier`]). One signature per origin range thus vouches for every
//! event since the held head, so no run can be altered or dropped between two others.
//!
//! Only ancestors check: an origin writes only inside its own subtree, so every ancestor holds
//! every one of its events, while a descendant holds only those scoped to it and cannot
//! recompute a chain with holes. Keys and signatures are behind [`SealSigner`] and
//! [`SealVerifier`]: real nodes sign with their certificate's key; the simulator uses keyed
//! hashes, the same checks at a fraction of the cost.

use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::event::Event;
use crate::wire::{WireError, encode_event};

/// Most events one seal covers: an origin writing more at once seals them in pieces, so a relay
/// can always fit whole seals into one batch ([`crate::wire::BATCH_EVENTS_MAX`] events).
pub const SEAL_EVENTS_MAX: usize = 256;

/// Most encoded event bytes one seal covers (a quarter of a batch's bytes).
pub const SEAL_BYTES_MAX: usize = 64 * 1024;

/// Longest signature a seal may carry (Ed25519: 64 bytes; ECDSA P-256, ASN.1: at most 72).
pub const SIGNATURE_BYTES_MAX: usize = 128;

/// The head of an origin's hash chain at some seq.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChainHead(pub [u8; 32]);

impl std::fmt::Debug for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// The head of `origin`'s chain before seq `at + 1`, where its sealing began.
pub fn genesis(origin: NodeId, at: u64) -> ChainHead {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"mingchu/chain/v1\0");
    ctx.update(&named(origin));
    ctx.update(&at.to_be_bytes());
    head_of(ctx)
}

/// An origin as hashed and signed: its name's length (4 bytes, big-endian), then its name.
fn named(origin: NodeId) -> Vec<u8> {
    let name = origin.to_string();
    let mut out = Vec::with_capacity(4 + name.len());
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

fn head_of(ctx: ring::digest::Context) -> ChainHead {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    ChainHead(out)
}

/// The head after `event`, from the head before it.
pub fn chain_next(before: &ChainHead, event: &Event) -> Result<ChainHead, WireError> {
    Ok(chain_next_bytes(before, &encode_event(event)?))
}

/// [`chain_next`] over an event already encoded with [`encode_event`].
pub fn chain_next_bytes(before: &ChainHead, encoded: &[u8]) -> ChainHead {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&before.0);
    ctx.update(encoded);
    head_of(ctx)
}

/// The origin's signed word on a run of its events: `(after, upto]` take its chain from
/// `head_after` to `head_upto`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub origin: NodeId,
    pub after: u64,
    pub upto: u64,
    pub head_after: ChainHead,
    pub head_upto: ChainHead,
    pub signature: Vec<u8>,
}

/// The bytes an origin signs for a seal: a fixed tag, then every field but the signature.
pub fn seal_message(origin: NodeId, after: u64, upto: u64, head_after: &ChainHead, head_upto: &ChainHead) -> Vec<u8> {
    let name = named(origin);
    let mut m = Vec::with_capacity(16 + name.len() + 16 + 64);
    m.extend_from_slice(b"mingchu/seal/v1\0");
    m.extend_from_slice(&name);
    m.extend_from_slice(&after.to_be_bytes());
    m.extend_from_slice(&upto.to_be_bytes());
    m.extend_from_slice(&head_after.0);
    m.extend_from_slice(&head_upto.0);
    m
}

/// Signs seals with one origin's private key.
pub trait SealSigner: Send + Sync {
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

/// Checks seals' signatures with the origins' public keys.
pub trait SealVerifier: Send + Sync {
    /// `Ok` when `signature` is `origin`'s over `message`.
    fn verify(&self, origin: NodeId, message: &[u8], signature: &[u8]) -> Result<(), SealError>;
}

/// Why a sealed range is refused (for a person: Chinese).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{origin} 的第 {}–{upto} 号事件没有源头签名", after + 1)]
    Unsealed { origin: NodeId, after: u64, upto: u64 },
    #[error("{origin} 的签名与所发事件范围 ({after}, {upto}] 对不上")]
    Tiling { origin: NodeId, after: u64, upto: u64 },
    #[error("{origin} 的第 {}–{upto} 号事件不全或多出（签名覆盖的每个事件都必须在批次中）", after + 1)]
    Incomplete { origin: NodeId, after: u64, upto: u64 },
    #[error("{origin} 的第 {}–{upto} 号事件与源头签名的哈希链不符（被篡改、伪造或漏发）", after + 1)]
    HeadMismatch { origin: NodeId, after: u64, upto: u64 },
    #[error("{origin} 的第 {}–{upto} 号事件接不上已保存的哈希链（之前的事件被删改或漏发）", after + 1)]
    Unlinked { origin: NodeId, after: u64, upto: u64 },
    #[error("{origin} 的签名验证失败：{why}")]
    BadSignature { origin: NodeId, why: String },
    #[error("不知道 {origin} 的公钥，无法验证其签名")]
    UnknownKey { origin: NodeId },
    #[error("{origin} 的事件无法编码：{why}")]
    Encode { origin: NodeId, why: String },
}

/// Makes the seals of a run of one origin's events, written from the chain's `head` (the head
/// before the first of them): one seal per [`SEAL_EVENTS_MAX`] events or [`SEAL_BYTES_MAX`]
/// encoded bytes. `events` must be consecutive seqs of `origin`; returns the seals and the new
/// head.
pub fn seal_run<E: std::borrow::Borrow<Event>>(
    origin: NodeId,
    head: ChainHead,
    events: &[E],
    signer: &dyn SealSigner,
) -> Result<(Vec<Seal>, ChainHead), WireError> {
    let encoded: Vec<Vec<u8>> = events.iter().map(|e| encode_event(e.borrow())).collect::<Result<_, _>>()?;
    let mut seals = Vec::with_capacity(events.len() / SEAL_EVENTS_MAX + 1);
    let mut head = head;
    let mut piece_start: Option<(u64, ChainHead)> = None;
    let (mut n, mut bytes) = (0usize, 0usize);
    for (i, (e, bytes_of_e)) in events.iter().map(std::borrow::Borrow::borrow).zip(&encoded).enumerate() {
        let e: &Event = e;
        let (after, head_after) = *piece_start.get_or_insert((e.seq.saturating_sub(1), head));
        head = chain_next_bytes(&head, bytes_of_e);
        n += 1;
        bytes += bytes_of_e.len();
        let next_len = encoded.get(i + 1).map_or(0, Vec::len);
        if i + 1 == events.len() || n >= SEAL_EVENTS_MAX || bytes + next_len > SEAL_BYTES_MAX {
            let signature = signer.sign(&seal_message(origin, after, e.seq, &head_after, &head));
            seals.push(Seal { origin, after, upto: e.seq, head_after, head_upto: head, signature });
            piece_start = None;
            n = 0;
            bytes = 0;
        }
    }
    Ok((seals, head))
}

/// Checks one origin's range `(after, upto]` received from a child, under the one seal that ends
/// it: `events` must be every event of the range in seq order, and the chain recomputed over them
/// from `known` (the head the receiver holds for the origin at `after`) must reach the seal's
/// `head_upto`, which the origin signed. One signature thus vouches for every event since the
/// held head, however many writes (and seals) the range spans: a relay cannot alter, add, reorder
/// or leave out any of them. With no held head (a range above the receiver's contiguous cursor,
/// sent ahead on the priority lane, or an origin whose history began before sealing) the seal must
/// start exactly at `after` and the chain starts from its `head_after`; the caller links it to
/// what comes before once that arrives. Such a start is taken on trust until it is linked, so the
/// caller keeps it to ranges that cannot be linked yet. Returns the head the check started from.
pub fn check_range(
    origin: NodeId,
    after: u64,
    upto: u64,
    seal: &Seal,
    events: &[&Event],
    known: Option<&ChainHead>,
    verifier: &dyn SealVerifier,
) -> Result<ChainHead, SealError> {
    if seal.origin != origin || seal.upto != upto || seal.after >= upto || (known.is_none() && seal.after != after) {
        return Err(SealError::Tiling { origin, after, upto });
    }
    let complete = upto > after
        && events.len() as u64 == upto - after
        && events.iter().enumerate().all(|(i, e)| e.origin == origin && e.seq == after + 1 + i as u64);
    if !complete {
        return Err(SealError::Incomplete { origin, after, upto });
    }
    let start = known.copied().unwrap_or(seal.head_after);
    let mut head = start;
    for e in events {
        head = chain_next(&head, e).map_err(|e| SealError::Encode { origin, why: e.to_string() })?;
    }
    if head != seal.head_upto {
        return Err(SealError::HeadMismatch { origin, after, upto });
    }
    check_signature(seal, verifier)?;
    Ok(start)
}

/// `Ok` when `seal` is signed by its origin's key: its signature over [`seal_message`] of its
/// fields (what [`check_range`] checks last, after the chain).
pub fn check_signature(seal: &Seal, verifier: &dyn SealVerifier) -> Result<(), SealError> {
    let message = seal_message(seal.origin, seal.after, seal.upto, &seal.head_after, &seal.head_upto);
    verifier.verify(seal.origin, &message, &seal.signature)
}

/// The simulator's keys: a node's "signature" is a keyed SHA-256 under a secret derived from
/// the run's seed and the node, so the same checks run (a relay without the origin's secret can
/// forge nothing) at a fraction of real signatures' cost.
#[derive(Clone, Debug)]
pub struct HashKeys {
    seed: u64,
}

impl HashKeys {
    pub fn new(seed: u64) -> HashKeys {
        HashKeys { seed }
    }

    /// The signer of `origin`.
    pub fn signer(&self, origin: NodeId) -> HashSigner {
        HashSigner { secret: self.secret(origin) }
    }

    fn secret(&self, origin: NodeId) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"mingchu/sim-key/v1\0");
        ctx.update(&self.seed.to_be_bytes());
        ctx.update(origin.to_string().as_bytes());
        head_of(ctx).0
    }
}

/// One origin's [`HashKeys`] signer.
#[derive(Clone, Debug)]
pub struct HashSigner {
    secret: [u8; 32],
}

/// The HMAC-SHA-256 key of a secret: what signs and what checks.
fn hmac_key(secret: &[u8; 32]) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret)
}

impl SealSigner for HashSigner {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        ring::hmac::sign(&hmac_key(&self.secret), message).as_ref().to_vec()
    }
}

impl SealVerifier for HashKeys {
    fn verify(&self, origin: NodeId, message: &[u8], signature: &[u8]) -> Result<(), SealError> {
        ring::hmac::verify(&hmac_key(&self.secret(origin)), message, signature)
            .map_err(|_| SealError::BadSignature { origin, why: "签名与源头的密钥不符".into() })
    }
}

/// A public key of an origin, as its certificate carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519: the 32-byte key.
    Ed25519(Vec<u8>),
    /// ECDSA P-256 with SHA-256, the uncompressed point; signatures in ASN.1 DER.
    EcdsaP256(Vec<u8>),
}

impl PublicKey {
    /// `Ok` when `signature` over `message` was made with this key's private half.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        use ring::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};
        if signature.len() > SIGNATURE_BYTES_MAX {
            return Err(format!("签名长 {} 字节，超过 {SIGNATURE_BYTES_MAX}", signature.len()));
        }
        let ok = match self {
            PublicKey::Ed25519(k) => UnparsedPublicKey::new(&ED25519, k).verify(message, signature),
            PublicKey::EcdsaP256(k) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, k).verify(message, signature),
        };
        ok.map_err(|_| "签名与证书中的公钥不符".to_string())
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
