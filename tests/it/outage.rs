//! A level goes offline under a steady load: its children keep working, fail over to the next
//! ancestor, and when it returns it catches up — every alert held exactly once everywhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::cluster::Cluster;
use node::api::alerts::RaiseAlert;
use topology::{NodeId, Tier};

use crate::{directive, eventually, federation};

/// How long a level stays dead in the outage tests.
const OUTAGE: Duration = Duration::from_secs(10);

/// Raises one alert every `every` at the given schools, round-robin, until stopped; returns the
/// ids raised, each with the instant it was acknowledged.
pub fn steady_load(
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
            let req = RaiseAlert {
                camera: format!("cam-{:02}", n % 8 + 1),
                alert_type: "NO_MASK".into(),
                no_merge: true,
                ..RaiseAlert::default()
            };
            // A school is never the node taken down here, so every raise must succeed.
            let a = client.raise_alert(&req).expect("a school must accept alerts whatever its county does");
            raised.push((a.id, *school, Instant::now()));
            n += 1;
            std::thread::sleep(every);
        }
        raised
    })
}

pub fn held(cluster: &Cluster, node: NodeId) -> Option<BTreeMap<String, usize>> {
    let list = cluster.client(node).alerts(100_000, None).ok()?;
    let mut counts = BTreeMap::new();
    for a in list {
        *counts.entry(a.id).or_insert(0) += 1;
    }
    Some(counts)
}

/// Raises an alert at `school` and waits until `at` holds it (`what` names the wait); returns its id.
pub fn probe_reaches(cluster: &Cluster, school: NodeId, at: NodeId, what: &str) -> String {
    let probe = cluster
        .client(school)
        .raise_alert(&RaiseAlert {
            camera: "cam-01".into(),
            alert_type: "SMOKING".into(),
            no_merge: true,
            ..RaiseAlert::default()
        })
        .unwrap();
    eventually(Duration::from_secs(15), what, || {
        held(cluster, at).and_then(|h| h.contains_key(&probe.id).then_some(()))
    });
    probe.id
}

/// Checks that each node in `nodes` holds exactly the alerts of `raised` from its subtree, each
/// once, and (for nodes that never restarted) applied each exactly once.
pub fn check_exact(cluster: &Cluster, raised: &[(String, NodeId)], nodes: &[NodeId], restarted: &[NodeId]) {
    for &node in nodes {
        let expect: Vec<&String> =
            raised.iter().filter(|(_, s)| node.is_ancestor_or_self_of(*s)).map(|(id, _)| id).collect();
        let counts = eventually(Duration::from_secs(30), &format!("all {} alerts at {node}", expect.len()), || {
            held(cluster, node).filter(|h| expect.iter().all(|id| h.contains_key(*id)))
        });
        assert_eq!(counts.len(), expect.len(), "{node} holds exactly the alerts of its subtree");
        assert!(counts.values().all(|&c| c == 1), "{node} lists an alert twice");
        if !restarted.contains(&node) {
            // (The counter counts since the process started.)
            let applied = cluster.status(node).unwrap().store.alerts_applied as usize;
            assert_eq!(applied, expect.len(), "{node} applied each alert once (applied {applied})");
        }
    }
}

/// Kills `victim` under a steady load from every school, checks that an alert raised below it
/// reaches `reaches` while it is down, restarts it after [`OUTAGE`], and checks every alert arrived exactly once.
fn outage_under_load(cluster: &mut Cluster, victim: NodeId, probe_school: NodeId, reaches: NodeId) -> Duration {
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(cluster, schools, Duration::from_millis(40), stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    cluster.kill(victim).unwrap();
    let killed = Instant::now();
    let probe = probe_reaches(cluster, probe_school, reaches, &format!("the probe at {reaches} with {victim} down"));
    let reached_after = killed.elapsed();
    assert!(!cluster.is_running(victim));
    std::thread::sleep(OUTAGE.saturating_sub(killed.elapsed()));
    cluster.start(victim).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let mut raised: Vec<(String, NodeId)> = load.join().unwrap().into_iter().map(|(id, s, _)| (id, s)).collect();
    raised.push((probe, probe_school));
    let all: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() != Tier::School).collect();
    check_exact(cluster, &raised, &all, &[victim]);
    reached_after
}

#[test]
fn a_city_killed_under_load_loses_nothing_and_its_counties_fail_over_to_the_province() {
    let (_dir, mut cluster) = federation(2, 1, 2);
    let province = cluster.topology.root();
    let city: NodeId = "1301".parse().unwrap();
    let school: NodeId = "130102-S0001".parse().unwrap();
    let took = outage_under_load(&mut cluster, city, school, province);
    eprintln!("with the city dead, an alert reached the province after {took:?}");
}

#[test]
fn with_the_province_down_the_levels_below_keep_serving_and_catch_up_after() {
    let (_dir, mut cluster) = federation(1, 2, 2);
    let city: NodeId = "1301".parse().unwrap();
    let school: NodeId = "130104-S0002".parse().unwrap();
    // Nothing is above the province: alerts stop at the city until it returns.
    let province = cluster.topology.root();
    let took = outage_under_load(&mut cluster, province, school, city);
    eprintln!("with the province dead, an alert reached the city after {took:?}");
}

/// Raises `per_school` alerts at each school in batches, as fast as they are accepted; returns
/// the acknowledged ids (a batch that fails is not acknowledged: its thread stops).
fn burst(
    cluster: &Cluster,
    schools: &[NodeId],
    per_school: usize,
    batch: usize,
) -> Vec<std::thread::JoinHandle<Vec<(String, NodeId)>>> {
    schools
        .iter()
        .map(|&school| {
            let client = cluster.client(school);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut sent = 0;
                while sent < per_school {
                    let n = batch.min(per_school - sent);
                    let alerts = (0..n)
                        .map(|i| RaiseAlert {
                            camera: format!("cam-{:02}", (sent + i) % 8 + 1),
                            alert_type: "NO_CHEF_HAT".into(),
                            ..RaiseAlert::default()
                        })
                        .collect();
                    match client.raise_alerts(alerts) {
                        Ok(b) => {
                            acked.extend((b.first_seq..=b.last_seq).map(|seq| (format!("{school}#{seq}"), school)))
                        }
                        Err(_) => break,
                    }
                    sent += n;
                }
                acked
            })
        })
        .collect()
}

#[test]
fn kill_9_mid_burst_loses_no_acknowledged_alert_and_applies_none_twice() {
    let (_dir, mut cluster) = federation(1, 1, 4);
    let province = cluster.topology.root();
    let county: NodeId = "130102".parse().unwrap();
    let victim_school: NodeId = "130102-S0004".parse().unwrap();
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    let threads = burst(&cluster, &schools, 3_000, 100);
    // Kill the county and one school in the middle of the burst, and restart them at once.
    std::thread::sleep(Duration::from_millis(300));
    cluster.kill(county).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    cluster.kill(victim_school).unwrap();
    cluster.start(county).unwrap();
    cluster.start(victim_school).unwrap();
    let acked: Vec<(String, NodeId)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    cluster.wait_links_up(Duration::from_secs(20)).unwrap();
    // The killed school may have written (but not acknowledged) a batch: what it holds now is the
    // truth for its origin, and must contain everything it acknowledged.
    let own = eventually(Duration::from_secs(10), "the restarted school", || held(&cluster, victim_school));
    for (id, s) in &acked {
        if *s == victim_school {
            assert!(own.contains_key(id), "the killed school lost acknowledged {id}");
        }
    }
    let mut expect: Vec<(String, NodeId)> = acked.into_iter().filter(|(_, s)| *s != victim_school).collect();
    expect.extend(own.keys().map(|id| (id.clone(), victim_school)));
    assert!(expect.len() > 3_000, "the burst got going before the kills ({} acknowledged)", expect.len());
    check_exact(&cluster, &expect, &[province, county.parent().unwrap(), county], &[county]);
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
    let probe = probe_reaches(&cluster, probe_school, province, "the probe at the province with the county down");
    let reached_after = killed.elapsed();
    let st = cluster.status(probe_school).unwrap();
    assert_eq!(st.failover.as_ref().map(|f| f.peer), Some(city), "the school failed over to its city");
    // The probe got there by the hedge, before the county's link was declared down; once it is,
    // `topology show` tells the admin what waits for the dead county, and for how long.
    let st = eventually(Duration::from_secs(15), "the school's link to its dead county down", || {
        cluster
            .status(probe_school)
            .ok()
            .filter(|st| st.parent.as_ref().is_some_and(|p| p.state != node::runtime::link::LinkState::Up))
    });
    assert_eq!(st.failover.as_ref().map(|f| f.peer), Some(city), "the school is still failed over to its city");
    let parent = st.parent.as_ref().unwrap();
    assert!(parent.backlog_out >= 1, "the probe waits for the county: {parent:?}");
    assert!(parent.oldest_unsent_age_ms > 0, "{parent:?}");
    let shown = client::render::render_status(&st, node::clock::unix_ms());
    assert!(shown.contains(&format!("failed over to {city}")) && shown.contains("oldest queued"), "{shown}");
    assert!(!cluster.is_running(county));
    std::thread::sleep(OUTAGE.saturating_sub(killed.elapsed()));

    cluster.start(county).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let mut raised = load.join().unwrap();
    raised.push((probe, probe_school, killed));

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
            let applied = cluster.status(node).unwrap().store.alerts_applied as usize;
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
                    st.failover.is_none() && st.parent.is_some_and(|p| p.state == node::runtime::link::LinkState::Up)
                })
            })
            .then_some(())
    });
    eprintln!(
        "probe reached the province {reached_after:?} after the county was killed; {} alerts raised",
        raised.len()
    );
}

#[test]
fn a_wiped_data_dir_is_restored_from_the_parent_without_reusing_seqs() {
    let (_dir, mut cluster) = federation(1, 1, 2);
    let province = cluster.topology.root();
    let county: NodeId = "130102".parse().unwrap();
    let school: NodeId = "130102-S0001".parse().unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let req = RaiseAlert {
            camera: format!("cam-{:02}", n % 8 + 1),
            alert_type: "RODENT".into(),
            no_merge: true,
            ..RaiseAlert::default()
        };
        ids.push(cluster.client(school).raise_alert(&req).unwrap().id);
    }
    let notice = directive(&cluster, county, school, "整改通知");
    eventually(Duration::from_secs(15), "history at the province and the notice at the school", || {
        let at_p = held(&cluster, province)?;
        let notice_there = cluster.client(school).events(100).ok()?.iter().any(|e| e.id == notice.id);
        (ids.iter().all(|id| at_p.contains_key(id)) && notice_there).then_some(())
    });

    // Wipe the county (certificate kept): it refills from its city and its schools.
    cluster.stop(county).unwrap();
    std::fs::remove_dir_all(cluster.data_dir(county)).unwrap();
    cluster.start(county).unwrap();
    cluster.wait_links_up(Duration::from_secs(20)).unwrap();
    eventually(Duration::from_secs(20), "the county restored", || {
        let st = cluster.status(county).ok()?;
        let alerts = held(&cluster, county)?;
        (!st.store.restoring && ids.iter().all(|id| alerts.contains_key(id))).then_some(())
    });
    assert!(cluster.client(county).events(100).unwrap().iter().any(|e| e.id == notice.id), "the county's own notice");

    // Wipe the school while none of its ancestors can be reached: it must refuse local writes
    // (a fresh store cannot know which seqs it issued before), then restore and go on at seq 6.
    let city = county.parent().unwrap();
    let own_seq = cluster.status(school).unwrap().store.own_seq;
    for n in [school, county, city, province] {
        cluster.stop(n).unwrap();
    }
    std::fs::remove_dir_all(cluster.data_dir(school)).unwrap();
    cluster.start(school).unwrap();
    let req = RaiseAlert { camera: "cam-02".into(), alert_type: "PHONE".into(), ..RaiseAlert::default() };
    let err = eventually(Duration::from_secs(10), "the wiped school's answer", || {
        cluster.client(school).raise_alert(&req).err().filter(|e| e.to_string().contains("正在恢复数据"))
    });
    assert!(err.to_string().contains("还没有联系上任何上级"), "{err}");
    assert!(cluster.status(school).unwrap().store.restoring);
    for n in [province, city, county] {
        cluster.start(n).unwrap();
    }
    let next = eventually(Duration::from_secs(20), "the restored school to accept an alert", || {
        cluster.client(school).raise_alert(&req).ok()
    });
    assert_eq!(next.seq, own_seq + 1, "a wiped school must not reuse its seqs");
    let alerts = held(&cluster, school).unwrap();
    assert!(ids.iter().all(|id| alerts.contains_key(id)), "the school got its own alerts back");
    assert!(cluster.client(school).events(100).unwrap().iter().any(|e| e.id == notice.id), "and its notice");
    // And the county's own sequence too.
    let d2 = directive(&cluster, county, county, "after");
    assert_eq!(d2.seq, notice.seq + 1);
    eventually(Duration::from_secs(15), "the new alert at the province", || {
        held(&cluster, province).and_then(|h| (h.contains_key(&next.id) && h.len() == 6).then_some(()))
    });
}
