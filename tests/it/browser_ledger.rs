//! 台账 and 预警 in a real browser, against real processes: a school's food-safety officer fills in
//! the day's ledger through the forms (a morning check entered for the wrong person and voided
//! with its reason, the right one, a purchase with its certificate, a food sample traced to that
//! purchase, the sample's disposal); a temperature of 48.0 ℃ is refused in Chinese and writes
//! nothing. At the county, the supervisor sees the school's completeness once the records have
//! arrived by replication, opens its records read-only, and sees the red warning the school judged
//! about a staff member on duty without a health certificate, with the case the county opened
//! from it. Every page state is saved as a screenshot.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::cluster::Cluster;
use node::api::ledgers::LedgerView;
use node::api::registry::RegistryRequest;
use node::api::warnings::WarningView;
use protocol::registry::{Canteen, EntityData, EntityKind, HealthCertificate, RegistryOp, Staff, StaffRole, Supplier};
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::browser::{Browser, wait_text};
use crate::console::Web;
use crate::{binary, eventually};

const PASSWORD: &str = "a long password 2026";
const DAY_MS: u64 = 86_400_000;

fn account(cluster: &Cluster, node: NodeId, id: &str, name: &str, role: &str) {
    crate::browser::add_account_as(cluster, node, id, name, role, PASSWORD);
}

fn register(cluster: &Cluster, school: NodeId, kind: EntityKind, id: &str, data: EntityData) {
    let req = RegistryRequest { kind, node: None, id: id.into(), op: RegistryOp::Upsert(data) };
    cluster.client(school).registry_write(&req).unwrap();
}

fn sign_in(b: &Browser, base: &str, id: &str) {
    b.sign_in_as(base, id, PASSWORD);
}

/// Opens the form of `kind` (a `<details>`) unless it is open already (it stays open after a
/// record of its kind was saved).
fn open_form(b: &Browser, kind: &str) {
    if b.text_of(&format!("#add-{kind}[open] form")).is_empty() {
        b.click(&format!("#add-{kind} > summary"));
    }
}

/// Submits the form of `kind` and waits for the page it leads to.
fn save(b: &Browser, kind: &str) {
    b.click_nav(&format!("#add-{kind} button[type=submit]"));
}

/// A school's live records of today, as its county (or the school) holds them.
fn records(cluster: &Cluster, node: NodeId, school: NodeId) -> Vec<LedgerView> {
    cluster.client(node).get(&format!("/api/ledger?school={school}")).unwrap()
}

#[test]
fn a_school_keeps_its_ledger_in_the_browser_and_the_county_sees_it_and_its_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    let county = cluster.ids().into_iter().find(|n| n.tier() == Tier::County).unwrap();
    let school = NodeId::school(county, 1).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;

    // What the school registered beforehand (through the admin API): a canteen, two cooks on duty
    // — 李四 without a health certificate — and a supplier with a valid licence.
    register(
        &cluster,
        school,
        EntityKind::Canteen,
        "main",
        EntityData::Canteen(Canteen { name: "学生食堂".into(), address: String::new() }),
    );
    register(
        &cluster,
        school,
        EntityKind::Staff,
        "st1",
        EntityData::Staff(Staff { name: "张三".into(), role: StaffRole::Cook, on_duty: true }),
    );
    register(
        &cluster,
        school,
        EntityKind::Staff,
        "st2",
        EntityData::Staff(Staff { name: "李四".into(), role: StaffRole::Helper, on_duty: true }),
    );
    register(
        &cluster,
        school,
        EntityKind::HealthCertificate,
        "hc1",
        EntityData::HealthCertificate(HealthCertificate {
            staff: "st1".into(),
            number: "JKZ-2026-0001".into(),
            valid_until_ms: now + 200 * DAY_MS,
        }),
    );
    register(
        &cluster,
        school,
        EntityKind::Supplier,
        "sp1",
        EntityData::Supplier(Supplier {
            name: "放心蔬菜配送中心".into(),
            licence_no: "JY11301020000001".into(),
            licence_valid_until_ms: now + 365 * DAY_MS,
            contact: String::new(),
        }),
    );
    account(&cluster, school, "zhang.aq", "张安全", "食品安全员");
    account(&cluster, county, "li.na", "李娜", "监管员");
    let (school_url, county_url) = (cluster.console_url(school), cluster.console_url(county));
    let b = Browser::start();
    b.window(1280, 1000);

    // The food-safety officer: today's ledger, empty, with a form per kind.
    sign_in(&b, &school_url, "zhang.aq");
    wait_text(&b, "张安全");
    b.click_nav("nav.main a[href='/ledger']");
    let text = wait_text(&b, "当日必填四项");
    assert!(text.contains("今天还没有晨检记录") && text.contains("✗ 未填齐"), "{text}");
    assert!(text.contains("＋ 登记晨检") && text.contains("＋ 登记留样"), "{text}");
    open_form(&b, "morning-check");
    b.screenshot("ledger-school-empty");

    // A morning check entered for the wrong person, then voided with the reason.
    b.choose("mc_staff", "st2");
    b.fill("mc_temp", "36.8");
    save(&b, "morning-check");
    let text = wait_text(&b, "台账记录已保存");
    assert!(text.contains("李四") && text.contains("36.8℃"), "{text}");
    b.click("#t-morning-check details.void > summary");
    b.fill("reason", "人员选错，应为张三");
    b.click_nav("#t-morning-check details.void[open] button[type=submit]");
    let text = wait_text(&b, "记录已作废");
    assert!(text.contains("已作废") && text.contains("原因：人员选错，应为张三"), "{text}");

    // The right one: 张三, 36.5 ℃, offered first as on duty and not yet checked.
    open_form(&b, "morning-check");
    b.choose("mc_staff", "st1");
    b.fill("mc_temp", "36.5");
    save(&b, "morning-check");
    let text = wait_text(&b, "台账记录已保存");
    assert!(text.contains("张三") && text.contains("36.5℃") && text.contains("正常"), "{text}");
    let row = b.text_of("#t-morning-check tbody tr:not(.voided)");
    assert!(row.contains("张三") && row.contains("张安全"), "who recorded it: {row}");

    // 48.0 ℃: refused with the domain's Chinese reason, the form kept open, nothing written.
    open_form(&b, "morning-check");
    b.choose("mc_staff", "st1");
    b.fill("mc_temp", "48.0");
    save(&b, "morning-check");
    let text = wait_text(&b, "体温 48.0℃ 不在 34.0℃ 至 43.0℃ 之间");
    assert!(text.contains("未保存"), "{text}");
    assert!(b.url().ends_with("/ledger"), "a refused form is not redirected: {}", b.url());
    b.screenshot("ledger-refused");
    let held = records(&cluster, school, school);
    assert_eq!(held.iter().filter(|v| v.kind.as_str() == "morning-check").count(), 1, "{held:?}");

    // A purchase with its inspection certificate but no invoice yet.
    b.goto(&format!("{school_url}/ledger"));
    open_form(&b, "purchase");
    b.fill("pu_item", "西红柿");
    b.fill("pu_batch", "XHS-1201");
    b.fill("pu_qty", "20");
    b.fill("pu_cert", "检字 2026-118");
    save(&b, "purchase");
    let text = wait_text(&b, "台账记录已保存");
    assert!(text.contains("西红柿") && text.contains("20 kg") && text.contains("未取得"), "{text}");

    // A food sample of lunch, traced to that purchase.
    open_form(&b, "food-sample");
    b.choose("fs_meal", "lunch");
    b.fill("fs_dish", "番茄炒蛋");
    b.fill("fs_grams", "150");
    b.fill("fs_by", "张三");
    b.click("#add-food-sample input[name=fs_batch]");
    save(&b, "food-sample");
    let text = wait_text(&b, "台账记录已保存");
    let sample = b.text_of("#t-food-sample tbody tr");
    assert!(
        sample.contains("番茄炒蛋") && sample.contains("150 克") && sample.contains("西红柿 批次 XHS-1201"),
        "{sample}"
    );
    assert!(sample.contains("留存中"), "{sample}\n{text}");
    b.goto(&format!("{school_url}/ledger"));
    let text = wait_text(&b, "当日必填四项");
    let summary = b.text_of("#day-summary");
    assert!(summary.contains("1 / 在岗 2 人") && summary.contains("还缺：校领导陪餐、消毒"), "{summary}");
    assert!(text.contains("（另有 1 条已作废）"), "{text}");
    b.window(1280, 2400);
    b.screenshot("ledger-school-day");
    b.window(390, 844);
    b.screenshot("ledger-school-phone");
    b.window(1280, 1000);
    // The school's suppliers in its registry page, with their licences.
    b.goto(&format!("{school_url}/registry?kind=supplier"));
    let text = wait_text(&b, "供应商");
    assert!(text.contains("许可证") && text.contains("有效期至"), "{text}");
    b.screenshot("registry-suppliers");
    b.goto(&format!("{school_url}/ledger"));
    wait_text(&b, "当日必填四项");
    // The other forms, open: what a canteen's staff fill in for meals, checks, disinfection, tests.
    for kind in ["accompanied-meal", "hazard-check", "disinfection", "pesticide-test"] {
        open_form(&b, kind);
    }
    b.goto(&format!("{school_url}/ledger#k-accompanied-meal"));
    b.screenshot("ledger-forms-meal-hazard");
    b.goto(&format!("{school_url}/ledger#k-disinfection"));
    b.screenshot("ledger-forms-disinfection-pesticide");
    b.goto(&format!("{school_url}/ledger"));

    // The sample disposed of at once: recorded, and marked as kept under 48 hours.
    b.click("#t-food-sample details.dispose > summary");
    assert!(b.text_of("#t-food-sample details.dispose").contains("现在处置会产生红色预警"));
    b.click_nav("#t-food-sample form[action='/ledger/dispose'] button");
    wait_text(&b, "已登记留样处置时间");
    let sample = b.text_of("#t-food-sample tbody tr");
    assert!(sample.contains("已处置") && sample.contains("不足 48 小时"), "{sample}");
    assert!(!sample.contains("已更正"), "a disposal is no correction: {sample}");
    b.screenshot("ledger-school-samples");

    // Over HTTPS without a browser: the refusal keeps its status (400), and the county cannot
    // write a school's ledger (403).
    let mut web = Web::new(&cluster, school);
    assert_eq!(web.sign_in("zhang.aq", PASSWORD).status, 303);
    let csrf = web.csrf();
    let page = web.post(
        "/ledger",
        &[("csrf", &csrf), ("kind", "morning-check"), ("mc_staff", "st2"), ("mc_temp", "48.0"), ("mc_at", "")],
    );
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("体温 48.0℃ 不在 34.0℃ 至 43.0℃ 之间"), "{}", page.body);
    let page =
        web.post("/ledger", &[("csrf", &csrf), ("kind", "morning-check"), ("mc_staff", "st2"), ("mc_temp", "36,6")]);
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("保留一位小数"), "{}", page.body);
    assert_eq!(records(&cluster, school, school).iter().filter(|v| v.kind.as_str() == "morning-check").count(), 1);

    // The warning engine judges now (it also runs by itself): 李四 is on duty without a health
    // certificate — red, judged by the school.
    let _: serde_json::Value = cluster.client(school).post("/api/warnings/evaluate", &serde_json::json!({})).unwrap();

    // The county: the records arrive by replication.
    eventually(Duration::from_secs(60), "the school's records, and the disposal, at the county", || {
        let held = records(&cluster, county, school);
        (held.len() >= 3 && held.iter().any(|v| v.summary.contains("处置"))).then_some(())
    });
    let mut web = Web::new(&cluster, county);
    assert_eq!(web.sign_in("li.na", PASSWORD).status, 303);
    let csrf = web.csrf();
    let page =
        web.post("/ledger", &[("csrf", &csrf), ("kind", "morning-check"), ("mc_staff", "st1"), ("mc_temp", "36.5")]);
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(web.get("/ledger?date=2026-13-01").status, 400);
    assert_eq!(web.get("/ledger?school=14").status, 400);
    assert_eq!(web.get("/warnings?level=purple").status, 400);

    sign_in(&b, &county_url, "li.na");
    wait_text(&b, "李娜");
    b.click_nav("nav.main a[href='/ledger']");
    let text = wait_text(&b, "各校填报情况");
    let row = b.text_of(&format!("#days tr[data-school='{school}']"));
    assert!(row.contains("✗ 缺 校领导陪餐、消毒") && row.contains("1 / 2"), "{row}\n{text}");
    assert!(!text.contains("＋ 登记"), "no forms at the county: {text}");
    b.screenshot("ledger-county");
    b.click_nav(&format!("#days tr[data-school='{school}'] a.unit"));
    let text = wait_text(&b, "只读");
    assert!(text.contains("番茄炒蛋") && text.contains("张三") && text.contains("原因：人员选错"), "{text}");
    assert!(!text.contains("＋ 登记") && !text.contains("确认作废"), "read-only: {text}");
    assert!(text.contains("今天没有陪餐、隐患排查、消毒、农残快检记录"), "{text}");
    b.window(1280, 1250);
    b.screenshot("ledger-county-school");
    b.window(1280, 1000);

    // 预警: the red warning about 李四, judged by the school; the county opens its case.
    let warned = eventually(Duration::from_secs(60), "the warning at the county", || {
        let w: Vec<WarningView> = cluster.client(county).get("/api/warnings?rule=health-cert-missing").unwrap();
        (!w.is_empty()).then_some(w)
    });
    assert_eq!(warned[0].subject, "st2");
    let _: serde_json::Value = cluster.client(county).post("/api/warnings/evaluate", &serde_json::json!({})).unwrap();
    b.click_nav("nav.main a[href='/warnings']");
    let text = wait_text(&b, "生效预警");
    assert!(text.contains("在岗人员无健康证") && text.contains("李四（帮厨）"), "{text}");
    let row = b.text_of("#warnings tbody tr:first-child");
    assert!(row.contains("红色"), "red first: {row}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut case_link = String::new();
    while case_link.is_empty() {
        b.goto(&format!("{county_url}/warnings"));
        case_link = b.text_of("#warnings tr[data-key^='health-cert-missing'] a[href^='/cases/show']");
        assert!(std::time::Instant::now() < deadline, "no case link on the warning: {}", b.text());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(b.text_of("#levels").contains("红色"), "{}", b.text_of("#levels"));
    b.window(1280, 1400);
    b.screenshot("warnings");
    b.window(1280, 1000);
    b.goto(&format!("{county_url}/warnings?rule=recording-short"));
    wait_text(&b, "没有符合筛选条件的预警");
    b.goto(&format!("{county_url}/warnings?level=red"));
    let text = wait_text(&b, "约谈候选");
    assert!(text.contains("目前没有约谈候选") && text.contains("目前没有需要问责的案件"), "{text}");
    b.goto(&format!("{county_url}/warnings#candidates"));
    wait_text(&b, "问责记录");
    b.screenshot("warnings-candidates");
    b.window(390, 844);
    b.goto(&format!("{county_url}/warnings"));
    wait_text(&b, "生效预警");
    b.screenshot("warnings-phone");
    b.window(1280, 1000);
    b.click_nav("#warnings tr[data-key^='health-cert-missing'] a[href^='/cases/show']");
    let text = wait_text(&b, "经过");
    assert!(text.contains("李四"), "the case is about 李四: {text}");
}
