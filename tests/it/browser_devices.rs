//! 设备 in a real browser, against real processes: a school's principal registers an AI box on
//! the console (the token shown once, with the warning to copy it), the box reports with it, and
//! the page shows the cameras online; the county's 运行状态 shows the school's cameras online.

use std::time::Duration;

use node::api::accounts::AccountRequest;

use crate::browser::{Browser, wait_text};
use crate::devices::{Device, device_federation};
use crate::eventually;

const PASSWORD: &str = "学校校长-2026";

#[test]
fn a_principal_registers_a_device_on_the_console_and_sees_its_cameras_online() {
    let (_dir, cluster, county, school) = device_federation();
    let principal = AccountRequest {
        id: "chen".into(),
        display_name: "陈校长".into(),
        role: "校长".into(),
        password: PASSWORD.into(),
        disabled: false,
    };
    cluster.client(school).add_account(&principal).unwrap();
    let base = cluster.console_url(school);
    let b = Browser::start();
    b.window(1280, 1000);
    b.goto(&format!("{base}/sign-in"));
    b.fill("account", "chen");
    b.fill("password", PASSWORD);
    b.submit();
    wait_text(&b, "陈校长");

    // The navigation of a school leads to 设备: eight cameras, none reported yet, no device.
    b.click_nav("nav.main a[href='/devices']");
    let text = wait_text(&b, "登记设备");
    assert!(text.contains("在线 0 / 登记 8") && text.contains("从未上报") && text.contains("还没有登记设备"), "{text}");

    // Register a box for two cameras: the token is on the answer, once, with the warning.
    b.fill("id", "box-1");
    b.fill("name", "后厨 AI 分析盒");
    b.choose("kind", "ai-box");
    b.click("input[name=cameras][value='cam-01']");
    b.click("input[name=cameras][value='cam-02']");
    b.click_nav("#add-device button[type=submit]");
    let text = wait_text(&b, "的令牌");
    assert!(
        text.contains("请立即复制") && text.contains("只显示这一次") && text.contains("设备 box-1 已登记"),
        "{text}"
    );
    let token = b.text_of("#token");
    assert_eq!(token.len(), 64, "{token:?}");
    b.screenshot("devices_token");
    // Reloaded, the page does not show it again.
    b.goto(&format!("{base}/devices"));
    let text = wait_text(&b, "box-1");
    assert!(!text.contains(&token) && !text.contains("的令牌"), "{text}");

    // The box reports with it: its cameras online, one detection raised.
    let device = Device::new(&cluster, school, &token);
    assert_eq!(device.heartbeat(&[("cam-01", true, Some(30)), ("cam-02", true, Some(30))]).status, 200);
    assert_eq!(device.detect("b-1", "cam-02", "NO_CHEF_HAT").status, 201);
    let text = b.wait_page(&format!("{base}/devices"), "在线 2 / 登记 8");
    assert!(text.contains("AI 分析盒") && text.contains("陈校长（chen）") && text.contains("30 天"), "{text}");
    let row = b.text_of("#devices tr[data-device='box-1']");
    assert!(row.contains("正常") && !row.contains("从未"), "the last request is shown: {row}");
    b.screenshot("devices");
    b.window(390, 844);
    b.screenshot("devices_phone");
    b.window(1280, 1000);

    // Revoked on the page: the token stops at once.
    b.click_nav("#devices tr[data-device='box-1'] button.danger");
    let text = wait_text(&b, "设备已吊销");
    assert!(text.contains("已吊销"), "{text}");
    assert_eq!(device.heartbeat(&[("cam-01", true, None)]).status, 401);

    // The county sees the school's cameras in its health view, and on its 运行状态 page.
    eventually(Duration::from_secs(20), "the school's cameras at the county", || {
        let v = cluster.client(county).health(None, false).ok()?;
        (v.rows.iter().find(|r| r.node == school)?.cameras == Some((8, 2))).then_some(())
    });
    let supervisor =
        AccountRequest { id: "li.na".into(), display_name: "李娜".into(), role: "监管员".into(), ..principal };
    cluster.client(county).add_account(&supervisor).unwrap();
    b.click_nav("header form button[type=submit]");
    let county_base = cluster.console_url(county);
    b.goto(&format!("{county_base}/sign-in"));
    b.fill("account", "li.na");
    b.fill("password", PASSWORD);
    b.submit();
    wait_text(&b, "李娜");
    let text = b.wait_page(&format!("{county_base}/health"), "摄像头在线");
    let tree = b.text_of("#tree");
    assert!(tree.contains("2/8"), "{tree}\n{text}");
    b.screenshot("health_cameras");
}
