//! The province's daily draw on real processes: the quota spread by canteen count, the same list
//! on every asking and after a restart (and re-run to the same list from its seed), no canteen
//! again within the window over consecutive working days, nothing of it at a county (API, console,
//! events); a check recorded from the worklist marks its item done; and a school or canteen the
//! registry does not know is refused in Chinese, by the API and the CLI, with nothing written.

use std::collections::BTreeSet;
use std::time::Duration;

use harness::cluster::Cluster;
use node::api::accounts::AccountRequest;
use node::api::draw::DrawView;
use node::api::registry::RegistryRequest;
use node::api::spot::{AreaSnapshot, RecordSpotCheck};
use protocol::calendar::{ChinaTime, WorkCalendar, day_start_ms, parse_day};
use protocol::draw::DrawSettings;
use protocol::registry::{Canteen, EntityData, EntityKind, RegistryOp};
use protocol::spot::FocusArea;
use topology::NodeId;
use topology::generate::SmallSpec;

use crate::console::Web;
use crate::{binary, eventually, mingchu};

const PASSWORD: &str = "巡查员的密码-2026";

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// 1 city × 2 counties × 2 schools, the province's clock movable; every school registers its
/// `main` canteen, and the two schools of 130102 two more each: 6 canteens there, 2 in 130104.
pub fn draw_federation() -> (tempfile::TempDir, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 2 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    cluster.edit_config(id("13"), |c| c.clock_control = true).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    for school in ["130102-S0001", "130102-S0002"] {
        for canteen in ["east", "west"] {
            let data = EntityData::Canteen(Canteen { name: format!("{canteen}食堂"), address: String::new() });
            let req = RegistryRequest {
                kind: EntityKind::Canteen,
                node: None,
                id: canteen.into(),
                op: RegistryOp::Upsert(data),
            };
            cluster.client(id(school)).registry_write(&req).unwrap();
        }
    }
    eventually(Duration::from_secs(20), "all 8 canteens at the province", || {
        let n = cluster.client(id("13")).registry(Some(EntityKind::Canteen), None).ok()?.len();
        (n == 8).then_some(())
    });
    (dir, cluster)
}

pub fn inspector(cluster: &Cluster, node: NodeId, account: &str, name: &str) {
    let req = AccountRequest {
        id: account.into(),
        display_name: name.into(),
        role: "巡查员".into(),
        password: PASSWORD.into(),
        disabled: false,
    };
    cluster.client(node).add_account(&req).unwrap();
}

/// Moves the province's clock to 10:00 of the next working day after the one it shows; returns
/// that day.
pub fn next_working_day(cluster: &Cluster) -> String {
    let client = cluster.client(id("13"));
    let now = client.advance_clock(Duration::ZERO).unwrap().wall_ms;
    let mut day = parse_day(&ChinaTime(now).date()).unwrap() + 1;
    while !WorkCalendar::builtin().is_working_date(day) {
        day += 1;
    }
    let target = day_start_ms(day) + 10 * 3_600_000;
    client.advance_clock(Duration::from_millis(target - now)).unwrap();
    ChinaTime(target).date()
}

fn pairs(v: &DrawView) -> Vec<(NodeId, String)> {
    v.draw.items.iter().map(|i| (i.school, i.canteen.clone())).collect()
}

fn drawn_in(v: &DrawView, county: &str) -> u32 {
    v.draw.counties.iter().find(|c| c.county == id(county)).map_or(0, |c| c.drawn)
}

fn own_writes(cluster: &Cluster, node: NodeId) -> u64 {
    cluster.client(node).status().unwrap().store.events_written_local
}

#[test]
fn the_province_draws_by_canteen_count_without_repeats_keeps_it_to_itself_and_across_a_restart() {
    let (dir, mut cluster) = draw_federation();
    let (province, county) = (id("13"), id("130102"));
    let addrs =
        [(province, cluster.admin_addr(province).to_string()), (county, cluster.admin_addr(county).to_string())];
    let admin = |n: NodeId| addrs.iter().find(|(m, _)| *m == n).map(|(_, a)| a.clone()).unwrap();
    inspector(&cluster, province, "zhao", "赵巡查");
    inspector(&cluster, province, "qian", "钱巡查");

    // Settings: four a day, two weeks without a repeat; only the province has them.
    let (ok, out, err) =
        mingchu(&["spot", "draw-settings", "--admin", &admin(province), "--quota", "4", "--window-weeks", "2"]);
    assert!(ok && out.contains("每日抽查 4 个食堂") && out.contains("2 周内"), "{out}{err}");
    let e = cluster.client(province).set_draw_settings(&DrawSettings { quota: 0, window_weeks: 2 }).unwrap_err();
    assert!(e.to_string().contains("每日抽查数量应在 1 到"), "{e}");
    let (ok, _, err) = mingchu(&["spot", "draw-settings", "--admin", &admin(county), "--quota", "9"]);
    assert!(!ok && err.contains("只在省级"), "{err}");

    // Day 1: 4 canteens, 3 from the county with 6 of the 8, 1 from the other; two inspectors, two each.
    let day1 = next_working_day(&cluster);
    let writes_before = own_writes(&cluster, province);
    let d1 = cluster.client(province).spot_draw(None).unwrap();
    assert_eq!(d1.draw.day, day1);
    assert_eq!((d1.draw.items.len(), d1.draw.shortfall, d1.draw.candidates), (4, 0, 8), "{d1:?}");
    assert_eq!((drawn_in(&d1, "130102"), drawn_in(&d1, "130104")), (3, 1), "{:?}", d1.draw.counties);
    let owners: Vec<Option<&str>> = d1.draw.items.iter().map(|i| i.inspector.as_deref()).collect();
    assert_eq!(owners, [Some("qian"), Some("qian"), Some("zhao"), Some("zhao")], "contiguous runs by account id");
    assert_eq!(own_writes(&cluster, province), writes_before, "the draw is no event: nothing replicates");

    // The same list on every asking, by the API and the CLI, which shows the seed and the inputs.
    assert_eq!(cluster.client(province).spot_draw(Some(&day1)).unwrap(), d1);
    let (ok, out, err) = mingchu(&["spot", "draw", "--admin", &admin(province), "--day", &day1, "--json"]);
    assert!(ok, "{err}");
    let again: DrawView = serde_json::from_str(&out).unwrap();
    assert_eq!(pairs(&again), pairs(&d1));
    let (ok, out, err) = mingchu(&["spot", "draw", "--admin", &admin(province), "--day", &day1]);
    assert!(ok && out.contains(&format!("种子 {}", d1.draw.seed)) && out.contains("候选食堂 8 个"), "{out}{err}");
    assert!(out.contains("未巡查") && out.contains("qian") && out.contains("复核：mingchu spot draw"), "{out}");

    // Secrecy: a county's API and console show nothing of it, and it holds no event of it.
    for n in [id("1301"), county, id("130102-S0001")] {
        let e = cluster.client(n).spot_draw(None).unwrap_err().to_string();
        assert!(e.contains("只在省级"), "{n}: {e}");
        let e = cluster.client(n).spot_draw_inputs(Some(&day1)).unwrap_err().to_string();
        assert!(e.contains("只在省级"), "{n}: {e}");
    }
    let (ok, _, err) = mingchu(&["spot", "draw", "--admin", &admin(county)]);
    assert!(!ok && err.contains("只在省级"), "{err}");
    crate::console::add_account(&cluster, county, "county.admin", "县管理员", PASSWORD, false);
    let mut web = Web::new(&cluster, county);
    web.sign_in("county.admin", PASSWORD);
    let page = web.get("/spot-checks/worklist");
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("只在省级"), "{}", page.body);
    for i in &d1.draw.items {
        assert!(!page.body.contains(&i.school.to_string()), "a drawn school at the county: {}", page.body);
    }
    let spot_page = web.get("/spot-checks");
    assert!(!spot_page.body.contains("/spot-checks/worklist"), "no link to a worklist at a county");

    // Recorded from the worklist: the first item fails staff attire with a snapshot; it is done.
    let first = d1.draw.items[0].clone();
    let shot =
        cluster.client(province).upload_file("evidence", &crate::browser_files::png(8, 8, |_, _| [1, 2, 3])).unwrap();
    let req = RecordSpotCheck {
        school: first.school,
        canteen: first.canteen.clone(),
        failed: vec![FocusArea::StaffAttire],
        note: "厨师未戴帽".into(),
        severity: None,
        snapshots: vec![AreaSnapshot { area: FocusArea::StaffAttire, file: shot.file.clone() }],
    };
    let done = cluster.client(province).spot_check(&req).unwrap();
    assert_eq!(done.cases.len(), 1);
    let v = cluster.client(province).spot_draw(Some(&day1)).unwrap();
    assert_eq!(v.done, 1);
    let item = &v.items[0];
    assert_eq!(item.done.as_ref().map(|d| (d.passed, d.failed.clone())), Some((false, vec![FocusArea::StaffAttire])));
    assert!(v.items[1..].iter().all(|i| i.done.is_none()));
    // The case carries the snapshot's reference down to the school.
    let case = eventually(Duration::from_secs(20), "the case at the school", || {
        cluster.client(first.school).case(&done.cases[0]).ok()
    });
    assert!(case.detail.contains(&shot.file), "{}", case.detail);
    // A snapshot of an area that passed, or a file this node does not hold: refused.
    let mut bad = req.clone();
    bad.snapshots = vec![AreaSnapshot { area: FocusArea::FoodProcessing, file: shot.file.clone() }];
    let e = cluster.client(province).spot_check(&bad).unwrap_err().to_string();
    assert!(e.contains("不需要截图"), "{e}");
    bad.snapshots = vec![AreaSnapshot { area: FocusArea::StaffAttire, file: format!("sha256:{}", "ab".repeat(32)) }];
    let e = cluster.client(province).spot_check(&bad).unwrap_err().to_string();
    assert!(e.contains("不在本节点的文件库"), "{e}");

    // Day 2: the other four (none of day 1's), spread the same way; day 3: nothing left in the window.
    let day2 = next_working_day(&cluster);
    let d2 = cluster.client(province).spot_draw(None).unwrap();
    assert_eq!(d2.draw.day, day2);
    assert_eq!(d2.draw.history_days, std::slice::from_ref(&day1));
    assert_eq!((drawn_in(&d2, "130102"), drawn_in(&d2, "130104")), (3, 1));
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (pairs(&d1).into_iter().collect(), pairs(&d2).into_iter().collect());
    assert!(a.is_disjoint(&b), "a canteen drawn again within the window: {a:?} {b:?}");
    assert_eq!(a.union(&b).count(), 8);
    let _day3 = next_working_day(&cluster);
    let d3 = cluster.client(province).spot_draw(None).unwrap();
    assert_eq!((d3.draw.items.len(), d3.draw.shortfall, d3.draw.excluded), (0, 4, 8), "{:?}", d3.draw);
    // A day off (a weekend or a public holiday by the calendar in force) draws nothing.
    let client = cluster.client(province);
    let now = client.advance_clock(Duration::ZERO).unwrap().wall_ms;
    let mut off = parse_day(&ChinaTime(now).date()).unwrap() + 1;
    while WorkCalendar::builtin().is_working_date(off) {
        off += 1;
    }
    client.advance_clock(Duration::from_millis(day_start_ms(off) + 36_000_000 - now)).unwrap();
    let e = client.spot_draw(None).unwrap_err().to_string();
    assert!(e.contains("不是工作日"), "{e}");
    // A day long past that was never drawn is not drawn now.
    let e = cluster.client(province).spot_draw(Some("2026-01-05")).unwrap_err().to_string();
    assert!(e.contains("没有抽查名单"), "{e}");

    // A restart: the kept draws come back the same, the recorded item still done; they re-run to
    // the same list from their seeds.
    cluster.stop(province).unwrap();
    cluster.start(province).unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    let after = cluster.client(province).spot_draw(Some(&day1)).unwrap();
    assert_eq!(after.draw, d1.draw);
    assert_eq!(after.done, 1);
    assert_eq!(cluster.client(province).spot_draw(Some(&day2)).unwrap().draw, d2.draw);
    for day in [&day1, &day2] {
        let v = cluster.client(province).spot_draw_verify(Some(day)).unwrap();
        assert!(v.same && v.differences.is_empty() && v.candidates_then == v.candidates_now, "{v:?}");
    }
    let (ok, out, err) = mingchu(&["spot", "draw", "--admin", &admin(province), "--day", &day2, "--verify"]);
    assert!(ok && out.contains("复核一致"), "{out}{err}");

    // An auditor takes the inputs away and re-runs the pure draw with no node: the same list.
    let (ok, inputs, err) = mingchu(&["spot", "draw", "--admin", &admin(province), "--day", &day2, "--inputs"]);
    assert!(ok, "{err}");
    let file = dir.path().join("inputs.json");
    std::fs::write(&file, &inputs).unwrap();
    let (ok, out, err) = mingchu(&["spot", "rerun", "--inputs", file.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let rerun: protocol::draw::Drawn = serde_json::from_str(&out).unwrap();
    let rerun: Vec<(NodeId, String)> = rerun.items.into_iter().map(|c| (c.school, c.canteen)).collect();
    assert_eq!(rerun, pairs(&d2));
    let (ok, out, _) = mingchu(&["spot", "rerun", "--inputs", file.to_str().unwrap()]);
    assert!(
        ok && out.contains(&format!("种子 {}", d2.draw.seed)) && out.contains("从 8 个候选食堂（排除 4 个）"),
        "{out}"
    );
    std::fs::write(&file, "{}").unwrap();
    let (ok, _, err) = mingchu(&["spot", "rerun", "--inputs", file.to_str().unwrap()]);
    assert!(!ok && err.contains("不是抽查依据"), "{err}");
}

#[test]
fn a_check_of_a_school_or_canteen_the_registry_does_not_know_is_refused_and_writes_nothing() {
    let (_dir, cluster) = crate::federation(1, 1, 1);
    let province = id("13");
    let admin = cluster.admin_addr(province).to_string();
    eventually(Duration::from_secs(20), "the school's canteen at the province", || {
        let n = cluster.client(province).registry(Some(EntityKind::Canteen), None).ok()?.len();
        (n == 1).then_some(())
    });
    let writes = own_writes(&cluster, province);
    let check = |school: &str, canteen: &str| RecordSpotCheck {
        school: id(school),
        canteen: canteen.into(),
        failed: vec![FocusArea::StaffAttire],
        note: String::new(),
        severity: None,
        snapshots: Vec::new(),
    };
    // A phantom county (139999) and school: refused by the API and the CLI.
    let e = cluster.client(province).spot_check(&check("139999-S0999", "main")).unwrap_err().to_string();
    assert!(e.contains("学校 139999-S0999 不存在") && e.contains("139999 不是本省的县区"), "{e}");
    let (ok, _, err) =
        mingchu(&["spot", "record", "--admin", &admin, "--school", "139999-S0999", "--fail", "staff-attire"]);
    assert!(!ok && err.contains("139999-S0999 不存在") && err.contains("未保存任何记录"), "{err}");
    // A school its (real) county never registered, and a canteen the school never registered.
    let e = cluster.client(province).spot_check(&check("130102-S0999", "main")).unwrap_err().to_string();
    assert!(e.contains("130102-S0999 不存在") && e.contains("没有登记这所学校"), "{e}");
    let (ok, _, err) = mingchu(&["spot", "record", "--admin", &admin, "--school", "130102-S0001", "--canteen", "nope"]);
    assert!(!ok && err.contains("没有登记食堂“nope”") && err.contains("main"), "{err}");
    assert_eq!(own_writes(&cluster, province), writes, "nothing written");
    assert!(cluster.client(province).spot_checks(None, None, None, 100).unwrap().is_empty());
    assert!(cluster.client(province).pass_rates(None, None, None).unwrap().is_empty(), "no phantom county rolls up");
    // The real one is accepted.
    let done = cluster.client(province).spot_check(&check("130102-S0001", "main")).unwrap();
    assert!(!done.check.passed && done.cases.len() == 1);
}
