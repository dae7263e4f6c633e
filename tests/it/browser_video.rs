//! 直播 and 家长 in a real browser, against real processes: nginx with its RTMP module turns a
//! test pattern that ffmpeg pushes into HLS; the school registers the camera's stream; a county
//! supervisor opens the camera's live page on the county's console and the `<video>` plays (its
//! `currentTime` advances); a parent of the school, on a phone-sized window, watches the camera the
//! school opened to parents and sees the school's public record — and is refused another school,
//! a camera not opened to parents and every supervisor's page. The recorders' reported days of
//! recordings raise the retention warning at the setting in force (30 by default, then the
//! province's 35).
//!
//! nginx, its RTMP module and ffmpeg must be installed (`scripts/test` installs them); without them
//! the test fails and says how to install them — it never skips.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::cluster::Cluster;
use node::api::registry::RegistryRequest;
use node::config::DevicesConfig;
use protocol::ledger::{AccompaniedMeal, Companion, FoodSample, LedgerRecord, Meal};
use protocol::registry::{CameraStream, EntityData, EntityKind, RegistryOp, Settings};
use protocol::warning::RuleId;
use topology::NodeId;

use crate::browser::{Browser, wait_text};
use crate::console::Web;
use crate::devices::{Device, add_with_cli};
use crate::{binary, eventually};

/// What installs the media server and the encoder on Debian.
pub const INSTALL: &str = "apt-get update && apt-get install -y nginx libnginx-mod-rtmp ffmpeg";
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const PASSWORD: &str = "明厨亮灶-2026";

fn program(candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.is_absolute() && p.is_file());
    found.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|d| candidates.iter().map(move |c| d.join(Path::new(c).file_name().unwrap_or_default())))
            .find(|p| p.is_file())
    })
}

/// nginx (RTMP in, HLS out over HTTP with CORS) and ffmpeg pushing a test pattern to it, both
/// ended by their PIDs when dropped.
pub struct MediaServer {
    dir: tempfile::TempDir,
    nginx: Child,
    ffmpeg: Option<Child>,
    pub http_port: u16,
}

impl MediaServer {
    /// Starts nginx on two free loopback ports and ffmpeg pushing `testsrc` as stream `live/cam1`.
    pub fn start() -> MediaServer {
        let nginx = program(&["/usr/sbin/nginx", "nginx"])
            .unwrap_or_else(|| panic!("nginx is not installed; install it with: {INSTALL}"));
        assert!(
            Path::new(RTMP_MODULE).is_file(),
            "nginx's RTMP module {RTMP_MODULE} is missing; install it with: {INSTALL}"
        );
        let ffmpeg = program(&["/usr/bin/ffmpeg", "ffmpeg"])
            .unwrap_or_else(|| panic!("ffmpeg is not installed; install it with: {INSTALL}"));
        let dir = tempfile::tempdir().unwrap();
        let base = harness::cluster::free_tcp_ports(2).unwrap();
        let (http_port, rtmp_port) = (base, base + 1);
        let d = dir.path().display();
        std::fs::create_dir_all(dir.path().join("hls")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let conf = format!(
            r#"load_module {RTMP_MODULE};
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        application live {{
            live on;
            record off;
            hls on;
            hls_path {d}/hls;
            hls_fragment 1s;
            hls_playlist_length 6s;
        }}
    }}
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{
            alias {d}/hls/;
            add_header Access-Control-Allow-Origin * always;
            add_header Cache-Control no-cache always;
        }}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let root = dir.path().to_path_buf();
        let log = |name: &str| std::fs::File::create(root.join(name)).unwrap();
        let nginx = Command::new(&nginx)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(format!("{d}/"))
            .stdin(Stdio::null())
            .stdout(log("nginx.out"))
            .stderr(log("nginx.err"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx: {e}; install it with: {INSTALL}"));
        let mut server = MediaServer { dir, nginx, ffmpeg: None, http_port };
        for port in [http_port, rtmp_port] {
            server.wait_listening(port);
        }
        let ffmpeg = Command::new(&ffmpeg)
            .args(["-hide_banner", "-loglevel", "warning", "-re", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=25")
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"])
            .args(["-profile:v", "baseline", "-g", "25", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{rtmp_port}/live/cam1"))
            .stdin(Stdio::null())
            .stdout(log("ffmpeg.out"))
            .stderr(log("ffmpeg.err"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ffmpeg: {e}; install it with: {INSTALL}"));
        server.ffmpeg = Some(ffmpeg);
        server
    }

    fn wait_listening(&mut self, port: u16) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.nginx.try_wait() {
                panic!("nginx exited ({status}) before listening:\n{}", self.logs());
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {addr} within 20 s:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The HLS base address the nodes are configured with.
    pub fn hls_base(&self) -> String {
        format!("http://127.0.0.1:{}/hls", self.http_port)
    }

    /// Waits (bounded) until nginx serves the stream's playlist with a segment in it.
    pub fn wait_playlist(&mut self) {
        let url = format!("{}/cam1.m3u8", self.hls_base());
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(mut resp) = ureq::get(&url).call()
                && resp.body_mut().read_to_string().is_ok_and(|b| b.contains(".ts"))
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.ffmpeg.as_mut().map(|f| f.try_wait()) {
                panic!("ffmpeg exited ({status}):\n{}", self.logs());
            }
            assert!(Instant::now() < deadline, "no HLS playlist at {url} within 40 s:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        ["error.log", "nginx.err", "ffmpeg.err"]
            .iter()
            .map(|f| format!("--- {f}\n{}", std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        for child in self.ffmpeg.iter_mut().chain(std::iter::once(&mut self.nginx)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A county with one school; both consoles play from `hls_base`; the school takes devices and
/// lets its clock be moved.
fn video_federation(hls_base: &str) -> (tempfile::TempDir, Cluster, NodeId, NodeId, NodeId) {
    let dir = tempfile::tempdir().unwrap();
    let spec = topology::generate::SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let province: NodeId = "13".parse().unwrap();
    let county: NodeId = "130102".parse().unwrap();
    let school = NodeId::school(county, 1).unwrap();
    let port = harness::cluster::free_tcp_ports(1).unwrap();
    for node in [county, school] {
        cluster.edit_config(node, |c| c.video.hls_base = Some(hls_base.to_string())).unwrap();
    }
    cluster
        .edit_config(school, |c| {
            c.devices = Some(DevicesConfig::new(([127, 0, 0, 1], port).into()));
            c.clock_control = true;
        })
        .unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    (dir, cluster, province, county, school)
}

fn set_stream(cluster: &Cluster, node: NodeId, school: NodeId, camera: &str, s: CameraStream) -> anyhow::Result<()> {
    let req = RegistryRequest {
        kind: EntityKind::CameraStream,
        node: Some(school),
        id: camera.into(),
        op: RegistryOp::Upsert(EntityData::CameraStream(s)),
    };
    cluster.client(node).registry_write(&req).map(|_| ())
}

fn account(cluster: &Cluster, node: NodeId, id: &str, name: &str, role: &str) {
    crate::browser::add_account_as(cluster, node, id, name, role, PASSWORD);
}

/// Waits (bounded) until the page's `<video>` has played past `past` seconds; its `currentTime`.
fn played_past(b: &Browser, past: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = b.eval("const v = document.getElementById('live'); return v ? v.currentTime : -1;");
        let t = t.as_f64().unwrap_or(-1.0);
        if t > past {
            return t;
        }
        let state = b.text_of("#live-state");
        assert!(
            Instant::now() < deadline,
            "the live video never played past {past} s (currentTime {t}; the page says {state:?}; H.264 in MSE: {})",
            b.eval("return MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.42E01E\"');")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn recording_short(cluster: &Cluster, node: NodeId, camera: &str) -> Option<node::api::warnings::WarningView> {
    let list: Vec<node::api::warnings::WarningView> =
        cluster.client(node).get("/api/warnings?active=false&limit=all").ok()?;
    list.into_iter().find(|w| w.rule == RuleId::RecordingShort && w.subject == camera)
}

#[test]
fn a_supervisor_and_a_parent_watch_a_canteen_camera_live_and_the_parent_sees_only_the_open_one() {
    let mut media = MediaServer::start();
    let (_dir, cluster, province, county, school) = video_federation(&media.hls_base());

    // The school says where its cameras' pictures are: cam-01 (open to parents) by its stream's
    // path at the media server, with the CLI, cam-02 by its own HLS address. Bad ones are refused,
    // nothing kept.
    let admin = cluster.admin_addr(school).to_string();
    let args = ["registry", "camera", "stream", "--admin", &admin, "--id", "cam-01", "--stream", "cam1"];
    let (ok, out, err) = crate::mingchu(&[&args[..], &["--gb-channel", "34020000001320000001"]].concat());
    assert!(ok, "{out}{err}");
    let (ok, out, err) = crate::mingchu(&[&args[..], &["--gb-channel", "3402"]].concat());
    assert!(!ok && err.contains("20 位数字"), "a short channel id is refused: {out}{err}");
    let own = CameraStream { hls_url: format!("{}/cam1.m3u8", media.hls_base()), ..CameraStream::default() };
    set_stream(&cluster, school, school, "cam-02", own.clone()).unwrap();
    let refused = [
        (school, "cam-99", own.clone(), "引用的摄像头“cam-99”在 130102-S0001 尚未登记"),
        (school, "cam-03", CameraStream { hls_url: "ftp://x/a.m3u8".into(), ..CameraStream::default() }, "http://"),
        (school, "cam-03", CameraStream::default(), "至少一项"),
        (county, "cam-03", own.clone(), "只能由该学校 130102-S0001 自己登记"),
    ];
    for (node, camera, s, why) in refused {
        let e = format!("{:#}", set_stream(&cluster, node, school, camera, s).unwrap_err());
        assert!(e.contains(why), "{camera}: {e}");
    }
    let streams: Vec<node::api::registry::EntityView> =
        cluster.client(school).get("/api/registry?kind=camera-stream").unwrap();
    assert_eq!(streams.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["cam-01", "cam-02"]);

    // The school's recorder keeps 30 days for cam-01 and 20 for cam-02: the retention warning
    // (30 days by default) for cam-02 only, at the school and up at the county.
    let token = add_with_cli(&cluster, school, "nvr1", "nvr", "cam-01,cam-02").token;
    let recorder = Device::new(&cluster, school, &token);
    assert_eq!(recorder.heartbeat(&[("cam-01", true, Some(30)), ("cam-02", true, Some(20))]).status, 200);
    let _: serde_json::Value = cluster.client(school).post("/api/warnings/evaluate", &()).unwrap();
    let w = eventually(Duration::from_secs(30), "the retention warning at the county", || {
        recording_short(&cluster, county, "cam-02").filter(|w| w.active)
    });
    assert!(w.text.contains("只保存 20 天，少于 30 天"), "{}", w.text);
    assert!(recording_short(&cluster, school, "cam-01").is_none_or(|w| !w.active));
    // The province asks for 35 days: now cam-01's 30 are too few as well.
    let settings = Settings { recording_keep_days: 35, ..Settings::default() };
    let req = RegistryRequest {
        kind: EntityKind::Settings,
        node: None,
        id: String::new(),
        op: RegistryOp::Upsert(EntityData::Settings(settings)),
    };
    cluster.client(province).registry_write(&req).unwrap();
    eventually(Duration::from_secs(30), "the province's settings at the school", || {
        let v: serde_json::Value = cluster.client(school).get("/api/settings").ok()?;
        (v["settings"]["recording_keep_days"] == 35).then_some(())
    });
    assert_eq!(recorder.heartbeat(&[("cam-01", true, Some(30)), ("cam-02", true, Some(20))]).status, 200);
    let _: serde_json::Value = cluster.client(school).post("/api/warnings/evaluate", &()).unwrap();
    let w = eventually(Duration::from_secs(30), "cam-01's retention warning at the county", || {
        recording_short(&cluster, county, "cam-01").filter(|w| w.active)
    });
    assert!(w.text.contains("只保存 30 天，少于 35 天"), "{}", w.text);

    // A county supervisor opens the school's cameras and watches cam-01 live.
    media.wait_playlist();
    account(&cluster, county, "li.na", "李娜", "监管员");
    let county_url = cluster.console_url(county);
    let b = Browser::start();
    b.window(1280, 1000);
    b.goto(&format!("{county_url}/sign-in"));
    b.fill("account", "li.na");
    b.fill("password", PASSWORD);
    b.submit();
    wait_text(&b, "李娜");
    b.click_nav("nav.main a[href='/cameras']");
    wait_text(&b, "看直播");
    b.goto(&format!("{county_url}/cameras?school={school}"));
    let list = wait_text(&b, "看直播");
    assert!(list.contains("流 cam1") && list.contains("国标通道 34020000001320000001"), "{list}");
    assert!(b.text_of("#cameras tr[data-camera='cam-03']").contains("未登记"));
    b.click_nav("#cameras tr[data-camera='cam-01'] a.live");
    wait_text(&b, "画面由媒体服务器直接提供");
    let t = played_past(&b, 1.0);
    played_past(&b, t + 1.0);
    wait_text(&b, "直播中");
    let shot = b.screenshot("video_live");
    assert!(shot.is_file());
    // cam-02 plays from its own address too.
    b.goto(&format!("{county_url}/cameras/live?school={school}&camera=cam-02"));
    played_past(&b, 1.0);
    // A school outside the county is refused; a malformed code is a bad request.
    let mut web = Web::new(&cluster, county);
    assert_eq!(web.sign_in("li.na", PASSWORD).status, 303);
    let other = web.get("/cameras/live?school=130103-S0001&camera=cam-01");
    assert_eq!(other.status, 403, "{}", other.body);
    assert!(other.body.contains("不在本单位"), "{}", other.body);
    let bad = web.get("/cameras/live?school=13x&camera=cam-01");
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(web.get(&format!("/cameras/live?school={school}&camera=cam-77")).status, 404);

    // The school's public ledger: a sample kept and a parent's accompanied meal.
    let write = |record: LedgerRecord| {
        let req = node::api::ledgers::LedgerWrite {
            kind: record.kind(),
            date: None,
            id: None,
            record: Some(record),
            void_reason: None,
            at: None,
        };
        cluster.client(school).ledger_write(&req).unwrap();
    };
    write(LedgerRecord::FoodSample(FoodSample {
        canteen: "main".into(),
        meal: Meal::Lunch,
        dish: "番茄炒蛋".into(),
        grams: 150,
        sampled_at_ms: 0,
        refrigerated: true,
        disposed_at_ms: None,
        batches: vec![],
        sampled_by: "李四".into(),
    }));
    write(LedgerRecord::AccompaniedMeal(AccompaniedMeal {
        canteen: "main".into(),
        meal: Meal::Lunch,
        companion: Companion::Parent,
        name: "三年级二班家长 王女士".into(),
        rating: 5,
        remarks: "饭菜可口".into(),
    }));

    // A parent of the school, on a phone: the open camera live, the public record, nothing else.
    account(&cluster, school, "wang.fang", "王芳", "家长");
    b.click_nav("header form button[type=submit]");
    let school_url = cluster.console_url(school);
    b.window(390, 844);
    b.goto(&format!("{school_url}/sign-in"));
    b.fill("account", "wang.fang");
    b.fill("password", PASSWORD);
    b.submit();
    wait_text(&b, "王芳");
    b.goto(&format!("{school_url}/parent"));
    let page = wait_text(&b, "食品留样");
    assert!(page.contains("番茄炒蛋") && page.contains("150 克") && page.contains("家长陪餐"), "{page}");
    assert!(page.contains("5 / 5 分") && !page.contains("李四") && !page.contains("王女士"), "{page}");
    let cams = b.text_of("#cameras");
    assert!(cams.contains("看直播") && !b.text().contains("cam-02"), "{cams}");
    b.screenshot("video_parent_phone");
    b.click_nav("#cameras li[data-camera='cam-01'] a.live");
    wait_text(&b, "画面由媒体服务器直接提供");
    let t = played_past(&b, 1.0);
    played_past(&b, t + 1.0);
    b.screenshot("video_parent_live_phone");

    // The parent's scope, asked directly of the school's console.
    let mut web = Web::new(&cluster, school);
    assert_eq!(web.sign_in("wang.fang", PASSWORD).status, 303);
    let open = web.get("/cameras/live?camera=cam-01");
    assert_eq!(open.status, 200, "{}", open.body);
    let csp = open.headers.get("content-security-policy").cloned().unwrap_or_default();
    assert!(csp.contains(&format!("media-src 'self' blob: http://127.0.0.1:{}", media.http_port)), "{csp}");
    for (path, why) in [
        ("/cameras/live?camera=cam-02", "没有向家长开放"),
        ("/cameras/live?camera=cam-99", "没有向家长开放"),
        ("/cameras/live?school=130102-S0002&camera=cam-01", "家长只能观看本校"),
    ] {
        let p = web.get(path);
        assert_eq!(p.status, 403, "{path}: {}", p.body);
        assert!(p.body.contains(why) && !p.body.contains("m3u8"), "{path}: {}", p.body);
    }
    assert_eq!(web.get("/cameras/live?camera=a%20b").status, 400);
    for path in ["/cameras", "/alerts", "/cases", "/ledger", "/registry", "/warnings", "/devices", "/health"] {
        assert_eq!(web.get(path).status, 403, "{path}");
    }
    drop(b);
    drop(media);
}
