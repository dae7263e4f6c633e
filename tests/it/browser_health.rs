//! 运行状态 in a real browser, against real processes: a province supervisor watches the
//! federation, a county's process is killed, and the page (reloading itself, no script) lists it
//! as 下线 at the top of the problems table; its detail page shows why the city lost it. The
//! same pages over HTTPS: the self-refresh, and the statuses of bad addresses (400, 403, 404).

use std::time::{Duration, Instant};

use harness::cluster::Cluster;
use node::api::accounts::AccountRequest;
use protocol::health::NodeState;
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::binary;
use crate::browser::{Browser, wait_text};
use crate::console::Web;

const ACCOUNT: &str = "zhao.min";
const NAME: &str = "赵敏";
const PASSWORD: &str = "省级监管员-2026";

#[test]
fn a_killed_county_shows_as_down_at_the_top_of_the_health_page_with_its_reason() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 2 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    let ids = cluster.ids();
    let province = ids.iter().copied().find(|n| n.tier() == Tier::Province).unwrap();
    let counties: Vec<NodeId> = ids.iter().copied().filter(|n| n.tier() == Tier::County).collect();
    let county = counties[1];
    let req = AccountRequest {
        id: ACCOUNT.into(),
        display_name: NAME.into(),
        role: "监管员".into(),
        password: PASSWORD.into(),
        disabled: false,
    };
    cluster.client(province).add_account(&req).unwrap();
    let base = cluster.console_url(province);
    let b = Browser::start();
    b.goto(&format!("{base}/sign-in"));
    b.fill("account", ACCOUNT);
    b.fill("password", PASSWORD);
    b.submit();
    wait_text(&b, NAME);

    // The navigation leads to 运行状态; once every node has reported, all is well.
    b.click_nav("nav.main a[href='/health']");
    let text = wait_text(&b, "每 5 秒自动刷新，上次刷新");
    assert!(text.contains("运行状态") && text.contains("全部节点"), "{text}");
    let total = ids.len();
    b.wait_page(&format!("{base}/health"), &format!("全部 {total} 个节点运行正常"));
    let tree = b.text_of("#tree");
    assert!(tree.contains("学校 2：在线 2") && tree.contains("查看学校"), "schools are folded per county:\n{tree}");
    b.window(1280, 1100);
    b.screenshot("health_live");
    // The browser reloads the page by itself (the meta refresh, which the CSP leaves alone).
    let shown = b.text_of("#refresh time");
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.text_of("#refresh time") == shown || b.text_of("#refresh time").is_empty() {
        assert!(Instant::now() < deadline, "the page did not reload itself within 15 s (still {shown})");
        std::thread::sleep(Duration::from_millis(250));
    }

    // The county's process dies: its city loses the link, and the province's page, reloaded as
    // the browser does every 5 s, puts it first among the problems, as 下线.
    cluster.kill(county).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        b.goto(&format!("{base}/health"));
        let first = b.text_of("#problems tbody tr:first-child");
        if first.contains(&county.to_string()) && first.contains("下线") {
            break first;
        }
        assert!(Instant::now() < deadline, "the county never showed as 下线 at the top; the page shows:\n{}", b.text());
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(first.contains("县") && first.contains("失去连接"), "{first}");
    let summary = b.text_of("#summary");
    assert!(summary.contains("有严重问题") && summary.contains("下线\n1"), "{summary}");
    b.screenshot("health");
    b.window(390, 844);
    b.screenshot("health_phone");
    b.window(1280, 1100);

    // Its detail page: the city's view of the link, with the reason it went down.
    b.click_nav(&format!("#problems a[href='/health/{county}']"));
    let text = wait_text(&b, "上级对链路的记录");
    let view = cluster.client(province).health(Some(county), false).unwrap();
    let row = view.rows.iter().find(|r| r.node == county).unwrap();
    assert_eq!(row.state, NodeState::Down);
    let reason = &row.link.as_ref().unwrap().disconnects.last().expect("the city recorded the disconnect").reason;
    assert!(text.contains(reason.trim()), "the reason {reason:?} is not shown:\n{text}");
    assert!(text.contains("断开") && text.contains("节点自报") && text.contains("版本"), "{text}");
    b.screenshot("health_detail");

    // The county's schools, one by one: failed over to the city (or, before that, out of touch).
    b.goto(&format!("{base}/health?under={county}"));
    let tree = wait_text(&b, "全部节点");
    assert!(tree.contains(&format!("{county}-S0001")), "{tree}");
    b.screenshot("health_county");

    // The province's own detail: its links, the city among them.
    b.goto(&format!("{base}/health/{province}"));
    let links = wait_text(&b, "本节点的连接");
    assert!(links.contains("下级") && links.contains(&counties[0].parent().unwrap().to_string()), "{links}");
    b.screenshot("health_self");

    // Over HTTPS: the page reloads itself with a meta refresh (no script), and bad addresses get
    // a Chinese page with the right status.
    let mut web = Web::new(&cluster, province);
    assert_eq!(web.sign_in(ACCOUNT, PASSWORD).status, 303);
    let page = web.get("/health");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<meta http-equiv="refresh" content="5">"#), "{}", page.body);
    assert!(!page.body.contains("<script"), "no script on the page");
    for (path, status, says) in [
        ("/health/not-a-node", 400, "不是有效的单位编号"),
        ("/health?under=13x", 400, "不是有效的单位编号"),
        ("/health/14", 403, "不在本单位"),
        ("/health/130199", 404, "没有编号为 130199"),
        ("/health/130102-S0099", 404, "没有编号为"),
    ] {
        let page = web.get(path);
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert!(page.body.contains(says), "{path}: {}", page.body);
    }

    // A school's console: the school itself in detail, with its link to its county.
    let school = NodeId::school(counties[0], 1).unwrap();
    let principal =
        AccountRequest { id: "chen".into(), display_name: "陈校长".into(), role: "校长".into(), ..req };
    cluster.client(school).add_account(&principal).unwrap();
    let mut web = Web::new(&cluster, school);
    assert_eq!(web.sign_in("chen", PASSWORD).status, 303);
    let page = web.get("/health");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("本节点的连接") && page.body.contains(&counties[0].to_string()), "{}", page.body);
    assert_eq!(web.get(&format!("/health/{county}")).status, 403, "a school sees only itself");
    eprintln!("browser_health took {:.1} s", started.elapsed().as_secs_f64());
}
