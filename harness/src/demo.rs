//! `mingchu demo`: the main job on embedded defaults. A real federation on loopback — one OS process
//! per node with its own QUIC endpoint (mutual TLS) and redb store — alerts raised at every school
//! and seen arriving at the province, a county taken offline and brought back, the live tree, and a
//! clean shutdown (also on Ctrl-C).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use protocol::AlertType;
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::cluster::Cluster;
use node::api::alerts::{AlertView, RaiseAlert};

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Schools under each of the 4 counties.
    #[arg(long, default_value_t = 4)]
    pub schools_per_county: u32,
    /// Keep the working folder (topology, certificates, data, logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

/// Set by Ctrl-C; every wait in the demo checks it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn check_interrupt() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

fn pause(ms: u64) -> anyhow::Result<()> {
    std::thread::sleep(Duration::from_millis(ms));
    check_interrupt()
}

fn install_ctrl_c() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nCtrl-C: stopping the federation…");
                INTERRUPTED.store(true, Ordering::SeqCst);
            }
        });
    });
}

const DEMO_TYPES: [&str; 8] =
    ["NO_MASK", "NO_CHEF_HAT", "SMOKING", "RODENT", "BIN_UNCOVERED", "PHONE", "NO_UNIFORM", "FIRE_SMOKE"];

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// Polls `node` until it holds every alert id in `want`; returns them by id.
fn wait_for_alerts(
    cluster: &Cluster,
    node: NodeId,
    want: &[String],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, AlertView>> {
    let deadline = Instant::now() + timeout;
    loop {
        // A node that is (re)starting does not answer yet: keep asking until the deadline.
        let alerts = match cluster.client(node).alerts(10_000, None) {
            Ok(a) => a,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {
                pause(50)?;
                continue;
            }
        };
        let mut by_id: BTreeMap<String, AlertView> = BTreeMap::new();
        for a in alerts {
            if by_id.insert(a.id.clone(), a).is_some() {
                bail!("node {node} lists an alert twice");
            }
        }
        if want.iter().all(|id| by_id.contains_key(id)) {
            return Ok(by_id);
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = want.iter().filter(|id| !by_id.contains_key(*id)).collect();
            bail!("{node} still lacks {} alert(s) after {timeout:?}: {missing:?}", missing.len());
        }
        pause(5)?;
    }
}

fn raise(cluster: &Cluster, school: NodeId, n: usize) -> anyhow::Result<AlertView> {
    let req = RaiseAlert {
        camera: format!("cam-{:02}", n % 8 + 1),
        alert_type: DEMO_TYPES[n % DEMO_TYPES.len()].to_string(),
        no_merge: true,
        ..RaiseAlert::default()
    };
    cluster.client(school).raise_alert(&req).with_context(|| format!("raising an alert at {school}"))
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    install_ctrl_c();
    let started = Instant::now();
    let binary = std::env::current_exe().context("cannot find the mingchu binary")?;
    let tmp = tempfile::Builder::new().prefix("mingchu-demo-").tempdir()?;
    let dir = if args.keep { tmp.keep() } else { tmp.path().to_path_buf() };
    let spec = SmallSpec { cities: 2, counties_per_city: 2, schools_per_county: args.schools_per_county };
    println!("mingchu demo — a real four-level federation on loopback (QUIC + mutual TLS, redb at every node)");
    println!("  working folder: {}{}", dir.display(), if args.keep { " (kept)" } else { " (removed at the end)" });

    let mut cluster = Cluster::create(&dir, &spec, &binary)?;
    cluster.set_log("warn,node=info");
    let [p, c, k, s] = cluster.topology.count_by_tier();
    let total = cluster.topology.len();
    println!(
        "\n[1/7] topology: {p} province, {c} cities, {k} counties, {s} schools = {total} nodes → {}",
        cluster.topology_path.display()
    );
    let sample = cluster.ids().into_iter().find(|n| n.tier() == Tier::School).unwrap_or(cluster.topology.root());
    println!(
        "[2/7] federation CA + {total} node certificates, each naming its node in one DNS SAN (e.g. {sample} → {})",
        sample.dns_name()
    );

    let result = demo_body(&mut cluster, started);
    print!("\nshutting down {} node processes … ", total);
    let t = Instant::now();
    cluster.stop_all();
    println!("done in {:.1} s", t.elapsed().as_secs_f64());
    drop(cluster);
    if let Err(e) = &result {
        eprintln!(
            "\ndemo failed: {e:#}\n(logs were in {}; rerun with --keep to inspect them)",
            dir.join("logs").display()
        );
    }
    result?;
    println!("\ndemo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The school keeps its ledgers; its rules raise warnings by themselves; one whose rule opens a
/// case gets its case and notice from the county; the province sees them all.
fn ledgers_and_warnings(cluster: &Cluster, school: NodeId, county: NodeId, province: NodeId) -> anyhow::Result<()> {
    use node::api::ledgers::{LedgerView, LedgerWrite};
    use node::api::registry::RegistryRequest;
    use node::api::warnings::{Evaluated, WarningView};
    use protocol::ledger::{FoodSample, LedgerRecord, Meal, MorningCheck};
    use protocol::registry::{EntityData, EntityKind, HealthCertificate, RegistryOp, Staff, StaffRole};
    println!("      the school's food-safety ledgers (台账) and the warnings that act by themselves:");
    let at_school = cluster.client(school);
    let put = |kind, id: &str, data| {
        at_school.registry_write(&RegistryRequest { kind, node: None, id: id.into(), op: RegistryOp::Upsert(data) })
    };
    put(
        EntityKind::Staff,
        "st1",
        EntityData::Staff(Staff { name: "张三".into(), role: StaffRole::Cook, on_duty: true }),
    )?;
    let year = node::clock::unix_ms() + 300 * 86_400_000;
    let cert = HealthCertificate { staff: "st1".into(), number: "冀健 2026-0001".into(), valid_until_ms: year };
    put(EntityKind::HealthCertificate, "hc1", EntityData::HealthCertificate(cert))?;
    put(
        EntityKind::Staff,
        "st2",
        EntityData::Staff(Staff { name: "李四".into(), role: StaffRole::Helper, on_duty: true }),
    )?;
    let write = |record: LedgerRecord| -> anyhow::Result<LedgerView> {
        let req = LedgerWrite {
            kind: record.kind(),
            date: None,
            id: None,
            record: Some(record),
            void_reason: None,
            at: None,
        };
        at_school.post("/api/ledger", &req)
    };
    let check = write(LedgerRecord::MorningCheck(MorningCheck {
        staff: "st1".into(),
        temperature_dc: 364,
        symptoms: vec![],
        sent_home: false,
        checked_at_ms: 0,
        note: String::new(),
    }))?;
    let sample = write(LedgerRecord::FoodSample(FoodSample {
        canteen: "main".into(),
        meal: Meal::Lunch,
        dish: "番茄炒蛋".into(),
        grams: 100,
        sampled_at_ms: 0,
        refrigerated: true,
        disposed_at_ms: None,
        batches: vec![],
        sampled_by: "李四".into(),
    }))?;
    println!("        {} {}：{}", check.kind_zh, check.id, check.summary);
    println!("        {} {}：{}", sample.kind_zh, sample.id, sample.summary);
    let bad = write(LedgerRecord::FoodSample(FoodSample {
        canteen: "main".into(),
        meal: Meal::Lunch,
        dish: "米饭".into(),
        grams: 0,
        sampled_at_ms: 0,
        refrigerated: true,
        disposed_at_ms: None,
        batches: vec![],
        sampled_by: "李四".into(),
    }));
    if let Err(e) = bad {
        println!("        a sample of 0 g → refused, nothing written: {e}");
    }
    // The engine judged as the school wrote; one more pass shows the same facts write nothing new.
    let again: Evaluated = at_school.post("/api/warnings/evaluate", &())?;
    let mine: Vec<WarningView> = at_school.get("/api/warnings")?;
    println!(
        "      the school's own rules raised {} warning(s) as it wrote (李四 is on duty without a health \
         certificate; the sample is light); judged again: {} new",
        mine.len(),
        again.raised
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held: Vec<WarningView> = cluster.client(county).get("/api/warnings")?;
        if held.iter().any(|w| w.rule == protocol::warning::RuleId::HealthCertMissing) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the school's warnings did not reach county {county}");
        }
        pause(20)?;
    }
    let done: Evaluated = cluster.client(county).post("/api/warnings/evaluate", &())?;
    println!(
        "      county {county}: {} automatic case(s) with its notice (the rule says so), no person involved",
        done.cases
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let held: Vec<WarningView> = cluster.client(province).get(&format!("/api/warnings?school={school}"))?;
        if held.iter().any(|w| w.case.is_some()) {
            break held;
        }
        if Instant::now() > deadline {
            bail!("the warnings did not reach the province");
        }
        pause(20)?;
    };
    println!("      the province's 预警 for {school} (`mingchu warnings`):");
    for line in client::render::render_warnings(&seen, Some(6)).lines() {
        println!("        {line}");
    }
    Ok(())
}

fn demo_body(cluster: &mut Cluster, started: Instant) -> anyhow::Result<()> {
    let province = cluster.topology.root();
    let total = cluster.topology.len();
    print!("[3/7] starting {total} node processes (own QUIC endpoint + redb store each) … ");
    cluster.start_all()?;
    cluster.wait_links_up(Duration::from_secs(30))?;
    cluster.register_cameras()?;
    println!("all {} links up after {:.1} s", total - 1, started.elapsed().as_secs_f64());
    check_interrupt()?;

    // Phase 1: an alert at every school, followed to the province.
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    println!("\n[4/7] one alert raised at each of the {} schools, followed up the tree:", schools.len());
    let mut raised = Vec::new();
    for (n, &school) in schools.iter().enumerate() {
        raised.push(raise(cluster, school, n)?);
    }
    let ids: Vec<String> = raised.iter().map(|a| a.id.clone()).collect();
    let at_province = wait_for_alerts(cluster, province, &ids, Duration::from_secs(20))?;
    let mut latencies = Vec::new();
    for a in &raised {
        let county = a.school.ancestor_at(Tier::County).context("school without county")?;
        let city = a.school.ancestor_at(Tier::City).context("school without city")?;
        let mut held = Vec::new();
        for unit in [county, city] {
            let list = wait_for_alerts(cluster, unit, std::slice::from_ref(&a.id), Duration::from_secs(10))?;
            held.push(list.len());
        }
        let p = &at_province[&a.id];
        let latency_us = p.received_at_us.saturating_sub(a.received_at_us);
        latencies.push(latency_us);
        let ty: AlertType = a.alert_type.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "      {:<13} {:<14} {:<8} {:<8} → county {county} ✓ city {city} ✓ province ✓  school→province {}",
            a.school.to_string(),
            a.alert_type,
            ty.zh(),
            a.severity,
            ms(latency_us)
        );
    }
    latencies.sort_unstable();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().unwrap_or(&0);
    let at_p: usize = at_province.values().filter(|a| ids.contains(&a.id)).count();
    println!(
        "      {} alerts, each held exactly once at its county, its city and the province ({at_p} at the province); latency p50 {}, max {}",
        raised.len(),
        ms(p50),
        ms(max)
    );
    check_interrupt()?;

    // Phase 2: a county dies; its schools keep working, fail over to the city, and move back.
    let county = schools[0].parent().context("school without county")?;
    let city = county.parent().context("county without city")?;
    let its_schools: Vec<NodeId> = schools.iter().copied().filter(|s| s.parent() == Some(county)).collect();
    println!("\n[5/7] county {county} is killed (kill -9); its {} schools keep accepting alerts:", its_schools.len());
    cluster.kill(county)?;
    let outage = Instant::now();
    let mut queued = Vec::new();
    for (n, &school) in its_schools.iter().enumerate() {
        let a = raise(cluster, school, n + 3)?;
        println!("      {:<13} raised {} ({}) — durable at the school", school.to_string(), a.id, a.alert_type);
        queued.push(a);
    }
    let qids: Vec<String> = queued.iter().map(|a| a.id.clone()).collect();
    wait_for_alerts(cluster, province, &qids, Duration::from_secs(30))?;
    let via = cluster.status(its_schools[0])?;
    let failover = via.failover.as_ref().map_or("-".to_string(), |f| f.peer.to_string());
    println!(
        "      with the county still down, all {} reached the province {:.1} s after the kill: the schools failed over to {failover}",
        queued.len(),
        outage.elapsed().as_secs_f64()
    );
    // What an operator at the province sees meanwhile (`mingchu topology show --problems`).
    let seen_down = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let v = cluster.client(province).health(None, true)?;
        let down = v.rows.iter().any(|r| r.node == county && r.state == protocol::health::NodeState::Down);
        let moved = its_schools
            .iter()
            .all(|s| v.rows.iter().any(|r| r.node == *s && r.state == protocol::health::NodeState::FailedOver));
        if (down && moved) || Instant::now() > seen_down {
            break v;
        }
        pause(200)?;
    };
    println!(
        "      the province's operator sees it {:.1} s after the kill (`mingchu topology show --problems --schools`):",
        outage.elapsed().as_secs_f64()
    );
    for line in client::tree::render_health(&view, node::clock::unix_ms(), true, true).lines() {
        println!("        {line}");
    }
    let restart = Instant::now();
    cluster.start(county)?;
    wait_for_alerts(cluster, county, &qids, Duration::from_secs(30))?;
    let back = Instant::now() + Duration::from_secs(30);
    while its_schools.iter().any(|s| cluster.status(*s).map_or(true, |st| st.failover.is_some())) {
        if Instant::now() > back {
            bail!("schools did not return to county {county}");
        }
        pause(50)?;
    }
    println!(
        "      county {county} restarted: it caught up the {} alerts from {city} and its schools within {:.2} s, and the schools moved back to it",
        queued.len(),
        restart.elapsed().as_secs_f64()
    );
    let again = cluster.client(province).alerts(10_000, None)?;
    let mut seen = BTreeMap::new();
    for a in &again {
        *seen.entry(a.id.clone()).or_insert(0) += 1;
    }
    let expected = raised.len() + queued.len();
    if again.len() != expected || seen.values().any(|&n| n != 1) {
        bail!("the province holds {} alerts, expected exactly {expected} distinct", again.len());
    }
    println!("      the province holds exactly {expected} alerts — none lost, none twice");
    cluster.wait_links_up(Duration::from_secs(15))?;
    check_interrupt()?;

    // Phase 3: a case across the tree, from a confirmed alert to its closing.
    let school = its_schools[0];
    let alert = raised.iter().find(|a| a.school == school).context("no alert at the school")?;
    println!(
        "\n[6/7] a case (问题台账) from alert {}: confirmed by county {county}, rectified by the school, closed:",
        alert.id
    );
    let verdict =
        node::api::alerts::AlertVerdict { note: "checked the video".into(), open_case: true, ..Default::default() };
    let confirmed = cluster.client(county).confirm_alert(&alert.id, &verdict)?;
    let case = confirmed.state.case.context("no case opened")?.to_string();
    let wait_status = |node: NodeId, status: protocol::case::CaseStatus| -> anyhow::Result<protocol::case::CaseState> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(c) = cluster.client(node).case(&case)
                && c.status == status
            {
                return Ok(c);
            }
            if Instant::now() > deadline {
                bail!("case {case} did not reach {} at {node}", status.as_str());
            }
            pause(20)?;
        }
    };
    use node::api::cases::StepRequest;
    use protocol::case::CaseStatus;
    let c = wait_status(school, CaseStatus::NoticeIssued)?;
    println!(
        "      county opened {case} with its notice (deadline {}); the school has it",
        protocol::case::ChinaTime(c.deadline_ms.unwrap_or(0))
    );
    let refused = cluster.client(school).case_step(&case, &StepRequest::Close { comment: "done".into() });
    if let Err(e) = refused {
        println!("      the school tries to close it itself → refused: {e}");
    }
    cluster.client(school).case_step(&case, &StepRequest::Ack)?;
    let evidence = vec!["rectify/after-01.jpg".to_string()];
    cluster.client(school).case_step(&case, &StepRequest::Submit { evidence, note: "staff retrained".into() })?;
    wait_status(county, CaseStatus::Submitted)?;
    cluster.client(county).case_step(
        &case,
        &StepRequest::Review { passed: true, comment: "video checked".into(), new_deadline_ms: None },
    )?;
    cluster.client(county).case_step(&case, &StepRequest::Close { comment: "整改到位".into() })?;
    let closed = wait_status(province, CaseStatus::Closed)?;
    for line in client::render::render_case(&closed).lines() {
        println!("      {line}");
    }
    println!("      (as the province folds it; the school, county and city fold the same events to the same state)");
    // 网络巡查: the province spot-checks two canteens; a failed area opens a case at once.
    let checked: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).take(2).collect();
    for (n, &s) in checked.iter().enumerate() {
        let failed = if n == 1 { vec![protocol::spot::FocusArea::StaffAttire] } else { vec![] };
        let req = node::api::spot::RecordSpotCheck {
            school: s,
            canteen: "main".into(),
            failed,
            note: String::new(),
            severity: None,
            snapshots: Vec::new(),
        };
        let done = cluster.client(province).spot_check(&req)?;
        println!("      province spot check: {}", client::render::render_check(&done.check));
        for c in &done.cases {
            println!("        → case {c} opened at {s} with its rectification notice");
        }
    }
    let unit = checked.first().and_then(|s| s.parent()).context("no school")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let expect = checked.iter().filter(|s| unit.is_ancestor_or_self_of(**s)).count() as u64;
    let rate = loop {
        let r = cluster.client(unit).pass_rates(None, None, None)?;
        if let Some(r) = r.into_iter().find(|r| r.unit == unit && r.checked == expect) {
            break r;
        }
        if Instant::now() > deadline {
            bail!("the spot checks did not reach {unit}");
        }
        pause(20)?;
    };
    println!(
        "      county {unit}'s spot-check pass rate, from its own store: {}/{} = {:.1}%",
        rate.passed, rate.checked, rate.percent
    );
    check_interrupt()?;
    ledgers_and_warnings(cluster, school, county, province)?;
    check_interrupt()?;

    // Phase 4: the live tree.
    println!("\n[7/7] the whole tree as the province sees it (`mingchu topology show --schools`):");
    let now = node::clock::unix_ms();
    let province = cluster.topology.root();
    // Health goes up within a second or two of a change; wait (at most 10 s) for the schools' return.
    let settled = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let v = cluster.client(province).health(None, false)?;
        if v.severity == protocol::health::Severity::Ok || Instant::now() > settled {
            break v;
        }
        pause(200)?;
    };
    for line in client::tree::render_health(&view, now, true, false).lines() {
        println!("      {line}");
    }
    println!("\nWhat this showed:");
    println!(
        "  • {} separate `mingchu` processes formed a province → city → county → school tree over QUIC with mutual TLS;",
        cluster.topology.len()
    );
    println!(
        "  • every alert raised at a school reached its county, city and the province exactly once, durable at every hop;"
    );
    println!(
        "  • with county {county} killed, its schools kept working and failed over to their city; nothing was lost"
    );
    println!("    or applied twice, and when the county came back it caught up and its schools returned to it;");
    println!("  • a confirmed alert became a case that the county and the school worked through to its closing, with");
    println!("    a step outside the school's authority refused; a failed spot check opened a case of its own.");
    Ok(())
}
