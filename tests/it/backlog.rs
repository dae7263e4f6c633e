//! The priority lane on real processes: fresh alerts raised while a 50,000-alert backlog drains
//! reach the province ahead of it, and nothing is lost or applied twice.

use std::time::Duration;

use harness::bench_backlog;
use harness::cluster::Cluster;
use topology::generate::SmallSpec;

#[test]
fn fresh_alerts_overtake_a_50_000_alert_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 4 };
    let mut cluster = Cluster::create(dir.path(), &spec, &crate::binary()).unwrap();
    let county = bench_backlog::prepare(&mut cluster).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    let r = bench_backlog::run(&mut cluster, county, 50_000, Duration::from_millis(10)).unwrap();
    cluster.stop_all();
    eprintln!(
        "drain {:?}, {} fresh during it, {} overtook, lane carried {}",
        r.drain,
        r.during_us.len(),
        r.overtook,
        r.fresh_events_sent
    );
    assert_eq!((r.lost, r.duplicated), (0, 0), "every alert held exactly once at the province");
    assert!(!r.during_us.is_empty(), "no fresh alert was raised while the backlog drained");
    assert!(r.fresh_events_sent > 0, "the county never used the priority lane");
    assert!(r.overtook > 0, "no fresh alert reached the province before the backlog's end");
}
