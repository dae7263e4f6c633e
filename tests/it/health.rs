//! The health plane against real processes: what the province's operator sees when a county is
//! killed, when a city is cut off without being killed, after a parent restarts with a child that
//! never connected, and when a certificate is about to expire — through the admin API's JSON and
//! through `mingchu topology show` with its check exit codes.

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::time::Duration;

use harness::cluster::Cluster;
use node::api::health::{HealthRowView, HealthView};
use protocol::health::{NodeState, Severity};
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::{binary, eventually, federation, mingchu};
use harness::relay::UdpRelay;

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn row(view: &HealthView, node: NodeId) -> &HealthRowView {
    view.rows.iter().find(|r| r.node == node).unwrap_or_else(|| panic!("{node} not in the view: {view:#?}"))
}

/// `mingchu topology show args…` at `admin`: (exit code, stdout, stderr).
fn show(admin: std::net::SocketAddr, args: &[&str]) -> (i32, String, String) {
    let admin = admin.to_string();
    let out =
        std::process::Command::new(binary()).args(["topology", "show", "--admin", &admin]).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_killed_county_is_down_at_the_province_within_seconds_and_its_schools_failed_over() {
    let (_dir, mut cluster) = federation(1, 2, 2);
    let province = cluster.topology.root();
    let (city, county, other) = (id("1301"), id("130102"), id("130104"));
    let admin = cluster.admin_addr(province);
    // All live first: every node reported up the tree.
    eventually(Duration::from_secs(20), "every node live at the province", || {
        let v = cluster.client(province).health(None, false).ok()?;
        (v.severity == Severity::Ok && v.counts.get(&NodeState::Live) == Some(&8)).then_some(())
    });
    let (code, out, err) = show(admin, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("共 8 个节点：在线 8") && out.contains("全部正常"), "{out}");
    assert!(out.contains("├─ 130102 ") && out.contains("学校 2 所") && !out.contains("130102-S0001"), "{out}");
    let (code, out, _) = show(admin, &["--problems"]);
    assert_eq!(code, 0);
    assert!(out.contains("没有需要关注的节点"), "{out}");

    cluster.kill(county).unwrap();
    let killed = std::time::Instant::now();
    let view = eventually(Duration::from_secs(20), "the county down and its schools failed over", || {
        let v = cluster.client(province).health(None, false).ok()?;
        let schools_moved = v
            .rows
            .iter()
            .filter(|r| r.node.parent() == Some(county))
            .all(|r| r.state == NodeState::FailedOver && r.via == Some(city));
        (row(&v, county).state == NodeState::Down && schools_moved).then_some(v)
    });
    eprintln!("the province saw the county down and its schools failed over {:?} after the kill", killed.elapsed());
    let c = row(&view, county);
    assert_eq!(c.severity, Severity::Critical);
    assert!(c.since_ms.is_some() && c.heard_ms.is_some(), "both clocks: {c:?}");
    assert!(c.why.as_deref().unwrap_or("").contains("上级 1301 失去连接"), "{c:?}");
    assert_eq!(row(&view, other).state, NodeState::Live);
    assert_eq!(view.severity, Severity::Critical);

    let (code, out, err) = show(admin, &["--problems", "--schools"]);
    assert_eq!(code, 2, "critical: {out}{err}");
    assert!(out.contains("下线") && out.contains("已转备援→1301") && out.contains("130102-S0002"), "{out}");
    assert!(!out.contains("130104 "), "only problems and their ancestors: {out}");
    // A planned outage: the county expected down, its schools failed over are still warnings.
    let (code, out, _) = show(admin, &["--expect", "130102=down"]);
    assert_eq!(code, 1, "{out}");
    let (code, out, _) = show(admin, &["--under", "130104"]);
    assert_eq!(code, 0, "the other county is all live: {out}");
    let (code, _, err) = show(admin, &["--expect", "130104=down"]);
    assert_eq!(code, 2, "an unmet expectation is critical: {err}");
    let (code, _, err) = show(admin, &["--expect", "130104=gone"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("没有“gone”这个状态"), "{err}");
    let (code, out, _) = show(admin, &["--json", "--problems"]);
    assert_eq!(code, 2);
    let json: HealthView = serde_json::from_str(&out).unwrap();
    assert!(json.rows.iter().any(|r| r.node == county && r.state == NodeState::Down));
    // --watch redraws and stops after --rounds, with the last round's exit code.
    let (code, out, _) = show(admin, &["--problems", "--watch", "1", "--rounds", "2"]);
    assert_eq!(code, 2);
    assert_eq!(out.matches("\x1b[H\x1b[2J").count(), 2, "{out}");

    // Back: everything live again, and the county's last disconnect is on record with its reason.
    cluster.start(county).unwrap();
    let view = eventually(Duration::from_secs(30), "all live again", || {
        let v = cluster.client(province).health(None, false).ok()?;
        (v.severity == Severity::Ok).then_some(v)
    });
    let link = row(&view, county).link.clone().expect("the city's view of its link to the county");
    assert!(link.reconnects >= 1, "{link:?}");
    assert!(!link.disconnects.is_empty(), "the disconnect and its reason are kept: {link:?}");
    let (code, _, _) = show(admin, &[]);
    assert_eq!(code, 0);
}

#[test]
fn a_city_cut_off_from_the_province_is_down_there_and_live_below() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let province = cluster.topology.root();
    let (city, county) = (id("1301"), id("130102"));
    // The city reaches the province only through a relay the test controls (the province's own
    // address, its children's and the city's other links are untouched).
    let relay_addr = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut topo = cluster.topology.clone();
    let mut entry = topo.get(province).unwrap().clone();
    let real = entry.quic;
    entry.quic = relay_addr;
    let city_topology = dir.path().join("topology-city.toml");
    let mut entries: Vec<_> = topo.nodes().cloned().collect();
    for e in entries.iter_mut() {
        if e.id == province {
            *e = entry.clone();
        }
    }
    topo = topology::Topology::from_entries(entries).unwrap();
    topo.save(&city_topology).unwrap();
    cluster.edit_config(city, |c| c.topology = city_topology.clone()).unwrap();
    let relay = UdpRelay::start(relay_addr, real);
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    eventually(Duration::from_secs(20), "all live at the province", || {
        let v = cluster.client(province).health(None, false).ok()?;
        (v.severity == Severity::Ok && v.total == 4).then_some(())
    });

    relay.drop.store(true, Ordering::SeqCst);
    let view = eventually(Duration::from_secs(20), "the city down at the province", || {
        let v = cluster.client(province).health(None, false).ok()?;
        (row(&v, city).state == NodeState::Down).then_some(v)
    });
    // What lies below a lost city cannot be vouched for from the province.
    assert_ne!(row(&view, county).state, NodeState::Live, "{:?}", row(&view, county));
    // The city itself runs, and sees its own subtree live.
    assert!(cluster.is_running(city));
    let below = cluster.client(city).health(None, false).unwrap();
    assert_eq!(row(&below, county).state, NodeState::Live);
    assert_eq!(row(&below, id("130102-S0001")).state, NodeState::Live);
    let (code, out, err) = show(cluster.admin_addr(city), &[]);
    assert_eq!(code, 0, "live below: {out}{err}");
    let (code, out, _) = show(cluster.admin_addr(province), &["--problems"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("1301") && out.contains("下线"), "{out}");

    relay.drop.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(30), "all live again at the province", || {
        let v = cluster.client(province).health(None, false).ok()?;
        (v.severity == Severity::Ok).then_some(())
    });
    assert!(relay.dropped.load(Ordering::SeqCst) > 0);
}

#[test]
fn a_restarted_parent_still_lists_its_never_seen_child_and_an_expiring_certificate_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 2 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let province = cluster.topology.root();
    let (county, seen, never) = (id("130102"), id("130102-S0001"), id("130102-S0002"));
    // The first school's certificate runs out in ten days.
    let certs = cluster.ca_cert_path().parent().unwrap().to_path_buf();
    let (ok, out, err) = mingchu(&[
        "ca",
        "issue",
        "--node",
        &seen.to_string(),
        "--dir",
        certs.to_str().unwrap(),
        "--force",
        "--valid-days",
        "10",
    ]);
    assert!(ok, "{out}{err}");
    for n in cluster.ids() {
        if n != never {
            cluster.start(n).unwrap();
        }
    }
    let view = eventually(Duration::from_secs(30), "the schools' rows at the province", || {
        let v = cluster.client(province).health(None, false).ok()?;
        let r = v.rows.iter().find(|r| r.node == seen)?;
        (r.report.is_some() && row(&v, county).state == NodeState::Live).then_some(v)
    });
    assert_eq!(row(&view, never).state, NodeState::Unseen);
    let s = row(&view, seen);
    assert_eq!((s.state, s.severity), (NodeState::Live, Severity::Warning), "{s:?}");
    assert!(s.warnings.iter().any(|w| w.contains("天后到期")), "{s:?}");
    let days = s.report.as_ref().and_then(|r| r.cert_days_left).unwrap();
    assert!((9..=10).contains(&days), "{days}");
    let (code, out, _) = show(cluster.admin_addr(province), &["--problems", "--schools"]);
    assert_eq!(code, 1, "warnings only: {out}");
    assert!(out.contains("从未连接") && out.contains("天后到期"), "{out}");

    // The county restarts: the child that never connected is still listed, and the one that was
    // connected comes back with its history.
    cluster.stop(county).unwrap();
    cluster.start(county).unwrap();
    let view = eventually(Duration::from_secs(30), "the county's view after its restart", || {
        let v = cluster.client(county).health(None, false).ok()?;
        let l = row(&v, seen).link.clone()?;
        (l.reconnects >= 1 && row(&v, seen).state == NodeState::Live).then_some(v)
    });
    assert_eq!(row(&view, never).state, NodeState::Unseen);
    assert_eq!(view.rows.iter().filter(|r| r.tier == Tier::School).count(), 2);
    let (code, out, _) = show(cluster.admin_addr(county), &["--schools"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&never.to_string()) && out.contains("从未连接"), "{out}");
    // A check that cannot run is neither fine nor critical.
    let (code, _, err) = show(cluster.admin_addr(county), &["--under", "1301"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("不在本节点 130102 的下辖范围内"), "{err}");
}
