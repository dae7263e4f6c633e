//! `mingchu bench --health`: the province's status view for all of Hebei (17,362 nodes). A
//! health table as the province holds it — every node's own report and its parent's view of its
//! link, with the problems a bad day brings (a county down with its schools failed over to the
//! city, schools that never connected, stale schools, expiring certificates) — then the time to
//! derive and render `topology show --problems` (text) and `topology show --json`, the memory the
//! table and the view hold, and what a full resend of the table costs on the wire.

use std::time::{Duration, Instant};

use node::api::health::build_view;
use protocol::health::{
    HEALTH_ROWS_PER_FRAME, HealthDelta, HealthRow, HealthTable, HealthTiming, LinkView, Part, Phase, SelfReport,
};
use protocol::wire::{Frame, encode_frame};
use topology::generate::{AddrPlan, generate_hebei};
use topology::{NodeId, Tier};

use crate::bench_console::{ms, percentiles};

/// Resident memory of this process (MiB).
fn rss_mib() -> f64 {
    rss_of(std::process::id())
}

fn report(now: u64, age_ms: u64, failover: Option<NodeId>, cert_days: i32) -> SelfReport {
    SelfReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms: now - 86_400_000,
        reported_ms: now - age_ms,
        uplink: if failover.is_some() { Phase::Down } else { Phase::Up },
        failover,
        backlog: 0,
        oldest_ms: 0,
        reconnects: 2,
        disconnects: vec![protocol::health::Disconnect {
            at_ms: now - 3_600_000,
            reason: "peer closed the connection".into(),
        }],
        cert_days_left: Some(cert_days),
        disk_bytes: Some(180 << 20),
        restoring: false,
        cameras: None,
    }
}

fn view(phase: Phase, since: u64) -> LinkView {
    LinkView { phase, since_ms: since, heard_ms: since, reconnects: 2, disconnects: vec![] }
}

/// The province's table on a bad day. Returns it with a description of the problems.
pub fn province_table(now: u64) -> anyhow::Result<(topology::Topology, HealthTable, String)> {
    let topo = generate_hebei(1, false, &AddrPlan::default())?;
    let root = topo.root();
    let mut t = HealthTable::new();
    let down_county = topo.nodes().find(|e| e.id.tier() == Tier::County).map(|e| e.id).unwrap();
    let (mut unseen, mut stale, mut expiring, mut failed) = (0, 0, 0, 0);
    for (i, e) in topo.nodes().enumerate() {
        let n = e.id;
        let v = now - 60_000 + i as u64;
        let under_down = n.parent() == Some(down_county);
        if n.tier() == Tier::School && i % 97 == 0 && !under_down {
            unseen += 1;
            continue;
        }
        let (age, cert) = if n.tier() == Tier::School && i % 331 == 0 && !under_down {
            stale += 1;
            (900_000, 400)
        } else if i % 577 == 0 {
            expiring += 1;
            (10_000, 12)
        } else {
            (10_000 + (i as u64 % 20_000), 400)
        };
        let failover = under_down.then(|| down_county.parent()).flatten();
        failed += usize::from(failover.is_some());
        t.put(HealthRow { node: n, version: v, part: Part::Report(report(now, age, failover, cert)) });
        if n != root {
            let phase = if n == down_county || under_down { Phase::Down } else { Phase::Up };
            t.put(HealthRow { node: n, version: v, part: Part::Link(view(phase, now - 3_600_000)) });
        }
    }
    let what = format!(
        "county {down_county} down with its {failed} schools failed over to {}; {unseen} schools never connected; \
         {stale} schools stale; {expiring} certificates expiring",
        down_county.parent().unwrap()
    );
    Ok((topo, t, what))
}

pub fn run(samples: usize) -> anyhow::Result<()> {
    let now = node::clock::unix_ms();
    let before = rss_mib();
    let (topo, table, what) = province_table(now)?;
    let table_mib = rss_mib() - before;
    let province = topo.root();
    let timing = HealthTiming::default();
    println!(
        "the province's health table: {} nodes in the topology, {} rows ({}); ~{table_mib:.1} MiB resident",
        topo.len(),
        table.len(),
        what
    );
    // A full resend (a city's link after a reconnect carries its subtree; the province's own
    // uplink would carry all of this): frames and bytes.
    let (mut frames, mut bytes, mut after) = (0usize, 0usize, 0u64);
    loop {
        let (rows, next) = table.delta_since(after, HEALTH_ROWS_PER_FRAME);
        if rows.is_empty() {
            break;
        }
        bytes += encode_frame(&Frame::Health(HealthDelta { after, upto: next, rows }))?.len();
        frames += 1;
        after = next;
    }
    println!(
        "the whole table as health frames: {frames} frames, {} KiB ({:.0} bytes per node)",
        bytes / 1024,
        bytes as f64 / topo.len() as f64
    );

    let mut problems_text = String::new();
    let before_view = rss_mib();
    let problems: Vec<Duration> = (0..samples)
        .map(|_| {
            let t0 = Instant::now();
            let v = build_view(province, province, &topo, &table, &timing, &[], now, true);
            problems_text = client::tree::render_health(&v, now, false, true);
            t0.elapsed()
        })
        .collect();
    let mut json_len = 0;
    let mut view_rows = 0;
    let json: Vec<Duration> = (0..samples)
        .map(|_| {
            let t0 = Instant::now();
            let v = build_view(province, province, &topo, &table, &timing, &[], now, false);
            view_rows = v.rows.len();
            json_len = serde_json::to_string_pretty(&v).map(|s| s.len()).unwrap_or(0);
            t0.elapsed()
        })
        .collect();
    let schools: Vec<Duration> = (0..samples)
        .map(|_| {
            let t0 = Instant::now();
            let v = build_view(province, province, &topo, &table, &timing, &[], now, true);
            let _ = client::tree::render_health(&v, now, true, true);
            t0.elapsed()
        })
        .collect();
    let view_mib = rss_mib() - before_view;
    let (p50, p99) = percentiles(problems);
    println!(
        "topology show --problems (derive {} rows, keep the problems, render the tree folded per county): \
         p50 {} p99 {}; {} lines",
        topo.len(),
        ms(p50),
        ms(p99),
        problems_text.lines().count()
    );
    let (p50, p99) = percentiles(schools);
    println!("topology show --problems --schools (one row per school): p50 {} p99 {}", ms(p50), ms(p99));
    let (p50, p99) = percentiles(json);
    println!(
        "topology show --json (derive and serialize all {view_rows} rows): p50 {} p99 {}; {} MiB of JSON",
        ms(p50),
        ms(p99),
        json_len >> 20
    );
    println!("resident memory grown by the views and their text: ~{view_mib:.1} MiB; {samples} samples each");
    println!("\nthe first lines of `topology show --problems`:");
    for line in problems_text.lines().take(12) {
        println!("  {line}");
    }
    end_to_end(topo, &table, samples)
}

/// Resident memory of process `pid` (MiB).
fn rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The same table in a real province process (its data dir filled with the rows, as it keeps
/// them), and the real `mingchu topology show` run against it as a separate process. The
/// province's cities never connect here, so after the restart grace everything below it is a
/// problem: the worst case for `--problems`.
fn end_to_end(topo: topology::Topology, table: &HealthTable, samples: usize) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::process::Command;
    let tmp = tempfile::Builder::new().prefix("mingchu-bench-health-").tempdir()?;
    let province = topo.root();
    // Another address than the generated plan's (127.0.0.1), so no port of it can clash.
    let base = crate::cluster::free_base_port(1)?;
    let mut entries: Vec<topology::NodeEntry> = topo.nodes().cloned().collect();
    let quic = std::net::SocketAddr::from(([127, 0, 0, 2], base));
    let admin = std::net::SocketAddr::from(([127, 0, 0, 2], base + 1));
    entries[0].quic = quic;
    entries[0].admin = admin;
    let topo = topology::Topology::from_entries(entries)?;
    let topo_path = tmp.path().join("topology.toml");
    topo.save(&topo_path)?;
    let certs = tmp.path().join("certs");
    node::tls::ca_init(&certs)?;
    node::tls::ca_issue(&certs, province)?;
    let data = tmp.path().join("data");
    {
        let storage = node::storage::Backend::of_data_dir(&data).open(&data)?;
        let (batch, _) = node::runtime::health::persist(table, 0);
        storage.write(batch)?;
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        rt.block_on(storage.flush())?;
    }
    let cfg = node::config::NodeConfig::new(province, topo_path, data, certs);
    let cfg_path = tmp.path().join("province.toml");
    std::fs::write(&cfg_path, toml::to_string(&cfg)?)?;
    let exe = std::env::current_exe().context("cannot find the mingchu binary")?;
    let mut child = crate::cluster::spawn_lone_node(&exe, &cfg_path)?;
    let pid = child.id();
    let admin_s = admin.to_string();
    let run = |args: &[&str]| -> anyhow::Result<(Duration, usize)> {
        let t0 = Instant::now();
        let out = Command::new(&exe).args(["topology", "show", "--admin", &admin_s]).args(args).output()?;
        let took = t0.elapsed();
        if out.stdout.is_empty() {
            anyhow::bail!("topology show {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok((took, out.stdout.len()))
    };
    // Up, and past the restart grace (the children it kept views of are then down).
    let deadline = Instant::now() + Duration::from_secs(60);
    while run(&["--problems"]).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("the province did not answer within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(4));
    let rss_loaded = rss_of(pid);
    let mut problems = Vec::new();
    let mut json = Vec::new();
    let (mut problems_bytes, mut json_bytes) = (0, 0);
    for _ in 0..samples.min(10) {
        let (d, n) = run(&["--problems"])?;
        problems.push(d);
        problems_bytes = n;
        let (d, n) = run(&["--json"])?;
        json.push(d);
        json_bytes = n;
    }
    let rss_after = rss_of(pid);
    drop(child.stdin.take());
    let _ = child.wait();
    let (p50, p99) = percentiles(problems);
    println!(
        "\nend to end (a province process holding the table; `mingchu topology show` as its own process, \
         {} runs each):",
        samples.min(10)
    );
    println!("  topology show --problems: p50 {} p99 {}; {} KiB of text", ms(p50), ms(p99), problems_bytes >> 10);
    let (p50, p99) = percentiles(json);
    println!("  topology show --json: p50 {} p99 {}; {} MiB of JSON", ms(p50), ms(p99), json_bytes >> 20);
    println!(
        "  the province process: {rss_loaded:.0} MiB resident with the table loaded, {rss_after:.0} MiB after the runs"
    );
    Ok(())
}
