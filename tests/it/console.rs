//! The web console over HTTPS, checked the way a browser meets it but with a plain Rust client
//! (ureq + rustls trusting only the federation CA): the certificate, cookies, CSRF, the body
//! limit and the sign-in throttles. Every node is a real process of a real federation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harness::cluster::Cluster;
use node::api::accounts::{AccountRequest, SignIn};
use topology::NodeId;
use topology::generate::SmallSpec;

use crate::binary;

/// The county account every console test signs in with.
pub const ACCOUNT: &str = "li.na";
pub const NAME: &str = "李娜";
pub const PASSWORD: &str = "县级管理员-2026";

/// A started 1 × 1 × 1 federation whose county lets tests move its clock, with the county
/// administrator [`ACCOUNT`] created through the admin API. Returns the county too.
pub fn console_federation() -> (tempfile::TempDir, Cluster, NodeId) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let county: NodeId = "130102".parse().unwrap();
    cluster.edit_config(county, |c| c.clock_control = true).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    add_account(&cluster, county, ACCOUNT, NAME, PASSWORD, false);
    (dir, cluster, county)
}

pub fn add_account(cluster: &Cluster, node: NodeId, id: &str, name: &str, password: &str, disabled: bool) {
    let req = AccountRequest {
        id: id.into(),
        display_name: name.into(),
        role: "管理员".into(),
        password: password.into(),
        disabled,
    };
    cluster.client(node).add_account(&req).unwrap();
}

/// Whether the admin API accepts `password` for `id` (what a change of password must change).
fn password_works(cluster: &Cluster, node: NodeId, id: &str, password: &str) -> bool {
    cluster.client(node).sign_in(&SignIn { id: id.into(), password: password.into() }).is_ok()
}

/// An HTTPS client that trusts only the CA in `ca_pem`, follows no redirect and returns every
/// status as an answer.
pub fn agent(ca_pem: &Path) -> ureq::Agent {
    let pem = std::fs::read(ca_pem).unwrap();
    let ca = ureq::tls::Certificate::from_pem(&pem).unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca])))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// One answer of the console.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: String,
    pub set_cookies: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Page {
    /// The `Set-Cookie` line for cookie `name`.
    pub fn cookie_line(&self, name: &str) -> Option<&str> {
        self.set_cookies.iter().map(String::as_str).find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value of the form's hidden `csrf` field.
    pub fn csrf_field(&self) -> String {
        let at = self.body.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        self.body[at + 19..].chars().take_while(|c| *c != '"').collect()
    }
}

/// A person's browser, minus the browser: it keeps its cookies.
pub struct Web {
    agent: ureq::Agent,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
}

impl Web {
    pub fn new(cluster: &Cluster, node: NodeId) -> Web {
        Web { agent: agent(&cluster.ca_cert_path()), base: cluster.console_url(node), cookies: BTreeMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn read(&mut self, resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Page {
        let mut resp = resp.unwrap();
        let set_cookies: Vec<String> =
            resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
        for c in &set_cookies {
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        Page {
            status: resp.status().as_u16(),
            location: resp.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default(),
            set_cookies,
            headers,
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        let req = self.agent.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header());
        let resp = req.call();
        self.read(resp)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let req = self.agent.post(format!("{}{path}", self.base)).header("cookie", self.cookie_header());
        let resp = req.send_form(fields.iter().copied());
        self.read(resp)
    }

    /// A POST of `body` as a form, streamed (chunked, no length declared) when `stream`.
    pub fn post_raw(&mut self, path: &str, body: Vec<u8>, stream: bool) -> Page {
        let req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded");
        let resp = if stream {
            req.send(ureq::SendBody::from_owned_reader(std::io::Cursor::new(body)))
        } else {
            req.send(&body[..])
        };
        self.read(resp)
    }

    /// Signs in through the form: the sign-in page first (for its token), then the POST.
    pub fn sign_in(&mut self, account: &str, password: &str) -> Page {
        let form = self.get("/sign-in");
        assert_eq!(form.status, 200, "{form:?}");
        let csrf = form.csrf_field();
        self.post("/sign-in", &[("csrf", &csrf), ("account", account), ("password", password)])
    }

    /// The session's CSRF token, read off a page.
    pub fn csrf(&mut self) -> String {
        let page = self.get("/password");
        assert_eq!(page.status, 200, "{page:?}");
        page.csrf_field()
    }
}

#[test]
fn the_console_is_https_with_a_certificate_the_federation_ca_signed_for_127_0_0_1() {
    let (_dir, cluster, county) = console_federation();
    let url = cluster.console_url(county);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // A client that trusts only the federation CA connects, and every answer carries the
    // security headers.
    let mut web = Web::new(&cluster, county);
    let page = web.get("/sign-in");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("账号") && page.body.contains("密码") && page.body.contains("登录"), "{}", page.body);
    let h = &page.headers;
    assert_eq!(h.get("content-security-policy").map(String::as_str), Some(node::console::CSP), "{h:?}");
    assert!(
        node::console::CSP
            .starts_with("default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(h.get("x-content-type-options").map(String::as_str), Some("nosniff"));
    assert_eq!(h.get("referrer-policy").map(String::as_str), Some("same-origin"));
    assert_eq!(h.get("cache-control").map(String::as_str), Some("no-store"));
    let sign_in_cookie = page.cookie_line("mingchu_sign_in").expect("the sign-in form's token cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(sign_in_cookie.contains(attr), "{sign_in_cookie}");
    }
    let css = web.get("/assets/console.css");
    assert_eq!(css.status, 200);
    assert!(css.headers.contains_key("content-security-policy"));

    // The name must match: the same server as `localhost` is refused (the certificate names
    // 127.0.0.1 only), and so is a client that trusts another CA.
    let port = url.rsplit(':').next().unwrap();
    let err = agent(&cluster.ca_cert_path()).get(format!("https://localhost:{port}/sign-in")).call().unwrap_err();
    assert!(format!("{err}").to_lowercase().contains("certificate"), "{err}");
    let other = tempfile::tempdir().unwrap();
    node::tls::ca_init(other.path()).unwrap();
    let err = agent(&other.path().join("ca.pem")).get(format!("{url}/sign-in")).call().unwrap_err();
    assert!(format!("{err}").to_lowercase().contains("certificate"), "{err}");
    // Plain HTTP to the HTTPS port gets no page.
    assert!(agent(&cluster.ca_cert_path()).get(format!("http://127.0.0.1:{port}/sign-in")).call().is_err());
}

#[test]
fn sessions_cookies_and_csrf_protect_every_change() {
    let (_dir, cluster, county) = console_federation();
    let mut web = Web::new(&cluster, county);

    // Not signed in: every page sends the browser to the sign-in page.
    let page = web.get("/");
    assert_eq!((page.status, page.location.as_str()), (303, "/sign-in"), "{page:?}");

    // The sign-in form refuses a POST whose token does not match its cookie.
    web.get("/sign-in");
    let page = web.post("/sign-in", &[("csrf", &"0".repeat(64)), ("account", ACCOUNT), ("password", PASSWORD)]);
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.body.contains("请求缺少有效的安全令牌（CSRF），请刷新页面后重试"), "{}", page.body);
    assert!(page.cookie_line("mingchu_session").is_none());

    // A wrong password: the same page with the refusal, 401, no session.
    let page = web.sign_in(ACCOUNT, "not the password");
    assert_eq!(page.status, 401, "{page:?}");
    assert!(page.body.contains("账号或密码不对"), "{}", page.body);
    assert!(page.cookie_line("mingchu_session").is_none());

    // Signing in sets the session cookie with every attribute, and a planted id is replaced.
    web.cookies.insert("mingchu_session".into(), "ab".repeat(32));
    let page = web.sign_in(ACCOUNT, PASSWORD);
    assert_eq!((page.status, page.location.as_str()), (303, "/"), "{page:?}");
    let cookie = page.cookie_line("mingchu_session").expect("a session cookie").to_string();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.split("; ").any(|a| a == attr), "{attr} missing: {cookie}");
    }
    let session = web.cookies["mingchu_session"].clone();
    assert!(session.len() == 64 && session != "ab".repeat(32), "{session}");
    let home = web.get("/");
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.body.contains(NAME), "{}", home.body);

    // A POST without the csrf field, or with another token, changes nothing: 403 with the
    // Chinese page, the password still the old one, the session still there.
    let new_password = "新的密码-2027";
    let change = [("old", PASSWORD), ("new", new_password), ("again", new_password)];
    for csrf in [None, Some("0".repeat(64)), Some(String::new())] {
        let mut fields = change.to_vec();
        if let Some(c) = &csrf {
            fields.push(("csrf", c));
        }
        let page = web.post("/password", &fields);
        assert_eq!(page.status, 403, "{csrf:?}: {page:?}");
        assert!(page.body.contains("请求缺少有效的安全令牌（CSRF），请刷新页面后重试"), "{}", page.body);
    }
    let page = web.post("/sign-out", &[]);
    assert_eq!(page.status, 403, "sign-out without the token: {page:?}");
    assert!(password_works(&cluster, county, ACCOUNT, PASSWORD));
    assert!(!password_works(&cluster, county, ACCOUNT, new_password));
    assert_eq!(web.get("/").status, 200, "still signed in");

    // A body over the limit is refused before anything reads it, declared or streamed.
    let csrf = web.csrf();
    for stream in [false, true] {
        let mut body = format!("csrf={csrf}&old={PASSWORD}&new={new_password}&again={new_password}&pad=").into_bytes();
        body.resize(node::console::BODY_LIMIT + 1024, b'x');
        let page = web.post_raw("/password", body, stream);
        assert_eq!(page.status, 413, "streamed {stream}: {page:?}");
        assert!(page.body.contains("请求内容过大"), "{}", page.body);
    }
    assert!(password_works(&cluster, county, ACCOUNT, PASSWORD));

    // A second session of the same person; changing the password with the token ends it.
    let mut other = Web::new(&cluster, county);
    assert_eq!(other.sign_in(ACCOUNT, PASSWORD).status, 303);
    assert_eq!(other.get("/").status, 200);
    let mut fields = change.to_vec();
    fields.push(("csrf", &csrf));
    let page = web.post("/password", &fields);
    assert_eq!((page.status, page.location.as_str()), (303, "/password?done=1"), "{page:?}");
    assert!(web.get("/password?done=1").body.contains("密码已修改"));
    assert!(!password_works(&cluster, county, ACCOUNT, PASSWORD));
    assert!(password_works(&cluster, county, ACCOUNT, new_password));
    let page = other.get("/");
    assert_eq!((page.status, page.location.as_str()), (303, "/sign-in?notice=expired"), "{page:?}");
    assert_eq!(web.get("/").status, 200, "the session that changed it stays");

    // Refusals of the password form say why, in Chinese, and change nothing.
    let csrf = web.csrf();
    for (old, new, again, why) in [
        (new_password, "another-one-1", "another-one-2", "两次输入的新密码不一致"),
        (new_password, "short", "short", "新密码至少 8 个字符"),
        (new_password, new_password, new_password, "新密码不能与旧密码相同"),
        ("wrong old pw", "another-one-1", "another-one-1", "旧密码不对"),
    ] {
        let page = web.post("/password", &[("csrf", &csrf), ("old", old), ("new", new), ("again", again)]);
        assert!(page.status >= 400 && page.body.contains(why), "{why}: {page:?}");
    }
    assert!(password_works(&cluster, county, ACCOUNT, new_password));

    // Signing out with the token ends the session: the same cookie no longer opens a page.
    let csrf = web.csrf();
    let page = web.post("/sign-out", &[("csrf", &csrf)]);
    assert_eq!((page.status, page.location.as_str()), (303, "/sign-in?notice=signed-out"), "{page:?}");
    assert!(page.cookie_line("mingchu_session").is_some_and(|c| c.contains("Max-Age=0")));
    web.cookies.insert("mingchu_session".into(), session);
    assert_eq!(web.get("/").status, 303);

    // A disabled account loses its session at once.
    let mut web = Web::new(&cluster, county);
    assert_eq!(web.sign_in(ACCOUNT, new_password).status, 303);
    assert_eq!(web.get("/").status, 200);
    add_account(&cluster, county, ACCOUNT, NAME, new_password, true);
    let page = web.get("/");
    assert_eq!(page.status, 303, "{page:?}");
    assert!(page.location.starts_with("/sign-in"), "{page:?}");

    // Every step is in the audit log.
    let audit = cluster.client(county).audit(200).unwrap();
    for what in ["sign-in", "sign-in-refused", "sign-out", "password-changed"] {
        assert!(audit.iter().any(|l| l.what == what && l.account == ACCOUNT), "{what} not audited: {audit:?}");
    }
    assert!(audit.iter().any(|l| l.what == "sign-in" && l.detail.contains("console 127.0.0.1")), "{audit:?}");
}

#[test]
fn sessions_expire_by_the_nodes_clock() {
    let (_dir, cluster, county) = console_federation();
    let mut web = Web::new(&cluster, county);
    assert_eq!(web.sign_in(ACCOUNT, PASSWORD).status, 303);
    cluster.client(county).advance_clock(Duration::from_secs(29 * 60)).unwrap();
    assert_eq!(web.get("/").status, 200, "29 idle minutes are not 30");
    cluster.client(county).advance_clock(Duration::from_secs(31 * 60)).unwrap();
    let page = web.get("/");
    assert_eq!((page.status, page.location.as_str()), (303, "/sign-in?notice=expired"), "{page:?}");
    assert!(web.get(&page.location).body.contains("登录已过期，请重新登录"));
}

#[test]
fn too_many_failed_sign_ins_from_one_address_are_refused_for_a_while() {
    let (_dir, cluster, county) = console_federation();
    let mut web = Web::new(&cluster, county);
    // Twenty wrong guesses, each at another account, so no account's own throttle trips.
    for i in 0..node::console::session::ADDR_FAILURES_MAX {
        let page = web.sign_in(&format!("guess{i}"), "wrong password");
        assert_eq!(page.status, 401, "attempt {i}: {page:?}");
    }
    // Now even the right password from this address is refused.
    let page = web.sign_in(ACCOUNT, PASSWORD);
    assert_eq!(page.status, 429, "{page:?}");
    assert!(page.body.contains("登录失败次数过多，请 15 分钟后再试"), "{}", page.body);
    assert!(page.cookie_line("mingchu_session").is_none());
    let audit = cluster.client(county).audit(10).unwrap();
    assert!(audit.iter().any(|l| l.what == "sign-in-throttled" && l.detail.contains("127.0.0.1")), "{audit:?}");

    // A quarter of an hour later by the node's clock it may try again.
    cluster.client(county).advance_clock(Duration::from_secs(16 * 60)).unwrap();
    let page = web.sign_in(ACCOUNT, PASSWORD);
    assert_eq!((page.status, page.location.as_str()), (303, "/"), "{page:?}");
}

#[test]
fn without_a_certificate_the_console_is_plain_http_on_loopback_and_refused_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let county: NodeId = "130102".parse().unwrap();
    for f in [node::tls::WEB_CERT_FILE, node::tls::WEB_KEY_FILE] {
        std::fs::remove_file(cluster.cert_dir.join(f)).unwrap();
    }

    // A LAN address without a certificate: the node refuses to start, and says what to do. (It
    // stops at the config check: nothing is bound, nothing sent.)
    let loopback = cluster.console_url(county).replace("https://", "");
    cluster.edit_config(county, |c| c.console.as_mut().unwrap().listen = "192.0.2.10:8443".parse().unwrap()).unwrap();
    let config = cluster.config_path(county);
    let (ok, _, err) = crate::mingchu(&["node", "run", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("必须使用 HTTPS") && err.contains("ca issue --web"), "{err}");

    // On loopback it serves plain HTTP, and its cookies are not marked Secure.
    cluster.edit_config(county, |c| c.console.as_mut().unwrap().listen = loopback.parse().unwrap()).unwrap();
    // But not with a node key that others may read: it refuses to start and says how to fix it.
    {
        use std::os::unix::fs::PermissionsExt;
        let (_, key) = node::tls::node_paths(&cluster.cert_dir, county);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (ok, _, err) = crate::mingchu(&["node", "run", "--config", config.to_str().unwrap()]);
        assert!(!ok && err.contains("chmod 600") && err.contains("0644"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    add_account(&cluster, county, ACCOUNT, NAME, PASSWORD, false);
    let mut web =
        Web { agent: agent(&cluster.ca_cert_path()), base: format!("http://{loopback}"), cookies: BTreeMap::new() };
    let page = web.sign_in(ACCOUNT, PASSWORD);
    assert_eq!((page.status, page.location.as_str()), (303, "/"), "{page:?}");
    let cookie = page.cookie_line("mingchu_session").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"),
        "{cookie}"
    );
    assert!(!page.headers.contains_key("strict-transport-security"));
    assert!(web.get("/").body.contains(NAME));
}
