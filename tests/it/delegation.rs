//! Delegated CAs with real nodes: the province's root delegates a CA to a city, the city one to
//! its county, and the county enrols its own school with `mingchu ca issue` — the school then
//! links and its alerts reach the province, though the root key never left the province. The same
//! county CA cannot sign for another county's school: the command refuses, and a certificate
//! signed anyway with its key is refused by the other county in the handshake.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use node::runtime::link::LinkState;
use node::tls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use topology::NodeId;

use crate::flood::rustls_client;
use crate::{alert_reaches_province, eventually, federation, mingchu};

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn ok(args: &[&str]) -> String {
    let (success, out, err) = mingchu(args);
    assert!(success, "mingchu {args:?} failed: {err}");
    out
}

/// Dials `server` at `addr` presenting `chain_pem` and `key_pem`; returns how the connection ended.
async fn handshake_with(roots: &Path, chain_pem: &str, key_pem: &str, server: NodeId, addr: SocketAddr) -> String {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let root = CertificateDer::from_pem_file(roots).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(rustls_client(&[root], Some((chain, key))));
    let conn = match tokio::time::timeout(Duration::from_secs(5), endpoint.connect(addr, &server.dns_name()).unwrap())
        .await
        .expect("the handshake ends within 5 s")
    {
        Ok(conn) => conn,
        Err(e) => return e.to_string(),
    };
    // TLS 1.3: the server's refusal of a client certificate may arrive after the client finished.
    let _ = conn.open_bi().await;
    tokio::time::timeout(Duration::from_secs(5), conn.closed()).await.expect("the server closes it").to_string()
}

#[test]
fn a_county_enrols_its_school_with_a_delegated_ca_and_cannot_sign_for_another_county() {
    let (dir, mut cluster) = federation(1, 2, 1);
    let (county, other_county) = (id("130102"), id("130104"));
    let (school, other_school) = (id("130102-S0001"), id("130104-S0001"));
    let root_dir = cluster.cert_dir.clone();
    let city_dir = dir.path().join("city-ca");
    let county_dir = dir.path().join("county-ca");
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // The province delegates to the city, the city to its county, and the county enrols its school.
    let out = ok(&["ca", "delegate", "--node", "1301", "--dir", &s(&root_dir), "--out", &s(&city_dir)]);
    assert!(out.contains("只能为 1301.13.mingchu 及其下级签发证书"), "{out}");
    ok(&["ca", "delegate", "--node", "130102", "--dir", &s(&city_dir), "--out", &s(&county_dir)]);
    assert!(!county_dir.join(tls::CA_KEY_FILE).exists());
    ok(&["ca", "issue", "--node", "130102-S0001", "--dir", &s(&county_dir)]);

    // The school runs on the county's certificate from now on.
    cluster.stop(school).unwrap();
    let (from_cert, from_key) = tls::node_paths(&county_dir, school);
    let (to_cert, to_key) = tls::node_paths(&root_dir, school);
    std::fs::copy(&from_cert, &to_cert).unwrap();
    std::fs::copy(&from_key, &to_key).unwrap();
    let since_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    cluster.start(school).unwrap();
    let start = Instant::now();
    eventually(Duration::from_secs(20), "the school linked with its county-issued certificate", || {
        let st = cluster.status(county).ok()?;
        let link = st.children.iter().find(|c| c.peer == school)?;
        (link.state == LinkState::Up && link.since_ms >= since_ms).then_some(())
    });
    eprintln!("the school linked {:?} after starting with a three-certificate chain", start.elapsed());
    alert_reaches_province(&cluster, school, "the school's alert at the province");

    // The county's CA refuses another county's school, in Chinese, and writes nothing.
    let (success, _, err) = mingchu(&["ca", "issue", "--node", "130104-S0001", "--dir", &s(&county_dir)]);
    assert!(!success);
    assert!(err.contains("130102 的证书机构只能为本辖区"), "{err}");
    assert!(!tls::node_paths(&county_dir, other_school).0.exists());

    // Signed anyway with the county's key: the other county refuses it in the handshake.
    let (chain, key) = tls::sign_ignoring_scope(&county_dir, other_school).unwrap();
    let refused_before = cluster.status(other_county).unwrap().turned_away.failed;
    let addr = cluster.topology.get(other_county).unwrap().quic;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ended = rt.block_on(handshake_with(&root_dir.join(tls::CA_CERT_FILE), &chain, &key, other_county, addr));
    assert!(!ended.contains("timed out"), "{ended}");
    let st = eventually(Duration::from_secs(5), "the other county counting the refused handshake", || {
        let st = cluster.status(other_county).ok()?;
        (st.turned_away.failed > refused_before).then_some(st)
    });
    assert!(
        st.children.iter().find(|c| c.peer == other_school).is_some_and(|c| c.state == LinkState::Up),
        "the real school of the other county stays linked"
    );
    let log = std::fs::read_to_string(cluster.log_path(other_county)).unwrap();
    assert!(log.contains("incoming connection failed"), "the other county logs the refusal");
    eprintln!("the forged certificate's connection ended: {ended}");
}
