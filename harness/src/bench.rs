//! `mingchu bench`: throughput and latency of alerts from 64 schools to the province on a real
//! federation of 71 processes (1 province, 2 cities, 4 counties, 16 schools each) on loopback,
//! with durable storage (sled, flushed before every ack) at every hop. Prints numbers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::cluster::Cluster;
use node::api::alerts::RaiseAlert;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Throughput phase: alerts raised at each school (sent in batches of --batch).
    #[arg(long, default_value_t = 5_000)]
    pub per_school: usize,
    /// Alerts per batch request in the throughput phase (1: one alert per request, as an AI box
    /// sends its detections, through the single-alert endpoint).
    #[arg(long, default_value_t = 250)]
    pub batch: usize,
    /// Throughput phase: requests in flight at each school at once, each on its own connection
    /// (the intake mode of the performance issue: `--batch 1 --in-flight 20`).
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// Latency phase: steady rate over all schools (alerts/s).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Latency phase length (s).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Schools per county (4 counties).
    #[arg(long, default_value_t = 16)]
    pub schools_per_county: u32,
    /// Keep the working folder.
    #[arg(long)]
    pub keep: bool,
    /// The store every node's new data directory is made in (redb or sled), to compare them.
    #[arg(long, default_value = "redb")]
    pub storage: node::storage::Backend,
    /// Also measure outages: a city killed for 10 s under a steady 640 alerts/s, and a city
    /// killed in the middle of a 64,000-alert burst.
    #[arg(long)]
    pub outage: bool,
    /// Also measure restoring a wiped county from its city (after the other phases): the county
    /// holding a quarter of the throughput phase's alerts is stopped, its data dir removed, and
    /// restarted; the time until it holds again all it held.
    #[arg(long)]
    pub restore: bool,
    /// Also measure the priority lane: fresh alerts while a backlog of --backlog-events drains
    /// (on its own federation, lane on and off).
    #[arg(long)]
    pub backlog: bool,
    #[arg(long, default_value_t = 50_000)]
    pub backlog_events: usize,
    /// Only measure false failovers on a slow, lossy uplink: a city behind a relay that delays
    /// and loses packets (several settings, --lossy-seconds each), under a steady load. Its own
    /// federation of 22 processes.
    #[arg(long)]
    pub lossy: bool,
    #[arg(long, default_value_t = 60)]
    pub lossy_seconds: u64,
    /// Only measure the admin listings on a province store of --listing-alerts alerts (a month of
    /// the province's alerts, each with a verdict), and replication behind a listing. No federation.
    #[arg(long)]
    pub listing: bool,
    #[arg(long, default_value_t = 1_000_000)]
    pub listing_alerts: usize,
    #[arg(long, default_value_t = 1_000)]
    pub listing_schools: u32,
    /// Only measure the province's store over a month and project a year: the events of the
    /// simulated Hebei day in FILE (`mingchu sim --hebei --export-root FILE`) applied to a real
    /// store once for each of --year-days days. No federation.
    #[arg(long, value_name = "FILE")]
    pub year: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 30)]
    pub year_days: u32,
    /// Only these event kinds of the day (comma-separated: alert, alert-update, case, ledger,
    /// registry, warning, …).
    #[arg(long, value_delimiter = ',')]
    pub year_kinds: Option<Vec<String>>,
    /// The store to measure: sled, redb or memory (the in-memory store, to tell the store
    /// actor's own memory from the storage's).
    #[arg(long, default_value = "sled")]
    pub year_storage: node::storage::Backend,
    /// Stop (and project from the days done) before a day would start above this RSS, in MiB.
    #[arg(long, default_value_t = 8_192)]
    pub year_max_rss_mib: u64,
    /// Keep the store in this directory (absent or empty) instead of a temporary one, e.g. to
    /// measure reopening it with --reopen.
    #[arg(long, value_name = "DIR")]
    pub year_dir: Option<std::path::PathBuf>,
    /// Only measure how long a node's store in DIR (sled or redb) takes to open, as at a restart.
    #[arg(long, value_name = "DIR")]
    pub reopen: Option<std::path::PathBuf>,
    /// With --reopen: first leave the store as a killed process leaves it (a child process opens
    /// it, writes, flushes, writes again and exits without closing it).
    #[arg(long)]
    pub reopen_crash: bool,
    /// The child of --reopen-crash (not for use by hand).
    #[arg(long, hide = true)]
    pub reopen_leave: bool,
    /// Only measure the web console: a province node holding a month of --console-alerts alerts
    /// with their verdicts, cases and spot checks serves every page to a signed-in supervisor.
    #[arg(long)]
    pub console: bool,
    #[arg(long, default_value_t = 1_000_000)]
    pub console_alerts: usize,
    /// Requests per page.
    #[arg(long, default_value_t = 50)]
    pub console_samples: usize,
    /// Only measure the province's status view of all of Hebei (17,362 nodes): `topology show
    /// --problems` and `--json`, and the memory they hold. No federation.
    #[arg(long)]
    pub health: bool,
    #[arg(long, default_value_t = 20)]
    pub health_samples: usize,
    /// Only measure the big screen's data (`GET /screen/data`) at the province over a month of
    /// all of Hebei (17,183 schools, --screen-alerts alerts). No federation.
    #[arg(long)]
    pub screen: bool,
    #[arg(long, default_value_t = 1_000_000)]
    pub screen_alerts: usize,
    /// Refreshes asked.
    #[arg(long, default_value_t = 100)]
    pub screen_samples: usize,
    /// Only measure the signed history's cost on one core: chaining, sealing and checking alert
    /// events with each kind of key, in writes of 1, 8 and 250 events. No federation.
    #[arg(long)]
    pub seals: bool,
    #[arg(long, default_value_t = 20_000)]
    pub seals_events: usize,
}

/// How long the throughput phase waits for the province to hold everything.
const BENCH_WAIT_S: u64 = 60;

fn sample(n: usize) -> RaiseAlert {
    // ~200 bytes on the wire once encoded with its event envelope.
    RaiseAlert {
        camera: format!("cam-{:02}", n % 8 + 1),
        alert_type: ["NO_MASK", "NO_CHEF_HAT", "NO_UNIFORM", "PHONE"][n % 4].into(),
        canteen: Some("main".into()),
        snapshot: Some(format!("snapshots/2026/11/28/{n:08}.jpg")),
        no_merge: true,
        ..RaiseAlert::default()
    }
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.listing {
        println!("machine: {} cores; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), os_line());
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        return rt.block_on(crate::bench_listing::run(args.listing_alerts, args.listing_schools));
    }
    if let Some(dir) = &args.reopen {
        return crate::bench_year::reopen(dir, args.reopen_crash, args.reopen_leave);
    }
    if let Some(file) = &args.year {
        println!("machine: {} cores; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), os_line());
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let opts = crate::bench_year::YearOptions {
            days: args.year_days,
            kinds: args.year_kinds.clone(),
            storage: args.year_storage,
            max_rss_mib: args.year_max_rss_mib,
            dir: args.year_dir.clone(),
        };
        return rt.block_on(crate::bench_year::run(file, opts));
    }
    if args.seals {
        return crate::bench_seals::run(args.seals_events.max(250));
    }
    if args.health {
        println!("machine: {} cores; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), os_line());
        return crate::bench_health::run(args.health_samples);
    }
    if args.screen {
        println!("machine: {} cores; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), os_line());
        let month = crate::bench_console::Month { alerts: args.screen_alerts, ..Default::default() };
        return crate::bench_screen::run(month, args.screen_samples);
    }
    if args.console {
        println!("machine: {} cores; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), os_line());
        let month = crate::bench_console::Month { alerts: args.console_alerts, ..Default::default() };
        return crate::bench_console::run(month, args.console_samples);
    }
    let binary = std::env::current_exe().context("cannot find the mingchu binary")?;
    if args.lossy {
        println!("machine: {} cores; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), os_line());
        return crate::bench_lossy::run(&binary, args.lossy_seconds);
    }
    let tmp = tempfile::Builder::new().prefix("mingchu-bench-").tempdir()?;
    let dir = if args.keep { tmp.keep() } else { tmp.path().to_path_buf() };
    let spec = SmallSpec { cities: 2, counties_per_city: 2, schools_per_county: args.schools_per_county };
    let mut cluster = Cluster::create(&dir, &spec, &binary)?;
    anyhow::ensure!(args.storage != node::storage::Backend::Memory, "--storage is redb or sled for a federation");
    for id in cluster.ids() {
        cluster.edit_config(id, |cfg| cfg.storage = Some(args.storage))?;
    }
    cluster.set_log(&std::env::var("MINGCHU_BENCH_LOG").unwrap_or_else(|_| "warn".into()));
    let mut result = bench_body(&mut cluster, &args);
    if result.is_ok() && args.restore {
        result = restore_county(&mut cluster);
    }
    if result.is_ok() && args.outage {
        result = crate::bench_outage::run(&mut cluster);
    }
    if result.is_err() && std::env::var_os("MINGCHU_BENCH_HOLD").is_some() {
        eprintln!("holding the federation for inspection in {} (120 s)", cluster.dir.display());
        std::thread::sleep(Duration::from_secs(120));
    }
    cluster.stop_all();
    if result.is_ok() && args.backlog {
        result = crate::bench_backlog::bench(&binary, args.backlog_events, args.keep);
    }
    result
}

fn bench_body(cluster: &mut Cluster, args: &BenchArgs) -> anyhow::Result<()> {
    let province = cluster.topology.root();
    let schools: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::School).collect();
    println!(
        "mingchu bench: {} nodes ({} schools) as separate processes on loopback, {} flushed before every ack",
        cluster.topology.len(),
        schools.len(),
        args.storage
    );
    println!("machine: {} cores; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), os_line());
    cluster.start_all()?;
    cluster.wait_links_up(Duration::from_secs(60))?;
    cluster.register_cameras()?;

    let cpu_before = cpu_by_tier(cluster);
    let flushes_before = flush_by_tier(cluster);
    let writes_before = school_writes(cluster);
    // Throughput: every school raises `per_school` alerts as fast as it accepts them.
    let total = schools.len() * args.per_school;
    let before = cluster.status(province)?.store.alerts_applied;
    let t0 = Instant::now();
    let (per, batch, in_flight) = (args.per_school, args.batch.max(1), args.in_flight.clamp(1, 64));
    if batch == 1 && in_flight > 1 {
        // The intake mode: keep-alive connections driven by tasks on one thread.
        let mut shares = Vec::new();
        for &school in &schools {
            for k in 0..in_flight {
                let (from, to) = (per * k / in_flight, per * (k + 1) / in_flight);
                shares.push(crate::bench_intake::Share { addr: cluster.admin_addr(school), from, to });
            }
        }
        crate::bench_intake::run(shares, sample)?;
    } else {
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let mut handles = Vec::new();
            for &school in &schools {
                // Each of the school's senders its own share of the indices (so every detection is
                // distinct) and its own client (its own connection).
                for k in 0..in_flight {
                    let client = cluster.client(school);
                    let (from, to) = (per * k / in_flight, per * (k + 1) / in_flight);
                    handles.push(scope.spawn(move || -> anyhow::Result<()> {
                        let mut sent = from;
                        while sent < to {
                            let n = batch.min(to - sent);
                            if n == 1 {
                                client.raise_alert(&sample(sent))?;
                            } else {
                                client.raise_alerts((sent..sent + n).map(sample).collect())?;
                            }
                            sent += n;
                        }
                        Ok(())
                    }));
                }
            }
            for h in handles {
                h.join().map_err(|_| anyhow::anyhow!("load thread panicked"))??;
            }
            Ok(())
        })?;
    }
    let accepted = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(BENCH_WAIT_S);
    loop {
        let applied = cluster.status(province)?.store.alerts_applied - before;
        if applied as usize >= total {
            break;
        }
        if Instant::now() > deadline {
            let now = node::clock::unix_ms();
            for id in cluster.ids().into_iter().filter(|n| n.tier() != Tier::School) {
                if let Ok(st) = cluster.status(id) {
                    eprint!("{}", client::render::render_status(&st, now));
                }
            }
            bail!("province got {applied} of {total} alerts within {} s", BENCH_WAIT_S);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let all = t0.elapsed();
    println!(
        "\nthroughput: {total} alerts from {} schools, {batch} per request, {in_flight} request(s) in flight per school",
        schools.len()
    );
    println!(
        "  accepted (durable at the schools): {:.2} s = {:.0} alerts/s",
        accepted.as_secs_f64(),
        total as f64 / accepted.as_secs_f64()
    );
    println!(
        "  durable at the province:           {:.2} s = {:.0} alerts/s",
        all.as_secs_f64(),
        total as f64 / all.as_secs_f64()
    );
    let cpu_after = cpu_by_tier(cluster);
    let per_tier: Vec<String> = Tier::ALL
        .iter()
        .zip(cpu_before.iter().zip(cpu_after.iter()))
        .map(|(t, (b, a))| format!("{t} {:.1} s ({:.0} µs/alert)", a - b, (a - b) * 1e6 / total as f64))
        .collect();
    println!("  node CPU during the run (all nodes of a tier): {}", per_tier.join(", "));
    let school = Tier::School.depth();
    let writes = school_writes(cluster) - writes_before;
    let flushes = flush_by_tier(cluster)[school].0 - flushes_before[school].0;
    println!(
        "  at the schools: {writes} storage writes and {flushes} flushes for {total} alerts ({:.1} alerts per write, {:.1} per flush)",
        total as f64 / writes.max(1) as f64,
        total as f64 / flushes.max(1) as f64
    );

    // Latency: a steady rate, one alert per request, round-robin over the schools.
    let count = (args.rate as u64 * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let flush_before = flush_by_tier(cluster);
    let mut raised: BTreeMap<String, u64> = BTreeMap::new();
    let mut acked_us = Vec::with_capacity(count);
    let start = Instant::now();
    for i in 0..count {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let school = schools[i % schools.len()];
        let call = Instant::now();
        let a = cluster.client(school).raise_alert(&sample(i))?;
        acked_us.push(call.elapsed().as_micros() as u64);
        raised.insert(a.id, a.received_at_us);
    }
    let achieved = count as f64 / start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let at_province = cluster.client(province).alerts(count + 1_000, None)?;
    let mut lat: Vec<u64> =
        at_province.iter().filter_map(|a| raised.get(&a.id).map(|t0| a.received_at_us.saturating_sub(*t0))).collect();
    if lat.len() != count {
        bail!("latency phase: the province holds {} of {count} alerts", lat.len());
    }
    lat.sort_unstable();
    let f = |us: u64| us as f64 / 1000.0;
    println!(
        "\nlatency at a steady {achieved:.0} alerts/s for {} s ({count} alerts, school → county → city → province):",
        args.seconds
    );
    println!(
        "  p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        f(percentile(&lat, 0.50)),
        f(percentile(&lat, 0.90)),
        f(percentile(&lat, 0.99)),
        f(*lat.last().unwrap_or(&0))
    );
    acked_us.sort_unstable();
    let flush_after = flush_by_tier(cluster);
    let means: Vec<String> = Tier::ALL
        .iter()
        .zip(flush_before.iter().zip(flush_after.iter()))
        .map(|(t, (b, a))| (t, a.0 - b.0, a.1 - b.1))
        .filter(|(_, n, _)| *n > 0)
        .map(|(t, n, us)| format!("{t} {:.2} ms", us as f64 / n as f64 / 1000.0))
        .collect();
    println!("  mean flush (fsync) time during this phase: {}", means.join(", "));
    println!(
        "  for comparison, one raise request until durable at the school (HTTP + flush): p50 {:.2} ms   p99 {:.2} ms",
        f(percentile(&acked_us, 0.50)),
        f(percentile(&acked_us, 0.99))
    );
    memory_and_storage(cluster)
}

/// Resident memory per tier (after the phases above: every school holds its share) and the
/// stores' bytes on disk per event held.
fn memory_and_storage(cluster: &Cluster) -> anyhow::Result<()> {
    println!(
        "
memory and storage after the phases above:"
    );
    for tier in Tier::ALL {
        let ids: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == tier).collect();
        let rss: Vec<u64> = ids.iter().filter_map(|&n| cluster.rss_bytes(n)).collect();
        let private: Vec<u64> = ids.iter().filter_map(|&n| cluster.private_bytes(n)).collect();
        let (mut held, mut disk) = (0u64, 0u64);
        for &n in &ids {
            held += cluster.status(n)?.store.events_held;
            disk += cluster.data_bytes(n);
        }
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        let max = rss.iter().copied().max().unwrap_or(0);
        let mean = rss.iter().sum::<u64>() / rss.len().max(1) as u64;
        let own = private.iter().sum::<u64>() / private.len().max(1) as u64;
        println!(
            "  {tier:<8} {} node(s): RSS mean {:.1} MiB (its own {:.1} MiB, the rest the shared binary), max {:.1} MiB; data dirs {:.1} MiB for {held} events held = {:.0} bytes/event",
            ids.len(),
            mib(mean),
            mib(own),
            mib(max),
            mib(disk),
            disk as f64 / held.max(1) as f64
        );
    }
    Ok(())
}

/// Stops the county with the most events, removes its data dir, restarts it, and times how long
/// until it holds again everything it held (from its city, and its schools).
fn restore_county(cluster: &mut Cluster) -> anyhow::Result<()> {
    let counties: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::County).collect();
    let mut best = (0u64, counties[0]);
    for &c in &counties {
        best = best.max((cluster.status(c)?.store.events_held, c));
    }
    let (held, county) = best;
    let bytes = cluster.data_bytes(county);
    cluster.stop(county)?;
    std::fs::remove_dir_all(cluster.data_dir(county))?;
    let t0 = Instant::now();
    cluster.start(county)?;
    let deadline = t0 + Duration::from_secs(BENCH_WAIT_S);
    loop {
        if let Ok(st) = cluster.status(county)
            && !st.store.restoring
            && st.store.events_held >= held
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the wiped county {county} did not get its {held} events back within {BENCH_WAIT_S} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t0.elapsed();
    println!(
        "
restore: county {county} wiped ({held} events, {:.1} MiB on disk) and restarted: holds them all again after {:.2} s = {:.0} events/s",
        bytes as f64 / f64::from(1u32 << 20),
        took.as_secs_f64(),
        held as f64 / took.as_secs_f64()
    );
    Ok(())
}

/// (flushes, µs spent flushing) so far, summed over the nodes of each tier.
fn flush_by_tier(cluster: &Cluster) -> [(u64, u64); 4] {
    let mut out = [(0, 0); 4];
    for id in cluster.ids() {
        if let Ok(st) = cluster.status(id) {
            let f = &mut out[id.tier().depth()];
            f.0 += st.store.flushes;
            f.1 += st.store.flush_us_total;
        }
    }
    out
}

/// Storage writes of new local events so far, summed over the schools.
fn school_writes(cluster: &Cluster) -> u64 {
    let schools = cluster.ids().into_iter().filter(|id| id.tier() == Tier::School);
    schools.filter_map(|id| cluster.status(id).ok()).map(|st| st.store.append_writes).sum()
}

/// CPU seconds used so far by all nodes of each tier.
fn cpu_by_tier(cluster: &Cluster) -> [f64; 4] {
    let mut out = [0.0; 4];
    for id in cluster.ids() {
        out[id.tier().depth()] += cluster.cpu_seconds(id).unwrap_or(0.0);
    }
    out
}

fn os_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    format!("{cpu}; {}", std::env::consts::OS)
}
