//! Authenticated peers behaving badly: a real school certificate (its node stopped) in the hands of
//! a program that speaks the protocol wrongly on purpose. Events of another school's origin, an
//! event scoped above the school, a range claimed without its events, acks for batches never sent
//! or replayed in a flood, and a hello replayed with old cursors: each is refused, counted and
//! logged; the link is closed where the protocol is broken; nothing is applied; the county goes on
//! serving its other schools.

use std::net::SocketAddr;
use std::time::Duration;

use node::runtime::link::LinkState;
use node::tls::NodeCredentials;
use node::transport::quic::QuicTransport;
use node::transport::{Connection, Transport};
use protocol::event::{Body, Directive};
use protocol::wire::{Ack, Batch, Frame, Hello, PROTOCOL_VERSION, SeqRange, decode_frame, encode_frame};
use topology::NodeId;

use crate::{alert_event, alert_reaches_province, eventually, federation};

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// A link to `parent` as the holder of `creds`, with the hello exchanged: the parent's cursors
/// from its hello-ack.
pub(crate) async fn linked(
    creds: &NodeCredentials,
    parent: NodeId,
    addr: SocketAddr,
    cursors: Vec<(NodeId, u64)>,
) -> (QuicTransport, Connection, Vec<(NodeId, u64)>) {
    let t = QuicTransport::bind("127.0.0.1:0".parse().unwrap(), creds).unwrap();
    let mut conn = t.dial(parent, addr).await.unwrap();
    let hello = Frame::Hello(Hello { version: PROTOCOL_VERSION, node: creds.node(), cursors });
    conn.sender.send(encode_frame(&hello).unwrap()).await.unwrap();
    loop {
        let frame =
            tokio::time::timeout(Duration::from_secs(10), conn.receiver.recv()).await.unwrap().unwrap().unwrap();
        if let Ok(Frame::HelloAck(h)) = decode_frame(&frame) {
            return (t, conn, h.cursors);
        }
    }
}

/// Sends `frames` and returns why the county closed the link, or `None` if it still answers
/// after a second (anything it sends in between is read and dropped).
async fn send_and_watch(conn: &mut Connection, frames: Vec<Frame>) -> Option<String> {
    for f in frames {
        let bytes = encode_frame(&f).unwrap();
        let lane = if matches!(f, Frame::Batch(_)) { &mut conn.bulk } else { &mut conn.sender };
        if lane.send(bytes).await.is_err() {
            break;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        match tokio::time::timeout_at(deadline, conn.receiver.recv()).await {
            Err(_) => return None,
            Ok(Ok(Some(frame))) => {
                if let Ok(Frame::Goodbye { reason }) = decode_frame(&frame) {
                    return Some(reason);
                }
            }
            Ok(Ok(None)) => return Some("closed".into()),
            Ok(Err(e)) => return Some(e.to_string()),
        }
    }
}

#[test]
fn authenticated_peers_that_break_the_rules_are_refused_counted_logged_and_nothing_is_applied() {
    let (_dir, mut cluster) = federation(1, 1, 3);
    let county = id("130102");
    let (good, bad) = (id("130102-S0001"), id("130102-S0003"));
    cluster.stop(bad).unwrap();
    let addr = cluster.topology.get(county).unwrap().quic;
    let creds = NodeCredentials::load(&cluster.cert_dir, bad).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let held =
        |origin: NodeId| cluster.client(county).events(1000).unwrap().iter().filter(|e| e.origin == origin).count();
    let link = |cluster: &harness::cluster::Cluster| {
        cluster.status(county).unwrap().children.into_iter().find(|c| c.peer == bad).unwrap()
    };
    let (good_before, bad_before) = (held(good), held(bad));
    let cursor = bad_before as u64;

    let mut report = Vec::new();
    rt.block_on(async {
        // 1. Events of another school's origin: the link is closed.
        let (_t, mut conn, _) = linked(&creds, county, addr, vec![]).await;
        let forged = Batch {
            id: 1,
            ranges: vec![SeqRange { origin: good, after: 900, upto: 901 }],
            events: vec![alert_event(good, 901)],
            ..Default::default()
        };
        let why = send_and_watch(&mut conn, vec![Frame::Batch(forged)]).await;
        report.push(format!("another school's origin: {why:?}"));
        assert!(why.as_deref().unwrap_or_default().contains("may not send events of origin 130102-S0001"), "{why:?}");

        // 2. An event of its own origin scoped above itself (a directive to its county): refused
        //    with its batch (its range would be relayed up with a hole), counted, the link closed.
        let mut directive = alert_event(bad, cursor + 1);
        directive.scope = county;
        directive.body = Body::Directive(Directive { title: "假通知".into(), text: "forged".into() });
        let (_t, mut conn, _) = linked(&creds, county, addr, vec![]).await;
        let batch = Batch {
            id: 1,
            ranges: vec![SeqRange { origin: bad, after: cursor, upto: cursor + 1 }],
            events: vec![directive],
            ..Default::default()
        };
        let why = send_and_watch(&mut conn, vec![Frame::Batch(batch)]).await;
        report.push(format!("an event scoped above the school: {why:?}"));
        assert!(why.as_deref().unwrap_or_default().contains("which breaks the rules"), "{why:?}");

        // 3. A range claimed without its events (it would leave a hole never filled): closed.
        let (_t, mut conn, _) = linked(&creds, county, addr, vec![]).await;
        let claim = Batch {
            id: 2,
            ranges: vec![SeqRange { origin: bad, after: cursor + 1, upto: cursor + 1000 }],
            events: vec![alert_event(bad, cursor + 2)],
            ..Default::default()
        };
        let why = send_and_watch(&mut conn, vec![Frame::Batch(claim)]).await;
        report.push(format!("a range without its events: {why:?}"));
        assert!(why.as_deref().unwrap_or_default().contains("a range sent up carries every event"), "{why:?}");

        // 4. Acks for a batch the county never sent: closed.
        let (_t, mut conn, _) = linked(&creds, county, addr, vec![]).await;
        let acks = (0..500).map(|i| Frame::Ack(Ack { id: 1_000 + i, cursors: vec![(county, u64::MAX)] })).collect();
        let why = send_and_watch(&mut conn, acks).await;
        report.push(format!("an ack flood: {why:?}"));
        assert!(why.as_deref().unwrap_or_default().contains("which was never sent"), "{why:?}");

        // 5. A hello replayed with old cursors on a live link: nothing is sent twice, the link stays.
        let (_t, mut conn, _) = linked(&creds, county, addr, vec![]).await;
        let replay = Frame::Hello(Hello { version: PROTOCOL_VERSION, node: bad, cursors: vec![(county, 0)] });
        let why = send_and_watch(&mut conn, vec![replay.clone(), replay]).await;
        report.push(format!("a replayed hello: {why:?}"));
        assert_eq!(why, None);
    });
    eprintln!("{}", report.join("\n"));

    // Counted and logged at the county, and nothing of it applied.
    let st = eventually(Duration::from_secs(10), "the county counting the broken links", || {
        let l = link(&cluster);
        (l.protocol_errors >= 4).then_some(l)
    });
    assert!(st.rejected >= 1, "the forged directive was counted: {st:?}");
    assert!(st.state != LinkState::Up || st.protocol_errors >= 4);
    let log = std::fs::read_to_string(cluster.log_path(county)).unwrap();
    for needle in [
        "may not send events of origin",
        "event rejected",
        "a range sent up carries every event",
        "which was never sent",
    ] {
        assert!(log.contains(needle), "the county logs {needle:?}");
    }
    assert_eq!(held(good), good_before, "nothing of another school's origin was applied");
    assert_eq!(held(bad), bad_before, "nothing of the forged batches was applied");
    let events = cluster.client(county).events(1000).unwrap();
    assert!(!events.iter().any(|e| e.origin == bad && e.kind == "directive"), "the forged directive is not held");

    // The county still serves its real schools.
    alert_reaches_province(&cluster, good, "the good school's alert at the province");
}
