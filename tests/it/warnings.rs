//! Early warnings with real processes: each family of rules fires at the school and clears by
//! itself; a warning whose rule opens a case gets its case and notice from the county, once; a
//! school cut off from its county still raises its warnings, and they arrive after the heal
//! exactly once; the county judges a silent school.

use std::time::Duration;

use harness::cluster::Cluster;
use node::api::alerts::RaiseAlert;
use node::api::cases::CaseView;
use node::api::ledgers::{LedgerView, LedgerWrite};
use node::api::registry::RegistryRequest;
use node::api::warnings::{Evaluated, WarningView};
use protocol::calendar::{DAY_MS, WorkCalendar};
use protocol::ledger::{FoodSample, LedgerKind, LedgerRecord, Meal, at_minute, china_day};
use protocol::registry::{EntityData, EntityKind, HealthCertificate, RegistryOp, Staff, StaffRole, Supplier};
use protocol::warning::{Level, RuleId};
use topology::NodeId;

use crate::{eventually, federation};

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn put(cluster: &Cluster, school: NodeId, kind: EntityKind, eid: &str, data: EntityData) {
    cluster
        .client(school)
        .registry_write(&RegistryRequest { kind, node: None, id: eid.into(), op: RegistryOp::Upsert(data) })
        .unwrap();
}

fn staff(cluster: &Cluster, school: NodeId, eid: &str, name: &str) {
    put(
        cluster,
        school,
        EntityKind::Staff,
        eid,
        EntityData::Staff(Staff { name: name.into(), role: StaffRole::Cook, on_duty: true }),
    );
}

fn evaluate(cluster: &Cluster, node: NodeId) -> Evaluated {
    cluster.client(node).post("/api/warnings/evaluate", &()).unwrap()
}

fn warnings(cluster: &Cluster, node: NodeId) -> Vec<WarningView> {
    cluster.client(node).get("/api/warnings?active=false&limit=all").unwrap()
}

/// The warning of `rule` about `subject` at `node`, once it is there and `ok` holds.
fn warning_at(
    cluster: &Cluster,
    node: NodeId,
    rule: RuleId,
    subject: &str,
    what: &str,
    ok: impl Fn(&WarningView) -> bool,
) -> WarningView {
    eventually(Duration::from_secs(30), what, || {
        warnings(cluster, node).into_iter().find(|w| w.rule == rule && w.subject == subject && ok(w))
    })
}

fn sample(grams: u32) -> LedgerRecord {
    LedgerRecord::FoodSample(FoodSample {
        canteen: "main".into(),
        meal: Meal::Lunch,
        dish: "番茄炒蛋".into(),
        grams,
        sampled_at_ms: 0,
        refrigerated: true,
        disposed_at_ms: None,
        batches: vec![],
        sampled_by: "李四".into(),
    })
}

fn write(cluster: &Cluster, school: NodeId, id: Option<&str>, record: LedgerRecord) -> Result<LedgerView, String> {
    let req = LedgerWrite {
        kind: record.kind(),
        date: None,
        id: id.map(str::to_string),
        record: Some(record),
        void_reason: None,
        at: None,
    };
    cluster.client(school).post::<_, LedgerView>("/api/ledger", &req).map_err(|e| format!("{e:#}"))
}

#[test]
fn rules_fire_and_clear_at_the_school_and_a_warning_that_opens_a_case_gets_one() {
    let (_dir, mut cluster) = federation(1, 1, 2);
    let (province, county, school) = (id("13"), id("130102"), id("130102-S0001"));

    // A cook on duty without a health certificate: red at the school, by the school.
    staff(&cluster, school, "st1", "张三");
    let pass = evaluate(&cluster, school);
    assert!(pass.raised >= 1, "{pass:?}");
    let w =
        warning_at(&cluster, school, RuleId::HealthCertMissing, "st1", "the red warning at the school", |w| w.active);
    assert_eq!(w.level, Some(Level::Red));
    assert_eq!(w.judged_by, school);
    assert!(w.text.contains("张三"), "{}", w.text);

    // It travels up; the county, whose default for this rule is a case with its notice, opens one.
    warning_at(&cluster, county, RuleId::HealthCertMissing, "st1", "the warning at the county", |w| w.active);
    let pass = evaluate(&cluster, county);
    assert_eq!(pass.cases, 1, "{pass:?}");
    let case: CaseView = eventually(Duration::from_secs(30), "the automatic case and its notice at the school", || {
        cluster
            .client(school)
            .cases(None, None, false)
            .ok()?
            .into_iter()
            .find(|c| c.status == protocol::case::CaseStatus::NoticeIssued)
    });
    assert!(case.title.contains("在岗人员无健康证"), "{}", case.title);
    // Nothing more on the same facts: no second case, no second raise.
    assert_eq!(evaluate(&cluster, county), Evaluated { raised: 0, resolved: 0, cases: 0, moved: 0 });
    assert_eq!(evaluate(&cluster, school), Evaluated { raised: 0, resolved: 0, cases: 0, moved: 0 });
    let at_county =
        warning_at(&cluster, county, RuleId::HealthCertMissing, "st1", "the case named", |w| w.case.is_some());
    assert_eq!(at_county.case_no.as_deref(), Some(case.number.as_str()));

    // The certificate arrives: the warning clears by itself, everywhere, raised once.
    put(
        &cluster,
        school,
        EntityKind::HealthCertificate,
        "hc1",
        EntityData::HealthCertificate(HealthCertificate {
            staff: "st1".into(),
            number: "冀健 2026-001".into(),
            valid_until_ms: node::clock::unix_ms() + 300 * DAY_MS,
        }),
    );
    assert_eq!(evaluate(&cluster, school).resolved, 1);
    let w = warning_at(&cluster, province, RuleId::HealthCertMissing, "st1", "resolved at the province", |w| !w.active);
    assert_eq!((w.raises, w.resolve_reason.as_str()), (1, "已有健康证"));

    // A light food sample: yellow; corrected to 150 g: cleared.
    let rec = write(&cluster, school, None, sample(100)).unwrap();
    assert_eq!(rec.kind, LedgerKind::FoodSample);
    evaluate(&cluster, school);
    let w = warning_at(&cluster, school, RuleId::SampleUnderweight, &rec.id, "the light sample", |w| w.active);
    assert_eq!(w.level, Some(Level::Yellow));
    let fixed = write(&cluster, school, Some(&rec.id), sample(150)).unwrap();
    assert_eq!(fixed.versions, 2);
    evaluate(&cluster, school);
    let w =
        warning_at(&cluster, province, RuleId::SampleUnderweight, &rec.id, "cleared at the province", |w| !w.active);
    assert_eq!(w.raises, 1);

    // A supplier whose licence expired yesterday: red, and purchases from it are refused.
    put(
        &cluster,
        school,
        EntityKind::Supplier,
        "sp1",
        EntityData::Supplier(Supplier {
            name: "放心菜店".into(),
            licence_no: "JY11301020001".into(),
            licence_valid_until_ms: node::clock::unix_ms() - DAY_MS,
            contact: String::new(),
        }),
    );
    evaluate(&cluster, school);
    let w = warning_at(&cluster, school, RuleId::SupplierLicence, "sp1", "the expired supplier", |w| w.active);
    assert_eq!(w.level, Some(Level::Red));
    let refused = write(
        &cluster,
        school,
        None,
        LedgerRecord::Purchase(protocol::ledger::Purchase {
            supplier: "sp1".into(),
            item: "猪肉".into(),
            batch: "B7".into(),
            quantity_milli: 20_000,
            unit: "kg".into(),
            received_at_ms: 0,
            inspection_cert: String::new(),
            invoice: String::new(),
        }),
    )
    .unwrap_err();
    assert!(refused.contains("不得向其采购"), "{refused}");
    // A bad record is refused in Chinese and writes nothing.
    let bad = write(&cluster, school, None, sample(0)).unwrap_err();
    assert!(bad.contains("留样重量"), "{bad}");
    cluster.stop_all();
}

#[test]
fn a_school_cut_off_from_its_county_raises_its_warnings_and_they_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = topology::generate::SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 2 };
    let mut cluster = Cluster::create(dir.path(), &spec, &crate::binary()).unwrap();
    let (province, county, school, silent) = (id("13"), id("130102"), id("130102-S0001"), id("130102-S0002"));
    // The county's clock may be moved to a working morning (for the silent-school rule).
    cluster.edit_config(county, |c| c.clock_control = true).unwrap();
    cluster.edit_config(school, |c| c.clock_control = true).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    cluster.kill(county).unwrap();
    // Cut off from its county, the school judges its own rules as ever.
    staff(&cluster, school, "st9", "王五");
    assert!(evaluate(&cluster, school).raised >= 1);
    warning_at(&cluster, school, RuleId::HealthCertMissing, "st9", "raised while cut off", |w| w.active);
    // The county comes back: the warning arrives, once, and the county opens its case, once.
    cluster.start(county).unwrap();
    cluster.wait_links_up(Duration::from_secs(60)).unwrap();
    warning_at(&cluster, county, RuleId::HealthCertMissing, "st9", "the warning at the county after the heal", |w| {
        w.active
    });
    assert_eq!(evaluate(&cluster, county).cases, 1);
    assert_eq!(evaluate(&cluster, county).cases, 0);
    eventually(Duration::from_secs(30), "the case at the school", || {
        cluster.client(school).cases(None, None, false).ok()?.into_iter().find(|c| c.title.contains("健康证"))
    });
    for node in [county, province] {
        let w = warning_at(&cluster, node, RuleId::HealthCertMissing, "st9", "the case named", |w| w.case.is_some());
        assert_eq!(w.raises, 1, "{node}: raised once");
        let cases = cluster.client(node).cases(None, None, false).unwrap();
        assert_eq!(cases.iter().filter(|c| c.title.contains("健康证")).count(), 1, "{node}: one case");
    }

    // A silent school on a working morning: the county judges it (its own kind of warning), and
    // clears it once the school is back.
    eventually(Duration::from_secs(60), "the school back on its county", || {
        let st = cluster.status(school).ok()?;
        (st.failover.is_none() && st.parent?.state == node::runtime::link::LinkState::Up).then_some(())
    });
    cluster.kill(silent).unwrap();
    eventually(Duration::from_secs(30), "the county sees the school's link down", || {
        let st = cluster.status(county).ok()?;
        st.children.iter().any(|l| l.peer == silent && l.state != node::runtime::link::LinkState::Up).then_some(())
    });
    let client = cluster.client(county);
    let now = client.advance_clock(Duration::ZERO).unwrap().wall_ms;
    let calendar = WorkCalendar::builtin();
    let day = (china_day(now) + 1..).find(|d| calendar.is_working_date(u64::from(*d))).unwrap();
    let target = at_minute(day, 9 * 60);
    client.advance_clock(Duration::from_millis(target - now)).unwrap();
    // (The clock's move woke the scheduler, which may have judged it already.)
    evaluate(&cluster, county);
    let w = warning_at(&cluster, county, RuleId::SchoolSilent, &silent.to_string(), "the silent school", |w| w.active);
    assert_eq!((w.level, w.judged_by), (Some(Level::Yellow), county));
    // The school that is linked is not silent.
    let links: Vec<String> =
        cluster.status(county).unwrap().children.iter().map(|l| format!("{} {:?}", l.peer, l.state)).collect();
    assert!(
        warnings(&cluster, county).iter().all(|w| !(w.rule == RuleId::SchoolSilent && w.school == school)),
        "{links:?} {:?}",
        warnings(&cluster, county)
    );
    cluster.start(silent).unwrap();
    cluster.wait_links_up(Duration::from_secs(60)).unwrap();
    evaluate(&cluster, county);
    let w = warning_at(&cluster, county, RuleId::SchoolSilent, &silent.to_string(), "cleared", |w| !w.active);
    assert!(w.resolve_reason.contains("恢复连接"), "{}", w.resolve_reason);

    // An alert nobody judges for 24 hours moves to the county's queue, as an event, once.
    let alert = cluster
        .client(school)
        .raise_alert(&RaiseAlert { camera: "cam-01".into(), alert_type: "PHONE".into(), ..RaiseAlert::default() })
        .unwrap();
    assert_eq!(evaluate(&cluster, school).moved, 0);
    cluster.client(school).advance_clock(Duration::from_secs(25 * 3600)).unwrap();
    // (The clock's move woke the scheduler, which may have moved it already.)
    evaluate(&cluster, school);
    assert_eq!(evaluate(&cluster, school).moved, 0);
    let moved = eventually(Duration::from_secs(30), "the alert in the county's queue", || {
        cluster.client(county).alert(&alert.id).ok().filter(|a| a.escalated_to == Some(county))
    });
    assert_eq!(moved.status, "new", "moved, not judged");
    cluster.stop_all();
}

#[test]
fn cameras_that_stop_beating_in_operating_hours_raise_warnings_that_clear_when_they_beat_again() {
    let (_dir, cluster, county, school) = crate::devices::device_federation();
    let token = crate::devices::add_with_cli(&cluster, school, "nvr1", "nvr", "cam-01,cam-02").token;
    let device = crate::devices::Device::new(&cluster, school, &token);
    // A working morning at 10:00, inside the canteen's hours (07:00 to the end of lunch).
    let client = cluster.client(school);
    let now = client.advance_clock(Duration::ZERO).unwrap().wall_ms;
    let calendar = WorkCalendar::builtin();
    let day = (china_day(now) + 1..).find(|d| calendar.is_working_date(u64::from(*d))).unwrap();
    client.advance_clock(Duration::from_millis(at_minute(day, 10 * 60) - now)).unwrap();
    assert_eq!(device.heartbeat(&[("cam-01", true, Some(30)), ("cam-02", true, Some(20))]).status, 200);
    evaluate(&cluster, school);
    let w = warning_at(&cluster, school, RuleId::RecordingShort, "cam-02", "too few days of recordings", |w| w.active);
    assert_eq!(w.level, Some(Level::Red));
    assert!(warnings(&cluster, school).iter().all(|w| w.rule != RuleId::CameraOffline || !w.active));
    // Silent past the 180 s of the settings: offline, in operating hours.
    client.advance_clock(Duration::from_secs(200)).unwrap();
    evaluate(&cluster, school);
    for cam in ["cam-01", "cam-02"] {
        let w = warning_at(&cluster, school, RuleId::CameraOffline, cam, "the camera offline", |w| w.active);
        assert_eq!(w.level, Some(Level::Yellow));
    }
    // Cameras the school's devices never reported are not judged.
    assert!(warnings(&cluster, school).iter().all(|w| !(w.rule == RuleId::CameraOffline && w.subject == "cam-03")));
    // cam-01 beats again: its warning clears; cam-02's stays; the county holds the same.
    assert_eq!(device.heartbeat(&[("cam-01", true, Some(30))]).status, 200);
    evaluate(&cluster, school);
    warning_at(&cluster, county, RuleId::CameraOffline, "cam-01", "cleared at the county", |w| !w.active);
    warning_at(&cluster, county, RuleId::CameraOffline, "cam-02", "still active at the county", |w| w.active);
}
