//! `mingchu bench --screen`: the big screen's data at the province over a month of all of Hebei
//! (17,183 schools). The province's store is filled through the store actor with the month of
//! work of the console bench ([`crate::bench_console::month_of_work`]: 1,000,000 alerts with their
//! verdicts and cases, 200 spot checks a day) over Hebei's schools, plus every school's canteen
//! and a share of cases left open — overdue, some escalated (督办); its health table holds every
//! node's report with 8 cameras per school. Then the province node starts on that data dir as a
//! real process and a signed-in supervisor asks `GET /screen/data` as the screen does: the server's
//! own time (`Server-Timing`) at p50 and p99, what the client waited, and the bytes of each answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::case::{CaseAction, CaseEvent, CaseId, CaseSource};
use protocol::health::{HealthRow, HealthTable, LinkView, Part, Phase, SelfReport};
use protocol::registry::{Canteen, EntityData, EntityKind, EntityRef, RegistryChange, RegistryOp};
use protocol::{Body, Severity};
use ractor::Actor;
use topology::generate::{AddrPlan, generate_hebei};
use topology::{NodeId, Tier, Topology};

use crate::bench_console::{Month, Web, fill, month_of_work, ms, percentiles};
use node::clock::SystemClock;
use node::runtime::store::{PriorityInbox, StoreActor, StoreArgs};
use node::storage::Backend;
use node::storage::Storage;

/// Cases opened beside the month's (which all close within days): one in this many schools has
/// one still open.
const OPEN_CASE_EVERY: usize = 6;

/// Each school's report: fresh, 8 cameras, 7 or 8 of them online.
fn report(now: u64, i: usize, school: bool) -> SelfReport {
    SelfReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms: now - 86_400_000,
        reported_ms: now,
        uplink: Phase::Up,
        failover: None,
        backlog: 0,
        oldest_ms: 0,
        reconnects: 0,
        disconnects: vec![],
        cert_days_left: Some(400),
        disk_bytes: Some(180 << 20),
        restoring: false,
        cameras: school.then_some((8, if i.is_multiple_of(5) { 7 } else { 8 })),
    }
}

fn health_table(topo: &Topology, now: u64) -> HealthTable {
    let mut t = HealthTable::new();
    for (i, e) in topo.nodes().enumerate() {
        let v = now - 60_000 + i as u64;
        t.put(HealthRow { node: e.id, version: v, part: Part::Report(report(now, i, e.id.tier() == Tier::School)) });
        if e.id != topo.root() {
            let link = LinkView {
                phase: Phase::Up,
                since_ms: now - 3_600_000,
                heard_ms: now,
                reconnects: 0,
                disconnects: vec![],
            };
            t.put(HealthRow { node: e.id, version: v, part: Part::Link(link) });
        }
    }
    t
}

/// Fills `data_dir` as the province holds a month of Hebei; returns (events, cases opened).
async fn fill_hebei(
    data_dir: &std::path::Path,
    topo: &Topology,
    month: Month,
    now: u64,
) -> anyhow::Result<(usize, usize)> {
    let storage: Arc<dyn Storage> = Backend::of_data_dir(data_dir).open(data_dir)?;
    let province = topo.root();
    let args = StoreArgs {
        me: province,
        storage: storage.clone(),
        clock: Arc::new(SystemClock::new()),
        priority: PriorityInbox::default(),
        on_revoked: None,
        registry_written: Default::default(),
        seal_keys: node::runtime::store::SealKeys::simulated(1, "13".parse().expect("the province")),
        own_cert: None,
    };
    let (store, handle) = Actor::spawn(None, StoreActor, args).await.context("store actor")?;
    let end = now - 60_000;
    let (mut log, mut cases) = month_of_work(topo, month, end);
    let schools: Vec<NodeId> = topo.nodes().map(|e| e.id).filter(|n| n.tier() == Tier::School).collect();
    let day = 86_400_000;
    for (i, school) in schools.iter().enumerate() {
        // Its canteen, registered by the school.
        let change = RegistryChange {
            entity: EntityRef { kind: EntityKind::Canteen, node: *school, id: "main".into() },
            op: RegistryOp::Upsert(EntityData::Canteen(Canteen {
                name: "学生食堂".into(), address: String::new()
            })),
        };
        log.push(*school, end - 29 * day, *school, Body::Registry(change));
        // A case left open: opened in the last 12 days, overdue after its 3 days, one in three
        // of the overdue escalated to the city (督办).
        if !i.is_multiple_of(OPEN_CASE_EVERY) {
            continue;
        }
        let county = school.parent().unwrap_or(province);
        let at = end - (i as u64 % 12) * day - 3_600_000;
        let seq = log.by_origin.get(&county).map_or(0, Vec::len) as u64 + 1;
        let case = CaseId { opened_by: county, seq };
        let open = CaseAction::Open {
            school: *school,
            severity: Severity::Serious,
            source: if i % 2 == 0 { CaseSource::SpotCheck } else { CaseSource::OnSite },
            title: "后厨生熟未分开：请整改".into(),
            detail: String::new(),
            number: 100_000 + i as u32,
        };
        log.push(county, at, *school, Body::Case(CaseEvent { case, action: open }));
        let deadline = at + 3 * day;
        let notice = CaseAction::IssueNotice { deadline_ms: deadline, text: "请按期整改。".into() };
        log.push(county, at, *school, Body::Case(CaseEvent { case, action: notice }));
        if deadline + 3_600_000 < end {
            log.push(
                county,
                deadline + 3_600_000,
                *school,
                Body::Case(CaseEvent { case, action: CaseAction::MarkOverdue }),
            );
            if i.is_multiple_of(3) && deadline + 2 * day < end {
                let to = county.parent().unwrap_or(province);
                let step = CaseAction::Escalate { to };
                log.push(county, deadline + 2 * day, *school, Body::Case(CaseEvent { case, action: step }));
            }
        }
        cases += 1;
    }
    let n = fill(&store, log).await?;
    store.stop(None);
    let _ = handle.await;
    // The health table as of now, after the fill (the node reads the reports' times against its
    // clock: rows written before a two-minute fill would already be stale).
    let (batch, _) = node::runtime::health::persist(&health_table(topo, node::clock::unix_ms()), 0);
    storage.write(batch)?;
    storage.flush().await?;
    Ok((n, cases))
}

pub fn run(month: Month, samples: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the mingchu binary")?;
    let tmp = tempfile::Builder::new().prefix("mingchu-bench-screen-").tempdir()?;
    // Addresses other than the generated plan's (127.0.0.1), so no port of it can clash.
    let base = crate::cluster::free_base_port(1)?;
    let topo = generate_hebei(1, false, &AddrPlan::default())?;
    let province = topo.root();
    let mut entries: Vec<topology::NodeEntry> = topo.nodes().cloned().collect();
    entries[0].quic = std::net::SocketAddr::from(([127, 0, 0, 2], base));
    entries[0].admin = std::net::SocketAddr::from(([127, 0, 0, 2], base + 1));
    let topo = Topology::from_entries(entries)?;
    let schools = topo.nodes().filter(|e| e.id.tier() == Tier::School).count();
    println!("screen bench: the province's big screen over a month of {} alerts from {schools} schools", month.alerts);
    let topo_path = tmp.path().join("topology.toml");
    topo.save(&topo_path)?;
    let certs = tmp.path().join("certs");
    node::tls::ca_init(&certs)?;
    node::tls::ca_issue(&certs, province)?;
    node::tls::ca_issue_web(&certs, &[node::tls::WebHost::Ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))])?;
    let data = tmp.path().join("data");
    let now = node::clock::unix_ms();
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (events, cases) = rt.block_on(fill_hebei(&data, &topo, month, now))?;
    drop(rt);
    println!("  filled {events} events ({cases} cases) in {:.1} s", t0.elapsed().as_secs_f64());
    let console = std::net::SocketAddr::from(([127, 0, 0, 1], crate::cluster::free_tcp_ports(1)?));
    let mut cfg = node::config::NodeConfig::new(province, topo_path, data, certs.clone());
    cfg.console = Some(node::config::ConsoleConfig::new(console));
    let cfg_path = tmp.path().join("province.toml");
    std::fs::write(&cfg_path, toml::to_string(&cfg)?)?;
    let mut child = crate::cluster::spawn_lone_node(&exe, &cfg_path)?;
    let result = measure(&topo, &certs, console, samples);
    drop(child.stdin.take());
    let _ = child.wait();
    result
}

fn measure(
    topo: &Topology,
    certs: &std::path::Path,
    console: std::net::SocketAddr,
    samples: usize,
) -> anyhow::Result<()> {
    let province = topo.root();
    let client = client::AdminClient::new(topo.get(province).context("no province")?.admin).expecting(province);
    let password = crate::bench_console::province_supervisor(&client, Duration::from_secs(300))?;
    let mut web = Web::new(&certs.join(node::tls::CA_CERT_FILE), format!("https://{console}"))?;
    let a = web.sign_in("sheng.jian", password)?;
    anyhow::ensure!(a.status == 303, "sign-in answered {}", a.status);

    let first = web.get("/screen/data")?;
    anyhow::ensure!(
        first.status == 200,
        "/screen/data answered {}: {}",
        first.status,
        &first.body[..first.body.len().min(300)]
    );
    let data: node::console::pages::screen::ScreenData = serde_json::from_str(&first.body)?;
    let h = &data.headline;
    println!(
        "  the screen shows: {} schools, {} canteens, cameras {}/{} online, {} alerts today, {} in 30 days, \
         {} spot checks ({} passed), {} open cases ({} overdue, {} 督办), {} units on the map",
        h.schools,
        h.canteens,
        h.cameras_online,
        h.cameras,
        h.alerts_today,
        h.alerts_30d,
        h.spot_checked_30d,
        h.spot_passed_30d,
        h.open_cases,
        h.overdue_cases,
        h.escalated_cases,
        data.units.len()
    );
    println!(
        "  first answer (nothing warm): {} server, {} client",
        ms(first.server.context("no Server-Timing header")?),
        ms(first.waited)
    );
    let mut server = Vec::new();
    let mut waited = Vec::new();
    let mut bytes = 0;
    // Each part's times, in the order the server names them.
    let mut parts: Vec<(String, Vec<Duration>)> = Vec::new();
    for _ in 0..samples {
        let a = web.get("/screen/data")?;
        anyhow::ensure!(a.status == 200, "/screen/data answered {}", a.status);
        for (name, d) in a.parts {
            match parts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(d),
                None => parts.push((name, vec![d])),
            }
        }
        server.push(a.server.context("no Server-Timing header")?);
        waited.push(a.waited);
        bytes = a.body.len();
    }
    let (p50, p99) = percentiles(server.clone());
    let (c50, c99) = percentiles(waited);
    let max = server.iter().max().copied().unwrap_or_default();
    println!("  GET /screen/data, {samples} refreshes one after another:");
    println!("    server p50 {} p99 {} max {}; client p50 {} p99 {}", ms(p50), ms(p99), ms(max), ms(c50), ms(c99));
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(["part", "p50", "p99", "max"]);
    for (name, v) in &parts {
        let (p50, p99) = percentiles(v.clone());
        let max = v.iter().max().copied().unwrap_or_default();
        table.add_row([name.clone(), ms(p50), ms(p99), ms(max)]);
    }
    println!("    the server's parts (its Server-Timing):\n{table}");
    println!(
        "    {bytes} bytes of JSON per refresh (uncompressed; every 10 s by default: {:.1} KB/min)",
        bytes as f64 * 6.0 / 1024.0
    );
    for (path, what) in [
        ("/screen", "the page"),
        ("/assets/screen.js", "its script"),
        ("/assets/screen.css", "its style"),
        ("/assets/echarts.min.js", "ECharts (cached a day)"),
    ] {
        let a = web.get(path)?;
        anyhow::ensure!(a.status == 200, "{path} answered {}", a.status);
        println!("    {what} {path}: {} bytes, {} server", a.body.len(), ms(a.server.unwrap_or_default()));
    }
    Ok(())
}
