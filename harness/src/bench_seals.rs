//! `mingchu bench --seals`: what the signed history costs (issue 16), one core, no federation.
//!
//! Alert events of the federation bench's size are chained and sealed by an origin in writes
//! of 1, 8 and 250 events (one raise, what concurrent raises share, one bulk request), and
//! checked as an ancestor checks a received range, with each kind of key: Ed25519, ECDSA
//! P-256 (the certificates' keys today) and the simulator's keyed hashes.

use std::time::{Duration, Instant};

use protocol::alert::{AlertRaised, AlertType, Zone};
use protocol::event::{Body, Event};
use protocol::ids::Hlc;
use protocol::seal::{
    ChainHead, HashKeys, PublicKey, Seal, SealError, SealSigner, SealVerifier, chain_next, check_range, genesis,
    seal_run,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use topology::NodeId;

/// A kind of key: its name, an origin's signer and the verifier an ancestor holds.
type Keys = (&'static str, Box<dyn SealSigner>, Box<dyn SealVerifier>);

struct Ed(Ed25519KeyPair);

impl SealSigner for Ed {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).as_ref().to_vec()
    }
}

struct P256(EcdsaKeyPair, SystemRandom);

impl SealSigner for P256 {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(&self.1, message).map(|s| s.as_ref().to_vec()).unwrap_or_default()
    }
}

struct One(PublicKey);

impl SealVerifier for One {
    fn verify(&self, origin: NodeId, message: &[u8], signature: &[u8]) -> Result<(), SealError> {
        self.0.verify(message, signature).map_err(|why| SealError::BadSignature { origin, why })
    }
}

fn alerts(origin: NodeId, n: u64) -> Vec<Event> {
    (1..=n)
        .map(|seq| Event {
            by: None,
            origin,
            seq,
            hlc: Hlc { wall_ms: 1_764_633_600_000 + seq, logical: 0 },
            scope: origin,
            body: Body::Alert(AlertRaised {
                camera: format!("cam-{:02}", seq % 8 + 1),
                canteen: "main".into(),
                zone: Zone::Cooking,
                alert_type: AlertType::NoMask,
                severity: AlertType::NoMask.default_severity(Zone::Cooking),
                detected_at_ms: 1_764_633_600_000 + seq,
                confidence_permille: 912,
                snapshot: format!("snapshots/{seq:08}.jpg"),
                repeat_count: 1,
            }),
        })
        .collect()
}

/// Events a relay further up gets of one origin in one range (the span column).
const SPAN: usize = 256;

/// Checks one origin's consecutive `events` under `seal` (the one ending them), from `before`.
fn check_one(
    origin: NodeId,
    events: &[Event],
    before: &ChainHead,
    seal: Option<&Seal>,
    verifier: &dyn SealVerifier,
) -> anyhow::Result<()> {
    let seal = seal.ok_or_else(|| anyhow::anyhow!("a write without a seal"))?;
    let refs: Vec<&Event> = events.iter().collect();
    let (after, upto) = (events[0].seq - 1, events[events.len() - 1].seq);
    check_range(origin, after, upto, seal, &refs, Some(before), verifier).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn per(d: Duration, n: usize) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6 / n as f64)
}

/// Runs the measurement and prints it.
pub fn run(events: usize) -> anyhow::Result<()> {
    let origin: NodeId = "130102-S0001".parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let evs = alerts(origin, events as u64);
    let bytes: usize = evs.iter().map(|e| protocol::wire::encode_event(e).map_or(0, |b| b.len())).sum();
    println!(
        "签名历史的开销 (the signed history's cost): {events} alert events, {} bytes each on average",
        bytes / events
    );

    let t = Instant::now();
    let mut head = genesis(origin, 0);
    for e in &evs {
        head = chain_next(&head, e)?;
    }
    println!("chain (encode + SHA-256) per event: {}", per(t.elapsed(), events));

    let rng = SystemRandom::new();
    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("ed25519 key"))?;
    let ed = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).map_err(|_| anyhow::anyhow!("ed25519 key"))?;
    let ed_public = PublicKey::Ed25519(ed.public_key().as_ref().to_vec());
    let p_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("p-256 key"))?;
    let p = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, p_pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow::anyhow!("p-256 key"))?;
    let p_public = PublicKey::EcdsaP256(p.public_key().as_ref().to_vec());
    let hash = HashKeys::new(1);
    let keys: Vec<Keys> = vec![
        ("Ed25519", Box::new(Ed(ed)), Box::new(One(ed_public))),
        ("ECDSA P-256", Box::new(P256(p, rng)), Box::new(One(p_public))),
        ("sim keyed hash", Box::new(hash.signer(origin)), Box::new(hash.clone())),
    ];
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL).set_header(vec![
        "key",
        "events per write",
        "seal at the origin, per write",
        "per event",
        "check at an ancestor, per write",
        "per event",
        "check 256 events under one seal, per event",
        "seal bytes per event",
    ]);
    for (name, signer, verifier) in &keys {
        for per_write in [1usize, 8, 250] {
            let writes: Vec<&[Event]> = evs.chunks(per_write).filter(|c| c.len() == per_write).collect();
            let t = Instant::now();
            let mut head = genesis(origin, 0);
            let mut sealed = Vec::with_capacity(writes.len());
            for w in &writes {
                let before = head;
                let (seals, after) = seal_run(origin, head, w, signer.as_ref())?;
                head = after;
                sealed.push((before, seals));
            }
            let seal_time = t.elapsed();
            let t = Instant::now();
            for (w, (before, seals)) in writes.iter().zip(&sealed) {
                check_one(origin, w, before, seals.last(), verifier.as_ref())?;
            }
            let check_time = t.elapsed();
            // A relay further up gets many writes of one origin in one batch: one range, checked
            // under the seal that ends it.
            let span = (SPAN / per_write).max(1) * per_write;
            let t = Instant::now();
            let mut spans = 0usize;
            for (k, chunk) in evs[..writes.len() * per_write].chunks(span).enumerate() {
                let first_write = k * span / per_write;
                let last_write = first_write + chunk.len() / per_write - 1;
                let before = &sealed[first_write].0;
                check_one(origin, chunk, before, sealed[last_write].1.last(), verifier.as_ref())?;
                spans += chunk.len();
            }
            let span_time = t.elapsed();
            let n = writes.len() * per_write;
            let seal_bytes: usize =
                sealed.iter().flat_map(|(_, s)| s).map(|s| protocol::wire::encode_seal(s).map_or(0, |b| b.len())).sum();
            table.add_row(vec![
                name.to_string(),
                per_write.to_string(),
                per(seal_time, writes.len()),
                per(seal_time, n),
                per(check_time, writes.len()),
                per(check_time, n),
                per(span_time, spans),
                format!("{:.1}", seal_bytes as f64 / n as f64),
            ]);
        }
    }
    println!("{table}");
    Ok(())
}
