//! A school's devices against real processes: a device registered with the CLI posts detections
//! and heartbeats to the school's intake (HTTPS with the web certificate, a client trusting only
//! the federation CA); the alert reaches the county; repeats, bad requests, revoked tokens and a
//! flood are refused as they should be and write nothing; cameras go online and, silent past the
//! threshold, offline — at the school and in the county's health view and `topology show`.

use std::time::{Duration, Instant};

use harness::cluster::Cluster;
use node::api::devices::DeviceToken;
use node::config::DevicesConfig;
use serde_json::{Value, json};
use topology::NodeId;
use topology::generate::SmallSpec;

use crate::{binary, eventually, mingchu};

/// The settings' default: a camera silent this long is offline.
const OFFLINE_AFTER: Duration = Duration::from_secs(180);

/// A 1 × 1 × 1 federation whose school serves a device intake (rate 2/s, burst 30), re-reports
/// itself every second and lets the test move its clock. Returns the county and the school.
pub fn device_federation() -> (tempfile::TempDir, Cluster, NodeId, NodeId) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let county: NodeId = "130102".parse().unwrap();
    let school = NodeId::school(county, 1).unwrap();
    let port = harness::cluster::free_tcp_ports(1).unwrap();
    cluster
        .edit_config(school, |c| {
            let mut d = DevicesConfig::new(([127, 0, 0, 1], port).into());
            (d.rate_per_s, d.burst) = (2, 30);
            c.devices = Some(d);
            c.clock_control = true;
            c.health_refresh_ms = 1_000;
        })
        .unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    (dir, cluster, county, school)
}

/// The school's intake: `https://127.0.0.1:PORT`.
pub fn intake_url(cluster: &Cluster, school: NodeId) -> String {
    let cfg = node::config::NodeConfig::load(&cluster.config_path(school)).unwrap();
    format!("https://{}", cfg.devices.unwrap().listen)
}

/// A device on the school's LAN: it trusts the federation CA and holds its token.
pub struct Device {
    agent: ureq::Agent,
    base: String,
    pub token: String,
}

/// One answer of the intake.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

impl Device {
    pub fn new(cluster: &Cluster, school: NodeId, token: &str) -> Device {
        Device {
            agent: crate::console::agent(&cluster.ca_cert_path()),
            base: intake_url(cluster, school),
            token: token.into(),
        }
    }

    pub fn post_bytes(&self, path: &str, body: Vec<u8>) -> Answer {
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("authorization", &format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .send(&body[..]);
        // Not reachable (a node restarting): status 0.
        let Ok(mut resp) = resp else { return Answer { status: 0, body: Value::Null, retry_after: None } };
        let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Answer {
            status: resp.status().as_u16(),
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            retry_after,
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_bytes(path, serde_json::to_vec(body).unwrap())
    }

    pub fn detect(&self, detection_id: &str, camera: &str, kind: &str) -> Answer {
        let body = json!({ "detection_id": detection_id, "camera": camera, "type": kind, "confidence": 0.91,
                           "snapshot": format!("snap/{detection_id}.jpg") });
        self.post("/device/v1/detections", &body)
    }

    pub fn heartbeat(&self, cameras: &[(&str, bool, Option<u32>)]) -> Answer {
        let cameras: Vec<Value> = cameras
            .iter()
            .map(|(c, online, days)| match days {
                Some(d) => json!({ "camera": c, "online": online, "recording_days": d }),
                None => json!({ "camera": c, "online": online }),
            })
            .collect();
        self.post("/device/v1/heartbeat", &json!({ "cameras": cameras }))
    }
}

/// The school's own events so far (nothing written means this does not move).
fn own_seq(cluster: &Cluster, school: NodeId) -> u64 {
    cluster.client(school).status().unwrap().store.own_seq
}

/// `mingchu device add` at the school, as its operator types it; the token from `--json`.
pub fn add_with_cli(cluster: &Cluster, school: NodeId, id: &str, kind: &str, cameras: &str) -> DeviceToken {
    let admin = cluster.admin_addr(school).to_string();
    let (ok, out, err) = mingchu(&[
        "device",
        "add",
        "--admin",
        &admin,
        "--id",
        id,
        "--kind",
        kind,
        "--name",
        "后厨设备",
        "--camera",
        cameras,
        "--json",
    ]);
    assert!(ok, "device add failed: {err}");
    serde_json::from_str(&out).unwrap()
}

fn camera_counts(cluster: &Cluster, at: NodeId, of: NodeId) -> Option<(u32, u32)> {
    let view = cluster.client(at).health(None, false).ok()?;
    view.rows.iter().find(|r| r.node == of)?.cameras
}

#[test]
fn a_device_feeds_its_school_and_the_county_sees_the_alert_and_the_cameras() {
    let started = Instant::now();
    let (_dir, mut cluster, county, school) = device_federation();
    let admin = cluster.admin_addr(school).to_string();

    // Registered with the CLI: the token is printed once, a hash is kept, the list never shows it.
    let boxed = add_with_cli(&cluster, school, "box-1", "ai-box", "cam-01,cam-02");
    assert_eq!(boxed.token.len(), 64);
    let (ok, out, _) = mingchu(&["device", "list", "--admin", &admin]);
    assert!(ok && out.contains("box-1") && out.contains("AI 分析盒") && out.contains("cam-01,cam-02"), "{out}");
    assert!(!out.contains(&boxed.token), "the list never shows a token");
    let (ok, out, _) = mingchu(&["user", "audit", "--admin", &admin]);
    assert!(ok && out.contains("登记设备") && out.contains("box-1"), "{out}");
    // Only a school has devices, and bad requests are refused with their reason.
    let refused = cluster.client(county).devices().unwrap_err().to_string();
    assert!(refused.contains("不是学校"), "{refused}");
    let (ok, _, err) = mingchu(&[
        "device", "add", "--admin", &admin, "--id", "box-2", "--kind", "ai-box", "--name", "x", "--camera", "cam-99",
    ]);
    assert!(!ok && err.contains("cam-99 未在本校登记"), "{err}");
    let (ok, _, err) = mingchu(&[
        "device", "add", "--admin", &admin, "--id", "box-1", "--kind", "nvr", "--name", "x", "--camera", "cam-01",
    ]);
    assert!(!ok && err.contains("已登记"), "{err}");

    // A detection raises an alert at the school, which reaches the county.
    let device = Device::new(&cluster, school, &boxed.token);
    let before = own_seq(&cluster, school);
    let a = device.detect("det-0001", "cam-01", "NO_MASK");
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!((a.body["merged"].as_bool(), a.body["duplicate"].as_bool()), (Some(false), Some(false)), "{a:?}");
    let alert = a.body["alert"].as_str().unwrap().to_string();
    assert!(alert.starts_with(&school.to_string()), "{alert}");
    let written = own_seq(&cluster, school);
    assert_eq!(written, before + 1);
    let at_county = eventually(Duration::from_secs(20), "the device's alert at the county", || {
        let alerts = cluster.client(county).alerts(50, None).ok()?;
        alerts.into_iter().find(|v| v.id == alert)
    });
    assert_eq!(at_county.camera, "cam-01");
    assert_eq!(at_county.alert_type, "NO_MASK");
    assert_eq!(at_county.snapshot, "snap/det-0001.jpg");
    let shown = cluster.client(school).alert(&alert).unwrap();
    assert_eq!(shown.detections, 1);

    // The same detection again: the same alert, nothing written.
    let again = device.detect("det-0001", "cam-01", "NO_MASK");
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["alert"].as_str(), Some(alert.as_str()));
    assert_eq!(again.body["duplicate"].as_bool(), Some(true));
    assert_eq!(own_seq(&cluster, school), written, "a repeated detection id writes nothing");
    // Another detection of the same camera and type within the merge window joins the alert.
    let merged = device.detect("det-0002", "cam-01", "NO_MASK");
    assert_eq!(merged.status, 201, "{merged:?}");
    assert_eq!((merged.body["alert"].as_str(), merged.body["merged"].as_bool()), (Some(alert.as_str()), Some(true)));
    assert_eq!(cluster.client(school).alert(&alert).unwrap().detections, 2);
    let written = own_seq(&cluster, school);

    // Bad requests: 400 (403 for another device's camera) with the reason in Chinese, nothing written.
    let cases: [(Value, u16, &str, &str); 7] = [
        (
            json!({"detection_id": "d-x", "camera": "cam-99", "type": "NO_MASK", "confidence": 0.9}),
            400,
            "unknown-camera",
            "没有登记摄像头",
        ),
        (
            json!({"detection_id": "d-x", "camera": "cam-03", "type": "NO_MASK", "confidence": 0.9}),
            403,
            "camera-not-assigned",
            "不归设备 box-1 负责",
        ),
        (
            json!({"detection_id": "d-x", "camera": "cam-01", "type": "NO_HAT", "confidence": 0.9}),
            400,
            "bad-type",
            "没有告警类型",
        ),
        (
            json!({"detection_id": "d-x", "camera": "cam-01", "type": "NO_MASK", "confidence": 91}),
            400,
            "bad-confidence",
            "0 到 1",
        ),
        (
            json!({"detection_id": "d x", "camera": "cam-01", "type": "NO_MASK", "confidence": 0.9}),
            400,
            "bad-detection-id",
            "可见 ASCII",
        ),
        (json!({"camera": "cam-01", "type": "NO_MASK", "confidence": 0.9}), 400, "bad-json", "缺少字段 detection_id"),
        (
            json!({"detection_id": "d-x", "camera": "cam-01", "type": "NO_MASK", "confidence": 0.9, "detected_at_ms": 1_000}),
            400,
            "bad-time",
            "早于 7 天前",
        ),
    ];
    for (body, status, code, says) in cases {
        let a = device.post("/device/v1/detections", &body);
        assert_eq!((a.status, a.code()), (status, code), "{body}: {a:?}");
        assert!(a.error().contains(says), "{body}: {a:?}");
    }
    let huge = device.post_bytes("/device/v1/detections", vec![b' '; 100 * 1024]);
    assert_eq!((huge.status, huge.code()), (413, "too-large"), "{huge:?}");
    let wrong = device.post("/device/v1/nothing", &json!({}));
    assert_eq!(wrong.status, 404, "{wrong:?}");
    assert_eq!(own_seq(&cluster, school), written, "no refused request wrote anything");

    // Heartbeats from a recorder: cameras online, one said offline; the county sees 7 of 8.
    let nvr = add_with_cli(&cluster, school, "nvr-1", "nvr", "cam-01,cam-02,cam-03,cam-04,cam-05,cam-06,cam-07,cam-08");
    let recorder = Device::new(&cluster, school, &nvr.token);
    let beats: Vec<(String, bool, Option<u32>)> =
        (1..=8).map(|i| (format!("cam-0{i}"), i != 8, Some(30 - i))).collect();
    let beats: Vec<(&str, bool, Option<u32>)> = beats.iter().map(|(c, o, d)| (c.as_str(), *o, *d)).collect();
    let hb = recorder.heartbeat(&beats);
    assert_eq!(hb.status, 200, "{hb:?}");
    assert_eq!(hb.body["offline_after_s"].as_u64(), Some(OFFLINE_AFTER.as_secs()));
    let cams = cluster.client(school).cameras().unwrap();
    assert_eq!((cams.registered, cams.online), (8, 7), "{cams:?}");
    let cam8 = cams.cameras.iter().find(|c| c.camera == "cam-08").unwrap();
    assert_eq!((cam8.online, cam8.reported_online, cam8.recording_days), (false, Some(false), Some(22)));
    // A heartbeat without recording days keeps the last value; one for a camera not its own is refused.
    assert_eq!(recorder.heartbeat(&[("cam-01", true, None)]).status, 200);
    let cam1 = cluster.client(school).cameras().unwrap().cameras.into_iter().find(|c| c.camera == "cam-01").unwrap();
    assert_eq!(cam1.recording_days, Some(29));
    let not_its = device.heartbeat(&[("cam-05", true, None)]);
    assert_eq!((not_its.status, not_its.code()), (403, "camera-not-assigned"), "{not_its:?}");
    let (ok, out, _) = mingchu(&["device", "cameras", "--admin", &admin]);
    assert!(ok && out.contains("摄像头在线 7/8") && out.contains("离线（设备报告）"), "{out}");

    eventually(Duration::from_secs(20), "the school's 7 of 8 cameras at the county", || {
        (camera_counts(&cluster, county, school) == Some((8, 7))
            && camera_counts(&cluster, county, county) == Some((8, 7)))
        .then_some(())
    });
    let county_admin = cluster.admin_addr(county).to_string();
    let (_, out, _) = mingchu(&["topology", "show", "--admin", &county_admin, "--schools"]);
    assert!(out.contains("摄像头在线") && out.contains("7/8"), "{out}");

    // Silence past the threshold: offline at the school, and at the county.
    cluster.client(school).advance_clock(OFFLINE_AFTER + Duration::from_secs(5)).unwrap();
    let cams = cluster.client(school).cameras().unwrap();
    assert_eq!((cams.registered, cams.online), (8, 0), "{cams:?}");
    assert!(cams.cameras.iter().all(|c| !c.online && c.last_heartbeat_ms.is_some()));
    eventually(Duration::from_secs(20), "the school's cameras offline at the county", || {
        (camera_counts(&cluster, county, school) == Some((8, 0))).then_some(())
    });
    // A heartbeat brings them back.
    assert_eq!(recorder.heartbeat(&beats).status, 200);
    eventually(Duration::from_secs(20), "the school's cameras back at the county", || {
        (camera_counts(&cluster, county, school) == Some((8, 7))).then_some(())
    });

    // Revoked: 401 at once, nothing written.
    let (ok, out, err) = mingchu(&["device", "revoke", "--admin", &admin, "box-1"]);
    assert!(ok && out.contains("已吊销"), "{out}{err}");
    let written = own_seq(&cluster, school);
    let a = device.detect("det-0003", "cam-02", "SMOKING");
    assert_eq!((a.status, a.code()), (401, "bad-token"), "{a:?}");
    assert!(a.error().contains("设备令牌无效或已吊销"), "{a:?}");
    assert_eq!(device.heartbeat(&[("cam-01", true, None)]).status, 401);
    assert_eq!(own_seq(&cluster, school), written, "a revoked device writes nothing");
    let (ok, _, err) = mingchu(&["device", "rotate", "--admin", &admin, "box-1"]);
    assert!(!ok && err.contains("已于") && err.contains("吊销"), "{err}");

    // Rotated: the old token stops, the new one works.
    let rotated = cluster.client(school).rotate_device("nvr-1").unwrap();
    assert_eq!(recorder.heartbeat(&beats).status, 401);
    let recorder = Device::new(&cluster, school, &rotated.token);
    assert_eq!(recorder.heartbeat(&beats).status, 200);

    // A flood: the device's bucket (30 at once, 2 a second) answers 429 with Retry-After.
    let flood = add_with_cli(&cluster, school, "flood-1", "ai-box", "cam-01");
    let flood = Device::new(&cluster, school, &flood.token);
    let answers: Vec<Answer> = (0..45).map(|_| flood.heartbeat(&[("cam-01", true, None)])).collect();
    let passed = answers.iter().filter(|a| a.status == 200).count();
    let limited: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert!((30..40).contains(&passed), "{passed} of 45 passed");
    let first = limited.first().expect("some were limited");
    assert_eq!(first.code(), "rate-limited");
    assert!(first.error().contains("请求过于频繁"), "{first:?}");
    assert!(first.retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)), "{first:?}");
    // Another device is not held up.
    assert_eq!(recorder.heartbeat(&beats).status, 200);

    // A restart forgets nothing: the detection ids, the heartbeats, the devices.
    cluster.stop(school).unwrap();
    cluster.start(school).unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    let again = eventually(Duration::from_secs(10), "the intake back", || {
        let a = Device::new(&cluster, school, &rotated.token)
            .post_bytes("/device/v1/heartbeat", b"{\"cameras\":[]}".to_vec());
        (a.status == 200).then_some(a)
    });
    assert_eq!(again.body["cameras"].as_u64(), Some(0));
    let (ok, out, _) = mingchu(&["device", "list", "--admin", &admin]);
    assert!(ok && out.contains("已吊销") && out.contains("nvr-1") && out.contains("flood-1"), "{out}");
    let cams = cluster.client(school).cameras().unwrap();
    assert_eq!(cams.cameras.iter().find(|c| c.camera == "cam-08").unwrap().recording_days, Some(22), "{cams:?}");
    let written = own_seq(&cluster, school);
    let replay = Device::new(&cluster, school, &rotated.token);
    let nvr_detection = replay.detect("nvr-det-1", "cam-05", "RODENT");
    assert_eq!(nvr_detection.status, 201, "{nvr_detection:?}");
    let alert2 = nvr_detection.body["alert"].as_str().unwrap().to_string();
    cluster.stop(school).unwrap();
    cluster.start(school).unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    let a = eventually(Duration::from_secs(10), "the same detection after a restart", || {
        let a = replay.detect("nvr-det-1", "cam-05", "RODENT");
        (a.status != 0 && a.status != 503).then_some(a)
    });
    assert_eq!((a.status, a.body["alert"].as_str()), (200, Some(alert2.as_str())), "{a:?}");
    assert_eq!(own_seq(&cluster, school), written + 1, "one alert, raised once across the restart");
    eprintln!("devices took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn only_a_school_serves_a_device_intake() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    let county: NodeId = "130102".parse().unwrap();
    let port = harness::cluster::free_tcp_ports(1).unwrap();
    cluster.edit_config(county, |c| c.devices = Some(DevicesConfig::new(([127, 0, 0, 1], port).into()))).unwrap();
    let config = cluster.config_path(county).display().to_string();
    let (ok, _, err) = mingchu(&["node", "run", "--config", &config]);
    assert!(!ok, "a county with [devices] must not start");
    assert!(err.contains("[devices] 只能配置在学校节点上") && err.contains("130102"), "{err}");
}
