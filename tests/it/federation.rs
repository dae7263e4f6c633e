//! A four-level federation of real processes: alerts go up exactly once, directives go down to
//! exactly the nodes that should hold them, and an acknowledged alert survives kill -9.

use std::collections::BTreeMap;
use std::time::Duration;

use node::api::alerts::RaiseAlert;
use node::api::directives::SendDirective;
use topology::{NodeId, Tier};

use crate::{eventually, federation};

fn alert(n: usize) -> RaiseAlert {
    RaiseAlert {
        camera: format!("cam-{:02}", n % 8 + 1),
        alert_type: ["NO_MASK", "SMOKING", "RODENT"][n % 3].into(),
        no_merge: true,
        ..RaiseAlert::default()
    }
}

#[test]
fn every_alert_is_held_exactly_once_at_its_county_city_and_province() {
    let (_dir, cluster) = federation(2, 2, 3);
    let ids = cluster.ids();
    let schools: Vec<NodeId> = ids.iter().copied().filter(|n| n.tier() == Tier::School).collect();
    assert_eq!(schools.len(), 12);
    let per_school = 3;
    let mut raised: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for &s in &schools {
        for n in 0..per_school {
            let a = cluster.client(s).raise_alert(&alert(n)).unwrap();
            assert_eq!(a.school, s);
            raised.entry(s).or_default().push(a.id);
        }
    }
    // Every non-school node ends up with exactly the alerts of its own subtree, each once.
    for &node in ids.iter().filter(|n| n.tier() != Tier::School) {
        let expect: Vec<String> =
            raised.iter().filter(|(s, _)| node.is_ancestor_or_self_of(**s)).flat_map(|(_, v)| v.clone()).collect();
        let held = eventually(Duration::from_secs(20), &format!("{} alerts at {node}", expect.len()), || {
            let list = cluster.client(node).alerts(10_000, None).unwrap();
            (list.len() >= expect.len()).then_some(list)
        });
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for a in &held {
            assert!(node.is_ancestor_or_self_of(a.school), "{node} holds {} from outside its subtree", a.id);
            *counts.entry(a.id.clone()).or_default() += 1;
        }
        assert_eq!(held.len(), expect.len(), "{node} holds {} alerts, expected {}", held.len(), expect.len());
        for id in &expect {
            assert_eq!(counts.get(id), Some(&1), "{node} should hold {id} exactly once");
        }
        let st = cluster.status(node).unwrap();
        assert_eq!(st.store.alerts_applied as usize, expect.len(), "{node} applied each alert once");
    }
    // A school holds only its own alerts.
    let s0 = schools[0];
    let own = cluster.client(s0).alerts(100, None).unwrap();
    assert_eq!(own.len(), per_school);
    assert!(own.iter().all(|a| a.school == s0));
}

#[test]
fn directives_reach_exactly_the_nodes_that_should_hold_them() {
    let (_dir, cluster) = federation(2, 1, 2);
    let province = cluster.topology.root();
    let ids = cluster.ids();
    let schools: Vec<NodeId> = ids.iter().copied().filter(|n| n.tier() == Tier::School).collect();
    let (target, sibling) = (schools[0], schools[1]);
    assert_eq!(target.parent(), sibling.parent());
    let county = target.parent().unwrap();
    let notice = cluster
        .client(province)
        .send_directive(&SendDirective { to: target.to_string(), title: "整改通知".into(), text: "rectify".into() })
        .unwrap();
    let county_wide = crate::directive(&cluster, county, county, "county directive");
    let bulletin = cluster
        .client(province)
        .send_directive(&SendDirective { to: province.to_string(), title: "通报".into(), text: String::new() })
        .unwrap();
    let has = |node: NodeId, id: &str| cluster.client(node).events(1_000).unwrap().iter().any(|e| e.id == id);
    for &node in &ids {
        let want_notice = node.is_ancestor_or_self_of(target);
        let want_county = node.is_ancestor_or_self_of(county) || county.is_ancestor_or_self_of(node);
        // The bulletin reaches everybody; wait for it, then the others have had their chance too.
        eventually(Duration::from_secs(20), &format!("bulletin at {node}"), || has(node, &bulletin.id).then_some(()));
        if want_notice {
            eventually(Duration::from_secs(10), &format!("notice at {node}"), || has(node, &notice.id).then_some(()));
        }
        if want_county {
            eventually(Duration::from_secs(10), &format!("directive at {node}"), || {
                has(node, &county_wide.id).then_some(())
            });
        }
    }
    // Give stray copies time to show up, then check nobody holds what it should not.
    std::thread::sleep(Duration::from_millis(500));
    for &node in &ids {
        assert_eq!(has(node, &notice.id), node.is_ancestor_or_self_of(target), "notice at {node}");
        let want_county = node.is_ancestor_or_self_of(county) || county.is_ancestor_or_self_of(node);
        assert_eq!(has(node, &county_wide.id), want_county, "county directive at {node}");
    }
    assert!(!has(sibling, &notice.id), "the sibling school must not get another school's notice");
}

#[test]
fn an_acknowledged_alert_survives_kill_9_and_still_reaches_the_province() {
    let (_dir, mut cluster) = federation(1, 1, 2);
    let province = cluster.topology.root();
    let school = cluster.ids().into_iter().find(|n| n.tier() == Tier::School).unwrap();
    let county = school.parent().unwrap();
    // Take the county away so the alert can only live at the school, then kill the school hard
    // right after the raise was acknowledged.
    cluster.stop(county).unwrap();
    let mergeable = |n| RaiseAlert { no_merge: false, ..alert(n) };
    let a = cluster.client(school).raise_alert(&mergeable(7)).unwrap();
    cluster.kill(school).unwrap();
    cluster.start(school).unwrap();
    cluster.start(county).unwrap();
    cluster.wait_links_up(Duration::from_secs(20)).unwrap();
    let own = cluster.client(school).alerts(100, None).unwrap();
    assert!(own.iter().any(|x| x.id == a.id), "acknowledged alert lost by kill -9");
    eventually(Duration::from_secs(20), "the alert at the province", || {
        cluster.client(province).alerts(100, None).unwrap().iter().any(|x| x.id == a.id).then_some(())
    });
    // A new alert continues the school's sequence: seqs are never reused after a crash.
    let b = cluster.client(school).raise_alert(&mergeable(8)).unwrap();
    assert_eq!(b.seq, a.seq + 1);
    // The same camera seeing the same thing again within 30 min is still a repeat of the alert
    // raised before the crash: the merge window survives a restart.
    let again = cluster.client(school).raise_alert(&mergeable(7)).unwrap();
    assert!(again.merged && again.id == a.id && again.detections == 2, "{again:?}");
}
