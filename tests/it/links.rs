//! Who may link, and what a bad peer can do: a foreign CA, a school posing as a county, a node
//! that is not the listener's child, and garbage on the wire are each refused with a reason, and
//! the node goes on serving its other links.

use std::net::SocketAddr;
use std::time::Duration;

use node::runtime::link::LinkState;
use node::tls::{self, NodeCredentials};
use node::transport::quic::QuicTransport;
use node::transport::{Transport, TransportError};
use topology::{NodeId, Tier};

use crate::{alert_reaches_province, eventually, federation};

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Dials `peer` at `addr` as the holder of `creds`, says hello as `claim`, and returns the first thing the link yields:
/// `Ok(frame)` or the error that ended it.
async fn dial_and_listen(
    creds: &NodeCredentials,
    claim: NodeId,
    peer: NodeId,
    addr: SocketAddr,
) -> Result<Vec<u8>, TransportError> {
    let t = QuicTransport::bind("127.0.0.1:0".parse().unwrap(), creds)?;
    let mut conn = t.dial(peer, addr).await?;
    // Say hello in the real protocol so the listener reaches its decision.
    let hello = protocol::wire::Frame::Hello(protocol::wire::Hello {
        version: protocol::wire::PROTOCOL_VERSION,
        node: claim,
        cursors: vec![],
    });
    conn.sender.send(protocol::wire::encode_frame(&hello).unwrap()).await?;
    match tokio::time::timeout(Duration::from_secs(10), conn.receiver.recv()).await {
        Ok(Ok(Some(frame))) => match protocol::wire::decode_frame(&frame) {
            // The listener said goodbye: that is its refusal, with its reason.
            Ok(protocol::wire::Frame::Goodbye { reason }) => Err(TransportError::Closed(reason)),
            _ => Ok(frame),
        },
        Ok(Ok(None)) => Err(TransportError::Closed("clean close".into())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(TransportError::Io("no answer within 10 s".into())),
    }
}

fn refusals(cluster: &harness::cluster::Cluster, node: NodeId) -> (u64, String) {
    let st = cluster.status(node).unwrap();
    (st.refused, st.last_refusal.unwrap_or_default())
}

#[test]
fn impostors_and_strangers_are_refused_with_a_logged_reason() {
    let (dir, cluster) = federation(1, 2, 1);
    let city = id("1301");
    let (county_a, county_b) = (id("130102"), id("130104"));
    let school_a = id("130102-S0001");
    let school_b = id("130104-S0001");
    let addr = |n: NodeId| cluster.topology.get(n).unwrap().quic;
    let rt = runtime();

    // 1. A school's (valid) certificate used to pose as its county towards the city: the city
    //    takes the identity from the certificate, so the claim in the hello is refused.
    let creds_a = NodeCredentials::load(&cluster.cert_dir, school_a).unwrap();
    let err = rt.block_on(dial_and_listen(&creds_a, county_a, city, addr(city))).expect_err("posing must fail");
    assert!(err.to_string().contains("hello claims to be 130102 but the certificate says 130102-S0001"), "{err}");
    let log = std::fs::read_to_string(cluster.log_path(city)).unwrap();
    assert!(log.contains("certificate says 130102-S0001"), "the city logs why");

    // 2. A real node that is not in the listener's subtree (another county's school) is refused
    //    before any link exists, and counted.
    let creds_b = NodeCredentials::load(&cluster.cert_dir, school_b).unwrap();
    let err = rt.block_on(dial_and_listen(&creds_b, school_b, county_a, addr(county_a))).expect_err("not its child");
    assert!(err.to_string().contains("130104-S0001 is not a child of 130102"), "{err}");
    let (n, last) = refusals(&cluster, county_a);
    assert_eq!(n, 1);
    assert!(last.contains("130104-S0001 is not a child of 130102"), "{last}");
    assert!(std::fs::read_to_string(cluster.log_path(county_a)).unwrap().contains("connection refused"));

    // 3. A certificate from another CA, naming a node that does exist: the TLS handshake fails.
    let foreign = dir.path().join("foreign-ca");
    tls::ca_init(&foreign).unwrap();
    tls::ca_issue(&foreign, id("130104-S0002")).unwrap();
    let creds_f = NodeCredentials::load(&foreign, id("130104-S0002")).unwrap();
    let err =
        rt.block_on(dial_and_listen(&creds_f, id("130104-S0002"), county_b, addr(county_b))).expect_err("foreign CA");
    assert!(matches!(err, TransportError::Handshake(_) | TransportError::Closed(_)), "{err}");
    let (n, last) = eventually(Duration::from_secs(5), "the county to count the failed handshake", || {
        let r = refusals(&cluster, county_b);
        (r.0 >= 1).then_some(r)
    });
    assert_eq!(n, 1);
    assert!(last.contains("handshake"), "{last}");

    // The real links were never disturbed.
    for n in [county_a, county_b] {
        let st = cluster.status(n).unwrap();
        assert_eq!(st.parent.unwrap().state, LinkState::Up);
        assert!(st.children.iter().all(|c| c.state == LinkState::Up), "{n}: {:?}", st.children);
    }
}

/// Opens a raw QUIC connection as `creds` and writes `bytes` on its stream; returns the reason the
/// listener gave when it closed the connection.
async fn send_raw(creds: &NodeCredentials, peer: NodeId, addr: SocketAddr, bytes: Vec<u8>, finish: bool) -> String {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(tls::client_config(creds).unwrap());
    let conn = endpoint.connect(addr, &peer.dns_name()).unwrap().await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&bytes).await.unwrap();
    if finish {
        send.finish().unwrap();
    }
    let reason = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("listener closes the link");
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => String::from_utf8_lossy(&c.reason).into_owned(),
        other => other.to_string(),
    }
}

#[test]
fn bad_frames_close_only_that_link_and_the_node_goes_on() {
    // Three schools in the topology, two running: the third's certificate plays the bad peer.
    let (_dir, mut cluster) = federation(1, 1, 3);
    let county = id("130102");
    let bad = id("130102-S0003");
    cluster.stop(bad).unwrap();
    let addr = cluster.topology.get(county).unwrap().quic;
    let creds = NodeCredentials::load(&cluster.cert_dir, bad).unwrap();
    let rt = runtime();
    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\xff\xfegarbage");
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(&[0u8; 10]);
    let cases = [
        ("garbage bytes", garbage, false, "bad frame"),
        ("oversized length prefix", u32::MAX.to_be_bytes().to_vec(), false, "exceeds"),
        ("truncated frame", truncated, true, "truncated"),
    ];
    for (what, bytes, finish, expect) in cases {
        let reason = rt.block_on(send_raw(&creds, county, addr, bytes, finish));
        assert!(reason.contains(expect), "{what}: close reason {reason:?} lacks {expect:?}");
    }
    let log = std::fs::read_to_string(cluster.log_path(county)).unwrap();
    assert!(log.contains("bad frame") || log.contains("link lost"), "the county logs why");

    // The county still serves its real children and its parent.
    let st = cluster.status(county).unwrap();
    assert_eq!(st.parent.as_ref().unwrap().state, LinkState::Up);
    for s in [id("130102-S0001"), id("130102-S0002")] {
        let l = st.children.iter().find(|c| c.peer == s).unwrap();
        assert_eq!(l.state, LinkState::Up, "{s} link survived");
    }
    alert_reaches_province(&cluster, id("130102-S0001"), "the alert at the province after the bad frames");
    assert!(cluster.ids().iter().all(|n| n.tier() != Tier::School || *n == bad || cluster.is_running(*n)));
}

/// A second connection presenting a linked school's own certificate (a copied key, or a second
/// copy of the school started by mistake) does not take the school's working link down unless it
/// says a proper hello: garbage, a hello in another node's name, or silence each leave the live
/// link as it was, and the county counts and logs the attempts.
#[test]
fn a_second_connection_replaces_a_live_link_only_after_its_hello() {
    let (_dir, cluster) = federation(1, 1, 1);
    let county = id("130102");
    let school = id("130102-S0001");
    let addr = cluster.topology.get(county).unwrap().quic;
    let creds = NodeCredentials::load(&cluster.cert_dir, school).unwrap();
    let link = |st: &node::runtime::root::NodeStatus| st.children.iter().find(|c| c.peer == school).cloned().unwrap();
    let before = link(&cluster.status(county).unwrap());
    assert_eq!(before.state, LinkState::Up);
    let rt = runtime();

    // Garbage on a connection with the school's valid certificate.
    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\xff\xfegarbage");
    let reason = rt.block_on(send_raw(&creds, county, addr, garbage, false));
    assert!(reason.contains("bad frame"), "{reason}");
    // A hello in the name of another node.
    let err = rt.block_on(dial_and_listen(&creds, id("130102-S0002"), county, addr)).expect_err("a false hello");
    assert!(err.to_string().contains("certificate says 130102-S0001"), "{err}");
    // A connection that opens its stream and then says nothing for a second.
    rt.block_on(async {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(tls::client_config(&creds).unwrap());
        let conn = endpoint.connect(addr, &county.dns_name()).unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        // A stream appears at the listener with its first bytes: a length prefix, no frame yet.
        send.write_all(&100u32.to_be_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        conn.close(0u32.into(), b"bye");
    });

    let st = eventually(Duration::from_secs(10), "the county counting three refused replacements", || {
        let st = cluster.status(county).ok()?;
        (st.replacements_refused >= 3).then_some(st)
    });
    let after = link(&st);
    assert_eq!(after.state, LinkState::Up, "the school's link stayed up: {after:?}");
    assert_eq!(after.since_ms, before.since_ms, "the school's link was never down");
    assert_eq!(after.reconnects, before.reconnects);
    assert!(st.last_refusal.unwrap_or_default().contains("原连接保留"));
    let log = std::fs::read_to_string(cluster.log_path(county)).unwrap();
    assert!(log.contains("a second connection ended before its hello"), "the county logs it");

    // The live link still carries the school's alerts.
    alert_reaches_province(&cluster, school, "the school's alert at the province");
}
