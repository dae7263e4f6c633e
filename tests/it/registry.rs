//! The registry on real processes: a county registers a new school that then joins at run time
//! (nobody restarts), school-owned entities replicate by the holds rule, and only an entity's one
//! owner may write it. Writes and listings go through the `mingchu registry` CLI with `--json`.

use std::net::SocketAddr;
use std::time::Duration;

use harness::cluster::{Cluster, free_base_port};
use node::api::alerts::RaiseAlert;
use node::api::registry::{EntityView, RegistryRequest, RegistryWritten};
use node::runtime::link::LinkState;
use protocol::registry::{Canteen, EntityData, EntityKind, RegistryOp};
use topology::{NodeId, Tier};

use crate::{eventually, federation, mingchu};

/// Runs a `mingchu registry …` write against `node` that must succeed, and parses its `--json`.
fn write_ok(cluster: &Cluster, node: NodeId, args: &[&str]) -> RegistryWritten {
    let admin = cluster.admin_addr(node).to_string();
    let mut all = vec!["registry"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--admin", &admin, "--json"]);
    let (ok, out, err) = mingchu(&all);
    assert!(ok, "`mingchu {}` failed: {err}", all.join(" "));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`mingchu {}` printed bad JSON ({e}):\n{out}", all.join(" ")))
}

/// Runs a `mingchu registry …` write that must fail; returns its stderr.
fn write_refused(cluster: &Cluster, node: NodeId, args: &[&str]) -> String {
    let admin = cluster.admin_addr(node).to_string();
    let mut all = vec!["registry"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--admin", &admin]);
    let (ok, out, err) = mingchu(&all);
    assert!(!ok, "`mingchu {}` should fail, printed:\n{out}", all.join(" "));
    err
}

/// `mingchu registry list [--kind K] --json` at `node`, parsed.
fn list(cluster: &Cluster, node: NodeId, kind: Option<&str>) -> Vec<EntityView> {
    let admin = cluster.admin_addr(node).to_string();
    let mut args = vec!["registry", "list", "--admin", &admin, "--json"];
    if let Some(k) = kind {
        args.extend_from_slice(&["--kind", k]);
    }
    let (ok, out, err) = mingchu(&args);
    assert!(ok, "`mingchu {}` failed: {err}", args.join(" "));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("registry list printed bad JSON ({e}):\n{out}"))
}

fn of_tier(cluster: &Cluster, tier: Tier) -> Vec<NodeId> {
    cluster.ids().into_iter().filter(|n| n.tier() == tier).collect()
}

#[test]
fn a_county_registers_a_school_that_joins_at_run_time_and_the_province_sees_it() {
    let (_dir, mut cluster) = federation(1, 2, 2);
    let province = of_tier(&cluster, Tier::Province)[0];
    let county = of_tier(&cluster, Tier::County)[0];
    let new_school = NodeId::school(county, 17).unwrap();
    assert!(!cluster.topology.contains(new_school));
    let base = free_base_port(1).unwrap();
    let quic = SocketAddr::from(([127, 0, 0, 1], base));
    let admin = SocketAddr::from(([127, 0, 0, 1], base + 1));

    // Its certificate, issued with the CLI from the federation CA.
    let certs = cluster.cert_dir.to_str().unwrap().to_string();
    let (ok, out, err) = mingchu(&["ca", "issue", "--node", &new_school.to_string(), "--dir", &certs]);
    assert!(ok, "{err}");
    assert!(out.contains(&new_school.dns_name()), "{out}");

    // Started before it is registered: the county refuses it, naming why.
    cluster.add_joining(new_school, quic, admin).unwrap();
    cluster.start(new_school).unwrap();
    let refusal = eventually(Duration::from_secs(20), "the county to refuse the unregistered school", || {
        let st = cluster.status(county).ok()?;
        st.last_refusal.filter(|r| r.contains(&new_school.to_string()))
    });
    assert!(refusal.contains("neither in the topology nor a registered school"), "{refusal}");
    assert!(cluster.status(new_school).unwrap().store.restoring, "an unconnected new node must not write");

    // The county registers it (with the school's addresses).
    let written = write_ok(
        &cluster,
        county,
        &[
            "school",
            "add",
            "--school",
            &new_school.to_string(),
            "--name",
            "新建第十七学校",
            "--address",
            "长安区建设路 17 号",
            "--school-quic",
            &quic.to_string(),
            "--school-admin",
            &admin.to_string(),
        ],
    );
    assert_eq!((written.kind, written.node, written.op.as_str()), (EntityKind::School, new_school, "upsert"));
    assert!(written.event.starts_with(&format!("{county}#")), "{}", written.event);

    // It joins: the county lists it among its children, up.
    eventually(Duration::from_secs(30), "the new school's link to its county", || {
        let st = cluster.status(county).ok()?;
        st.children.iter().any(|c| c.peer == new_school && c.state == LinkState::Up).then_some(())
    });
    let (ok, out, err) = mingchu(&["topology", "show", "--links", "--admin", &cluster.admin_addr(county).to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains(&new_school.to_string()), "topology show at the county lacks the new school:\n{out}");
    // Its roster (topology file plus registry) lists it too, live.
    eventually(Duration::from_secs(10), "the new school in the county's tree", || {
        let (_, out, _) =
            mingchu(&["topology", "show", "--schools", "--admin", &cluster.admin_addr(county).to_string()]);
        out.contains(&new_school.to_string()).then_some(())
    });
    // The school's own node finds its admin address through its config (not in the topology file).
    let cfg = cluster.config_path(new_school);
    let (ok, out, err) = mingchu(&["topology", "show", "--links", "--config", cfg.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let st: node::runtime::root::NodeStatus = serde_json::from_str(&out).unwrap();
    assert_eq!(st.node, new_school);

    // It raises an alert (once it has learnt from its county that it has no past to restore).
    // Its kitchen registered by the school itself, first.
    eventually(Duration::from_secs(20), "the new school's cameras registered", || {
        cluster.register_cameras_at(new_school).ok()
    });
    let alert = cluster
        .client(new_school)
        .raise_alert(&RaiseAlert { camera: "cam-01".into(), alert_type: "RODENT".into(), ..RaiseAlert::default() })
        .unwrap();
    assert_eq!(alert.school, new_school);

    // The province holds the alert and lists the school; the school itself holds its registration.
    eventually(Duration::from_secs(20), "the alert at the province", || {
        let held = cluster.client(province).alerts(1000, Some(new_school)).ok()?;
        held.iter().any(|a| a.id == alert.id).then_some(())
    });
    let schools = list(&cluster, province, Some("school"));
    let found = schools.iter().find(|e| e.node == new_school).expect("the province lists the new school");
    assert_eq!(found.owner, county);
    match &found.data {
        EntityData::School(s) => {
            assert_eq!(s.name, "新建第十七学校");
            assert_eq!(s.quic_addr, quic.to_string());
        }
        other => panic!("school entity carries {other:?}"),
    }
    eventually(Duration::from_secs(20), "the school to hold its own registration", || {
        list(&cluster, new_school, Some("school")).iter().any(|e| e.node == new_school).then_some(())
    });
    // A sibling county knows nothing of it.
    let other_county = of_tier(&cluster, Tier::County)[1];
    assert!(list(&cluster, other_county, Some("school")).iter().all(|e| e.node != new_school));

    // The county removes it: its link closes at once, and its redials are refused.
    let refused_before = cluster.status(county).unwrap().refused;
    let removed = write_ok(
        &cluster,
        county,
        &["remove", "--kind", "school", "--of", &new_school.to_string(), "--reason", "merged into S0001"],
    );
    assert_eq!(removed.op, "remove");
    let link_down = |st: &node::runtime::root::NodeStatus| {
        st.children.iter().all(|c| c.peer != new_school || c.state != LinkState::Up)
    };
    eventually(Duration::from_secs(20), "the county to close the removed school's link", || {
        let st = cluster.status(county).ok()?;
        link_down(&st).then_some(())
    });
    eventually(Duration::from_secs(20), "the removed school's redial to be refused", || {
        let st = cluster.status(county).ok()?;
        (st.refused >= refused_before + 2).then_some(())
    });
    assert!(link_down(&cluster.status(county).unwrap()), "the removed school is linked again");

    // Nobody restarted: every process started at the beginning is still running.
    assert_eq!(cluster.exited(), vec![]);
    for id in cluster.ids() {
        assert!(cluster.is_running(id), "{id} is not running");
    }
}

#[test]
fn school_entities_replicate_by_the_holds_rule_and_only_their_owner_writes_them() {
    let (_dir, cluster) = federation(1, 2, 2);
    let counties = of_tier(&cluster, Tier::County);
    let (county, other_county) = (counties[0], counties[1]);
    let schools = of_tier(&cluster, Tier::School);
    let school = schools.iter().copied().find(|s| s.parent() == Some(county)).unwrap();
    let sibling = schools.iter().copied().find(|s| s.parent() == Some(county) && *s != school).unwrap();
    let cousin = schools.iter().copied().find(|s| s.parent() == Some(other_county)).unwrap();
    let city = county.parent().unwrap();
    let province = city.parent().unwrap();

    // A camera needs its canteen, a certificate its staff member: refused before they exist.
    let err = write_refused(
        &cluster,
        school,
        &["camera", "add", "--id", "cam1", "--canteen", "c1", "--name", "后厨1", "--zone", "cooking"],
    );
    assert!(err.contains(&format!("{school} 的摄像头 cam1 引用的食堂“c1”在 {school} 尚未登记")), "{err}");

    let w = write_ok(&cluster, school, &["canteen", "add", "--id", "c1", "--name", "第一食堂", "--address", "北区"]);
    assert_eq!((w.kind, w.node, w.id.as_str()), (EntityKind::Canteen, school, "c1"));
    write_ok(
        &cluster,
        school,
        &[
            "camera",
            "add",
            "--id",
            "cam1",
            "--canteen",
            "c1",
            "--name",
            "后厨1",
            "--zone",
            "special-room",
            "--parent-visible",
        ],
    );
    write_ok(&cluster, school, &["staff", "add", "--id", "st1", "--name", "张三", "--role", "cook"]);
    write_ok(
        &cluster,
        school,
        &["cert", "add", "--id", "hc1", "--staff", "st1", "--number", "HB-2025-0001", "--valid-until", "2026-03-01"],
    );
    let mine = [EntityKind::Canteen, EntityKind::Camera, EntityKind::Staff, EntityKind::HealthCertificate];

    // Visible at the school, its county, city and province …
    for node in [school, county, city, province] {
        let held = eventually(Duration::from_secs(20), &format!("the school's entities at {node}"), || {
            let l: Vec<EntityView> = list(&cluster, node, None).into_iter().filter(|e| e.node == school).collect();
            mine.iter().all(|k| l.iter().any(|e| e.kind == *k)).then_some(l)
        });
        let camera = held.iter().find(|e| e.kind == EntityKind::Camera && e.id == "cam1").unwrap();
        match &camera.data {
            EntityData::Camera(c) => {
                assert_eq!(
                    (c.canteen.as_str(), c.zone, c.ai_enabled, c.parent_visible),
                    ("c1", protocol::Zone::SpecialRoom, true, true)
                );
            }
            other => panic!("camera carries {other:?}"),
        }
        assert!(held.iter().all(|e| e.owner == school), "{held:?}");
        // The per-kind listings agree.
        let staff = list(&cluster, node, Some("staff"));
        assert!(staff.iter().any(|e| e.node == school && e.id == "st1"), "{node}: {staff:?}");
    }
    // … and not at a sibling school or in another county (which by now have heard from their
    // parents since: the writes reached the province through the same county).
    for node in [sibling, other_county, cousin] {
        let held = list(&cluster, node, None);
        assert!(held.iter().all(|e| e.node != school), "{node} holds {school}'s registry: {held:?}");
        let events = cluster.client(node).events(10_000).unwrap();
        assert!(events.iter().all(|e| e.origin != school), "{node} holds events of {school}");
    }
    // The text listing names them too.
    let admin = cluster.admin_addr(county).to_string();
    let (ok, out, err) = mingchu(&["registry", "cert", "list", "--admin", &admin, "--under", &school.to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("HB-2025-0001") && out.contains("valid until 2026-03-01"), "{out}");

    // Authority: nothing is written by a node that is not the owner.
    let seq_before = |n: NodeId| cluster.status(n).unwrap().store.own_seq;
    let (school_seq, county_seq) = (seq_before(school), seq_before(county));
    // A school registering a school (even itself).
    for target in [NodeId::school(county, 99).unwrap(), school] {
        let err = write_refused(&cluster, school, &["school", "add", "--school", &target.to_string(), "--name", "x"]);
        assert!(err.contains(&format!("只能由其所属县 {county} 登记，{school} 无权写入")), "{err}");
    }
    // A county registering a school of another county.
    let foreign = NodeId::school(other_county, 42).unwrap();
    let err = write_refused(&cluster, county, &["school", "add", "--school", &foreign.to_string(), "--name", "x"]);
    assert!(err.contains(&format!("只能由其所属县 {other_county} 登记，{county} 无权写入")), "{err}");
    // A county writing its school's canteen (the API directly: 403 with the rule).
    let req = RegistryRequest {
        kind: EntityKind::Canteen,
        node: Some(school),
        id: "c2".into(),
        op: RegistryOp::Upsert(EntityData::Canteen(Canteen { name: "forged".into(), address: String::new() })),
    };
    let err = cluster.client(county).registry_write(&req).unwrap_err().to_string();
    assert!(err.contains(&format!("{school} 的食堂 c2 只能由该学校 {school} 自己登记")), "{err}");
    // A city registering a school.
    let err = write_refused(&cluster, city, &["school", "add", "--school", &sibling.to_string(), "--name", "x"]);
    assert!(err.contains(&format!("只能由其所属县 {county} 登记，{city} 无权写入")), "{err}");
    assert_eq!((seq_before(school), seq_before(county)), (school_seq, county_seq), "a refused write was written");
    assert!(list(&cluster, province, Some("school")).iter().all(|e| e.node != foreign));

    // The owner removes; the removal replicates.
    let w = write_ok(&cluster, school, &["remove", "--kind", "camera", "--id", "cam1", "--reason", "dismantled"]);
    assert_eq!(w.op, "remove");
    eventually(Duration::from_secs(20), "the camera's removal at the province", || {
        list(&cluster, province, Some("camera")).iter().all(|e| !(e.node == school && e.id == "cam1")).then_some(())
    });
    let err = write_refused(&cluster, school, &["remove", "--kind", "camera", "--id", "cam1", "--reason", "again"]);
    assert!(err.contains(&format!("{school} 的摄像头 cam1 不在登记册中")), "{err}");
}
