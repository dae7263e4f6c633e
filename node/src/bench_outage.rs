//! `mingchu bench --outage`: what a city's death costs. A city killed for 10 s while 64 schools
//! raise 640 alerts/s, and a city killed in the middle of a 64,000-alert burst: lost and
//! duplicated alerts, latency of the alerts raised during the outage, and catch-up time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use topology::{NodeId, Tier};

use crate::admin::RaiseAlert;
use crate::cluster::Cluster;

fn alert(n: usize) -> RaiseAlert {
    RaiseAlert {
        camera: format!("cam-{:02}", n % 8 + 1),
        alert_type: "NO_MASK".into(),
        snapshot: Some(format!("snapshots/{n:08}.jpg")),
        ..RaiseAlert::default()
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// Polls until `node` holds every id of `want` (by subtree), returning what it holds by id.
fn wait_all(cluster: &Cluster, node: NodeId, want: usize, timeout: Duration) -> anyhow::Result<BTreeMap<String, u64>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(list) = cluster.client(node).alerts(1_000_000, None)
            && list.len() >= want
        {
            return Ok(list.into_iter().map(|a| (a.id, a.received_at_us)).collect());
        }
        if Instant::now() > deadline {
            let now = crate::clock::unix_ms();
            for id in cluster.ids().into_iter().filter(|n| n.tier() != Tier::School) {
                if let Ok(st) = cluster.status(id) {
                    eprint!("{}", crate::cli::render_status(&st, now));
                }
            }
            let have = cluster.client(node).alerts(1_000_000, None).map_or(0, |l| l.len());
            bail!("{node} holds {have} alerts, not the {want} expected, after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run(cluster: &mut Cluster) -> anyhow::Result<()> {
    let province = cluster.topology.root();
    let city: NodeId = cluster.ids().into_iter().find(|n| n.tier() == Tier::City).context("no city")?;
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    let before = cluster.client(province).alerts(1_000_000, None)?.len();

    // 1. Steady 640 alerts/s over 25 s; the city dies at 5 s and comes back at 15 s.
    println!("\noutage: city {city} killed for 10 s while {} schools raise 640 alerts/s", schools.len());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let clients: Vec<_> = schools.iter().skip(t).step_by(4).map(|s| cluster.client(*s)).collect();
            let stop = stop.clone();
            std::thread::spawn(move || -> anyhow::Result<Vec<(String, u64, Duration)>> {
                let interval = Duration::from_secs_f64(4.0 / 640.0);
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
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    cluster.kill(city)?;
    let killed_at = start.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    // Everything of the city's subtree raised so far is at the province (through failover): the
    // city has caught up when it holds as much.
    let owed = cluster.client(province).alerts(1_000_000, Some(city))?.len();
    cluster.start(city)?;
    let restarted_at = start.elapsed();
    let restarted = Instant::now();
    let catch_up = loop {
        if cluster.client(city).alerts(1_000_000, None).is_ok_and(|l| l.len() >= owed) {
            break restarted.elapsed();
        }
        if restarted.elapsed() > Duration::from_secs(60) {
            bail!("city {city} did not catch up {owed} alerts within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_secs(10).saturating_sub(restarted.elapsed()));
    stop.store(true, Ordering::SeqCst);
    let mut raised = Vec::new();
    for t in threads {
        raised.extend(t.join().map_err(|_| anyhow::anyhow!("load thread panicked"))??);
    }
    let total = before + raised.len();
    let at_province = wait_all(cluster, province, total, Duration::from_secs(60))?;
    let lost = raised.iter().filter(|(id, _, _)| !at_province.contains_key(id)).count();
    let duplicated = at_province.len().saturating_sub(total);
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
        "  catch-up: the restarted city held all {owed} alerts of its subtree {:.2} s after it started",
        catch_up.as_secs_f64()
    );

    // 2. A city killed in the middle of a 64,000-alert burst, restarted at once. Counted with the
    // province's store counters (a listing of 100,000+ alerts is no way to count).
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
    let deadline = Instant::now() + Duration::from_secs(120);
    let now = loop {
        let st = cluster.status(province)?.store;
        if st.events_applied - base.events_applied >= acked || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let applied = now.events_applied - base.events_applied;
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
