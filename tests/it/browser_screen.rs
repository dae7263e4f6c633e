//! 监管大屏 in a real browser, against real processes: a federation of two cities with a county of
//! four schools each gets a week of AI alerts, verdicts, spot checks and cases (open, overdue,
//! 督办) and cameras reporting through the schools' devices; the county's and the province's
//! screens at 1920×1080 draw every panel from their own store (the province on its configured
//! GeoJSON map, the county on the schematic grid). Then the province and the city stop: the
//! county's screen keeps answering with the same data.

use std::time::Duration;

use harness::cluster::Cluster;
use node::api::accounts::AccountRequest;
use node::api::alerts::{AlertVerdict, RaiseAlert};
use node::api::cases::{OpenCase, StepRequest};
use node::api::spot::RecordSpotCheck;
use node::config::DevicesConfig;
use node::console::pages::screen::ScreenData;
use protocol::spot::FocusArea;
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::browser::{Browser, wait_text};
use crate::console::Web;
use crate::devices::Device;
use crate::{binary, eventually};

const PASSWORD: &str = "监管大屏-2026";
const DAY_MS: u64 = 86_400_000;

/// The screen's JSON as a signed-in person of `node` gets it.
fn data(cluster: &Cluster, node: NodeId, account: &str) -> ScreenData {
    let mut web = Web::new(cluster, node);
    assert_eq!(web.sign_in(account, PASSWORD).status, 303);
    let page = web.get("/screen/data");
    assert_eq!(page.status, 200, "{}", page.body);
    serde_json::from_str(&page.body).unwrap()
}

fn account(cluster: &Cluster, node: NodeId, id: &str, name: &str, role: &str) {
    let req = AccountRequest {
        id: id.into(),
        display_name: name.into(),
        role: role.into(),
        password: PASSWORD.into(),
        disabled: false,
    };
    cluster.client(node).add_account(&req).unwrap();
}

/// A GeoJSON of the province's cities: one rectangle each, coded like the units (`130100`).
fn map_of(cities: &[(NodeId, String)]) -> String {
    let features: Vec<serde_json::Value> = cities
        .iter()
        .enumerate()
        .map(|(i, (c, name))| {
            let x = 114.0 + i as f64 * 1.5;
            serde_json::json!({
                "type": "Feature",
                "properties": { "adcode": c.to_raw().0, "name": name },
                "geometry": { "type": "Polygon", "coordinates": [[[x, 38.0], [x + 1.4, 38.0], [x + 1.4, 39.6], [x, 39.6], [x, 38.0]]] },
            })
        })
        .collect();
    serde_json::json!({ "type": "FeatureCollection", "features": features }).to_string()
}

/// Opens `/screen` (by the navigation) and waits until the script has drawn data; checks every
/// chart has a canvas and returns the page's text.
fn open_screen(b: &Browser, base: &str) -> String {
    b.goto(&format!("{base}/"));
    b.click_nav("nav.main a[href='/screen']");
    let text = wait_text(b, "秒自动刷新");
    for chart in ["types", "sources", "map", "alerts", "spot"] {
        let canvases = b.count(&format!("#chart-{chart} canvas"));
        assert!(canvases >= 1, "#chart-{chart} has no canvas:\n{text}");
    }
    text
}

#[test]
fn the_big_screen_draws_every_panel_and_a_cut_off_county_keeps_its_screen() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 2, counties_per_city: 1, schools_per_county: 4 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let ids = cluster.ids();
    let province = ids.iter().copied().find(|n| n.tier() == Tier::Province).unwrap();
    let cities: Vec<NodeId> = ids.iter().copied().filter(|n| n.tier() == Tier::City).collect();
    let county = ids.iter().copied().find(|n| n.tier() == Tier::County && n.parent() == Some(cities[0])).unwrap();
    let schools: Vec<NodeId> = ids.iter().copied().filter(|n| n.tier() == Tier::School).collect();
    // The province draws its cities on a map; every school's devices report its cameras.
    let named: Vec<(NodeId, String)> =
        cities.iter().map(|c| (*c, cluster.topology.get(*c).unwrap().name.clone())).collect();
    let map_path = dir.path().join("cities.geojson");
    std::fs::write(&map_path, map_of(&named)).unwrap();
    cluster
        .edit_config(province, |c| {
            let console = c.console.as_mut().unwrap();
            console.screen_map = Some(map_path.clone());
            console.screen_refresh_s = Some(5);
        })
        .unwrap();
    cluster.edit_config(county, |c| c.console.as_mut().unwrap().screen_refresh_s = Some(5)).unwrap();
    let intake = harness::cluster::free_tcp_ports(schools.len()).unwrap();
    for (i, s) in schools.iter().enumerate() {
        cluster
            .edit_config(*s, |c| {
                c.devices = Some(DevicesConfig::new(([127, 0, 0, 1], intake + i as u16).into()));
                c.health_refresh_ms = 1_000;
            })
            .unwrap();
    }
    for n in &ids {
        cluster.edit_config(*n, |c| c.case_scan_ms = 200).unwrap();
    }
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(60)).unwrap();
    cluster.register_cameras().unwrap();

    // Cameras: each school's box reports its 8 cameras, one in four offline at the second county.
    for (i, s) in schools.iter().enumerate() {
        let token = cluster
            .client(*s)
            .add_device(&node::api::devices::AddDevice {
                id: "nvr-1".into(),
                kind: "nvr".into(),
                name: "硬盘录像机".into(),
                cameras: harness::cluster::CAMERAS.iter().map(|(c, _)| c.to_string()).collect(),
            })
            .unwrap()
            .token;
        let device = Device::new(&cluster, *s, &token);
        let beats: Vec<(&str, bool, Option<u32>)> = harness::cluster::CAMERAS
            .iter()
            .enumerate()
            .map(|(k, (c, _))| (*c, !(s.parent() != Some(county) && k % 4 == i % 4), Some(30)))
            .collect();
        assert_eq!(device.heartbeat(&beats).status, 200);
    }

    // A week of AI alerts of several types at every school (detected on the days before today).
    let now = node::clock::unix_ms();
    let types = ["NO_MASK", "NO_CHEF_HAT", "RODENT", "SMOKING", "PHONE", "BIN_UNCOVERED", "FLOOR_WATER"];
    for (i, s) in schools.iter().enumerate() {
        let alerts: Vec<RaiseAlert> = (0..14u64)
            .map(|k| RaiseAlert {
                camera: format!("cam-{:02}", k % 8 + 1),
                alert_type: types[(k as usize + i) % types.len()].into(),
                canteen: None,
                zone: None,
                severity: None,
                confidence_permille: Some(900),
                snapshot: None,
                detected_at_ms: Some(now - (k % 7) * DAY_MS - (k + 1) * 60_000),
                no_merge: true,
            })
            .collect();
        cluster.client(*s).raise_alerts(alerts).unwrap();
    }
    // The county judges its schools' newest alerts: confirms two with a case, dismisses one.
    let county_schools: Vec<NodeId> = schools.iter().copied().filter(|s| s.parent() == Some(county)).collect();
    let all = eventually(Duration::from_secs(30), "the county holds its schools' alerts", || {
        let a = cluster.client(county).alerts(100, None).unwrap();
        (a.len() >= 14 * county_schools.len()).then_some(a)
    });
    let c = cluster.client(county);
    let verdict = |open_case| AlertVerdict { note: "属实".into(), open_case, reason: String::new() };
    c.confirm_alert(&all[0].id, &verdict(true)).unwrap();
    c.confirm_alert(&all[1].id, &verdict(true)).unwrap();
    c.dismiss_alert(&all[2].id, &AlertVerdict { note: String::new(), open_case: false, reason: "误报：阴影".into() })
        .unwrap();
    // Spot checks: two passed, two failed (each failure opens a case).
    for (k, s) in county_schools.iter().enumerate() {
        let failed = if k % 2 == 0 { vec![] } else { vec![FocusArea::StaffAttire, FocusArea::EnvironmentalHygiene] };
        let check = RecordSpotCheck {
            school: *s,
            canteen: "main".into(),
            failed,
            note: String::new(),
            severity: None,
            snapshots: Vec::new(),
        };
        c.spot_check(&check).unwrap();
    }
    // A complaint case due in a few seconds: once overdue, the county escalates it (督办); and an
    // on-site case.
    let open = |source: &str, title: &str, deadline_ms| OpenCase {
        school: county_schools[0],
        severity: "serious".into(),
        source: Some(source.into()),
        title: title.into(),
        detail: String::new(),
        notice: true,
        notice_text: None,
        deadline_ms,
    };
    let soon = node::clock::unix_ms() + 3_000;
    let complaint = c.open_case(&open("complaint", "家长投诉：饭菜不热", Some(soon))).unwrap().id.to_string();
    c.open_case(&open("on-site", "现场检查：留样不足 48 小时", None)).unwrap();
    eventually(Duration::from_secs(30), "the complaint case to go overdue", || {
        c.case(&complaint).unwrap().overdue.then_some(())
    });
    c.case_step(&complaint, &StepRequest::Escalate).unwrap();

    // The county's JSON: every series has data.
    account(&cluster, county, "xian.jian", "孙县监", "监管员");
    let d = eventually(Duration::from_secs(60), "the county's screen to show its data", || {
        let d = data(&cluster, county, "xian.jian");
        let h = &d.headline;
        (h.overdue_cases >= 1 && h.cameras_online == 32 && h.spot_checked_30d == 4).then_some(d)
    });
    let h = &d.headline;
    assert_eq!((h.schools, h.canteens, h.cameras), (4, 4, 32), "{h:?}");
    assert_eq!(h.alerts_30d, 14 * 4, "{h:?}");
    assert!(h.alerts_today >= 4 && h.spot_passed_30d == 2, "{h:?}");
    assert!(h.open_cases >= 6 && h.escalated_cases == 1, "two from alerts, four from checks, two opened: {h:?}");
    assert_eq!(d.days.len(), 30);
    assert_eq!(d.alerts_by_day.iter().filter(|n| **n > 0).count(), 7, "a week of alerts: {:?}", d.alerts_by_day);
    assert_eq!(d.alerts_by_day.iter().sum::<u64>(), 56);
    assert!(d.spot_checked_by_day.last() == Some(&4) && d.spot_passed_by_day.last() == Some(&2));
    assert_eq!(d.alert_types.len(), types.len(), "{:?}", d.alert_types);
    assert!(d.spot_problems.iter().any(|p| p.name == "人员着装" && p.count == 2), "{:?}", d.spot_problems);
    let sources: Vec<&str> = d.case_sources.iter().map(|c| c.name.as_str()).collect();
    for s in ["AI 预警", "网络巡查", "投诉举报", "现场检查"] {
        assert!(sources.contains(&s), "{s} in {sources:?}");
    }
    assert_eq!(d.units.len(), 4, "the county's schools");
    assert!(d.units.iter().all(|u| u.online_permille == Some(1000) && u.alerts_30d == 14), "{:?}", d.units);
    assert!(d.cases[0].escalated && d.cases.iter().any(|c| c.overdue), "{:?}", d.cases);

    // The county's screen in the browser: every panel drawn, the grid of its schools.
    let b = Browser::start();
    b.viewport(1920, 1080);
    let base = cluster.console_url(county);
    b.goto(&format!("{base}/sign-in"));
    b.fill("account", "xian.jian");
    b.fill("password", PASSWORD);
    b.submit();
    wait_text(&b, "孙县监");
    let text = open_screen(&b, &base);
    assert!(text.contains("明厨亮灶智慧监管大屏") && text.contains("示意网格"), "{text}");
    assert_eq!(b.text_of("#n-schools"), "4");
    assert_eq!(b.text_of("#n-alerts-30d"), "56");
    assert_eq!(b.text_of("#n-cameras"), "100.0%");
    assert_eq!(b.text_of("#n-escalated"), "1");
    let cases = b.text_of("#case-table tbody");
    assert!(cases.contains("督办") && cases.contains("逾期") && cases.contains("家长投诉：饭菜不热"), "{cases}");
    b.screenshot("screen_county");

    // The province's screen: its two cities on the configured map, cameras offline in the second.
    account(&cluster, province, "sheng.ld", "钱省领导", "领导");
    let d = eventually(Duration::from_secs(60), "the province's screen to show its data", || {
        let d = data(&cluster, province, "sheng.ld");
        (d.headline.alerts_30d == 14 * 8
            && d.headline.cameras == 64
            && d.headline.cameras_online == 56
            && d.headline.overdue_cases >= 1)
            .then_some(d)
    });
    assert!(d.map && d.units.len() == 2, "{:?}", d.units);
    assert_eq!(d.units.iter().map(|u| u.online_permille).collect::<Vec<_>>(), [Some(1000), Some(750)]);
    let pb = Browser::start();
    pb.viewport(1920, 1080);
    let pbase = cluster.console_url(province);
    pb.goto(&format!("{pbase}/sign-in"));
    pb.fill("account", "sheng.ld");
    pb.fill("password", PASSWORD);
    pb.submit();
    wait_text(&pb, "钱省领导");
    let text = open_screen(&pb, &pbase);
    assert!(text.contains("本单位配置的区域边界"), "{text}");
    pb.screenshot("screen_province");
    drop(pb);

    // Who may open it: a school's principal may not (403, a Chinese page); no script needed to see so.
    let school = county_schools[0];
    account(&cluster, school, "xiao.zhang", "周校长", "校长");
    let mut web = Web::new(&cluster, school);
    assert_eq!(web.sign_in("xiao.zhang", PASSWORD).status, 303);
    let page = web.get("/screen");
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("学校没有大屏"), "{}", page.body);
    assert!(!web.get("/").body.contains("href=\"/screen\""), "no link to it in a school's navigation");
    assert_eq!(web.get("/screen/data").status, 403);

    // The province and the city stop: the county is cut off, and its screen still answers with
    // everything it holds (the browser redraws it without a reload).
    let before = data(&cluster, county, "xian.jian");
    cluster.stop(province).unwrap();
    cluster.stop(cities[0]).unwrap();
    let drawn = b.attr("body", "data-drawn");
    eventually(Duration::from_secs(30), "the county's screen to redraw after the cut", || {
        (b.attr("body", "data-drawn") != drawn).then_some(())
    });
    let after = data(&cluster, county, "xian.jian");
    assert_eq!(after.headline.alerts_30d, before.headline.alerts_30d);
    assert_eq!(after.headline.open_cases, before.headline.open_cases);
    assert_eq!(after.alerts_by_day, before.alerts_by_day);
    assert_eq!(after.alert_types, before.alert_types);
    assert_eq!(b.text_of("#n-alerts-30d"), "56");
    assert!(b.text_of("#state").contains("自动刷新"), "{}", b.text_of("#state"));
    b.screenshot("screen_county_cut_off");
}
