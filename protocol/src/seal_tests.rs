use proptest::prelude::*;
use topology::NodeId;

use super::*;
use crate::event::{Body, Directive, Event};
use crate::ids::Hlc;

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn school() -> NodeId {
    id("130102-S0001")
}

fn events(origin: NodeId, from: u64, n: u64) -> Vec<Event> {
    (from..from + n)
        .map(|seq| Event {
            by: None,
            origin,
            seq,
            hlc: Hlc { wall_ms: 1_000 + seq, logical: 0 },
            scope: origin,
            body: Body::Directive(Directive { title: format!("自查 {seq}"), text: "晨检记录".into() }),
        })
        .collect()
}

fn refs<T>(v: &[T]) -> Vec<&T> {
    v.iter().collect()
}

/// `n` events of the school from seq 1, sealed from genesis.
fn sealed(n: u64) -> (HashKeys, Vec<Event>, Vec<Seal>, ChainHead) {
    let keys = HashKeys::new(7);
    let evs = events(school(), 1, n);
    let (seals, head) = seal_run(school(), genesis(school(), 0), &evs, &keys.signer(school())).unwrap();
    (keys, evs, seals, head)
}

/// Checks `(after, upto]` under the last of `seals`.
fn check(
    keys: &HashKeys,
    after: u64,
    upto: u64,
    seals: &[Seal],
    evs: &[Event],
    known: Option<ChainHead>,
) -> Result<ChainHead, SealError> {
    let Some(seal) = seals.last() else {
        return Err(SealError::Unsealed { origin: school(), after, upto });
    };
    check_range(school(), after, upto, seal, &refs(evs), known.as_ref(), keys)
}

#[test]
fn a_long_run_is_sealed_in_pieces_that_check_and_end_at_the_origins_head() {
    let (keys, evs, seals, head) = sealed(600);
    assert_eq!(seals.len(), 3, "600 events in pieces of at most {SEAL_EVENTS_MAX}");
    assert_eq!((seals[0].after, seals[0].upto, seals[2].upto), (0, 256, 600));
    assert_eq!(seals[2].head_upto, head);
    // The last seal alone vouches for the whole run from the held head: one signature.
    let g = genesis(school(), 0);
    assert_eq!(check(&keys, 0, 600, &seals, &evs, Some(g)), Ok(g));
    // A range ending at an inner seal checks under it, from the held head or (above the held
    // cursor, on the priority lane) from the seal's own start.
    let mid = &seals[1];
    assert_eq!(check(&keys, 0, 512, &seals[..2], &evs[..512], Some(g)), Ok(g));
    let island = check(&keys, 256, 512, &seals[1..2], &evs[256..512], None);
    assert_eq!(island, Ok(mid.head_after));
    assert_eq!(mid.head_after, seals[0].head_upto);
    // Without a held head a range must start where its seal starts.
    assert!(matches!(check(&keys, 0, 512, &seals[..2], &evs[..512], None), Err(SealError::Tiling { .. })));
    // The chain is the same however the run was cut into pieces.
    let (head2, _) = evs.iter().fold((genesis(school(), 0), 0), |(h, n), e| (chain_next(&h, e).unwrap(), n + 1));
    assert_eq!(head2, head);
}

#[test]
fn big_events_close_a_piece_before_it_passes_its_bytes() {
    let keys = HashKeys::new(7);
    let mut evs = events(school(), 1, 40);
    for e in &mut evs {
        e.body = Body::Directive(Directive { title: "通知".into(), text: "长".repeat(5_000) });
    }
    let (seals, _) = seal_run(school(), genesis(school(), 0), &evs, &keys.signer(school())).unwrap();
    assert!(seals.len() >= 3, "{} seals", seals.len());
    for s in &seals {
        let bytes: usize = evs[s.after as usize..s.upto as usize].iter().map(|e| encode_event(e).unwrap().len()).sum();
        assert!(bytes <= SEAL_BYTES_MAX, "a piece of {bytes} bytes");
    }
}

#[test]
fn a_relay_can_neither_alter_nor_forge_nor_leave_out_an_origins_events() {
    let (keys, evs, seals, _) = sealed(10);
    let g = Some(genesis(school(), 0));

    let mut altered = evs.clone();
    altered[4].body = Body::Directive(Directive { title: "自查 5".into(), text: "已整改".into() });
    assert!(matches!(check(&keys, 0, 10, &seals, &altered, g), Err(SealError::HeadMismatch { .. })));

    let mut reordered = evs.clone();
    reordered.swap(2, 3);
    assert!(matches!(check(&keys, 0, 10, &seals, &reordered, g), Err(SealError::Incomplete { .. })));
    let (a, b) = (reordered[2].seq, reordered[3].seq);
    reordered[2].seq = b;
    reordered[3].seq = a;
    assert!(matches!(check(&keys, 0, 10, &seals, &reordered, g), Err(SealError::HeadMismatch { .. })));

    let mut short = evs.clone();
    short.remove(6);
    assert!(matches!(check(&keys, 0, 10, &seals, &short, g), Err(SealError::Incomplete { .. })));

    // A relay resealing altered events with a key of its own (its own secret).
    let relay = HashKeys::new(8).signer(school());
    let (forged, _) = seal_run(school(), genesis(school(), 0), &altered, &relay).unwrap();
    assert!(matches!(check(&keys, 0, 10, &forged, &altered, g), Err(SealError::BadSignature { .. })));
    // Nor with the honest signature over a head of its choosing.
    let mut lied = seals.clone();
    lied[0].head_upto = forged[0].head_upto;
    assert!(matches!(check(&keys, 0, 10, &lied, &altered, g), Err(SealError::BadSignature { .. })));

    // Another origin's honest seal does not cover this origin's range.
    let county = id("130102");
    let theirs = events(county, 1, 10);
    let (their_seals, _) = seal_run(county, genesis(county, 0), &theirs, &keys.signer(county)).unwrap();
    assert!(matches!(check(&keys, 0, 10, &their_seals, &evs, g), Err(SealError::Tiling { .. })));

    assert!(matches!(check(&keys, 0, 10, &[], &evs, g), Err(SealError::Unsealed { .. })));
}

#[test]
fn a_run_left_out_between_two_others_breaks_the_link_to_the_held_head() {
    let keys = HashKeys::new(7);
    let signer = keys.signer(school());
    let evs = events(school(), 1, 30);
    let (first, h10) = seal_run(school(), genesis(school(), 0), &evs[..10], &signer).unwrap();
    let (_, h20) = seal_run(school(), h10, &evs[10..20], &signer).unwrap();
    let (third, _) = seal_run(school(), h20, &evs[20..], &signer).unwrap();
    let g = genesis(school(), 0);
    assert_eq!(check(&keys, 0, 10, &first, &evs[..10], Some(g)), Ok(g));
    assert_eq!(first[0].head_upto, h10);
    // The receiver holds h10; a relay hands it the third run as if it followed.
    let got = check(&keys, 10, 30, &third, &evs[20..], Some(h10));
    assert!(matches!(got, Err(SealError::Incomplete { .. })), "{got:?}");
    let mut renumbered = evs[20..].to_vec();
    for e in &mut renumbered {
        e.seq -= 10;
    }
    let got = check(&keys, 10, 20, &third, &renumbered, Some(h10));
    assert!(matches!(got, Err(SealError::Tiling { .. })), "{got:?}");
    let got = check(&keys, 20, 30, &third, &evs[20..], Some(h10));
    assert!(matches!(got, Err(SealError::HeadMismatch { .. })), "{got:?}");
    // Sent ahead (no held head), the third run checks under its own seal, and starts from h20,
    // which the caller links once the second run arrives.
    assert_eq!(check(&keys, 20, 30, &third, &evs[20..], None), Ok(h20));
}

#[test]
fn ed25519_keys_sign_seals_a_certificate_key_checks() {
    let seed = [5u8; 32];
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    use ring::signature::KeyPair;
    let public = PublicKey::Ed25519(pair.public_key().as_ref().to_vec());
    let m = seal_message(school(), 0, 3, &genesis(school(), 0), &genesis(school(), 3));
    let sig = pair.sign(&m);
    assert_eq!(public.verify(&m, sig.as_ref()), Ok(()));
    let other = seal_message(school(), 0, 4, &genesis(school(), 0), &genesis(school(), 3));
    assert!(public.verify(&other, sig.as_ref()).is_err());
    assert!(public.verify(&m, &[0u8; 200]).unwrap_err().contains("超过"));
}

proptest! {
    /// Any single change to a sealed range's events (a byte of a text, a seq, an hlc, the scope,
    /// the person) is refused.
    #[test]
    fn any_change_to_a_sealed_event_is_refused(n in 1u64..40, at in 0usize..40, what in 0u8..5, x in 1u64..1_000) {
        let (keys, mut evs, seals, _) = sealed(n);
        let i = at % evs.len();
        let e = &mut evs[i];
        match what {
            0 => e.body = Body::Directive(Directive { title: format!("改 {x}"), text: "晨检记录".into() }),
            1 => e.seq += x,
            2 => e.hlc.wall_ms += x,
            3 => e.scope = id("130102-S0002"),
            _ => e.hlc.logical += x as u32,
        }
        prop_assert!(check(&keys, 0, n, &seals, &evs, Some(genesis(school(), 0))).is_err());
    }
}
