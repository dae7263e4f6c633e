//! The console in a real browser: headless Chromium driven through chromedriver (WebDriver, with
//! fantoccini), against a real node process. Screenshots go to `target/screenshots/<name>.png`.
//!
//! Chromium and chromedriver must be installed (`.ci/run` installs them); without them the test
//! fails and says how to install them — it never skips.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console::{ACCOUNT, NAME, PASSWORD, console_federation};

/// What installs the browser, its driver and the CJK font on Debian.
pub const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver fonts-noto-cjk";

/// The first of `candidates` that exists, or the first found on `PATH` by name.
fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() && p.is_file() {
            return Some(p.to_path_buf());
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| candidates.iter().map(move |c| dir.join(Path::new(c).file_name().unwrap_or_default())))
        .find(|p| p.is_file())
}

/// Where screenshots go: `<target dir>/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp` for integration tests.
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots")
}

/// A headless Chromium under a chromedriver this test started (and ends, by its PID).
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    driver_log: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a browser session.
    pub fn start() -> Browser {
        let chromium = find_program(&["/usr/bin/chromium", "chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("Chromium is not installed; install it with: {INSTALL}"));
        let chromedriver = find_program(&["/usr/bin/chromedriver", "chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver is not installed; install it with: {INSTALL}"));
        let profile = tempfile::tempdir().unwrap();
        let driver_log = profile.path().join("chromedriver.log");
        let port = harness::cluster::free_tcp_ports(1).unwrap();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", driver_log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; install it with: {INSTALL}", chromedriver.display()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited ({status}) before listening; install it with: {INSTALL}");
            }
            if Instant::now() > deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not listen on {addr} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    "--ignore-certificate-errors",
                    "--lang=zh-CN",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = rt.block_on(async {
            ClientBuilder::new(connector).capabilities(caps).connect(&format!("http://{addr}")).await
        });
        let mut browser = Browser { rt, client: None, driver, _profile: profile, driver_log };
        match client {
            Ok(c) => browser.client = Some(c),
            Err(e) => panic!("no browser session: {e}\nchromedriver log:\n{}", browser.driver_log_tail()),
        }
        browser
    }

    fn driver_log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.driver_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The address the browser shows.
    pub fn url(&self) -> String {
        self.rt.block_on(self.client().current_url()).unwrap().to_string()
    }

    /// Types `value` into the form field named `name` (after clearing it).
    pub fn fill(&self, name: &str, value: &str) {
        self.rt
            .block_on(async {
                let field = self.client().find(Locator::Css(&format!("[name=\"{name}\"]"))).await?;
                field.clear().await?;
                field.send_keys(value).await
            })
            .unwrap_or_else(|e| panic!("fill {name}: {e}"));
    }

    /// Clicks the element `css` names (and waits for the page it leads to).
    pub fn click(&self, css: &str) {
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        self.wait_loaded();
    }

    /// Clicks the element `css` names, which leads to another page (a form's button), and waits
    /// until the new page has replaced the old one and finished loading.
    pub fn click_nav(&self, css: &str) {
        let mark = "window.__mingchu_old_page = true; return true";
        self.rt.block_on(self.client().execute(mark, vec![])).unwrap_or_else(|e| panic!("mark the page: {e}"));
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let probe = "return window.__mingchu_old_page === undefined && document.readyState === 'complete'";
        loop {
            let fresh = self.rt.block_on(self.client().execute(probe, vec![]));
            if fresh.ok().and_then(|v| v.as_bool()) == Some(true) {
                return;
            }
            assert!(Instant::now() < deadline, "clicking {css} led to no new page within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Submits the page's main form (the one in `<main>`, not the sign-out button in the header).
    pub fn submit(&self) {
        self.click_nav("main form button[type=submit]");
    }

    fn wait_loaded(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.rt.block_on(self.client().execute("return document.readyState", vec![]));
            if state.ok().and_then(|v| v.as_str().map(str::to_owned)).as_deref() == Some("complete") {
                return;
            }
            assert!(Instant::now() < deadline, "the page did not finish loading in 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Chooses the file at `path` in the file input named `name` (as a person picks it).
    pub fn choose_file(&self, name: &str, path: &std::path::Path) {
        let css = format!("input[type=file][name=\"{name}\"]");
        let path = path.display().to_string();
        self.rt
            .block_on(async { self.client().find(Locator::Css(&css)).await?.send_keys(&path).await })
            .unwrap_or_else(|e| panic!("choose a file in {name}: {e}"));
    }

    /// Chooses `value` in the `<select>` named `name`.
    pub fn choose(&self, name: &str, value: &str) {
        let script = "document.querySelector(arguments[0]).value = arguments[1]";
        self.rt
            .block_on(self.client().execute(script, vec![json!(format!("[name=\"{name}\"]")), json!(value)]))
            .unwrap_or_else(|e| panic!("choose {name}: {e}"));
    }

    /// Resizes the window (a phone is 390 × 844).
    pub fn window(&self, width: u32, height: u32) {
        self.rt.block_on(self.client().set_window_size(width, height)).unwrap_or_else(|e| panic!("resize: {e}"));
    }

    /// The visible text of the page.
    pub fn text(&self) -> String {
        // Between two pages there may be no body yet: that is no text.
        self.rt.block_on(async { self.client().find(Locator::Css("body")).await?.text().await }).unwrap_or_default()
    }

    /// Reloads `url` until the page shows `what` (a step of another node may still be on its way);
    /// its text then. Fails after 30 s with what the page shows.
    pub fn wait_page(&self, url: &str, what: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            self.goto(url);
            let text = self.text();
            if text.contains(what) {
                return text;
            }
            assert!(std::time::Instant::now() < deadline, "{url} never showed {what:?}; it shows:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The visible text of the first element `css` names ("" when there is none).
    pub fn text_of(&self, css: &str) -> String {
        self.rt.block_on(async { self.client().find(Locator::Css(css)).await?.text().await }).unwrap_or_default()
    }

    /// Resizes the window so that the page itself gets `width` × `height` (a wall screen's
    /// 1920 × 1080), whatever the browser's frame takes.
    pub fn viewport(&self, width: u32, height: u32) {
        self.window(width, height);
        let inner = "return [window.innerWidth, window.innerHeight]";
        let got = self.rt.block_on(self.client().execute(inner, vec![])).unwrap_or_default();
        let (w, h) = (got[0].as_u64().unwrap_or(0) as u32, got[1].as_u64().unwrap_or(0) as u32);
        if (w, h) != (width, height) && w > 0 && h > 0 {
            self.window(width + width.saturating_sub(w), height + height.saturating_sub(h));
        }
    }

    /// Runs `script` in the page; what it returns.
    pub fn eval(&self, script: &str) -> serde_json::Value {
        self.rt.block_on(self.client().execute(script, vec![])).unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// How many elements `css` names.
    pub fn count(&self, css: &str) -> usize {
        let script = "return document.querySelectorAll(arguments[0]).length";
        let n = self.rt.block_on(self.client().execute(script, vec![json!(css)]));
        n.ok().and_then(|v| v.as_u64()).unwrap_or(0) as usize
    }

    /// The attribute `name` of the first element `css` names ("" when there is none).
    pub fn attr(&self, css: &str, name: &str) -> String {
        let script =
            "var e = document.querySelector(arguments[0]); return e ? (e.getAttribute(arguments[1]) || '') : ''";
        let v = self.rt.block_on(self.client().execute(script, vec![json!(css), json!(name)]));
        v.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// Saves what the browser shows to `target/screenshots/<name>.png`; returns the path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session makes chromedriver end its Chromium; then the driver itself, by
        // the PID this test started it with.
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Polls the browser's text until it contains `what` (a page may still be rendering).
pub fn wait_text(b: &Browser, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = b.text();
        if text.contains(what) {
            return text;
        }
        assert!(Instant::now() < deadline, "the page never showed {what:?}; it shows:\n{text}\nat {}", b.url());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_county_administrator_signs_in_and_out_in_a_real_browser() {
    let (_dir, cluster, county) = console_federation();
    let base = cluster.console_url(county);
    let b = Browser::start();

    // Not signed in: the home page sends the browser to the sign-in form.
    b.goto(&format!("{base}/"));
    assert!(b.url().ends_with("/sign-in"), "{}", b.url());
    let text = wait_text(&b, "登录");
    assert!(text.contains("账号") && text.contains("密码"), "{text}");
    b.screenshot("sign-in");

    // A wrong password: the same form, with the refusal.
    b.fill("account", ACCOUNT);
    b.fill("password", "not the password");
    b.submit();
    wait_text(&b, "账号或密码不对");
    assert!(b.url().ends_with("/sign-in"), "{}", b.url());
    b.screenshot("sign-in-refused");

    // The right one: the home page, with the person's name.
    b.fill("account", ACCOUNT);
    b.fill("password", PASSWORD);
    b.submit();
    let text = wait_text(&b, NAME);
    assert!(b.url() == format!("{base}/"), "{}", b.url());
    assert!(text.contains("首页") && text.contains("退出"), "{text}");
    b.screenshot("home");

    // Signing out (the header's button): back at the sign-in form, and the home page is closed.
    b.click_nav("header form button[type=submit]");
    wait_text(&b, "您已退出登录");
    assert!(b.url().contains("/sign-in"), "{}", b.url());
    b.goto(&format!("{base}/"));
    assert!(b.url().ends_with("/sign-in"), "{}", b.url());

    // A session idle for 31 minutes by the node's clock has expired.
    b.fill("account", ACCOUNT);
    b.fill("password", PASSWORD);
    b.submit();
    wait_text(&b, NAME);
    cluster.client(county).advance_clock(Duration::from_secs(31 * 60)).unwrap();
    b.goto(&format!("{base}/"));
    wait_text(&b, "登录已过期，请重新登录");
    assert!(b.url().contains("/sign-in"), "{}", b.url());
    b.screenshot("expired");
}
