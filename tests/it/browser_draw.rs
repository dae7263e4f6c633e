//! 每日抽查名单 in a real browser, against real processes: a province inspector opens the day's
//! worklist from 网络巡查 (the seed and inputs shown for an auditor), opens the record form of the
//! first canteen, is refused in Chinese for a failure without a snapshot (nothing written), then
//! records it with the snapshot chosen in the form; the item shows as done. A county's console has
//! no worklist. Every page state is saved as a screenshot.

use protocol::draw::DrawSettings;
use topology::NodeId;

use crate::browser::{Browser, wait_text};
use crate::browser_files::{kitchen, png};
use crate::spot_draw::{draw_federation, inspector, next_working_day};

const PASSWORD: &str = "巡查员的密码-2026";

fn sign_in(b: &Browser, base: &str, id: &str) {
    b.sign_in_as(base, id, PASSWORD);
}

#[test]
fn a_province_inspector_works_through_the_days_worklist_in_the_browser() {
    let (dir, cluster) = draw_federation();
    let (province, county): (NodeId, NodeId) = ("13".parse().unwrap(), "130102".parse().unwrap());
    inspector(&cluster, province, "zhao", "赵巡查");
    inspector(&cluster, province, "qian", "钱巡查");
    crate::console::add_account(&cluster, county, "county.admin", "县管理员", PASSWORD, false);
    cluster.client(province).set_draw_settings(&DrawSettings { quota: 4, window_weeks: 2 }).unwrap();
    let day = next_working_day(&cluster);
    let photo = dir.path().join("厨房截图.png");
    std::fs::write(&photo, png(320, 180, kitchen(7))).unwrap();

    let b = Browser::start();
    b.window(1280, 1100);
    let url = cluster.console_url(province);
    sign_in(&b, &url, "qian");
    b.goto(&format!("{url}/spot-checks"));
    b.click_nav("main a[href='/spot-checks/worklist']");
    let text = wait_text(&b, "巡查任务");
    assert!(
        text.contains(&format!("{day} 抽查名单")) && text.contains("随机种子") && text.contains("复核命令"),
        "{text}"
    );
    assert!(text.contains("钱巡查（qian）") && text.contains("赵巡查（zhao）") && text.contains("未巡查"), "{text}");
    let draw = cluster.client(province).spot_draw(Some(&day)).unwrap();
    assert!(text.contains(&draw.draw.seed.to_string()), "the seed is shown: {text}");
    b.screenshot("spot-draw-worklist");

    // Only the items of the signed-in inspector.
    b.goto(&format!("{url}/spot-checks/worklist?day={day}&mine=1"));
    let mine = b.text_of("#worklist");
    assert!(mine.contains("钱巡查") && !mine.contains("赵巡查"), "{mine}");

    // The first item's form: a failure without its snapshot is refused, nothing written.
    b.click_nav("#worklist a.button");
    wait_text(&b, "记录巡查：");
    b.screenshot("spot-draw-record-form");
    b.click("input[name=area-staff-attire][value=fail]");
    b.submit();
    let text = wait_text(&b, "请上传一张截图");
    assert!(text.contains("人员着装"), "{text}");
    assert_eq!(cluster.client(province).spot_draw(Some(&day)).unwrap().done, 0, "nothing written");

    // With the snapshot: saved, back on the worklist, the item done.
    b.click("input[name=area-staff-attire][value=fail]");
    b.choose_file("snapshot-staff-attire", &photo);
    b.fill("note", "两名厨师未戴帽");
    b.submit();
    let text = wait_text(&b, "巡查记录已保存");
    assert!(text.contains("已巡查 · 不合格：人员着装"), "{text}");
    let v = cluster.client(province).spot_draw(Some(&day)).unwrap();
    assert_eq!(v.done, 1);
    assert!(v.items[0].done.is_some(), "the first item is the one recorded: {:?}", v.items);
    b.screenshot("spot-draw-worklist-done");

    // A county's console: no worklist, no list.
    sign_in(&b, &cluster.console_url(county), "county.admin");
    b.goto(&format!("{}/spot-checks/worklist", cluster.console_url(county)));
    let text = wait_text(&b, "只在省级");
    assert!(!text.contains("130102-S0001") && !text.contains("随机种子"), "{text}");
    b.screenshot("spot-draw-county-refused");

    // Once recorded, the check is the county's business: the case its failure opened shows the
    // snapshot, which the county's node fetches from the province where it was taken.
    let school = v.items[0].school;
    let case = crate::eventually(std::time::Duration::from_secs(30), "the case at the county", || {
        cluster.client(county).cases(None, Some("open"), false).ok()?.into_iter().find(|c| c.school == school)
    });
    b.goto(&format!("{}/cases/show?id={}", cluster.console_url(county), case.id.replace('#', "%23")));
    wait_text(&b, "巡查截图");
    let width = image_width(&b, "#snapshots img");
    assert_eq!(width, 320, "the snapshot drawn at the county, its real width");
    b.screenshot("spot-draw-case-snapshot-county");
}

/// The `naturalWidth` of the image `css` names once loaded (0: broken), waiting up to 45 s.
fn image_width(b: &Browser, css: &str) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        let js = format!(
            "const i = document.querySelector({css:?}); if (!i) return -1; if (!i.complete) return -2; \
             return i.naturalWidth"
        );
        let v = b.eval(&js).as_i64().unwrap_or(-3);
        if v >= 0 {
            return v;
        }
        assert!(v != -1, "no image {css}: {}", b.text_of("body"));
        assert!(std::time::Instant::now() < deadline, "the image {css} did not load in 45 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
