//! Cross-crate integration tests: real `mingchu` processes, real QUIC with mutual TLS, real redb.
//!
//! Each test builds its own federation in a temporary folder on free loopback ports; the nodes are
//! child processes whose stdin this test holds, so they stop when the test ends, however it ends.

mod accounts;
mod backlog;
mod bad_peers;
mod browser;
mod browser_cases;
mod browser_devices;
mod browser_draw;
mod browser_files;
mod browser_health;
mod browser_ledger;
mod browser_screen;
mod browser_video;
mod bulletin;
mod cases;
mod cli;
mod console;
mod delegation;
mod devices;
mod federation;
mod files;
mod flood;
mod fuzz_seeds;
mod health;
mod ledger_cli;
mod links;
mod loose_ends;
mod metrics;
mod outage;
mod partition;
mod people;
mod registry;
mod retention;
mod revocation;
mod signed_history;
mod spot;
mod spot_draw;
mod tidy;
mod warnings;
mod year;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::cluster::Cluster;
use topology::generate::SmallSpec;

/// The `mingchu` program (this package's `mingchu-it` binary: the same `mingchu::main`),
/// built by `cargo test` in the test profile.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mingchu-it"))
}

/// Runs `mingchu args…` (the CLI, as an admin types it); returns (success, stdout, stderr).
pub fn mingchu(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(binary()).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A started federation of `cities × counties × schools` with every link up.
pub fn federation(cities: u32, counties_per_city: u32, schools_per_county: u32) -> (tempfile::TempDir, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities, counties_per_city, schools_per_county };
    let mut cluster = Cluster::create(dir.path(), &spec, &binary()).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    (dir, cluster)
}

/// `from` sends a directive titled `title` to `to` (no text); its event.
pub fn directive(
    cluster: &Cluster,
    from: topology::NodeId,
    to: topology::NodeId,
    title: &str,
) -> node::api::directives::EventView {
    let d = node::api::directives::SendDirective { to: to.to_string(), title: title.into(), text: String::new() };
    cluster.client(from).send_directive(&d).unwrap()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An alert event of `origin` as a peer would carry it on the wire (the frame seeds' sample, and
/// the bad peers' forged events).
pub fn alert_event(origin: topology::NodeId, seq: u64) -> protocol::event::Event {
    use protocol::alert::{AlertRaised, AlertType, Severity, Zone};
    protocol::event::Event {
        by: None,
        origin,
        seq,
        hlc: protocol::event::Hlc { wall_ms: 1_700_000_000_000, logical: 3 },
        scope: origin,
        body: protocol::event::Body::Alert(AlertRaised {
            camera: "cam-03".into(),
            canteen: "main".into(),
            zone: Zone::Cooking,
            alert_type: AlertType::NoChefHat,
            severity: Severity::General,
            detected_at_ms: 1_700_000_000_000,
            confidence_permille: 913,
            snapshot: "snap/1.jpg".into(),
            repeat_count: 1,
        }),
    }
}

/// Raises an alert at `school` and waits (15 s at most) until the province holds it: the tree
/// still carries that school's alerts end to end.
pub fn alert_reaches_province(cluster: &Cluster, school: topology::NodeId, what: &str) {
    let a = cluster
        .client(school)
        .raise_alert(&node::api::alerts::RaiseAlert {
            camera: "cam-01".into(),
            alert_type: "RODENT".into(),
            ..Default::default()
        })
        .unwrap();
    let province = cluster.topology.root();
    eventually(Duration::from_secs(15), what, || {
        cluster.client(province).alerts(100, None).unwrap().iter().any(|x| x.id == a.id).then_some(())
    });
}
