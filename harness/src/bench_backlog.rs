//! The priority lane, measured on real processes: a county cut off from its city (failover off, so
//! it holds its schools' alerts) queues a backlog of ≥ 50,000 alerts; the city returns; while the
//! backlog drains, one school raises an alert every few milliseconds. How long the drain takes,
//! and how long those fresh alerts take to reach the province meanwhile. `mingchu bench --backlog`
//! runs it with the lane on and off; the integration test runs it and checks the counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use topology::{NodeId, Tier};

use crate::cluster::Cluster;
use node::api::alerts::RaiseAlert;
use node::clock::unix_us;
use node::runtime::link::LinkState;

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct BacklogReport {
    /// Alerts queued at the county while its uplink was down.
    pub backlog: usize,
    /// From the county's uplink coming back to the province holding the whole backlog.
    pub drain: Duration,
    /// School → province latency (µs) of the fresh alerts raised while the backlog drained.
    pub during_us: Vec<u64>,
    /// The same alerts' hops (µs): school → county, county → city, city → province (when each
    /// node stored it; one machine, one clock).
    pub hops_us: [Vec<u64>; 3],
    /// Of those, how many the province stored before the backlog's last alert.
    pub overtook: usize,
    /// Events the county sent its city on the priority lane.
    pub fresh_events_sent: u64,
    /// Alerts raised (backlog and fresh) the province lacks, or holds or applied more than once.
    pub lost: u64,
    pub duplicated: u64,
}

/// The county to cut off: the first one. Call before the cluster starts: its failover is turned
/// off so its backlog waits for the city instead of going round it.
pub fn prepare(cluster: &mut Cluster) -> anyhow::Result<NodeId> {
    let county = cluster.ids().into_iter().find(|n| n.tier() == Tier::County).context("no county")?;
    cluster.edit_config(county, |cfg| cfg.failover_after_ms = 24 * 3_600_000)?;
    Ok(county)
}

fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if f()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A link's fresh-event count summed over the link's lifetimes, from samples taken often enough
/// to see each lifetime (a sample below the one before means a new link).
#[derive(Default)]
struct LaneCount {
    ended: u64,
    last: u64,
}

impl LaneCount {
    fn saw(&mut self, now: u64) {
        if now < self.last {
            self.ended += self.last;
        }
        self.last = now;
    }

    fn total(&self) -> u64 {
        self.ended + self.last
    }
}

fn uplink_state(cluster: &Cluster, county: NodeId) -> anyhow::Result<(LinkState, u64, u64)> {
    let st = cluster.status(county)?;
    let p = st.parent.context("a county has a parent link")?;
    Ok((p.state, p.backlog_out, p.fresh_events_sent))
}

/// Runs the scenario on a started cluster (see [`prepare`]): `backlog` alerts queued behind the
/// county's uplink, a fresh alert every `every` at one of its schools while it drains.
pub fn run(cluster: &mut Cluster, county: NodeId, backlog: usize, every: Duration) -> anyhow::Result<BacklogReport> {
    let province = cluster.topology.root();
    let city = county.parent().context("a county has a city")?;
    let schools: Vec<NodeId> =
        cluster.ids().into_iter().filter(|n| n.tier() == Tier::School && county.is_ancestor_or_self_of(*n)).collect();
    let base_applied = cluster.status(province)?.store.alerts_applied;

    cluster.kill(city)?;
    wait_until(Duration::from_secs(30), "the county to see its city gone", || {
        Ok(uplink_state(cluster, county)?.0 != LinkState::Up)
    })?;
    // The backlog: raised at the schools, held at the county.
    let mut raised: Vec<(String, u64)> = Vec::with_capacity(backlog + 10_000);
    let mut backlog_ids: Vec<String> = Vec::with_capacity(backlog);
    let per_batch = 250;
    let mut n = 0usize;
    while n < backlog {
        let school = schools[(n / per_batch) % schools.len()];
        let count = per_batch.min(backlog - n);
        let alerts = (0..count)
            .map(|i| RaiseAlert {
                camera: format!("cam-{:02}", (n + i) % 8 + 1),
                alert_type: "NO_MASK".into(),
                snapshot: Some(format!("snapshots/{:08}.jpg", n + i)),
                ..RaiseAlert::default()
            })
            .collect();
        let b = cluster.client(school).raise_alerts(alerts)?;
        for seq in b.first_seq..=b.last_seq {
            backlog_ids.push(format!("{school}#{seq}"));
        }
        n += count;
    }
    wait_until(Duration::from_secs(120), "the county to hold the backlog", || {
        Ok(uplink_state(cluster, county)?.1 >= backlog as u64)
    })?;
    // A real backlog is old: let it age past what relays treat as fresh.
    std::thread::sleep(Duration::from_millis(protocol::session::FRESH_AGE_MS + 500));

    // Fresh alerts at one school, from before the city returns until after the drain.
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let client = cluster.client(schools[0]);
        let stop = stop.clone();
        std::thread::spawn(move || -> anyhow::Result<Vec<(String, u64)>> {
            let mut out = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let req = RaiseAlert {
                    camera: format!("cam-{:02}", i % 8 + 1),
                    alert_type: "SMOKING".into(),
                    no_merge: true,
                    ..RaiseAlert::default()
                };
                let a = client.raise_alert(&req)?;
                out.push((a.id, a.received_at_us));
                i += 1;
                std::thread::sleep(every);
            }
            Ok(out)
        })
    };
    cluster.start(city)?;
    let mut up_at_us = 0;
    wait_until(Duration::from_secs(60), "the county's uplink to come back", || {
        up_at_us = unix_us();
        Ok(uplink_state(cluster, county)?.0 == LinkState::Up)
    })?;
    // The lane's count is the link's own: a link that drops and comes back (a relay too busy to
    // answer in time, on a loaded machine) starts again from zero, so the lifetimes are summed.
    let mut lane = LaneCount::default();
    wait_until(Duration::from_secs(300), "the county's backlog to drain", || {
        let (_, backlog_out, fresh) = uplink_state(cluster, county)?;
        lane.saw(fresh);
        Ok(backlog_out == 0)
    })?;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let fresh = trickle.join().map_err(|_| anyhow::anyhow!("trickle thread panicked"))??;
    raised.extend(backlog_ids.iter().map(|id| (id.clone(), 0)));
    raised.extend(fresh.iter().cloned());

    // Everything at the province, each once.
    let want = raised.len() as u64;
    wait_until(Duration::from_secs(120), "the province to hold everything", || {
        Ok(cluster.status(province)?.store.alerts_applied - base_applied >= want)
    })
    .ok();
    let applied = cluster.status(province)?.store.alerts_applied - base_applied;
    let listed = cluster.client(province).alerts(raised.len() + 10_000, Some(county))?;
    let mut at_province: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for a in &listed {
        let e = at_province.entry(a.id.clone()).or_insert((a.received_at_us, 0));
        e.1 += 1;
    }
    let lost = raised.iter().filter(|(id, _)| !at_province.contains_key(id)).count() as u64;
    let listed_twice = at_province.values().filter(|(_, c)| *c > 1).count() as u64;
    let duplicated = listed_twice + applied.saturating_sub(want);

    let city = cluster.ids().into_iter().find(|n| n.tier() == Tier::City).context("no city")?;
    let stored_at = |node: NodeId| -> anyhow::Result<BTreeMap<String, u64>> {
        let listed = cluster.client(node).alerts(raised.len() + 10_000, Some(county))?;
        Ok(listed.into_iter().map(|a| (a.id, a.received_at_us)).collect())
    };
    let (at_county, at_city) = (stored_at(county)?, stored_at(city)?);
    let drain_end_us = backlog_ids.iter().filter_map(|id| at_province.get(id).map(|(t, _)| *t)).max().unwrap_or(0);
    let mut during_us = Vec::new();
    let mut hops_us: [Vec<u64>; 3] = Default::default();
    let mut overtook = 0;
    for (id, raised_us) in &fresh {
        if *raised_us < up_at_us || *raised_us > drain_end_us {
            continue;
        }
        if let Some((at, _)) = at_province.get(id) {
            during_us.push(at.saturating_sub(*raised_us));
            if let (Some(c), Some(t)) = (at_county.get(id), at_city.get(id)) {
                hops_us[0].push(c.saturating_sub(*raised_us));
                hops_us[1].push(t.saturating_sub(*c));
                hops_us[2].push(at.saturating_sub(*t));
            }
            if *at < drain_end_us {
                overtook += 1;
            }
        }
    }
    during_us.sort_unstable();
    for h in &mut hops_us {
        h.sort_unstable();
    }
    Ok(BacklogReport {
        backlog,
        drain: Duration::from_micros(drain_end_us.saturating_sub(up_at_us)),
        during_us,
        hops_us,
        overtook,
        fresh_events_sent: {
            lane.saw(uplink_state(cluster, county)?.2);
            lane.total()
        },
        lost,
        duplicated,
    })
}

/// `mingchu bench --backlog`: the scenario with the priority lane on, then off, on fresh clusters.
pub fn bench(binary: &std::path::Path, backlog: usize, keep: bool) -> anyhow::Result<()> {
    use topology::generate::SmallSpec;
    println!("\nbacklog: a county's uplink down while its 16 schools queue {backlog} alerts; the city returns and");
    println!("one school raises an alert every 5 ms while the backlog drains (school → county → city → province)");
    for lane in [true, false] {
        let tmp = tempfile::Builder::new().prefix("mingchu-bench-backlog-").tempdir()?;
        let dir = if keep { tmp.keep() } else { tmp.path().to_path_buf() };
        let spec = SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 16 };
        let mut cluster = Cluster::create(&dir, &spec, binary)?;
        cluster.set_log(&std::env::var("MINGCHU_BENCH_LOG").unwrap_or_else(|_| "warn".into()));
        let county = prepare(&mut cluster)?;
        for id in cluster.ids() {
            cluster.edit_config(id, |cfg| cfg.priority_lane = lane)?;
        }
        cluster.start_all()?;
        let result = cluster
            .wait_links_up(Duration::from_secs(60))
            .and_then(|()| cluster.register_cameras())
            .and_then(|()| run(&mut cluster, county, backlog, Duration::from_millis(5)));
        cluster.stop_all();
        let r = result?;
        let ms = |us: u64| us as f64 / 1000.0;
        let d = &r.during_us;
        println!(
            "  priority lane {}: drain {:.2} s; {} fresh alerts raised meanwhile: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms; \
             {} arrived before the backlog's end; {} events on the lane; lost {}, duplicated {}",
            if lane { "on " } else { "off" },
            r.drain.as_secs_f64(),
            d.len(),
            ms(crate::bench::percentile(d, 0.50)),
            ms(crate::bench::percentile(d, 0.99)),
            ms(d.last().copied().unwrap_or(0)),
            r.overtook,
            r.fresh_events_sent,
            r.lost,
            r.duplicated
        );
        let hop = |h: &Vec<u64>| {
            format!("{:.1} / {:.1} ms", ms(crate::bench::percentile(h, 0.50)), ms(crate::bench::percentile(h, 0.99)))
        };
        println!(
            "    hop by hop, p50 / p99 (when each node stored them): school → county {}, county → city {}, city → province {}",
            hop(&r.hops_us[0]),
            hop(&r.hops_us[1]),
            hop(&r.hops_us[2])
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LaneCount;

    #[test]
    fn the_lane_count_sums_a_link_that_came_back_from_zero() {
        let mut c = LaneCount::default();
        for s in [0, 3, 7, 7, 0, 2, 5] {
            c.saw(s);
        }
        assert_eq!(c.total(), 12);
    }
}
