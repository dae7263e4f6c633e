//! A level goes offline under a steady load: its children keep working, fail over to the next
//! ancestor, and when it returns it catches up — every alert held exactly once everywhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use node::admin::RaiseAlert;
use node::cluster::Cluster;
use topology::{NodeId, Tier};

use crate::{eventually, federation};

/// Raises one alert every `every` at the given schools, round-robin, until stopped; returns the
/// ids raised, each with the instant it was acknowledged.
fn steady_load(
    cluster: &Cluster,
    schools: Vec<NodeId>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(String, NodeId, Instant)>> {
    let clients: Vec<_> = schools.iter().map(|s| (*s, cluster.client(*s))).collect();
    std::thread::spawn(move || {
        let mut raised = Vec::new();
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) {
            let (school, client) = &clients[n % clients.len()];
            let req = RaiseAlert { camera: format!("cam-{n}"), alert_type: "NO_MASK".into(), ..RaiseAlert::default() };
            // A school is never the node taken down here, so every raise must succeed.
            let a = client.raise_alert(&req).expect("a school must accept alerts whatever its county does");
            raised.push((a.id, *school, Instant::now()));
            n += 1;
            std::thread::sleep(every);
        }
        raised
    })
}

fn held(cluster: &Cluster, node: NodeId) -> Option<BTreeMap<String, usize>> {
    let list = cluster.client(node).alerts(100_000, None).ok()?;
    let mut counts = BTreeMap::new();
    for a in list {
        *counts.entry(a.id).or_insert(0) += 1;
    }
    Some(counts)
}

#[test]
fn a_county_killed_under_load_loses_nothing_and_its_schools_fail_over() {
    let (_dir, mut cluster) = federation(1, 2, 3);
    let province = cluster.topology.root();
    let county: NodeId = "130102".parse().unwrap();
    let city = county.parent().unwrap();
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(&cluster, schools.clone(), Duration::from_millis(40), stop.clone());

    std::thread::sleep(Duration::from_secs(1));
    cluster.kill(county).unwrap();
    let killed = Instant::now();
    // While the county is dead, an alert raised at one of its schools reaches the province.
    let probe_school: NodeId = "130102-S0001".parse().unwrap();
    let probe = cluster
        .client(probe_school)
        .raise_alert(&RaiseAlert { camera: "probe".into(), alert_type: "SMOKING".into(), ..RaiseAlert::default() })
        .unwrap();
    eventually(Duration::from_secs(15), "the probe at the province with the county down", || {
        held(&cluster, province).and_then(|h| h.contains_key(&probe.id).then_some(()))
    });
    let reached_after = killed.elapsed();
    let st = cluster.status(probe_school).unwrap();
    assert_eq!(st.failover.as_ref().map(|f| f.peer), Some(city), "the school failed over to its city");
    assert!(!cluster.is_running(county));
    std::thread::sleep(Duration::from_secs(1));

    cluster.start(county).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let mut raised = load.join().unwrap();
    raised.push((probe.id.clone(), probe_school, killed));

    // Everything arrives exactly once, at every node that should hold it.
    for node in [province, city, county] {
        let expect: Vec<&String> =
            raised.iter().filter(|(_, s, _)| node.is_ancestor_or_self_of(*s)).map(|(id, _, _)| id).collect();
        let counts = eventually(Duration::from_secs(20), &format!("all {} alerts at {node}", expect.len()), || {
            held(&cluster, node).filter(|h| expect.iter().all(|id| h.contains_key(*id)))
        });
        assert_eq!(counts.len(), expect.len(), "{node} holds exactly the alerts of its subtree");
        assert!(counts.values().all(|&c| c == 1), "{node} lists an alert twice");
        if node != county {
            // (The counter counts since the process started; the county restarted.)
            let applied = cluster.status(node).unwrap().store.events_applied as usize;
            assert_eq!(applied, expect.len(), "{node} applied each alert once (applied {applied})");
        }
    }
    // The county's schools are back on their county.
    eventually(Duration::from_secs(15), "the schools back on their county", || {
        schools
            .iter()
            .filter(|s| s.parent() == Some(county))
            .all(|s| {
                cluster.status(*s).is_ok_and(|st| {
                    st.failover.is_none() && st.parent.is_some_and(|p| p.state == node::link::LinkState::Up)
                })
            })
            .then_some(())
    });
    eprintln!(
        "probe reached the province {reached_after:?} after the county was killed; {} alerts raised",
        raised.len()
    );
}
