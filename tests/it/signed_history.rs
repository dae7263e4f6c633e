//! The signed history, between real nodes: a county that alters, replaces, forges or re-signs a
//! school's events on their way up is refused by the city (each refusal counted, the link closed
//! with the reason, nothing of the batch applied), while the school's genuine seals, learned
//! with its certificate chain, are taken; and in a running federation every school's events reach
//! the province checked at each level with the keys of real certificates.
//!
//! The test holds the county's certificate (its node stopped) and plays the county; it signs the
//! genuine seals with the school's own key, as the school would.

use std::time::Duration;

use node::tls::NodeCredentials;
use node::transport::Connection;
use protocol::event::Event;
use protocol::seal::{Seal, genesis, seal_run};
use protocol::wire::{Batch, Frame, OriginCert, SeqRange, decode_frame, encode_frame};
use topology::NodeId;

use crate::bad_peers::linked;
use crate::{alert_event, alert_reaches_province, federation};

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// Sends `batch` and returns why the city closed the link, or `None` with the ack's cursors when
/// it took the batch (anything else it sends is read and dropped).
async fn send_batch(conn: &mut Connection, batch: Batch) -> Result<Vec<(NodeId, u64)>, String> {
    conn.bulk.send(encode_frame(&Frame::Batch(batch)).unwrap()).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, conn.receiver.recv()).await {
            Err(_) => return Err("no answer in 10 s".into()),
            Ok(Ok(Some(frame))) => match decode_frame(&frame) {
                Ok(Frame::Goodbye { reason }) => return Err(reason),
                Ok(Frame::Ack(ack)) => return Ok(ack.cursors),
                _ => {}
            },
            Ok(Ok(None)) => return Err("closed".into()),
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
}

fn batch(range: SeqRange, events: Vec<Event>, seal: Seal, certs: Vec<OriginCert>) -> Batch {
    Batch { id: 1, ranges: vec![range], events, seals: vec![seal], certs }
}

#[test]
fn a_relay_can_neither_alter_nor_forge_a_schools_events_and_genuine_seals_pass() {
    let (_dir, mut cluster) = federation(1, 1, 2);
    let (city, county, school) = (id("1301"), id("130102"), id("130102-S0002"));
    // Every level checks with real keys: an alert from the other school reaches the province.
    alert_reaches_province(&cluster, id("130102-S0001"), "an alert before the test");
    let province = cluster.status(id("13")).unwrap().store;
    assert!(province.seal_checks > 0 && province.seals_refused == 0, "{province:?}");

    cluster.stop(county).unwrap();
    cluster.stop(school).unwrap();
    let addr = cluster.topology.get(city).unwrap().quic;
    let county_creds = NodeCredentials::load(&cluster.cert_dir, county).unwrap();
    let school_creds = NodeCredentials::load(&cluster.cert_dir, school).unwrap();
    let (school_keys, school_chain) = node::runtime::seal_keys::seal_keys(&school_creds, &[]).unwrap();
    let (county_keys, county_chain) = node::runtime::seal_keys::seal_keys(&county_creds, &[]).unwrap();
    let held = |cluster: &harness::cluster::Cluster| {
        cluster.client(city).events(1000).unwrap().iter().filter(|e| e.origin == school).count()
    };
    let before = held(&cluster);
    let refused_before = cluster.status(city).unwrap().store.seals_refused;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut report = Vec::new();
    rt.block_on(async {
        let (_t, mut conn, cursors) = linked(&county_creds, city, addr, vec![]).await;
        let c = cursors.iter().find(|(o, _)| *o == school).map_or(0, |x| x.1);
        // The school's next three events, sealed by the school (a chain started again at its
        // cursor, as a school whose store was restored does).
        let events: Vec<Event> = (c + 1..=c + 3).map(|seq| alert_event(school, seq)).collect();
        let (seals, _) = seal_run(school, genesis(school, c), &events, school_keys.signer.as_ref()).unwrap();
        let seal = seals.last().unwrap().clone();
        let range = SeqRange { origin: school, after: c, upto: c + 3 };
        let certs = vec![OriginCert { origin: school, chain: school_chain.clone() }];

        // 1. One event altered under the school's seal.
        let mut altered = events.clone();
        altered[1].hlc.logical += 1;
        let why = send_batch(&mut conn, batch(range, altered, seal.clone(), certs.clone())).await;
        report.push(format!("altered: {why:?}"));
        assert!(why.as_ref().unwrap_err().contains("哈希链不符"), "{why:?}");

        // 2. One event replaced by the relay's own.
        let (_t, mut conn, _) = linked(&county_creds, city, addr, vec![]).await;
        let mut replaced = events.clone();
        replaced[2] = alert_event(school, c + 3);
        replaced[2].hlc.wall_ms += 7;
        let why = send_batch(&mut conn, batch(range, replaced, seal.clone(), certs.clone())).await;
        report.push(format!("replaced: {why:?}"));
        assert!(why.as_ref().unwrap_err().contains("哈希链不符"), "{why:?}");

        // 3. Sealed by the county with its own key, under the school's name.
        let (_t, mut conn, _) = linked(&county_creds, city, addr, vec![]).await;
        let (forged, _) = seal_run(school, genesis(school, c), &events, county_keys.signer.as_ref()).unwrap();
        let why =
            send_batch(&mut conn, batch(range, events.clone(), forged.last().unwrap().clone(), certs.clone())).await;
        report.push(format!("re-signed by the relay: {why:?}"));
        assert!(why.as_ref().unwrap_err().contains("签名验证失败"), "{why:?}");

        // 4. The county's own certificate passed off as the school's.
        let (_t, mut conn, _) = linked(&county_creds, city, addr, vec![]).await;
        let posing = vec![OriginCert { origin: school, chain: county_chain.clone() }];
        let why = send_batch(&mut conn, batch(range, events.clone(), forged.last().unwrap().clone(), posing)).await;
        report.push(format!("another node's certificate: {why:?}"));
        assert!(why.as_ref().unwrap_err().contains("证书无效"), "{why:?}");

        // 5. The genuine events under the school's seal: taken.
        let (_t, mut conn, _) = linked(&county_creds, city, addr, vec![]).await;
        let acked = send_batch(&mut conn, batch(range, events.clone(), seal.clone(), certs.clone())).await;
        report.push(format!("genuine: {acked:?}"));
        assert_eq!(acked.unwrap(), vec![(school, c + 3)]);

        // 6. Events the school never wrote, after them, sealed by the county: refused, though
        //    the city now knows the school's key.
        let more: Vec<Event> = (c + 4..=c + 5).map(|seq| alert_event(school, seq)).collect();
        let (forged, _) =
            seal_run(school, seals.last().unwrap().head_upto, &more, county_keys.signer.as_ref()).unwrap();
        let next = SeqRange { origin: school, after: c + 3, upto: c + 5 };
        let mut b = batch(next, more, forged.last().unwrap().clone(), vec![]);
        b.id = 2;
        let why = send_batch(&mut conn, b).await;
        report.push(format!("made up after genuine ones: {why:?}"));
        assert!(why.as_ref().unwrap_err().contains("签名验证失败"), "{why:?}");
    });
    eprintln!("{}", report.join("\n"));
    assert_eq!(held(&cluster), before + 3, "only the genuine three were applied");
    let status = cluster.status(city).unwrap();
    assert_eq!(status.store.seals_refused - refused_before, 5, "each refusal counted");
    // The operator sees it in `topology show`.
    let shown = client::render::render_status(&status, node::clock::unix_ms());
    assert!(shown.contains("签名校验不通过"), "{shown}");
}
