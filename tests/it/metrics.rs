//! `/metrics`, `/healthz` and `/readyz` (issue 12): answered without a token on the admin API and
//! without a session on the console; scraped by a real Prometheus (Debian's `prometheus`) over the
//! console's HTTPS; the Grafana dashboard in docs/grafana uses only names the nodes emit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::cluster::{Cluster, free_tcp_ports};
use topology::NodeId;

use crate::console::agent;
use crate::{eventually, federation};

/// What to run when the Prometheus test cannot find the program.
pub const INSTALL: &str = "apt-get install -y prometheus";

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// `GET url` → (status, content type, body).
fn get(agent: &ureq::Agent, url: &str) -> (u16, String, String) {
    let mut resp = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (resp.status().as_u16(), ct, resp.body_mut().read_to_string().unwrap())
}

/// The sample names of an exposition (`name{…} v` or `name v`).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The value of the sample printed exactly as `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/mingchu.json")
}

/// Every `expr` of the dashboard's panels.
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(dashboard_path()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).expect("docs/grafana/mingchu.json is not JSON");
    let mut out = Vec::new();
    walk(&json, &mut out);
    out
}

/// The `mingchu_*` names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("mingchu_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// A dashboard expression with Grafana's variables filled in, for Prometheus itself.
fn for_prometheus(expr: &str, node: NodeId) -> String {
    expr.replace("$__rate_interval", "1m").replace("$node", &node.to_string()).replace("$tier", "school")
}

#[test]
fn metrics_healthz_and_readyz_answer_without_token_or_session_and_the_rest_still_needs_them() {
    let started = Instant::now();
    let (_dir, cluster) = federation(1, 1, 1);
    let https = agent(&cluster.ca_cert_path());
    let county = id("130102");
    let admin = format!("http://{}", cluster.admin_addr(county));
    let console = cluster.console_url(county);
    for base in [&admin, &console] {
        let (code, _, body) = get(&https, &format!("{base}/healthz"));
        assert_eq!((code, body.as_str()), (200, "ok\n"), "{base}/healthz");
        let (code, _, body) = get(&https, &format!("{base}/readyz"));
        assert_eq!((code, body.as_str()), (200, "ready\n"), "{base}/readyz");
        // The school's first report reaches the county within a health refresh.
        let (code, ct, body) = eventually(Duration::from_secs(20), "the school live in the county's /metrics", || {
            let (code, ct, body) = get(&https, &format!("{base}/metrics"));
            let live = value(&body, r#"mingchu_subtree_nodes{tier="school",state="live"}"#) == Some(1.0);
            (code != 200 || live).then_some((code, ct, body))
        });
        assert_eq!(code, 200, "{base}/metrics: {body}");
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(value(&body, r#"mingchu_node_info{node="130102",tier="county"}"#), Some(1.0), "{body}");
        assert_eq!(body.lines().filter(|l| l.starts_with("mingchu_subtree_nodes{")).count(), 24);
        assert_eq!(value(&body, "mingchu_uplink_up"), Some(1.0));
        eprintln!("{base}/metrics at the county: {} bytes, {} lines", body.len(), body.lines().count());
    }
    // Everything else still needs the token, or a session.
    let (code, _, _) = get(&https, &format!("{admin}/api/status"));
    assert_eq!(code, 401);
    let (code, _, _) = get(&https, &format!("{admin}/api/health"));
    assert_eq!(code, 401);
    let resp = https.get(&format!("{console}/")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers().get("location").unwrap(), "/sign-in");
    // A POST to a probe is not a way around the console's CSRF check: it is simply not allowed.
    let resp = https.post(&format!("{console}/metrics")).send("").unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    eprintln!("probes test: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn the_grafana_dashboard_uses_only_metric_names_a_node_emits() {
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 10, "the dashboard has too few queries: {exprs:?}");
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let (_dir, cluster) = federation(1, 1, 1);
    let https = agent(&cluster.ca_cert_path());
    let province = id("13");
    // The own report (disk bytes, certificate days) comes with the node's first health refresh.
    let emitted = eventually(Duration::from_secs(20), "the province's own report in /metrics", || {
        let (_, _, body) = get(&https, &format!("{}/metrics", cluster.console_url(province)));
        let names = sample_names(&body);
        (names.contains("mingchu_cert_days_left") && names.contains("mingchu_store_disk_bytes")).then_some(names)
    });
    let missing: Vec<&String> = used.difference(&emitted).collect();
    assert!(missing.is_empty(), "the dashboard queries names no node emits: {missing:?}\nemitted: {emitted:?}");
    // And no metric name is outside the mingchu_ namespace.
    assert!(emitted.iter().all(|n| n.starts_with("mingchu_")), "{emitted:?}");
}

/// A Prometheus server of this test's own, killed (by its process id) when dropped.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    agent: ureq::Agent,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("prometheus")).find(|p| p.is_file()))
        .unwrap_or_default();
    found.unwrap_or_else(|| panic!("the prometheus program is missing: install it with: {INSTALL}"))
}

impl Prometheus {
    /// Starts Prometheus scraping every node's console `/metrics` (HTTPS, the federation's CA)
    /// every second; each target labelled `unit` with its node id.
    fn start(cluster: &Cluster, dir: &Path) -> Prometheus {
        let binary = prometheus_binary();
        let mut cfg = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n");
        cfg.push_str("scrape_configs:\n  - job_name: mingchu\n    scheme: https\n    metrics_path: /metrics\n");
        cfg.push_str(&format!(
            "    tls_config:\n      ca_file: {}\n    static_configs:\n",
            cluster.ca_cert_path().display()
        ));
        for n in cluster.ids() {
            let host = cluster.console_url(n).trim_start_matches("https://").to_string();
            cfg.push_str(&format!("      - targets: ['{host}']\n        labels: {{unit: '{n}'}}\n"));
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, cfg).unwrap();
        let port = free_tcp_ports(1).unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting prometheus");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Prometheus { child, url: format!("http://127.0.0.1:{port}"), log, agent }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// An instant query: `Ok(result vector)` or `Err(why)`.
    fn query(&self, q: &str) -> Result<Vec<serde_json::Value>, String> {
        let mut resp = self
            .agent
            .get(&format!("{}/api/v1/query", self.url))
            .query("query", q)
            .call()
            .map_err(|e| format!("prometheus not answering: {e}"))?;
        let body = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if json["status"] != "success" {
            return Err(format!("{q}: {body}"));
        }
        Ok(json["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The single value of an instant query whose result has one series.
    fn scalar(&self, q: &str) -> Option<f64> {
        let result = self.query(q).ok()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

/// Waits until the query `q` gives the single value `want` (a scrape may fail now and then on a
/// busy machine, which leaves a series out until the next one).
fn until(prom: &Prometheus, timeout: Duration, q: &str, want: f64) {
    eventually(timeout, &format!("{q} == {want} in Prometheus"), || (prom.scalar(q)? == want).then_some(()));
}

#[test]
fn a_real_prometheus_scrapes_every_nodes_console_and_sees_a_county_go_down() {
    let started = Instant::now();
    let binary = prometheus_binary();
    let (dir, mut cluster) = federation(1, 1, 2);
    let nodes = cluster.ids().len();
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom = Prometheus::start(&cluster, &prom_dir);
    eprintln!("{} started at {}", binary.display(), prom.url);

    // Every target up.
    eventually(Duration::from_secs(60), "every node's target up in Prometheus", || {
        let up = prom.query("up").ok()?;
        let all_up = up.len() == nodes && up.iter().all(|s| s["value"][1] == "1");
        all_up.then_some(())
    });
    let all_up_at = started.elapsed();
    // The province sees every node live.
    let n = nodes as f64;
    until(&prom, Duration::from_secs(30), r#"sum(mingchu_subtree_nodes{unit="13",state="live"})"#, n);
    until(&prom, Duration::from_secs(10), r#"sum(mingchu_subtree_nodes{unit="13"})"#, n);
    until(&prom, Duration::from_secs(10), r#"mingchu_uplink_up{unit="130102"}"#, 1.0);
    until(&prom, Duration::from_secs(10), "count(mingchu_node_info)", n);
    // Each of the dashboard's queries is valid PromQL over these series.
    for expr in dashboard_exprs() {
        let q = for_prometheus(&expr, id("13"));
        if let Err(e) = prom.query(&q) {
            panic!("the dashboard's query fails in Prometheus: {e}\n{}", prom.log_tail());
        }
    }

    // The county dies: its parent (the city) loses it, and the province's count says so.
    let county = id("130102");
    cluster.kill(county).unwrap();
    let killed = Instant::now();
    until(&prom, Duration::from_secs(20), r#"mingchu_subtree_nodes{unit="13",tier="county",state="down"}"#, 1.0);
    let seen_after = killed.elapsed();
    until(&prom, Duration::from_secs(10), r#"up{unit="130102"}"#, 0.0);
    until(&prom, Duration::from_secs(10), r#"mingchu_subtree_nodes{unit="13",tier="county",state="live"}"#, 0.0);
    eprintln!(
        "prometheus test: targets up after {:.1} s, county down seen {:.1} s after the kill, {:.1} s in all",
        all_up_at.as_secs_f64(),
        seen_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
