//! `mingchu bench --lossy`: false failovers on a slow, lossy uplink. A city stands behind a UDP
//! relay at its listening address that delays every packet and loses a share of them, both ways,
//! so its four counties' uplinks are slow and lossy (the city's own uplink, which it dials from
//! its real address, is not); the counties' schools raise a steady load. The city never goes
//! down, so every time a county dials the province beside it (a hedge) is a false alarm, and
//! every county link that drops is a flap. Loopback only; each setting runs a bounded time.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::bench::percentile;
use crate::bench_outage::{join_load, received_at, steady_load, wait_applied};
use crate::cluster::Cluster;
use crate::relay::UdpRelay;

/// (one-way delay ms, loss per mille each way).
pub const SETTINGS: [(u64, u32); 4] = [(0, 0), (25, 10), (50, 20), (100, 50)];
/// Alerts per second over all the schools.
const RATE: f64 = 100.0;

/// Hedges and parent-link drops summed over the counties.
fn counters(cluster: &Cluster, counties: &[NodeId]) -> anyhow::Result<(u64, u64)> {
    let (mut hedges, mut drops) = (0, 0);
    for c in counties {
        let st = cluster.status(*c)?;
        hedges += st.hedges;
        drops += st.parent.map_or(0, |p| u64::from(p.reconnects));
    }
    Ok((hedges, drops))
}

pub fn run(binary: &Path, seconds: u64) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("mingchu-bench-lossy-").tempdir()?;
    let spec = SmallSpec { cities: 1, counties_per_city: 4, schools_per_county: 4 };
    let mut cluster = Cluster::create(tmp.path(), &spec, binary)?;
    cluster.set_log(&std::env::var("MINGCHU_BENCH_LOG").unwrap_or_else(|_| "warn".into()));
    let city: NodeId = cluster.ids().into_iter().find(|n| n.tier() == Tier::City).context("no city")?;
    let public = cluster.topology.get(city).context("city not in the topology")?.quic;
    let real = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    cluster.set_quic_bind(city, real)?;
    let relay = UdpRelay::start(public, real);
    let result = (|| -> anyhow::Result<()> {
        cluster.start_all()?;
        cluster.wait_links_up(Duration::from_secs(60))?;
        cluster.register_cameras()?;
        let province = cluster.topology.root();
        let counties: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::County).collect();
        let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
        println!(
            "\nlossy uplinks: city {city} behind a relay that delays and loses packets both ways on its counties' links; {} schools below it raise {RATE:.0} alerts/s for {seconds} s per setting; the city is never down",
            schools.len()
        );
        for (delay, loss) in SETTINGS {
            relay.delay_ms.store(delay, Ordering::SeqCst);
            relay.loss_permille.store(loss, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(3));
            let before = counters(&cluster, &counties)?;
            let base = cluster.status(province)?.store;
            let stop = Arc::new(AtomicBool::new(false));
            let start = Instant::now();
            let threads = steady_load(&cluster, &schools, RATE, start, &stop);
            std::thread::sleep(Duration::from_secs(seconds));
            stop.store(true, Ordering::SeqCst);
            let raised = join_load(threads)?;
            let want = raised.len() as u64;
            let now = wait_applied(&cluster, province, &base, want, Duration::from_secs(120))?;
            let applied = now.alerts_applied - base.alerts_applied;
            let after = counters(&cluster, &counties)?;
            let at_province = received_at(&cluster, province, city, raised.len() + 1_000)?;
            let mut lat: Vec<u64> =
                raised.iter().filter_map(|(id, at, _)| at_province.get(id).map(|p| p.saturating_sub(*at))).collect();
            lat.sort_unstable();
            println!(
                "  {delay:>3} ms each way, {:>4.1} % lost each way: {want} alerts, lost {}, duplicated {}; school → province p50 {:.0} ms, p99 {:.0} ms; county hedges {} (false: the city was up), county → city link drops {}",
                f64::from(loss) / 10.0,
                want.saturating_sub(applied),
                applied.saturating_sub(want),
                percentile(&lat, 0.5) as f64 / 1e3,
                percentile(&lat, 0.99) as f64 / 1e3,
                after.0 - before.0,
                after.1 - before.1,
            );
        }
        Ok(())
    })();
    cluster.stop_all();
    drop(relay);
    result
}
