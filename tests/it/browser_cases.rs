//! The case lifecycle and the alert triage in a real browser, each step taken by the person whose
//! step it is, at the node where it belongs, across a real federation: a county supervisor
//! confirms an alert and opens a case; the principal signs in at the school, acknowledges the
//! notice and submits the rectification; the supervisor fails the review with a comment the
//! principal then reads, and after the second submission passes it and closes the case. An
//! inspector records a spot check; a parent sees the school's public record and nothing else; an
//! id of another county is refused. Every page is saved as a screenshot.

use std::time::Duration;

use harness::cluster::Cluster;
use node::api::alerts::RaiseAlert;
use node::api::cases::OpenCase;
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::binary;
use crate::browser::{Browser, wait_text};

const PASSWORD: &str = "a long password 2026";

fn account(cluster: &Cluster, node: NodeId, id: &str, name: &str, role: &str) {
    crate::browser::add_account_as(cluster, node, id, name, role, PASSWORD);
}

/// Signs in at the console `base` as `id` (signing out whoever is signed in there first).
fn sign_in(b: &Browser, base: &str, id: &str) {
    b.sign_in_as(base, id, PASSWORD);
}

#[test]
fn a_case_runs_its_whole_lifecycle_in_the_browser_each_step_by_its_person() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    let counties: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::County).collect();
    let (county, other_county) = (counties[0], counties[1]);
    let school = NodeId::school(county, 1).unwrap();
    account(&cluster, county, "li.na", "李娜", "监管员");
    account(&cluster, county, "zhou", "周巡查", "巡查员");
    account(&cluster, school, "chen", "陈校长", "校长");
    account(&cluster, school, "wang.jia", "王家长", "家长");
    // A case of the other county, whose id the supervisor will try.
    let foreign = cluster
        .client(other_county)
        .open_case(&OpenCase {
            school: NodeId::school(other_county, 1).unwrap(),
            severity: "general".into(),
            source: None,
            title: "别县的问题".into(),
            detail: String::new(),
            notice: true,
            notice_text: None,
            deadline_ms: None,
        })
        .unwrap()
        .id
        .to_string();
    // The school's camera gateway raises a rodent alert.
    let alert = cluster
        .client(school)
        .raise_alert(&RaiseAlert { camera: "cam-02".into(), alert_type: "RODENT".into(), ..RaiseAlert::default() })
        .unwrap();
    let (county_url, school_url) = (cluster.console_url(county), cluster.console_url(school));
    let b = Browser::start();

    // The supervisor: the alert in her queue, confirmed with a case opened from it.
    sign_in(&b, &county_url, "li.na");
    wait_text(&b, "李娜");
    let text = b.wait_page(&format!("{county_url}/"), "鼠患");
    assert!(text.contains("待处理预警"), "{text}");
    b.screenshot("supervisor-home");
    b.wait_page(&format!("{county_url}/alerts"), "鼠患");
    b.screenshot("alerts");
    b.fill("note", "后厨确有老鼠");
    b.click("input[name=open_case]");
    b.click_nav("form:has(input[name=kind][value=confirm]) button[type=submit]");
    let text = wait_text(&b, "已挂账并下发整改通知");
    assert!(text.contains("李娜（li.na）") && text.contains("整改通知"), "{text}");
    let case_url = b.url().replace(&county_url, "");
    let case_url = case_url.split('&').next().unwrap().to_string();
    assert!(case_url.starts_with("/cases/show?id="), "{case_url}");
    b.screenshot("case-opened");
    let shown = cluster.client(county).alert(&alert.id).unwrap();
    assert_eq!(shown.verdict_person.map(|p| p.account), Some("li.na".into()));

    // Another county's case, by its id: refused, not shown.
    b.goto(&format!("{county_url}/cases/show?id={}", foreign.replace('#', "%23")));
    let text = wait_text(&b, "无权操作");
    assert!(!text.contains("别县的问题"), "{text}");
    b.screenshot("cross-county-refused");

    // The principal at the school: the notice on his home page; acknowledged, then rectified.
    sign_in(&b, &school_url, "chen");
    let text = b.wait_page(&format!("{school_url}/"), "鼠患");
    assert!(text.contains("需要本校处理的通知"), "{text}");
    b.screenshot("principal-home");
    b.wait_page(&format!("{school_url}{case_url}"), "签收整改通知");
    b.submit();
    wait_text(&b, "已签收整改通知");
    b.fill("note", "已灭鼠并封堵洞口");
    b.fill("evidence", "photo-rat-trap-1.jpg");
    b.submit();
    let text = wait_text(&b, "整改材料已提交");
    assert!(text.contains("陈校长（chen）") && text.contains("已灭鼠并封堵洞口"), "{text}");
    b.screenshot("rectification-submitted");

    // The supervisor reviews: not good enough, with a comment.
    sign_in(&b, &county_url, "li.na");
    b.wait_page(&format!("{county_url}{case_url}"), "已灭鼠并封堵洞口");
    b.choose("passed", "no");
    b.fill("comment", "照片看不清，请重拍洞口封堵处");
    b.submit();
    wait_text(&b, "复核未通过");
    b.screenshot("review-failed");

    // The principal reads the comment and submits again.
    sign_in(&b, &school_url, "chen");
    let text = b.wait_page(&format!("{school_url}{case_url}"), "照片看不清，请重拍洞口封堵处");
    assert!(text.contains("李娜（li.na）") && text.contains("提交整改"), "{text}");
    b.screenshot("principal-reads-review");
    b.fill("note", "已重拍，见新照片");
    b.fill("evidence", "photo-rat-trap-2.jpg");
    b.submit();
    wait_text(&b, "整改材料已提交");

    // The supervisor passes it and closes the case (销号).
    sign_in(&b, &county_url, "li.na");
    b.wait_page(&format!("{county_url}{case_url}"), "已重拍，见新照片");
    b.choose("passed", "yes");
    b.fill("comment", "整改到位");
    b.submit();
    wait_text(&b, "复核通过");
    b.submit();
    let text = wait_text(&b, "已销号");
    for who in ["李娜（li.na）", "陈校长（chen）", "照片看不清", "整改到位"] {
        assert!(text.contains(who), "{who} in the history: {text}");
    }
    b.screenshot("case-closed");
    // The whole history, with its people, at the province too.
    let province: NodeId = "13".parse().unwrap();
    let id = case_url.split("id=").nth(1).unwrap().replace("%23", "#");
    crate::eventually(Duration::from_secs(20), "the closed case at the province", || {
        let c = cluster.client(province).case(&id).ok()?;
        (c.status == protocol::case::CaseStatus::Closed).then_some(())
    });

    // A notice to the school, delivered.
    b.wait_page(&format!("{county_url}/directives"), "下发通知");
    b.fill("to", &school.to_string());
    b.fill("title", "明日食堂检查");
    b.fill("text", "请做好准备。");
    b.submit();
    wait_text(&b, "通知已下发");
    b.wait_page(&format!("{county_url}/directives"), "已送达");

    // The other pages a supervisor uses, as she sees them.
    for (path, shows, shot) in [
        ("/cases?view=all", "已销号", "cases"),
        ("/directives", "下发通知", "directives"),
        ("/registry?kind=camera", "cam-02", "registry"),
    ] {
        b.wait_page(&format!("{county_url}{path}"), shows);
        b.screenshot(shot);
    }

    // The inspector records an online spot check; the pass rate shows it.
    sign_in(&b, &county_url, "zhou");
    b.wait_page(&format!("{county_url}/spot-checks"), "记录一次网络巡查");
    b.fill("school", &school.to_string());
    b.click("input[name=failed][value=staff-attire]");
    b.fill("note", "厨师未戴帽");
    b.click_nav("main form[method=post] button[type=submit]");
    let text = wait_text(&b, "巡查记录已保存");
    assert!(text.contains("周巡查（zhou）") && text.contains("人员着装") && text.contains("0.0%"), "{text}");
    b.screenshot("spot-checks");

    // A parent at the school: the public record of this school, nothing else.
    sign_in(&b, &school_url, "wang.jia");
    let text = wait_text(&b, "问题整改情况");
    assert!(b.url().ends_with("/parent"), "{}", b.url());
    assert!(text.contains("已整改完毕") && !text.contains("照片看不清"), "{text}");
    assert!(!text.contains("预警") && !text.contains("问题台账"), "a parent has no other page: {text}");
    b.window(390, 844);
    b.screenshot("parent-phone");
    b.goto(&format!("{school_url}/alerts"));
    wait_text(&b, "您的角色不能查看预警");
    b.goto(&format!("{school_url}{case_url}"));
    wait_text(&b, "您的角色不能查看问题台账");
    b.window(1280, 900);
}
