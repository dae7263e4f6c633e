//! The store's part of the signed history ([`protocol::seal`]): it seals the node's own writes,
//! keeps the head of every origin's hash chain it holds (at the end of each held range), keeps the
//! seals that end what it received (so it can cut what it sends up at a seal and carry it), checks
//! each range received from below against the chain and the origin's signature before anything
//! of it is written, and learns origins' keys from their certificate chains.
//!
//! Stored in [`Space::Chains`]: `h` + origin → the heads; `s` + origin + seq → the seal ending
//! there; `k` + origin → the origin's certificate chain (DER, its own first).

use std::collections::HashMap;
use std::sync::Arc;

use protocol::seal::{
    ChainHead, HashKeys, HashSigner, Seal, SealError, SealSigner, SealVerifier, check_range, check_signature, genesis,
    seal_run,
};
use protocol::session::Attached;
use protocol::wire::{OriginCert, decode, decode_seal, encode, encode_seal};
use protocol::{Cursors, Event, SeqRange, SeqRanges};
use topology::NodeId;

use super::corrupt;
use crate::storage::{Space, Storage, StorageError, WriteBatch};

/// Where an origin's keys come from: what checks its seals, and how its key is learned from the
/// certificate chain it (or a relay) sends up.
pub trait KeyBook: SealVerifier {
    /// Takes `origin`'s key from `chain` when the chain is valid for it (issued under the trust
    /// anchors, within the issuers' subtrees, not revoked); why not, for a person, otherwise.
    fn learn(&self, origin: NodeId, chain: &[Vec<u8>]) -> Result<(), String>;

    /// Forgets keys whose certificates were revoked (by SHA-256 fingerprint), and learns them no
    /// more.
    fn revoke(&self, _fingerprints: &[String]) {}
}

/// The node's keys for its signed history: its own signer and the book of its descendants' keys.
#[derive(Clone)]
pub struct SealKeys {
    pub signer: Arc<dyn SealSigner>,
    pub book: Arc<dyn KeyBook>,
}

impl SealKeys {
    /// The simulator's keys ([`HashKeys`]): every node can check every other's seals with no
    /// certificates, at the cost of a keyed hash.
    pub fn simulated(seed: u64, me: NodeId) -> SealKeys {
        let keys = HashKeys::new(seed);
        let signer: HashSigner = keys.signer(me);
        SealKeys { signer: Arc::new(signer), book: Arc::new(HashBook(keys)) }
    }
}

/// [`HashKeys`] as a [`KeyBook`]: nothing to learn.
struct HashBook(HashKeys);

impl SealVerifier for HashBook {
    fn verify(&self, origin: NodeId, message: &[u8], signature: &[u8]) -> Result<(), SealError> {
        self.0.verify(origin, message, signature)
    }
}

impl KeyBook for HashBook {
    fn learn(&self, _origin: NodeId, _chain: &[Vec<u8>]) -> Result<(), String> {
        Ok(())
    }
}

const HEADS: u8 = b'h';
const SEALS: u8 = b's';
const CERTS: u8 = b'k';

fn origin_key(tag: u8, origin: NodeId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..].copy_from_slice(&origin.to_key());
    k
}

fn seal_key(origin: NodeId, upto: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..9].copy_from_slice(&origin_key(SEALS, origin));
    k[9..].copy_from_slice(&upto.to_be_bytes());
    k
}

/// Heads of one origin's chain at the end of each range held (sorted by seq).
type Heads = Vec<(u64, ChainHead)>;

/// What a checked batch adds: per origin, the heads at its ranges' ends and the seals ending them,
/// and the certificate chains learned.
#[derive(Debug, Default)]
pub(super) struct Checked {
    heads: Vec<(NodeId, u64, ChainHead)>,
    seals: Vec<Seal>,
    certs: Vec<OriginCert>,
}

/// The chains' heads this store holds, and the keys.
pub(super) struct Chains {
    heads: HashMap<NodeId, Heads>,
    keys: SealKeys,
    /// Origins whose chain this node took up without a head of its own (after an upgrade, or after
    /// their past came from above): said once each.
    trusted: std::collections::HashSet<NodeId>,
}

impl Chains {
    /// Reads the heads and learns the stored certificate chains again (a chain no longer valid,
    /// a revoked one, is not learned: that origin's seals are refused until a valid one comes).
    pub(super) fn load(storage: &dyn Storage, keys: SealKeys) -> Result<Chains, StorageError> {
        let mut heads = HashMap::new();
        for item in storage.scan_prefix(Space::Chains, &[HEADS]) {
            let (k, v) = item?;
            let origin = NodeId::from_key(k.get(1..).unwrap_or_default()).map_err(|e| corrupt("chain key", e))?;
            let h: Heads = decode(&v).map_err(|e| corrupt("chain heads", e))?;
            heads.insert(origin, h);
        }
        for item in storage.scan_prefix(Space::Chains, &[CERTS]) {
            let (k, v) = item?;
            let origin = NodeId::from_key(k.get(1..).unwrap_or_default()).map_err(|e| corrupt("cert key", e))?;
            let chain: Vec<Vec<u8>> = decode(&v).map_err(|e| corrupt("cert chain", e))?;
            if let Err(why) = keys.book.learn(origin, &chain) {
                tracing::warn!(%origin, %why, "a stored certificate is no longer valid; its seals wait for a valid one");
            }
        }
        Ok(Chains { heads, keys, trusted: Default::default() })
    }

    /// The head of `origin`'s chain at `seq`, when held (seq 0: the chain's start).
    fn head_at(&self, origin: NodeId, seq: u64) -> Option<ChainHead> {
        if seq == 0 {
            return Some(genesis(origin, 0));
        }
        self.heads.get(&origin)?.iter().find(|(s, _)| *s == seq).map(|(_, h)| *h)
    }

    /// Seals this node's own new events `events` (consecutive seqs after `after`, this node's
    /// contiguous cursor) into `b`: the seals, and the head after them. Returns the heads to
    /// [`Chains::set`] once `b` is written. With no head held at `after` (a restored or upgraded
    /// store) the chain starts again there, from [`genesis`]; ancestors take such a restart only
    /// from a seal, which only the origin can make.
    pub(super) fn seal_own(
        &self,
        me: NodeId,
        after: u64,
        events: &[&Event],
        b: &mut WriteBatch,
    ) -> Result<Heads, StorageError> {
        let start = self.head_at(me, after).unwrap_or_else(|| genesis(me, after));
        let (seals, head) = seal_run(me, start, events, self.keys.signer.as_ref()).map_err(|e| corrupt("seal", e))?;
        for s in &seals {
            b.put(Space::Chains, &seal_key(me, s.upto), encode_seal(s).map_err(|e| corrupt("seal", e))?);
        }
        let last = events.last().map_or(after, |e| e.seq);
        let heads = vec![(last, head)];
        b.put(Space::Chains, &origin_key(HEADS, me), encode(&heads).map_err(|e| corrupt("chain heads", e))?);
        Ok(heads)
    }

    /// Records `heads` for `origin` after the write that holds them.
    pub(super) fn set(&mut self, origin: NodeId, heads: Heads) {
        self.heads.insert(origin, heads);
    }

    /// Checks a batch received from below before anything of it is written: the certificate
    /// chains it carries, then each range under its seal ([`check_range`]) from the head held at
    /// its start. Ranges already held are not checked again (nothing of them is written).
    pub(super) fn check(
        &mut self,
        cursors: &Cursors,
        ranges: &[SeqRange],
        events: &[Event],
        attached: &Attached,
    ) -> Result<Checked, SealError> {
        let mut out = Checked::default();
        for c in &attached.certs {
            self.keys
                .book
                .learn(c.origin, &c.chain)
                .map_err(|why| SealError::BadSignature { origin: c.origin, why: format!("证书无效：{why}") })?;
            out.certs.push(c.clone());
        }
        for r in ranges {
            let Some(seal) = attached.seals.iter().find(|s| s.origin == r.origin && s.upto == r.upto) else {
                return Err(SealError::Unsealed { origin: r.origin, after: r.after, upto: r.upto });
            };
            let held = cursors.get(r.origin);
            if held.is_some_and(|h| h.covers(r.after, r.upto)) {
                continue;
            }
            let c = held.map_or(0, SeqRanges::contiguous);
            // The chain is checked from the end of what is held below the range's new events.
            let q = if r.after <= c { c } else { r.after };
            let from = events.partition_point(|e| e.origin < r.origin);
            let to = events.partition_point(|e| e.origin <= r.origin);
            let mine: Vec<&Event> = events[from..to].iter().filter(|e| e.seq > q && e.seq <= r.upto).collect();
            let restart = seal.after == q && seal.head_after == genesis(r.origin, q);
            let held_head = self.head_at(r.origin, q);
            let book = self.keys.book.as_ref();
            // The chain checked from the seal's own start, over the events it spans.
            let from_seal = || {
                let tail: Vec<&Event> = mine.iter().copied().filter(|e| e.seq > seal.after).collect();
                check_range(r.origin, seal.after, r.upto, seal, &tail, None, book)
            };
            if restart || held_head.is_some() {
                let known = if restart { None } else { held_head };
                check_range(r.origin, q, r.upto, seal, &mine, known.as_ref(), book)?;
            } else if attached.from == Some(r.origin) {
                // No head here to check from (this store is new or was wiped, and the origin
                // sends from where it still holds its events): the origin itself sent it, over a
                // link its certificate authenticated. Its seal is checked — over the events it
                // spans when the range holds them all — and the chain taken up from its head.
                if seal.after >= q {
                    from_seal()?;
                } else {
                    check_signature(seal, book)?;
                }
            } else if q == c && !self.heads.contains_key(&r.origin) && seal.after >= q {
                // Held up to `c` with no head: the store was upgraded, or the origin's past came
                // from above. The chain is taken up from this seal's start; what lies between
                // is taken as held (said once).
                from_seal()?;
                if self.trusted.insert(r.origin) {
                    tracing::info!(origin = %r.origin, from = seal.after, "taking up an origin's signed history without a held head");
                }
            } else {
                check_range(r.origin, q, r.upto, seal, &mine, None, book)?;
            }
            out.heads.push((r.origin, r.upto, seal.head_upto));
            out.seals.push(seal.clone());
        }
        Ok(out)
    }

    /// Puts what a checked batch adds into `b`, given the origins' holdings after it: the seals
    /// ending its ranges, the certificate chains and, per origin, the heads at the ends of its held
    /// ranges. Returns the heads to [`Chains::set`] once `b` is written.
    pub(super) fn record(
        &self,
        checked: &Checked,
        holdings: &Cursors,
        b: &mut WriteBatch,
    ) -> Result<Vec<(NodeId, Heads)>, StorageError> {
        for s in &checked.seals {
            b.put(Space::Chains, &seal_key(s.origin, s.upto), encode_seal(s).map_err(|e| corrupt("seal", e))?);
        }
        for c in &checked.certs {
            b.put(Space::Chains, &origin_key(CERTS, c.origin), encode(&c.chain).map_err(|e| corrupt("cert chain", e))?);
        }
        let mut out: Vec<(NodeId, Heads)> = Vec::new();
        for &(origin, upto, head) in &checked.heads {
            let pos = match out.iter().position(|(o, _)| *o == origin) {
                Some(p) => p,
                None => {
                    out.push((origin, self.heads.get(&origin).cloned().unwrap_or_default()));
                    out.len() - 1
                }
            };
            let heads = &mut out[pos].1;
            heads.retain(|(s, _)| *s != upto);
            heads.push((upto, head));
        }
        for (origin, heads) in &mut out {
            let ends: Vec<u64> =
                holdings.get(*origin).map(|r| r.ranges().iter().map(|x| x.1).collect()).unwrap_or_default();
            heads.retain(|(s, _)| ends.contains(s));
            heads.sort_by_key(|(s, _)| *s);
            b.put(Space::Chains, &origin_key(HEADS, *origin), encode(&*heads).map_err(|e| corrupt("chain heads", e))?);
        }
        Ok(out)
    }

    /// Stores this node's own certificate chain, sent up with its first batch on each link.
    pub(super) fn own_cert(me: NodeId, chain: &[Vec<u8>], b: &mut WriteBatch) -> Result<(), StorageError> {
        b.put(Space::Chains, &origin_key(CERTS, me), encode(&chain.to_vec()).map_err(|e| corrupt("cert chain", e))?);
        Ok(())
    }
}

/// Drops `origin`'s seals ending at or below `floor` (its events there were dropped by retention).
pub(super) fn drop_seals(
    storage: &dyn Storage,
    origin: NodeId,
    floor: u64,
    b: &mut WriteBatch,
) -> Result<(), StorageError> {
    for item in storage.scan(Space::Chains, &seal_key(origin, 0), &seal_key(origin, floor)) {
        let (k, _) = item?;
        b.delete(Space::Chains, &k);
    }
    Ok(())
}

/// The first seal of `origin` ending after `seq`, if stored.
fn seal_after(storage: &dyn Storage, origin: NodeId, seq: u64) -> Result<Option<Seal>, StorageError> {
    let from = seal_key(origin, seq.saturating_add(1));
    first_seal(storage.scan(Space::Chains, &from, &seal_key(origin, u64::MAX)))
}

/// The last seal of `origin` ending in `(after, upto]`, if stored.
fn seal_within(storage: &dyn Storage, origin: NodeId, after: u64, upto: u64) -> Result<Option<Seal>, StorageError> {
    if upto <= after {
        return Ok(None);
    }
    first_seal(storage.scan_rev(Space::Chains, &seal_key(origin, after + 1), &seal_key(origin, upto)))
}

/// The first seal a scan of seal keys yields, decoded.
fn first_seal(mut scan: crate::storage::ScanIter<'_>) -> Result<Option<Seal>, StorageError> {
    match scan.next() {
        Some(item) => Ok(Some(decode_seal(&item?.1).map_err(|e| corrupt("seal", e))?)),
        None => Ok(None),
    }
}

/// An origin's stored certificate chain.
fn cert_of(storage: &dyn Storage, origin: NodeId) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
    match storage.get(Space::Chains, &origin_key(CERTS, origin))? {
        Some(v) => Ok(Some(decode(&v).map_err(|e| corrupt("cert chain", e))?)),
        None => Ok(None),
    }
}

/// Cuts a fetch for an ancestor at seals and attaches them ([`protocol::FetchRequest::sealed`]):
/// a bulk range ends at the last seal within it (the first range, when none lies within its
/// limits, runs on to the first seal after, up to what was asked); a priority-lane range is
/// exactly the span of the seal starting where it starts, or is not sent on that lane. Adds the
/// certificate chain of each origin sent that `vouched` (this link's) does not yet hold.
pub fn seal_fetch(
    storage: &dyn Storage,
    req: &protocol::FetchRequest,
    covered: Vec<SeqRange>,
    mut events: Vec<Event>,
    vouched: &mut std::collections::HashSet<NodeId>,
) -> Result<(Vec<SeqRange>, Vec<Event>, Attached), StorageError> {
    let mut out = Vec::with_capacity(covered.len());
    let mut seals = Vec::with_capacity(covered.len());
    if req.fresh {
        for r in &covered {
            match seal_after(storage, r.origin, r.after)? {
                Some(s) if s.after == r.after && s.upto <= r.upto => {
                    out.push(SeqRange { origin: r.origin, after: r.after, upto: s.upto });
                    seals.push(s);
                }
                _ => {}
            }
        }
    } else {
        for (i, r) in covered.iter().enumerate() {
            if let Some(s) = seal_within(storage, r.origin, r.after, r.upto)? {
                out.push(SeqRange { origin: r.origin, after: r.after, upto: s.upto });
                seals.push(s);
                continue;
            }
            let asked = req.ranges.iter().find(|a| a.origin == r.origin && a.after == r.after);
            if i > 0 || asked.is_none() {
                continue;
            }
            let upto = asked.map_or(r.upto, |a| a.upto);
            // The first range: run on to its next seal, alone in the batch (one seal spans at
            // most what one batch carries).
            if let Some(s) = seal_after(storage, r.origin, r.upto)?.filter(|s| s.upto <= upto) {
                let (more, _) = super::read_range(storage, r.origin, r.upto, s.upto, usize::MAX)?;
                events.retain(|e| e.origin == r.origin);
                events.extend(more.into_iter().map(|m| m.event));
                out.push(SeqRange { origin: r.origin, after: r.after, upto: s.upto });
                seals.push(s);
                break;
            }
        }
    }
    // Each origin's chain goes with its first range on the link; past the most a batch carries,
    // the range waits for the next batch.
    let mut certs = Vec::new();
    let mut kept = Vec::with_capacity(out.len());
    let mut kept_seals = Vec::with_capacity(out.len());
    for (r, s) in out.into_iter().zip(seals) {
        if !vouched.contains(&r.origin)
            && let Some(chain) = cert_of(storage, r.origin)?
        {
            if certs.len() >= protocol::wire::BATCH_CERTS_MAX {
                continue;
            }
            vouched.insert(r.origin);
            certs.push(OriginCert { origin: r.origin, chain });
        }
        kept.push(r);
        kept_seals.push(s);
    }
    events.retain(|e| kept.iter().any(|r| r.origin == e.origin && e.seq > r.after && e.seq <= r.upto));
    Ok((kept, events, Attached { seals: kept_seals, certs, from: None }))
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
