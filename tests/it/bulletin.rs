//! 通报 on real processes: known spot checks and cases in two counties, the province's weekly
//! bulletin ranks them in the known order with the known figures; a 监管员 may not publish it, a
//! 管理员 does; a county and a school below hold it and read the same tables. Then the bulletin
//! page and its print view in a real browser (screenshots under target/screenshots).

use std::time::Duration;

use harness::cluster::Cluster;
use node::api::bulletins::BulletinView;
use node::api::cases::{OpenCase, StepRequest};
use node::api::spot::RecordSpotCheck;
use protocol::bulletin::Ratio;
use protocol::spot::FocusArea;
use topology::NodeId;
use topology::generate::SmallSpec;

use crate::browser::{Browser, wait_text};
use crate::{binary, eventually, mingchu};

const PASSWORD: &str = "通报审核-2026";

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn account(cluster: &Cluster, node: NodeId, id: &str, name: &str, role: &str) {
    crate::browser::add_account_as(cluster, node, id, name, role, PASSWORD);
}

fn row<'a>(v: &'a BulletinView, table: usize, unit: &str) -> &'a protocol::bulletin::RankedRow {
    v.tables[table].rows.iter().find(|r| r.figures.unit == id(unit)).unwrap_or_else(|| panic!("{unit} in {v:?}"))
}

#[test]
fn the_provinces_weekly_bulletin_ranks_known_data_and_goes_down_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    for n in cluster.ids() {
        cluster
            .edit_config(n, |c| {
                c.clock_control = true;
                c.case_scan_ms = 200;
            })
            .unwrap();
    }
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    let (province, good, bad) = (id("13"), id("130102"), id("130104"));
    let (good_school, bad_school) = (NodeId::school(good, 1).unwrap(), NodeId::school(bad, 1).unwrap());

    // Spot checks: the good county 2 of 2 passed; the bad one 1 of 2 (the failure opens a case).
    let check = |county: NodeId, school: NodeId, failed: Vec<FocusArea>| {
        let req = RecordSpotCheck {
            school,
            canteen: "main".into(),
            failed,
            note: String::new(),
            severity: None,
            snapshots: Vec::new(),
        };
        cluster.client(county).spot_check(&req).unwrap();
    };
    check(good, good_school, vec![]);
    check(good, good_school, vec![]);
    check(bad, bad_school, vec![]);
    check(bad, bad_school, vec![FocusArea::StaffAttire]);

    // A case each, due in 10 minutes: the good school rectifies in time, the bad one does not.
    let now = cluster.client(good).advance_clock(Duration::ZERO).unwrap().wall_ms;
    let deadline = now + 10 * 60_000;
    let open = |county: NodeId, school: NodeId, title: &str| {
        let req = OpenCase {
            school,
            severity: "general".into(),
            source: None,
            title: title.into(),
            detail: String::new(),
            notice: true,
            notice_text: None,
            deadline_ms: Some(deadline),
        };
        cluster.client(county).open_case(&req).unwrap()
    };
    let on_time = open(good, good_school, "留样记录缺失");
    let late = open(bad, bad_school, "冷库生熟混放");
    let on_time_id = on_time.id.to_string();
    eventually(Duration::from_secs(20), "the notice at the school", || {
        cluster.client(good_school).case(&on_time_id).ok().filter(|c| c.deadline_ms.is_some())
    });
    cluster.client(good_school).case_step(&on_time_id, &StepRequest::Ack).unwrap();
    cluster
        .client(good_school)
        .case_step(
            &on_time_id,
            &StepRequest::Submit {
                evidence: vec!["after/sample-log.jpg".into()], note: "已补齐留样记录".into()
            },
        )
        .unwrap();
    // Past the deadline everywhere: the late case goes overdue.
    for n in cluster.ids() {
        cluster.client(n).advance_clock(Duration::from_secs(20 * 60)).unwrap();
    }
    let late_id = late.id.to_string();
    eventually(Duration::from_secs(30), "the late case overdue at the province", || {
        cluster.client(province).case(&late_id).ok().filter(|c| c.overdue)
    });
    eventually(Duration::from_secs(30), "the checks and cases at the province", || {
        let c = cluster.client(province).case(&on_time_id).ok()?;
        (c.submitted_at_ms.is_some() && cluster.client(province).spot_checks(None, None, None, 100).ok()?.len() == 4)
            .then_some(())
    });

    // A 监管员 of the province may neither generate nor publish; a 管理员 may.
    account(&cluster, province, "li.na", "李娜", "监管员");
    account(&cluster, province, "zhang", "张管理", "管理员");
    let week = protocol::ledger::day_str(protocol::ledger::china_day(deadline));
    let e = cluster.client(province).acting_as("li.na").generate_bulletin("weekly", Some(&week)).unwrap_err();
    assert!(e.to_string().contains("监管员不能生成、审核和发布通报"), "{e}");
    let e = cluster.client(province).acting_as("zhang").generate_bulletin("yearly", None).unwrap_err();
    assert!(e.to_string().contains("不是通报周期"), "{e}");
    let e = cluster.client(good).generate_bulletin("weekly", None).unwrap_err();
    assert!(e.to_string().contains("省级或市级"), "{e}");
    let admin = cluster.client(province).acting_as("zhang");
    let draft = admin.generate_bulletin("weekly", Some(&week)).unwrap();
    assert!(!draft.published && draft.title.contains("周通报"), "{draft:?}");
    assert_eq!(draft.tables.len(), 2, "cities, then counties");
    assert_eq!(draft.tables[0].rows.len(), 1);

    // The counties: the good one first, with the known figures.
    let counties = &draft.tables[1];
    let order: Vec<NodeId> = counties.rows.iter().map(|r| r.figures.unit).collect();
    assert_eq!(order, [good, bad], "{counties:?}");
    let (g, b) = (row(&draft, 1, "130102"), row(&draft, 1, "130104"));
    assert_eq!((g.rank, b.rank), (Some(1), Some(2)));
    assert_eq!(g.figures.spot, Ratio::new(2, 2));
    assert_eq!(b.figures.spot, Ratio::new(1, 2));
    assert_eq!(g.figures.on_time, Ratio::new(1, 1));
    assert_eq!(b.figures.on_time, Ratio::new(0, 1));
    assert_eq!(g.score, g.figures.score());
    let city = row(&draft, 0, "1301");
    assert_eq!((city.figures.spot, city.figures.on_time), (Ratio::new(3, 4), Ratio::new(1, 2)));
    // The examples: the good county with its evidence, the overdue case by number and title.
    assert!(counties.good.iter().any(|e| e.unit == good && e.evidence.contains("全部合格")), "{counties:?}");
    assert!(counties.bad.iter().any(|e| e.unit == bad), "{counties:?}");
    let named = draft.doc.bad_cases.iter().find(|c| c.title == "冷库生熟混放").expect("the late case named");
    assert_eq!(named.number, late.ledger_no());
    assert!(named.why.contains("逾期"), "{named:?}");

    // Reviewed: a bad summary is refused and changes nothing; the 监管员 cannot publish.
    let e = admin.edit_bulletin(&draft.id, "含有\u{7}控制字符").unwrap_err();
    assert!(e.to_string().contains("控制字符"), "{e}");
    assert_eq!(admin.bulletin_draft(&draft.id).unwrap().doc.summary, draft.doc.summary);
    let e = cluster.client(province).acting_as("li.na").publish_bulletin(&draft.id).unwrap_err();
    assert!(e.to_string().contains("监管员不能"), "{e}");
    assert!(cluster.client(province).bulletins().unwrap().is_empty(), "nothing published");
    let summary = format!("{}\n请各县（区）对照排名查找差距。", draft.doc.summary);
    admin.edit_bulletin(&draft.id, &summary).unwrap();
    let published = admin.publish_bulletin(&draft.id).unwrap();
    assert!(published.published && published.doc.summary.ends_with("查找差距。"));
    assert_eq!(published.tables, draft.tables, "the same tables as reviewed");
    assert!(admin.publish_bulletin(&draft.id).unwrap_err().to_string().contains("已发布"));

    // Down the tree: the county and the school hold it and read the same tables.
    for n in [good, good_school, bad_school] {
        let held = eventually(Duration::from_secs(30), "the bulletin below", || {
            cluster.client(n).bulletins().ok()?.into_iter().find(|b| b.id == published.id)
        });
        assert_eq!(held.tables, published.tables, "at {n}");
        assert_eq!(held.person.as_ref().map(|p| p.account.as_str()), Some("zhang"));
    }
    // A city's monthly bulletin of its counties, generated from the city's own store: the same
    // counties in the same order, published down to them.
    let city = id("1301");
    account(&cluster, city, "zhou", "周管理", "管理员");
    let city_admin = cluster.client(city).acting_as("zhou");
    let monthly = city_admin.generate_bulletin("monthly", Some(&week)).unwrap();
    assert!(monthly.title.contains("月通报"), "{}", monthly.title);
    assert_eq!(monthly.tables.len(), 1, "the city ranks its counties only: {:?}", monthly.tables);
    let order: Vec<NodeId> = monthly.tables[0].rows.iter().map(|r| r.figures.unit).collect();
    assert_eq!(order, [good, bad], "{:?}", monthly.tables[0]);
    let (g, b) = (row(&monthly, 0, "130102"), row(&monthly, 0, "130104"));
    assert_eq!((g.figures.spot, b.figures.spot), (Ratio::new(2, 2), Ratio::new(1, 2)));
    assert_eq!((g.figures.on_time, b.figures.on_time), (Ratio::new(1, 1), Ratio::new(0, 1)));
    let city_published = city_admin.publish_bulletin(&monthly.id).unwrap();
    let held = eventually(Duration::from_secs(30), "the city's bulletin at a county", || {
        cluster.client(bad).bulletins().ok()?.into_iter().find(|b| b.id == city_published.id)
    });
    assert_eq!(held.tables, city_published.tables);

    // The CLI lists and shows it at the school.
    let school_admin = cluster.admin_addr(good_school).to_string();
    let (ok, out, err) = mingchu(&["bulletin", "list", "--admin", &school_admin]);
    assert!(ok && out.contains(&published.title), "{out}{err}");
    let (ok, out, err) = mingchu(&["bulletin", "show", "--admin", &school_admin, &published.id]);
    assert!(ok && out.contains("各县（区）排名") && out.contains("冷库生熟混放"), "{out}{err}");

    // The reading page at the county, in a browser, and its print view.
    account(&cluster, good, "wu", "吴县长", "领导");
    let b = Browser::start();
    b.viewport(1280, 1400);
    let base = cluster.console_url(good);
    b.goto(&format!("{base}/sign-in"));
    b.fill("account", "wu");
    b.fill("password", PASSWORD);
    b.submit();
    b.goto(&format!("{base}/bulletins"));
    wait_text(&b, &published.title);
    b.goto(&format!("{base}/bulletins/{}", published.id.replace('#', "%23")));
    let text = wait_text(&b, "综合排名");
    assert!(text.contains("好的典型") && text.contains("冷库生熟混放"), "{text}");
    b.screenshot("bulletin");
    // Print media, emulated: the stylesheet's print rules made to apply on screen.
    b.eval(
        "for (const s of document.styleSheets) { for (const r of s.cssRules) { \
           if (r.media && r.media.mediaText === 'print') { r.media.mediaText = 'all'; } } }",
    );
    let nav = b.eval("return getComputedStyle(document.querySelector('nav.main')).display");
    assert_eq!(nav, "none", "the navigation does not print");
    b.screenshot("bulletin-print");
    drop(b);
    cluster.stop_all();
}
