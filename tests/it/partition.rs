//! A middle level made unreachable without killing it (a UDP relay in front of it drops every
//! packet), and a link flapping down and up every second: nothing lost, nothing applied twice.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::cluster::Cluster;
use node::runtime::link::LinkState;
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::outage::{check_exact, probe_reaches, steady_load};
use crate::{binary, eventually};
use harness::relay::UdpRelay;

/// A 1 × 2 × 2 federation whose city 1301 is reachable only through a relay the test controls.
fn city_behind_relay() -> (tempfile::TempDir, Cluster, UdpRelay, NodeId) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 2 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let city: NodeId = "1301".parse().unwrap();
    let public = cluster.topology.get(city).unwrap().quic;
    let real = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    cluster.set_quic_bind(city, real).unwrap();
    let relay = UdpRelay::start(public, real);
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    (dir, cluster, relay, city)
}

#[test]
fn an_unreachable_but_running_city_is_routed_around_and_caught_up() {
    let (_dir, cluster, relay, city) = city_behind_relay();
    let province = cluster.topology.root();
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(&cluster, schools, Duration::from_millis(40), stop.clone());
    std::thread::sleep(Duration::from_secs(1));

    relay.drop.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    let probe_school: NodeId = "130102-S0001".parse().unwrap();
    let probe = probe_reaches(&cluster, probe_school, province, "the probe at the province around the cut-off city");
    eprintln!("with the city cut off, the probe reached the province after {:?}", cut.elapsed());
    // Unreachable, not dead: the city process runs and answers its own admin, its link to the
    // province is up, and its children see it as down while they report to the province.
    let st = cluster.status(city).unwrap();
    assert!(cluster.is_running(city));
    assert_eq!(st.parent.as_ref().unwrap().state, LinkState::Up);
    // The county dialed the province beside its silent city (its link to the city may not have
    // timed out yet).
    let county = cluster.status(probe_school.parent().unwrap()).unwrap();
    assert_eq!(county.failover.as_ref().map(|f| f.peer), Some(province), "the county failed over to the province");
    assert!(relay.dropped.load(Ordering::SeqCst) > 0);

    relay.drop.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let mut raised: Vec<(String, NodeId)> = load.join().unwrap().into_iter().map(|(id, s, _)| (id, s)).collect();
    raised.push((probe, probe_school));
    let nodes: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() != Tier::School).collect();
    check_exact(&cluster, &raised, &nodes, &[]);
    // And the counties went back to their city.
    eventually(Duration::from_secs(20), "the counties back on their city", || {
        cluster
            .ids()
            .into_iter()
            .filter(|n| n.tier() == Tier::County)
            .all(|c| {
                cluster
                    .status(c)
                    .is_ok_and(|s| s.failover.is_none() && s.parent.is_some_and(|p| p.state == LinkState::Up))
            })
            .then_some(())
    });
}

/// The city falls silent for less than the idle timeout (a stalled process, a congested uplink):
/// its counties, with batches unacked, dial the province beside it at once; an alert raised in
/// the silence reaches the province while the county's link to its city is still up, and when
/// the city is heard again the county leaves the province and keeps the same link to its city.
#[test]
fn a_parent_silent_with_a_batch_unacked_is_hedged_by_the_grandparent_without_dropping_its_link() {
    let (_dir, cluster, relay, city) = city_behind_relay();
    let province = cluster.topology.root();
    let probe_school: NodeId = "130102-S0001".parse().unwrap();
    let county = probe_school.parent().unwrap();
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(&cluster, schools, Duration::from_millis(40), stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let since = cluster.status(county).unwrap().parent.unwrap().since_ms;

    relay.drop.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    let probe = probe_reaches(&cluster, probe_school, province, "the probe at the province around the silent city");
    let reached = cut.elapsed();
    let st = cluster.status(county).unwrap();
    relay.drop.store(false, Ordering::SeqCst);
    let parent = st.parent.as_ref().unwrap();
    eprintln!("the probe reached the province {reached:?} into the silence; county: {} hedge(s)", st.hedges);
    assert!(st.hedges >= 1, "the county dialed beside its silent city: {st:?}");
    assert_eq!(st.failover.as_ref().map(|f| f.peer), Some(province), "through the province");
    assert_eq!(
        (parent.state, parent.since_ms, parent.reconnects),
        (LinkState::Up, since, 0),
        "the probe went round while the link to the city was still up ({reached:?} into the silence)"
    );

    // Heard again: the county leaves the province, on the link to its city it never lost.
    eventually(Duration::from_secs(10), "the county off the province", || {
        let st = cluster.status(county).ok()?;
        st.failover.is_none().then_some(st)
    });
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let mut raised: Vec<(String, NodeId)> = load.join().unwrap().into_iter().map(|(id, s, _)| (id, s)).collect();
    raised.push((probe, probe_school));
    let nodes: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() != Tier::School).collect();
    check_exact(&cluster, &raised, &nodes, &[]);
    let parent = cluster.status(county).unwrap().parent.unwrap();
    assert_eq!((parent.state, parent.since_ms, parent.reconnects), (LinkState::Up, since, 0), "{parent:?}");
    assert!(cluster.status(city).unwrap().parent.is_some_and(|p| p.state == LinkState::Up));
}

#[test]
fn a_link_flapping_every_second_for_20_s_loses_and_duplicates_nothing() {
    let (_dir, cluster, relay, _city) = city_behind_relay();
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(&cluster, schools, Duration::from_millis(25), stop.clone());
    for _ in 0..10 {
        relay.drop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(1));
        relay.drop.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(1));
    }
    stop.store(true, Ordering::SeqCst);
    let raised: Vec<(String, NodeId)> = load.join().unwrap().into_iter().map(|(id, s, _)| (id, s)).collect();
    assert!(raised.len() > 300, "load ran ({} alerts)", raised.len());
    let nodes: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() != Tier::School).collect();
    check_exact(&cluster, &raised, &nodes, &[]);
    eprintln!(
        "{} alerts through 20 s of flapping; {} packets dropped",
        raised.len(),
        relay.dropped.load(Ordering::SeqCst)
    );
}
