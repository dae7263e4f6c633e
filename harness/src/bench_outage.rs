//! `mingchu bench --outage`: what a city's death costs. A city killed for 10 s while 64 schools
//! raise 640 alerts/s, and a city killed in the middle of a 64,000-alert burst: lost and
//! duplicated alerts, latency of the alerts raised during the outage, and catch-up time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use topology::{NodeId, Tier};

use crate::bench::percentile;
use crate::cluster::Cluster;
use node::api::alerts::RaiseAlert;

fn alert(n: usize) -> RaiseAlert {
    RaiseAlert {
        camera: format!("cam-{:02}", n % 8 + 1),
        alert_type: "NO_MASK".into(),
        snapshot: Some(format!("snapshots/{n:08}.jpg")),
        no_merge: true,
        ..RaiseAlert::default()
    }
}

/// When `at` stored each alert raised under `under` it holds (its newest `n`): id → µs.
pub(crate) fn received_at(
    cluster: &Cluster,
    at: NodeId,
    under: NodeId,
    n: usize,
) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(cluster.client(at).alerts(n, Some(under))?.into_iter().map(|a| (a.id, a.received_at_us)).collect())
}

/// Waits until `node` applied `want` events more than in `base` (or `timeout` passed) and returns
/// its store counters then.
pub(crate) fn wait_applied(
    cluster: &Cluster,
    node: NodeId,
    base: &node::runtime::store::StoreStats,
    want: u64,
    timeout: Duration,
) -> anyhow::Result<node::runtime::store::StoreStats> {
    let deadline = Instant::now() + timeout;
    loop {
        let st = cluster.status(node)?.store;
        if st.alerts_applied - base.alerts_applied >= want || Instant::now() > deadline {
            return Ok(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The alerts a load thread raised: id, when the school received it (unix µs), when it was sent
/// (since the load's start).
pub(crate) type Raised = Vec<(String, u64, Duration)>;

/// Four threads raising `per_second` alerts in all, in turn at `schools`, from `start` until `stop`.
pub(crate) fn steady_load(
    cluster: &Cluster,
    schools: &[NodeId],
    per_second: f64,
    start: Instant,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<anyhow::Result<Raised>>> {
    (0..4)
        .map(|t| {
            let clients: Vec<_> = schools.iter().skip(t).step_by(4).map(|s| cluster.client(*s)).collect();
            let stop = stop.clone();
            std::thread::spawn(move || -> anyhow::Result<Raised> {
                let interval = Duration::from_secs_f64(4.0 / per_second);
                let mut out = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let due = start + interval * i as u32;
                    if let Some(w) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(w);
                    }
                    let a = clients[i % clients.len()].raise_alert(&alert(i))?;
                    out.push((a.id, a.received_at_us, start.elapsed()));
                    i += 1;
                }
                Ok(out)
            })
        })
        .collect()
}

/// Joins the load threads.
pub(crate) fn join_load(threads: Vec<std::thread::JoinHandle<anyhow::Result<Raised>>>) -> anyhow::Result<Raised> {
    let mut raised = Vec::new();
    for t in threads {
        raised.extend(t.join().map_err(|_| anyhow::anyhow!("load thread panicked"))??);
    }
    Ok(raised)
}

pub fn run(cluster: &mut Cluster) -> anyhow::Result<()> {
    let province = cluster.topology.root();
    let city: NodeId = cluster.ids().into_iter().find(|n| n.tier() == Tier::City).context("no city")?;
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    let base = cluster.status(province)?.store;

    // 1. Steady 640 alerts/s over 25 s; the city dies at 5 s and comes back at 15 s.
    println!("\noutage: city {city} killed for 10 s while {} schools raise 640 alerts/s", schools.len());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads = steady_load(cluster, &schools, 640.0, start, &stop);
    std::thread::sleep(Duration::from_secs(5));
    cluster.kill(city)?;
    let killed_at = start.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    // Everything of the city's subtree raised so far is at the province (through failover): the
    // city has caught up when it holds as much of every origin.
    let owed: BTreeMap<NodeId, u64> = cluster.client(province).cursors(city)?.into_iter().collect();
    cluster.start(city)?;
    let restarted_at = start.elapsed();
    let restarted = Instant::now();
    let caught_up = |have: Vec<(NodeId, u64)>| {
        let have: BTreeMap<NodeId, u64> = have.into_iter().collect();
        owed.iter().all(|(o, c)| have.get(o).is_some_and(|h| h >= c))
    };
    let catch_up = loop {
        if cluster.client(city).cursors(city).is_ok_and(&caught_up) {
            break restarted.elapsed();
        }
        if restarted.elapsed() > Duration::from_secs(60) {
            bail!("city {city} did not catch up within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let owed_events: u64 = owed.values().sum();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(restarted.elapsed()));
    stop.store(true, Ordering::SeqCst);
    let raised = join_load(threads)?;
    // Every raise was acknowledged (no school was touched): the province must apply each once.
    let want = raised.len() as u64;
    let now = wait_applied(cluster, province, &base, want, Duration::from_secs(60))?;
    let applied = now.alerts_applied - base.alerts_applied;
    let lost = want.saturating_sub(applied);
    let duplicated = applied.saturating_sub(want);
    let at_province = received_at(cluster, province, city, raised.len() + 1_000)?;
    let city_prefix = city.to_string();
    let mut during: Vec<u64> = raised
        .iter()
        .filter(|(id, _, t)| id.starts_with(&city_prefix) && *t >= killed_at && *t < restarted_at)
        .filter_map(|(id, at, _)| at_province.get(id).map(|p| p.saturating_sub(*at)))
        .collect();
    during.sort_unstable();
    println!(
        "  {} alerts raised at {:.0}/s; lost {lost}, duplicated {duplicated}",
        raised.len(),
        raised.len() as f64 / 25.0
    );
    println!(
        "  alerts raised below the city while it was down ({}): school → province p50 {:.1} ms, p99 {:.0} ms, max {:.0} ms",
        during.len(),
        percentile(&during, 0.5) as f64 / 1e3,
        percentile(&during, 0.99) as f64 / 1e3,
        *during.last().unwrap_or(&0) as f64 / 1e3
    );
    println!(
        "  catch-up: the restarted city held everything the province held of its subtree ({owed_events} seqs) {:.2} s after it started",
        catch_up.as_secs_f64()
    );
    println!(
        "  {} copies that arrived twice were recognised and not applied again",
        now.duplicates_ignored - base.duplicates_ignored
    );

    // 2. A city killed in the middle of a 64,000-alert burst, restarted at once.
    let base = cluster.status(province)?.store;
    let per_school = 64_000 / schools.len();
    println!(
        "\noutage: city {city} killed (kill -9) in the middle of a {}-alert burst, restarted at once",
        per_school * schools.len()
    );
    let t0 = Instant::now();
    let burst: Vec<_> = schools
        .iter()
        .map(|&school| {
            let client = cluster.client(school);
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut sent = 0;
                while sent < per_school {
                    let n = 100.min(per_school - sent);
                    client.raise_alerts((sent..sent + n).map(alert).collect())?;
                    sent += n;
                }
                Ok(sent as u64)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    cluster.kill(city)?;
    cluster.start(city)?;
    let mut acked = 0;
    for t in burst {
        acked += t.join().map_err(|_| anyhow::anyhow!("load thread panicked"))??;
    }
    let now = wait_applied(cluster, province, &base, acked, Duration::from_secs(120))?;
    let applied = now.alerts_applied - base.alerts_applied;
    println!(
        "  {acked} alerts acknowledged by the schools; the province applied {applied} ({} lost, {} beyond the acknowledged) {:.2} s after the burst began;",
        acked.saturating_sub(applied),
        applied.saturating_sub(acked),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "  {} copies that arrived twice (retransmits, failover paths) were recognised and not applied again",
        now.duplicates_ignored - base.duplicates_ignored
    );
    Ok(())
}
