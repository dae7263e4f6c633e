//! A school's store seals its writes; what it sends up, cut at seals by [`seal_fetch`], is checked
//! by the county's store before anything is written: genuine ranges are taken (in pieces, as
//! islands, again when already held), altered or re-signed ones refused with nothing written.

use std::collections::HashSet;
use std::sync::Arc;

use protocol::alert::{AlertRaised, AlertType, Severity, Zone};
use protocol::session::Attached;
use protocol::{Body, Event, FetchRequest, SeqRange};
use ractor::{Actor, ActorRef};
use topology::NodeId;

use super::seal_fetch;
use crate::runtime::store::{StoreActor, StoreArgs, StoreMsg, read_fetch};
use crate::storage::mem::MemStorage;

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn alert(n: u64) -> Body {
    Body::Alert(AlertRaised {
        camera: format!("cam-{n:02}"),
        canteen: "main".into(),
        zone: Zone::Cooking,
        alert_type: AlertType::NoChefHat,
        severity: Severity::General,
        detected_at_ms: 1_700_000_000_000 + n,
        confidence_permille: 900,
        snapshot: String::new(),
        repeat_count: 1,
    })
}

async fn store(me: NodeId, storage: Arc<MemStorage>) -> ActorRef<StoreMsg> {
    let args = StoreArgs {
        me,
        storage,
        clock: Arc::new(crate::clock::SystemClock::new()),
        priority: Default::default(),
        on_revoked: None,
        registry_written: Default::default(),
        seal_keys: super::SealKeys::simulated(5, me),
        own_cert: None,
    };
    let (store, _) = Actor::spawn(None, StoreActor, args).await.unwrap();
    // A fresh store waits to hear what an ancestor holds of its own events: nothing.
    store.cast(StoreMsg::AncestorHolds { own_seq: 0 }).unwrap();
    store
}

async fn write(store: &ActorRef<StoreMsg>, me: NodeId, n: u64) {
    let items = (0..n).map(|i| (me, alert(i))).collect();
    ractor::call!(store, |reply| StoreMsg::Append { items, by: None, reply }).unwrap().unwrap();
}

/// What the school sends the county for `(after, upto]` (sealed, as a link fetches it).
fn fetch(storage: &MemStorage, county: NodeId, range: SeqRange, fresh: bool) -> (Vec<SeqRange>, Vec<Event>, Attached) {
    let req = FetchRequest { id: 1, ranges: vec![range], per_range_max: 100, total_max: 512, fresh, sealed: true };
    let (covered, events) = read_fetch(storage, county, &req).unwrap();
    seal_fetch(storage, &req, covered, events, &mut HashSet::new()).unwrap()
}

async fn apply(
    store: &ActorRef<StoreMsg>,
    (ranges, events, attached): (Vec<SeqRange>, Vec<Event>, Attached),
) -> Result<Vec<(NodeId, u64)>, String> {
    ractor::call!(store, |reply| StoreMsg::Apply { ranges, events, attached, reply }).unwrap()
}

#[tokio::test]
async fn a_schools_sealed_writes_pass_its_county_in_pieces_and_altered_ones_do_not() {
    let (county, school) = (id("130102"), id("130102-S0001"));
    let school_disk = Arc::new(MemStorage::new());
    let school_store = store(school, school_disk.clone()).await;
    // Three writes: 1 event, 300 (two seals), 2.
    write(&school_store, school, 1).await;
    write(&school_store, school, 300).await;
    write(&school_store, school, 2).await;
    let county_store = store(county, Arc::new(MemStorage::new())).await;

    // A bulk fetch of everything, 100 events a range at most: cut back to the seal at 1, the
    // first write's end (the next one ends at 257).
    let all = SeqRange { origin: school, after: 0, upto: 303 };
    let first = fetch(&school_disk, county, all, false);
    assert_eq!(first.0, vec![SeqRange { origin: school, after: 0, upto: 1 }]);
    assert_eq!(first.2.seals.len(), 1);
    assert_eq!(apply(&county_store, first).await.unwrap(), vec![(school, 1)]);

    // Next: no seal within 100 events, so the first range runs on to the seal at 257.
    let next = fetch(&school_disk, county, SeqRange { origin: school, after: 1, upto: 303 }, false);
    assert_eq!(next.0, vec![SeqRange { origin: school, after: 1, upto: 257 }]);
    assert_eq!(next.1.len(), 256);

    // Altered on the way: refused, nothing written.
    let mut altered = next.clone();
    altered.1[10].hlc.logical += 1;
    let why = apply(&county_store, altered).await.unwrap_err();
    assert!(why.contains("哈希链不符"), "{why}");
    // The range claimed shorter under the same seal, or with an event left out: refused.
    let mut short = next.clone();
    short.1.pop();
    short.0[0].upto = 256;
    let why = apply(&county_store, short).await.unwrap_err();
    assert!(why.contains("没有源头签名"), "{why}");
    let mut holed = next.clone();
    holed.1.remove(40);
    let why = apply(&county_store, holed).await.unwrap_err();
    assert!(why.contains("不全"), "{why}");
    // Under another node's key: refused.
    let mut resigned = next.clone();
    let keys = super::SealKeys::simulated(5, county);
    let m = protocol::seal::seal_message(
        school,
        resigned.2.seals[0].after,
        resigned.2.seals[0].upto,
        &resigned.2.seals[0].head_after,
        &resigned.2.seals[0].head_upto,
    );
    resigned.2.seals[0].signature = keys.signer.sign(&m);
    let why = apply(&county_store, resigned).await.unwrap_err();
    assert!(why.contains("签名验证失败"), "{why}");

    // The genuine range is taken; sent again, it is held already and taken as a duplicate.
    assert_eq!(apply(&county_store, next.clone()).await.unwrap(), vec![(school, 257)]);
    assert_eq!(apply(&county_store, next).await.unwrap(), vec![(school, 257)]);

    // The last write on the priority lane: exactly its seal's span, taken as an island above a
    // gap, then the gap filled by bulk.
    let fresh = fetch(&school_disk, county, SeqRange { origin: school, after: 301, upto: 303 }, true);
    assert_eq!(fresh.0, vec![SeqRange { origin: school, after: 301, upto: 303 }]);
    assert_eq!(apply(&county_store, fresh).await.unwrap(), vec![(school, 257)]);
    // A fresh range not starting at a seal is not sent on that lane.
    assert!(fetch(&school_disk, county, SeqRange { origin: school, after: 258, upto: 303 }, true).0.is_empty());
    let rest = fetch(&school_disk, county, SeqRange { origin: school, after: 257, upto: 303 }, false);
    assert_eq!(rest.0, vec![SeqRange { origin: school, after: 257, upto: 303 }], "over the island, to its seal");
    assert_eq!(apply(&county_store, rest).await.unwrap(), vec![(school, 303)]);
}

/// A county with no head for a school (its store new or wiped) receives a range that starts
/// inside one of the school's seals (the school dropped what lies below by retention): from the
/// school itself, over its own link, it is taken from the seal; from a relay it is refused.
#[tokio::test]
async fn a_range_without_a_held_head_is_taken_only_from_its_origin() {
    let (county, school, relay) = (id("130102"), id("130102-S0001"), id("1301"));
    let school_disk = Arc::new(MemStorage::new());
    let school_store = store(school, school_disk.clone()).await;
    write(&school_store, school, 20).await;
    let from_school = || {
        let mut f = fetch(&school_disk, county, SeqRange { origin: school, after: 12, upto: 20 }, false);
        f.2.from = Some(school);
        f
    };
    let taken = from_school();
    assert_eq!(taken.0, vec![SeqRange { origin: school, after: 12, upto: 20 }]);
    assert_eq!(taken.2.seals[0].after, 0, "one seal spans the whole write");

    let mut relayed = from_school();
    relayed.2.from = Some(relay);
    let county_store = store(county, Arc::new(MemStorage::new())).await;
    let why = apply(&county_store, relayed).await.unwrap_err();
    assert!(why.contains("对不上"), "{why}");
    let mut altered = from_school();
    altered.2.seals[0].head_upto.0[0] ^= 1;
    let why = apply(&county_store, altered).await.unwrap_err();
    assert!(why.contains("签名验证失败"), "{why}");
    assert_eq!(apply(&county_store, taken).await.unwrap(), vec![(school, 0)], "an island above a gap");
    // The chain goes on from the seal's head: the school's next write is checked from there.
    write(&school_store, school, 3).await;
    let next = fetch(&school_disk, county, SeqRange { origin: school, after: 20, upto: 23 }, false);
    let mut forged = next.clone();
    forged.1[1].hlc.logical += 1;
    assert!(apply(&county_store, forged).await.unwrap_err().contains("哈希链不符"));
    assert_eq!(apply(&county_store, next).await.unwrap(), vec![(school, 0)]);
}
