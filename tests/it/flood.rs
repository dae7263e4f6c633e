//! Floods of incoming handshakes against a county, and a school below it that restarts in the
//! middle of each: abandoned QUIC Initials from one address, the same from fifty addresses that
//! never answer (what spoofed sources look like), and full TLS handshakes with a
//! certificate from another CA, 64 at a time. Every flood stays on loopback and is bounded in count and time.
//! The school must link again within 2 s while the flood goes on, and the county must say what
//! it turned away.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use node::runtime::link::LinkState;
use node::tls::{self, NodeCredentials};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use topology::NodeId;

use crate::{eventually, federation};

/// What the issue asks of a legitimate child under a flood.
const LINK_WITHIN: Duration = Duration::from_secs(2);
/// How long each flood runs at most (it is stopped as soon as the school has linked).
const FLOOD_FOR: Duration = Duration::from_secs(12);
/// How long a flood runs before the school restarts: long enough to have taken every slot the
/// county had before this issue (64 handshakes held up to 10 s each).
const FLOOD_HEAD_START: Duration = Duration::from_millis(1500);

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn loopback(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

/// A quinn client config trusting `roots` and presenting `auth` (a chain and its key), if any.
pub(crate) fn rustls_client(
    roots: &[CertificateDer<'static>],
    auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(store);
    let mut config = match auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"mingchu/1".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(config).unwrap();
    quinn::ClientConfig::new(Arc::new(quic))
}

/// The destination connection id of a QUIC long-header Initial, if `packet` is one.
fn initial_dcid(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    // Long header, fixed bit, packet type 0 (Initial).
    if first & 0xf0 != 0xc0 {
        return None;
    }
    let len = usize::from(*packet.get(5)?);
    packet.get(6..6 + len)
}

/// Real QUIC Initials, each opening a new connection: made by a quinn client aimed at a socket
/// of ours, then sent on to `target` from `sources` in turn. The sources never answer (not even
/// a Retry), so every Initial is an abandoned handshake. Returns the Initials sent.
async fn abandoned_initials(target: SocketAddr, sources: Vec<IpAddr>, per_second: u32, stop: Arc<AtomicBool>) -> u64 {
    let capture = tokio::net::UdpSocket::bind((loopback(0, 0, 3), 0)).await.unwrap();
    let capture_addr = capture.local_addr().unwrap();
    let mut senders = Vec::new();
    for ip in sources {
        senders.push(tokio::net::UdpSocket::bind((ip, 0)).await.unwrap());
    }
    let mut client = quinn::Endpoint::client(SocketAddr::new(loopback(0, 0, 3), 0)).unwrap();
    client.set_default_client_config(rustls_client(&[], None));
    let mut connecting = Vec::new();
    let mut seen = HashSet::new();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + FLOOD_FOR;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tick.tick() => connecting.push(client.connect(capture_addr, "flood.invalid").unwrap()),
            got = capture.recv_from(&mut buf) => {
                let (n, _) = got.unwrap();
                if let Some(dcid) = initial_dcid(&buf[..n])
                    && seen.insert(dcid.to_vec())
                {
                    let from = &senders[sent as usize % senders.len()];
                    from.send_to(&buf[..n], target).await.unwrap();
                    sent += 1;
                }
            }
        }
    }
    drop(connecting);
    sent
}

/// Full TLS handshakes from one address, `in_flight` at a time, up to `total`: the client trusts
/// the real CA (so it goes all the way) but presents a certificate of another CA.
async fn full_handshakes(
    target: SocketAddr,
    server: NodeId,
    config: quinn::ClientConfig,
    total: u64,
    in_flight: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let mut endpoint = quinn::Endpoint::client(SocketAddr::new(loopback(0, 0, 4), 0)).unwrap();
    endpoint.set_default_client_config(config);
    let mut running = tokio::task::JoinSet::new();
    let deadline = Instant::now() + FLOOD_FOR;
    let mut started = 0;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && started < total {
        while running.len() < in_flight && started < total {
            let Ok(connecting) = endpoint.connect(target, &server.dns_name()) else { break };
            started += 1;
            running.spawn(async move {
                // The server refuses the certificate: the client sees it at once, or on its
                // first read (TLS 1.3). Either way the handshake was done in full.
                if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(3), connecting).await {
                    let _ = tokio::time::timeout(Duration::from_secs(3), conn.closed()).await;
                }
            });
        }
        if running.join_next().await.is_some() {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
    running.abort_all();
}

/// Kills the school, starts it again and returns how long until the county has it linked.
fn restart_and_time_link(cluster: &mut harness::cluster::Cluster, county: NodeId, school: NodeId) -> Duration {
    cluster.kill(school).unwrap();
    let since_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let start = Instant::now();
    cluster.start(school).unwrap();
    eventually(Duration::from_secs(30), "the school linked again at its county", || {
        let st = cluster.status(county).ok()?;
        let link = st.children.iter().find(|c| c.peer == school)?;
        (link.state == LinkState::Up && link.since_ms >= since_ms).then_some(())
    });
    start.elapsed()
}

#[test]
fn children_link_within_two_seconds_while_their_parent_is_flooded() {
    let (dir, mut cluster) = federation(1, 1, 1);
    let county = id("130102");
    let school = id("130102-S0001");
    let target = cluster.topology.get(county).unwrap().quic;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // The attacker's certificate: a node certificate from a CA of its own.
    let foreign = dir.path().join("foreign-ca");
    tls::ca_init(&foreign).unwrap();
    let (cert_path, key_path) = tls::ca_issue(&foreign, school).unwrap();
    NodeCredentials::load(&foreign, school).unwrap();
    let real_ca = CertificateDer::from_pem_file(cluster.ca_cert_path()).unwrap();
    let foreign_auth =
        (CertificateDer::from_pem_file(&cert_path).unwrap(), PrivateKeyDer::from_pem_file(&key_path).unwrap());

    let mut report = Vec::new();
    for flood in
        ["abandoned Initials from one address", "abandoned Initials from 50 addresses", "full handshakes, 64 at a time"]
    {
        let before = cluster.status(county).unwrap().turned_away;
        let stop = Arc::new(AtomicBool::new(false));
        let handshakes = Arc::new(AtomicU64::new(0));
        let task = match flood {
            "abandoned Initials from one address" => {
                rt.spawn(abandoned_initials(target, vec![loopback(0, 0, 2)], 300, stop.clone()))
            }
            "abandoned Initials from 50 addresses" => {
                let sources = (1..=50).map(|i| loopback(0, 2, i)).collect();
                rt.spawn(abandoned_initials(target, sources, 300, stop.clone()))
            }
            _ => {
                let config = rustls_client(
                    std::slice::from_ref(&real_ca),
                    Some((vec![foreign_auth.0.clone()], foreign_auth.1.clone_key())),
                );
                let (stop, done) = (stop.clone(), handshakes.clone());
                // FLOOD_FOR bounds this flood; the count is only a cap. A county refuses some
                // 7,000 foreign handshakes a second here, so a cap of 10,000 ran out before the
                // school had restarted.
                rt.spawn(async move {
                    full_handshakes(target, county, config, 200_000, 64, stop, done.clone()).await;
                    done.load(Ordering::Relaxed)
                })
            }
        };
        std::thread::sleep(FLOOD_HEAD_START);
        let took = restart_and_time_link(&mut cluster, county, school);
        let still_flooding = !task.is_finished();
        stop.store(true, Ordering::Relaxed);
        let sent = rt.block_on(task).unwrap();
        let after = cluster.status(county).unwrap().turned_away;
        report.push(format!(
            "{flood}: {sent} sent, school linked in {took:?}; county turned away {after:?} (before {before:?})"
        ));
        assert!(still_flooding, "{flood}: the flood ended before the school linked ({sent} sent)");
        assert!(
            took <= LINK_WITHIN,
            "{flood}: the school took {took:?} to link (want ≤ {LINK_WITHIN:?})\n{}",
            report.join("\n")
        );
        match flood {
            "full handshakes, 64 at a time" => assert!(
                after.failed + after.per_source > before.failed + before.per_source + 50,
                "{flood}: the county counted the refused handshakes\n{}",
                report.join("\n")
            ),
            _ => assert!(
                after.retried > before.retried + 50,
                "{flood}: unproven addresses were asked to retry\n{}",
                report.join("\n")
            ),
        }
    }
    eprintln!("{}", report.join("\n"));
}
