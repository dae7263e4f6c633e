//! Snapshots and rectification photos in the console, in a real browser against real processes:
//! a snapshot uploaded at the school is an image on the county's alert page (fetched through the
//! tree); the principal submits a rectification with a photo through the school's form (a file
//! that is no image is refused first, and nothing of that submission is stored); the county's
//! case page shows the photo; with the school stopped, a snapshot nobody fetched before shows the
//! notice image that says the school cannot be reached, while what the county fetched before is
//! still shown. Beside the browser, the same console with a plain HTTPS client: the image route's
//! refusals, and the multipart form's CSRF rule and body limit. Screenshots of every state go to
//! `target/screenshots/files-*.png`.
//!
//! The browser's WebDriver session is this file's own (it needs to set file inputs and to run a
//! script that reads an image's `naturalWidth`); it is started and ended like `browser.rs`'s.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use harness::cluster::Cluster;
use node::api::alerts::RaiseAlert;
use node::api::cases::OpenCase;
use serde_json::{Value, json};
use topology::NodeId;
use topology::generate::SmallSpec;

use crate::browser::{INSTALL, screenshot_dir};
use crate::console::Web;
use crate::{binary, eventually};

const PASSWORD: &str = "a long password 2026";

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn account(cluster: &Cluster, node: NodeId, id: &str, name: &str, role: &str) {
    crate::browser::add_account_as(cluster, node, id, name, role, PASSWORD);
}

// ---- A real PNG, by hand: stored (uncompressed) deflate blocks in a zlib stream, CRC-32 per chunk.

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// A `w` × `h` RGB PNG whose pixel at (x, y) is `px(x, y)`.
pub fn png(w: u32, h: u32, px: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut raw = Vec::with_capacity((h * (1 + 3 * w)) as usize);
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            raw.extend(px(x, y));
        }
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend((b.len() as u16).to_le_bytes());
        z.extend((!(b.len() as u16)).to_le_bytes());
        z.extend(*b);
    }
    z.extend(adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A camera's view of a kitchen (tiles, a steel counter) with the AI's red box around a figure.
pub fn kitchen(seed: u8) -> impl Fn(u32, u32) -> [u8; 3] {
    move |x, y| {
        let in_box = (120..=200).contains(&x) && (40..=150).contains(&y);
        let edge = in_box && (!(123..=197).contains(&x) || !(43..=147).contains(&y));
        if edge {
            return [220, 40, 40];
        }
        if (140..=180).contains(&x) && (60..=150).contains(&y) {
            return [235, 235, 240]; // a cook's white coat
        }
        if y > 120 {
            return [150 + (x % 16) as u8, 155, 160]; // the counter
        }
        let tile = ((x / 20) + (y / 20)) % 2 == 0;
        let base = if tile { 200 } else { 185 };
        [base, base.wrapping_add(seed), 170 + (y / 4) as u8]
    }
}

/// A photo of a sealed hole: a grey wall with a fresh light patch.
fn sealed(x: u32, y: u32) -> [u8; 3] {
    let (dx, dy) = (x as i32 - 120, y as i32 - 90);
    if dx * dx + dy * dy < 45 * 45 {
        [225, 222, 210]
    } else {
        let n = ((x * 7 + y * 13) % 23) as u8;
        [120 + n, 118 + n, 112 + n]
    }
}

// ---- The browser.

/// A headless Chromium under a chromedriver this test started (and ends, by its PID).
struct Chrome {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn program(candidates: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_absolute() && p.is_file())
        .or_else(|| {
            std::env::split_paths(&path).flat_map(|d| candidates.iter().map(move |c| d.join(c))).find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{} is not installed; install it with: {INSTALL}", candidates[0]))
}

impl Chrome {
    fn start() -> Chrome {
        let chromium = program(&["/usr/bin/chromium", "chromium", "chromium-browser"]);
        let chromedriver = program(&["/usr/bin/chromedriver", "chromedriver"]);
        let profile = tempfile::tempdir().unwrap();
        let port = harness::cluster::free_tcp_ports(1).unwrap();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; install it with: {INSTALL}", chromedriver.display()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {addr} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--ignore-certificate-errors", "--lang=zh-CN",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = rt.block_on(ClientBuilder::new(connector).capabilities(caps).connect(&format!("http://{addr}")));
        let mut chrome = Chrome { rt, client: None, driver, _profile: profile };
        chrome.client = Some(client.unwrap_or_else(|e| panic!("no browser session: {e}")));
        chrome
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    fn url(&self) -> String {
        self.rt.block_on(self.client().current_url()).unwrap().to_string()
    }

    fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt.block_on(self.client().execute(script, args)).unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Types `value` into the field `css` names (after clearing it).
    fn fill(&self, css: &str, value: &str) {
        self.rt
            .block_on(async {
                let field = self.client().find(Locator::Css(css)).await?;
                field.clear().await?;
                field.send_keys(value).await
            })
            .unwrap_or_else(|e| panic!("fill {css}: {e}"));
    }

    /// Chooses `files` in the file input `css` names (as a person picks them in the dialog).
    fn choose_files(&self, css: &str, files: &[&Path]) {
        let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.send_keys(&paths.join("\n")).await })
            .unwrap_or_else(|e| panic!("choose files in {css}: {e}"));
    }

    /// Clicks `css`, which leads to another page, and waits until that page has loaded.
    fn click_nav(&self, css: &str) {
        self.exec("window.__old_page = true; return true", vec![]);
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = "return window.__old_page === undefined && document.readyState === 'complete'";
        while self.rt.block_on(self.client().execute(probe, vec![])).ok().and_then(|v| v.as_bool()) != Some(true) {
            assert!(Instant::now() < deadline, "clicking {css} led to no new page within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn text(&self) -> String {
        self.rt.block_on(async { self.client().find(Locator::Css("body")).await?.text().await }).unwrap_or_default()
    }

    fn wait_text(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.text();
            if text.contains(what) {
                return text;
            }
            assert!(Instant::now() < deadline, "the page never showed {what:?}; it shows:\n{text}\nat {}", self.url());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reloads `url` until it shows `what`.
    fn wait_page(&self, url: &str, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.goto(url);
            let text = self.text();
            if text.contains(what) {
                return text;
            }
            assert!(Instant::now() < deadline, "{url} never showed {what:?}; it shows:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The `naturalWidth` of the image `css` names once it has finished loading (0: broken).
    fn image_width(&self, css: &str) -> u64 {
        let script = "const i = document.querySelector(arguments[0]); \
                      if (!i) return -1; if (!i.complete) return -2; return i.naturalWidth";
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let v = self.exec(script, vec![json!(css)]).as_i64().unwrap_or(-3);
            if v >= 0 {
                return v as u64;
            }
            assert!(v != -1, "no image {css} on {}:\n{}", self.url(), self.text());
            assert!(Instant::now() < deadline, "the image {css} did not finish loading in 45 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn attr(&self, css: &str, name: &str) -> String {
        let v = self.exec(
            "return document.querySelector(arguments[0]).getAttribute(arguments[1])",
            vec![json!(css), json!(name)],
        );
        v.as_str().unwrap_or_default().to_string()
    }

    /// Resizes the window (a phone is 390 × 844).
    fn window(&self, width: u32, height: u32) {
        self.rt.block_on(self.client().set_window_size(width, height)).unwrap_or_else(|e| panic!("resize: {e}"));
    }

    /// Scrolls the element `css` names to the top of the window.
    fn scroll_to(&self, css: &str) {
        self.exec("document.querySelector(arguments[0]).scrollIntoView(true); return true", vec![json!(css)]);
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Signs in at the console `base` as `account` (signing out whoever is signed in there).
    fn sign_in(&self, base: &str, account: &str) {
        self.goto(&format!("{base}/sign-in"));
        if !self.url().contains("/sign-in") {
            self.click_nav("header form button[type=submit]");
        }
        self.fill("[name=account]", account);
        self.fill("[name=password]", PASSWORD);
        self.click_nav("main form button[type=submit]");
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

// ---- Plain HTTPS: a multipart POST as a browser sends it.

/// One part of a multipart body: (name, file name if a file, bytes).
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "----mingchu-test-7d2f";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend(format!("--{boundary}\r\n").bytes());
        match file {
            Some(f) => body.extend(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png\r\n\r\n"
                )
                .bytes(),
            ),
            None => body.extend(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").bytes()),
        }
        body.extend(*bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POSTs `parts` to the console's photo route as `web`'s person: (status, page).
fn post_multipart(cluster: &Cluster, web: &Web, parts: &[Part]) -> (u16, String) {
    let (ct, body) = multipart(parts);
    let cookies = web.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let mut resp = crate::console::agent(&cluster.ca_cert_path())
        .post(format!("{}{}", web.base, node::console::UPLOAD_PATH))
        .header("cookie", cookies)
        .header("content-type", ct)
        .send(&body[..])
        .unwrap();
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
}

/// Whether the school holds `bytes` as a file (its admin API; 404 when not).
fn stored_at(cluster: &Cluster, school: NodeId, bytes: &[u8]) -> bool {
    let r = protocol::files::file_ref(&node::runtime::files::sha256(bytes));
    match cluster.client(school).file(&r, school) {
        Ok(_) => true,
        Err(e) => match e.downcast_ref::<client::CallError>() {
            Some(client::CallError::Refused { status: 404, .. }) => false,
            _ => panic!("{r} at {school}: {e:#}"),
        },
    }
}

#[test]
fn snapshots_and_rectification_photos_are_images_in_the_console_and_say_why_when_they_cannot_be() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    let (county, school) = (id("130102"), id("130102-S0001"));
    account(&cluster, county, "li.na", "李娜", "监管员");
    account(&cluster, school, "chen", "陈校长", "校长");
    let at_school = cluster.client(school);
    let (county_url, school_url) = (cluster.console_url(county), cluster.console_url(school));

    // The school's AI box uploads a snapshot and raises an alert naming it; another alert carries
    // an NVR's own path, which is no file reference.
    let snapshot = png(320, 180, kitchen(0));
    let snap = at_school.upload_file("snapshot", &snapshot).unwrap().file;
    let alert = at_school
        .raise_alert(&RaiseAlert {
            camera: "cam-01".into(),
            alert_type: "NO_MASK".into(),
            snapshot: Some(snap.clone()),
            ..RaiseAlert::default()
        })
        .unwrap();
    let nvr_path = "NVR-01/通道3/20260301-101500.jpg";
    let text_alert = at_school
        .raise_alert(&RaiseAlert {
            camera: "cam-03".into(),
            alert_type: "FLOOR_WATER".into(),
            snapshot: Some(nvr_path.into()),
            ..RaiseAlert::default()
        })
        .unwrap();
    // A case for the school to rectify, opened at the county.
    let case = cluster
        .client(county)
        .open_case(&OpenCase {
            school,
            severity: "general".into(),
            source: None,
            title: "后厨墙角有鼠洞".into(),
            detail: String::new(),
            notice: true,
            notice_text: Some("请封堵鼠洞并拍照上传。".into()),
            deadline_ms: None,
        })
        .unwrap();
    let case_path = format!("/cases/show?id={}", case.id.to_string().replace('#', "%23"));

    // The image route with a plain client: the image itself with the console's headers; a holder
    // outside the county and a malformed reference are refused, as images that say so.
    let mut web = Web::new(&cluster, county);
    let page = web.get(&format!("/files/{snap}?holder={school}"));
    assert_eq!(page.status, 303, "no session, no image: {page:?}");
    assert_eq!(web.sign_in("li.na", PASSWORD).status, 303);
    let page = eventually(Duration::from_secs(20), "the snapshot through the county's console", || {
        Some(web.get(&format!("/files/{snap}?holder={school}&kind=snapshot"))).filter(|p| p.status == 200)
    });
    let h = &page.headers;
    assert_eq!(h.get("content-type").map(String::as_str), Some("image/png"), "{h:?}");
    assert_eq!(h.get("content-length").map(String::as_str), Some(snapshot.len().to_string().as_str()), "{h:?}");
    assert_eq!(h.get("x-content-type-options").map(String::as_str), Some("nosniff"));
    assert_eq!(h.get("content-security-policy").map(String::as_str), Some(node::console::CSP));
    let page = web.get(&format!("/files/{snap}?holder=130103-S0001&kind=snapshot"));
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.headers["content-type"].starts_with("image/svg+xml") && page.body.contains("无权查看"), "{page:?}");
    let page = web.get("/files/sha256:xyz?holder=130102-S0001");
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.starts_with("<svg") && page.body.contains("图片地址不对"), "{}", page.body);
    let nothing = format!("sha256:{}", "ab".repeat(32));
    let page = web.get(&format!("/files/{nothing}?holder={school}&kind=snapshot"));
    assert_eq!(page.status, 404, "{page:?}");
    assert!(page.body.contains("截图已过保存期限或不存在"), "{}", page.body);
    assert_eq!(page.headers.get("cache-control").map(String::as_str), Some("no-store"), "a notice is not kept");

    // The county supervisor's alert page: the snapshot is an image (the PNG's own 320 pixels, not
    // the 220 of a notice) linking to the full image; the NVR path stays text.
    let b = Chrome::start();
    b.sign_in(&county_url, "li.na");
    b.wait_text("李娜");
    b.wait_page(&format!("{county_url}/alerts"), "未戴口罩");
    let img = format!("tr[data-alert=\"{}\"] a.thumb img", alert.id);
    assert_eq!(b.image_width(&img), 320, "the snapshot is shown");
    let full = b.attr(&format!("tr[data-alert=\"{}\"] a.thumb", alert.id), "href");
    assert_eq!(full, format!("/files/{snap}?holder={school}&kind=snapshot"));
    let row = b.exec(
        "return document.querySelector(arguments[0]).innerText",
        vec![json!(format!("tr[data-alert=\"{}\"]", text_alert.id))],
    );
    assert!(row.as_str().unwrap_or_default().contains(&format!("抓拍：{nvr_path}")), "{row}");
    b.screenshot("files-alert-snapshot");
    b.goto(&format!("{county_url}{full}"));
    assert_eq!(b.image_width("img"), 320, "the full image opens by itself");
    b.screenshot("files-alert-snapshot-full");

    // The principal at the school: the submit form with its photo inputs. A text file among the
    // photos is refused with its name; nothing of that submission is stored, what was typed stays.
    let files = tempfile::tempdir().unwrap();
    let photo = png(240, 180, sealed);
    let photo_path = files.path().join("封堵后.png");
    std::fs::write(&photo_path, &photo).unwrap();
    let text_path = files.path().join("notes.txt");
    std::fs::write(&text_path, "这不是照片").unwrap();
    b.sign_in(&school_url, "chen");
    b.wait_text("陈校长");
    b.wait_page(&format!("{school_url}{case_path}"), "整改照片");
    assert_eq!(
        b.exec("return document.querySelectorAll('form#submit input[type=file][name=photo][multiple]').length", vec![]),
        json!(4)
    );
    assert_eq!(b.attr("form#submit", "enctype"), "multipart/form-data");
    assert_eq!(b.attr("form#submit input[name=photo]", "accept"), "image/jpeg,image/png");
    b.scroll_to("form#submit");
    b.screenshot("files-submit-form");
    // The principal is likely on a phone.
    b.window(390, 844);
    b.scroll_to("form#submit");
    b.screenshot("files-submit-form-phone");
    b.window(1280, 900);
    b.fill("form#submit [name=note]", "已用水泥封堵墙角鼠洞");
    b.choose_files("form#submit input[name=photo]", &[&photo_path]);
    b.choose_files(".picks label:nth-child(2) input[name=photo]", &[&text_path]);
    b.click_nav("form#submit button[type=submit]");
    let text = b.wait_text("不是 JPEG 或 PNG 图片");
    assert!(text.contains("“notes.txt”不是 JPEG 或 PNG 图片") && text.contains("请重新选择"), "{text}");
    assert_eq!(
        b.exec("return document.querySelector('form#submit [name=note]').value", vec![]),
        json!("已用水泥封堵墙角鼠洞")
    );
    assert!(!stored_at(&cluster, school, &photo), "a refused submission stores none of its photos");
    b.screenshot("files-submit-refused");
    b.scroll_to("form#submit");
    b.screenshot("files-submit-refused-form");

    // Submitted with the photo: stored at the school as evidence, shown on the school's page.
    b.choose_files(".picks label:nth-child(1) input[name=photo]", &[&photo_path]);
    b.fill("form#submit [name=evidence]", "灭鼠记录表已归档");
    b.click_nav("form#submit button[type=submit]");
    let text = b.wait_text("整改材料已提交");
    assert!(text.contains("灭鼠记录表已归档") && text.contains("整改照片 1 张"), "{text}");
    assert!(stored_at(&cluster, school, &photo));
    assert_eq!(b.image_width("#evidence a.thumb img"), 240);
    b.screenshot("files-submitted-school");
    b.window(390, 844);
    b.screenshot("files-submitted-school-phone");
    b.window(1280, 900);

    // The county's case page: the photo (fetched from the school), the typed item as a tag, and
    // the history's submission linking the photo.
    b.sign_in(&county_url, "li.na");
    b.wait_text("李娜");
    b.wait_page(&format!("{county_url}{case_path}"), "整改照片 1 张");
    assert_eq!(b.image_width("#evidence a.thumb img"), 240, "the county shows the school's photo");
    let link = b.attr("ol#history a.fileref", "href");
    assert_eq!(
        link,
        format!(
            "/files/{}?holder={school}&kind=evidence",
            protocol::files::file_ref(&node::runtime::files::sha256(&photo))
        ),
        "the history links the photo"
    );
    b.screenshot("files-case-photo-county");

    // An alert whose snapshot the school never had (past its retention, say): missing, not
    // unavailable.
    let gone_alert = at_school
        .raise_alert(&RaiseAlert {
            camera: "cam-05".into(),
            alert_type: "BIN_UNCOVERED".into(),
            snapshot: Some(nothing.clone()),
            ..RaiseAlert::default()
        })
        .unwrap();
    b.wait_page(&format!("{county_url}/alerts"), "垃圾桶未盖");
    assert_eq!(b.image_width(&format!("tr[data-alert=\"{}\"] a.thumb img", gone_alert.id)), 220, "the notice");
    b.screenshot("files-alert-missing");

    // A second snapshot reaches the county as an alert, but nobody looks at it before the school
    // stops: then it cannot be fetched, and its image says why; the first, fetched before, is
    // still shown from the county's copy.
    let later = png(320, 180, kitchen(40));
    let later_ref = at_school.upload_file("snapshot", &later).unwrap().file;
    let later_alert = at_school
        .raise_alert(&RaiseAlert {
            camera: "cam-02".into(),
            alert_type: "NO_GLOVES".into(),
            snapshot: Some(later_ref.clone()),
            ..RaiseAlert::default()
        })
        .unwrap();
    eventually(Duration::from_secs(20), "the second alert at the county", || {
        cluster.client(county).alert(&later_alert.id).ok()
    });
    cluster.kill(school).unwrap();
    b.wait_page(&format!("{county_url}/alerts"), "未戴手套");
    let img = format!("tr[data-alert=\"{}\"] a.thumb img", later_alert.id);
    assert_eq!(b.image_width(&img), 220, "the notice image, not a broken one");
    assert_eq!(b.image_width(&format!("tr[data-alert=\"{}\"] a.thumb img", alert.id)), 320, "the county's copy");
    b.screenshot("files-alert-school-down");
    let full = b.attr(&format!("tr[data-alert=\"{}\"] a.thumb", later_alert.id), "href");
    b.goto(&format!("{county_url}{full}"));
    let said = b.exec("return document.contentType + ' ' + document.documentElement.textContent", vec![]);
    let said = said.as_str().unwrap_or_default().to_string();
    assert!(said.starts_with("image/svg+xml"), "{said}");
    assert!(
        said.contains("学校节点当前无法连接") && said.contains("截图暂不可查看") && said.contains("原因"),
        "{said}"
    );
    b.screenshot("files-unavailable-full");
    let page = web.get(&full);
    assert_eq!(page.status, 503, "{page:?}");
    b.wait_page(&format!("{county_url}{case_path}"), "整改照片 1 张");
    assert_eq!(b.image_width("#evidence a.thumb img"), 240, "the photo the county fetched before");
    drop(b);
    cluster.stop_all();
}

#[test]
fn a_form_with_photos_carries_its_csrf_token_first_and_stays_within_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    let (county, school) = (id("130102"), id("130102-S0001"));
    account(&cluster, school, "chen", "陈校长", "校长");
    let case = cluster
        .client(county)
        .open_case(&OpenCase {
            school,
            severity: "general".into(),
            source: None,
            title: "留样柜温度不达标".into(),
            detail: String::new(),
            notice: true,
            notice_text: None,
            deadline_ms: None,
        })
        .unwrap();
    let case_id = case.id.to_string();
    let mut web = Web::new(&cluster, school);
    assert_eq!(web.sign_in("chen", PASSWORD).status, 303);
    let page = eventually(Duration::from_secs(20), "the case at the school", || {
        Some(web.get(&format!("/cases/show?id={}", case_id.replace('#', "%23")))).filter(|p| p.status == 200)
    });
    let csrf = page.csrf_field();
    let photos: Vec<Vec<u8>> = (0..5u8).map(|i| png(8, 8, move |x, y| [i * 40, x as u8, y as u8])).collect();
    let note = "已更换温控器".as_bytes();

    // The token after a photo, or a wrong one: 403 before the handler, nothing stored.
    for parts in [
        vec![
            ("id", None, case_id.as_bytes()),
            ("photo", Some("a.png"), &photos[0][..]),
            ("csrf", None, csrf.as_bytes()),
        ],
        vec![("csrf", None, &b"0000"[..]), ("id", None, case_id.as_bytes()), ("photo", Some("a.png"), &photos[0][..])],
    ] {
        let (status, body) = post_multipart(&cluster, &web, &parts);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("安全令牌"), "{body}");
        assert!(!stored_at(&cluster, school, &photos[0]));
    }

    // Five photos: refused with the count, none stored.
    let mut parts: Vec<Part> =
        vec![("csrf", None, csrf.as_bytes()), ("id", None, case_id.as_bytes()), ("note", None, note)];
    parts.extend(photos.iter().map(|p| ("photo", Some("p.png"), &p[..])));
    let (status, body) = post_multipart(&cluster, &web, &parts);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("最多 4 张照片，这次选了 5 张"), "{body}");
    assert!(photos.iter().all(|p| !stored_at(&cluster, school, p)));

    // Over the route's limit: 413 with the Chinese page, nothing stored.
    let big = vec![0xFFu8; node::console::UPLOAD_BODY_LIMIT + 1024];
    let (status, body) = post_multipart(
        &cluster,
        &web,
        &[
            ("csrf", None, csrf.as_bytes()),
            ("id", None, case_id.as_bytes()),
            ("photo", Some("a.png"), &photos[0][..]),
            ("photo", Some("big.jpg"), &big[..]),
        ],
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("照片过大") && body.contains("每张不超过 4 MiB"), "{body}");
    assert!(!stored_at(&cluster, school, &photos[0]));

    // Two photos, the same one twice: stored once, named once in the evidence.
    let (status, body) = post_multipart(
        &cluster,
        &web,
        &[
            ("csrf", None, csrf.as_bytes()),
            ("id", None, case_id.as_bytes()),
            ("note", None, note),
            ("evidence", None, &b""[..]),
            ("photo", Some(""), &b""[..]),
            ("photo", Some("a.png"), &photos[0][..]),
            ("photo", Some("a-again.png"), &photos[0][..]),
        ],
    );
    assert_eq!(status, 303, "{body}");
    assert!(stored_at(&cluster, school, &photos[0]));
    let c = cluster.client(school).case(&case_id).unwrap();
    assert_eq!(c.evidence, vec![protocol::files::file_ref(&node::runtime::files::sha256(&photos[0]))]);
    cluster.stop_all();
}
