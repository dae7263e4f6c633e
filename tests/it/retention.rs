//! Retention on a school's box with real nodes: once its county holds them, a school's alerts and
//! their verdicts older than its retention are dropped there (and kept at the county, the city and
//! the province); its cursors do not move back. Then a restart, a wiped county (it refills from its
//! city and the school, which never offers what it dropped) and a wiped school (it gets its whole
//! history back from the county, dropped alerts included) all go on with nothing lost or doubled.

use std::collections::BTreeSet;
use std::time::Duration;

use node::api::alerts::{AlertVerdict, RaiseAlert};
use node::runtime::link::LinkState;
use topology::NodeId;

use crate::eventually;
use crate::outage::held;

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn raise(cluster: &harness::cluster::Cluster, school: NodeId, n: usize) -> String {
    let req = RaiseAlert {
        camera: format!("cam-{:02}", n % 8 + 1),
        alert_type: "RODENT".into(),
        no_merge: true,
        ..RaiseAlert::default()
    };
    cluster.client(school).raise_alert(&req).unwrap().id
}

/// Every one of `ids` held at `node`, each once, and how many alerts it holds in all.
fn holds_all(cluster: &harness::cluster::Cluster, node: NodeId, ids: &BTreeSet<String>) -> Option<usize> {
    let h = held(cluster, node)?;
    assert!(h.values().all(|&n| n == 1), "{node} holds an alert twice: {h:?}");
    ids.iter().all(|id| h.contains_key(id)).then_some(h.len())
}

fn parent_up(cluster: &harness::cluster::Cluster, school: NodeId) -> bool {
    cluster.status(school).ok().and_then(|s| s.parent).is_some_and(|p| p.state == LinkState::Up)
}

#[test]
fn a_school_drops_what_its_county_holds_past_retention_and_every_restore_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let spec = topology::generate::SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 2 };
    let mut cluster = harness::cluster::Cluster::create(dir.path(), &spec, &crate::binary()).unwrap();
    let (province, county) = (id("13"), id("130102"));
    let school = id("130102-S0001");
    // Its clock may be moved on by the 500 days it takes.
    cluster.edit_config(school, |c| c.clock_control = true).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    let mut old: BTreeSet<String> = (0..6).map(|n| raise(&cluster, school, n)).collect();
    // Every alert gets its verdict (one left open would move to the county's queue when the clock
    // jumps, and that step is new): four dismissed at the school, two confirmed by the county.
    for (n, a) in old.iter().enumerate() {
        if n < 4 {
            let v = AlertVerdict { reason: "误报：员工戴了口罩".into(), ..AlertVerdict::default() };
            cluster.client(school).dismiss_alert(a, &v).unwrap();
        } else {
            let v = AlertVerdict { note: "确有鼠迹".into(), ..AlertVerdict::default() };
            let a = a.clone();
            eventually(Duration::from_secs(10), "the county confirming an alert", || {
                cluster.client(county).confirm_alert(&a, &v).ok()
            });
        }
    }
    let notice = crate::directive(&cluster, county, school, "整改通知");
    let before = cluster.status(school).unwrap().store;
    eventually(Duration::from_secs(15), "the school's alerts at the province, its county holding them", || {
        holds_all(&cluster, province, &old)?;
        let p = cluster.status(school).ok()?.parent?;
        (p.holds_mine >= before.own_seq).then_some(())
    });
    // The link tells the store what the county holds on its timer (keep-alives): let it tick.
    std::thread::sleep(Duration::from_secs(2));

    // Nothing is dropped within the retention (400 days by default).
    cluster.client(school).advance_clock(Duration::from_secs(2 * 3600)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cluster.status(school).unwrap().store.events_dropped, 0);
    assert_eq!(holds_all(&cluster, school, &old), Some(old.len()));

    // 500 days on, the six alerts and their verdicts go; the county's notice stays.
    let client = cluster.client(school);
    client.advance_clock(Duration::from_secs(500 * 86_400)).unwrap();
    let st = eventually(Duration::from_secs(20), "the school dropping its old alerts", || {
        client.advance_clock(Duration::from_secs(2 * 3600)).ok()?;
        let st = cluster.status(school).ok()?.store;
        (st.events_dropped >= 12).then_some(st)
    });
    eprintln!("dropped {} events; own floor {}", st.events_dropped, st.own_floor);
    assert!(st.own_floor > 0 && st.own_floor <= before.own_seq, "{st:?}");
    assert!(st.own_seq >= before.own_seq, "cursors never move back: {st:?}");
    assert!(held(&cluster, school).unwrap().keys().all(|a| !old.contains(a)), "old alerts gone at the school");
    assert!(client.events(100).unwrap().iter().any(|e| e.id == notice.id), "the county's notice is kept");
    // The operator sees it in `topology show`, in Chinese.
    let admin = cluster.admin_addr(school).to_string();
    let (ok, out, err) = crate::mingchu(&["topology", "show", "--links", "--admin", &admin]);
    assert!(ok, "{err}");
    eprintln!("{out}");
    assert!(
        out.contains(&format!(
            "本节点序号 {} 及以前的告警、台账、预警只在上级保存（本次运行清理 12 条）",
            st.own_floor
        )),
        "{out}"
    );
    let mut resp = ureq::get(&format!("http://{admin}/metrics")).call().unwrap();
    let metrics = resp.body_mut().read_to_string().unwrap();
    for line in [format!("mingchu_store_own_floor {}", st.own_floor), "mingchu_store_events_dropped_total 12".into()] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in /metrics");
    }
    for n in [county, county.parent().unwrap(), province] {
        assert_eq!(holds_all(&cluster, n, &old), Some(old.len()), "{n} keeps everything");
    }

    // A restart keeps the floor; the school goes on.
    cluster.stop(school).unwrap();
    cluster.start(school).unwrap();
    let floor = eventually(Duration::from_secs(10), "the restarted school's status", || {
        cluster.status(school).ok().filter(|_| parent_up(&cluster, school)).map(|s| s.store.own_floor)
    });
    assert_eq!(floor, st.own_floor, "the floor is kept across a restart");
    let newest = raise(&cluster, school, 7);
    old.insert(newest.clone());
    eventually(Duration::from_secs(15), "a new alert after the restart at the province", || {
        holds_all(&cluster, province, &old).map(|_| ())
    });

    // The county loses its disk while its city and the province are down: the school links to
    // the empty county first and sends what it kept, never what it dropped (a range it cannot fill
    // would be refused and the link closed). Then the city returns and fills in the rest.
    let city = county.parent().unwrap();
    for n in [county, city, province] {
        cluster.stop(n).unwrap();
    }
    std::fs::remove_dir_all(cluster.data_dir(county)).unwrap();
    cluster.start(county).unwrap();
    eventually(Duration::from_secs(30), "the empty county holding what the school kept", || {
        parent_up(&cluster, school).then_some(())?;
        held(&cluster, county)?.contains_key(&newest).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let h = held(&cluster, county).unwrap();
    assert!(old.iter().filter(|a| h.contains_key(*a)).count() < old.len(), "the dropped alerts came from above");
    for n in [city, province] {
        cluster.start(n).unwrap();
    }
    eventually(Duration::from_secs(30), "the wiped county holding the school's whole history", || {
        let st = cluster.status(county).ok()?;
        (!st.store.restoring && parent_up(&cluster, school)).then_some(())?;
        holds_all(&cluster, county, &old).map(|_| ())
    });
    old.insert(raise(&cluster, school, 8));
    eventually(Duration::from_secs(15), "a new alert through the refilled county", || {
        holds_all(&cluster, county, &old)?;
        holds_all(&cluster, province, &old).map(|_| ())
    });
    let st = cluster.status(county).unwrap();
    let link = st.children.iter().find(|c| c.peer == school).unwrap();
    assert_eq!(link.protocol_errors, 0, "{link:?}");
    assert_eq!(link.rejected, 0, "{link:?}");
    let mine = cluster.status(school).unwrap().parent.unwrap();
    assert_eq!(mine.protocol_errors, 0, "{mine:?}");

    // The school loses its disk: it gets its history back from the county, dropped alerts too,
    // and goes on without reusing a seq.
    let own_seq = cluster.status(school).unwrap().store.own_seq;
    cluster.stop(school).unwrap();
    std::fs::remove_dir_all(cluster.data_dir(school)).unwrap();
    cluster.start(school).unwrap();
    let next = eventually(Duration::from_secs(30), "the wiped school to accept an alert", || {
        let req = RaiseAlert { camera: "cam-02".into(), alert_type: "PHONE".into(), ..RaiseAlert::default() };
        cluster.client(school).raise_alert(&req).ok()
    });
    assert_eq!(next.seq, own_seq + 1, "a wiped school must not reuse its seqs");
    assert_eq!(holds_all(&cluster, school, &old), Some(old.len() + 1), "its whole history is back");
    let st = cluster.status(school).unwrap().store;
    assert_eq!(st.own_floor, 0, "a restored school holds all it wrote");
    old.insert(next.id);
    eventually(Duration::from_secs(15), "the restored school's alert at the province", || {
        holds_all(&cluster, province, &old).map(|_| ())
    });
}
